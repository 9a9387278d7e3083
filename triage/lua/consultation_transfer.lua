-- consultation_transfer: the current doctor hands an active consultation to another
-- department's queue or to a named doctor; the consultation keeps its id and transcript.
--
-- To a department: the ticket joins that queue at its original place (the patient keeps the
-- time already waited); the consultation records `transferred_by`, and push routing never
-- offers it back to that doctor. To a doctor: it is offered to them (accept within the
-- deadline, as in push routing); they must serve the consultation's department and be
-- available with a free slot (target_unavailable). Refused for
-- anyone but the current doctor (not_participant) and unless active (not_active). Returns
-- {'ok', consultation_id, state, offers}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local accept_ms = tonumber(ARGV[4])
local doctor_id = ARGV[5]
local consultation_id = ARGV[6]
local to_department = ARGV[7]
local to_doctor = ARGV[8]
local id_seed = ARGV[9]

local P, now, idem, prior = begin(meta_key, now_override, 'transfer', request_id)
if prior then
  return prior
end

local ckey = dk(P, 'consultation', consultation_id)
local con = hgetall(ckey)
if con.state == nil then
  return remember(idem, idem_ttl_s, fail('unknown_consultation', consultation_id))
end
if con.doctor ~= doctor_id then
  return remember(idem, idem_ttl_s, fail('not_participant', doctor_id))
end
if con.state ~= 'active' then
  return remember(idem, idem_ttl_s, fail('not_active', con.state))
end

local offers = {}
if to_doctor ~= '' then
  local target = hgetall(dk(P, 'doctor', to_doctor))
  local serves = false
  for _, dept in ipairs(split(target.departments)) do
    serves = serves or dept == con.dept
  end
  if to_doctor == doctor_id or not serves or target.status ~= 'available'
      or tonumber(target.alive_until or '0') <= now
      or tonumber(target.active) >= tonumber(target.capacity) then
    return remember(idem, idem_ttl_s, fail('target_unavailable', to_doctor))
  end
  local former = con.former_doctors ~= '' and (con.former_doctors .. ',' .. doctor_id) or doctor_id
  redis.call('HSET', ckey, 'history', close_segment(con, now, 'transferred'),
    'former_doctors', former)
  release_slot(P, doctor_id, consultation_id, now)
  con = hgetall(ckey)
  local deadline = now + accept_ms
  redis.call('HSET', ckey, 'state', 'offered', 'doctor', to_doctor, 'accept_deadline', deadline,
    'history', open_segment(con, to_doctor, now, true))
  hold_slot(P, to_doctor, consultation_id, now)
  redis.call('ZADD', dk(P, 'timers'), deadline, 'accept|' .. consultation_id)
  count(P, con.dept, 'transferred')
  emit(P, 'transferred', {consultation = consultation_id, ticket = con.ticket,
    patient = con.patient, doctor = doctor_id, to_doctor = to_doctor, dept = con.dept})
  emit(P, 'offered', {consultation = consultation_id, ticket = con.ticket,
    patient = con.patient, doctor = to_doctor, dept = con.dept, accept_deadline = deadline})
else
  if not routing_of(P, to_department) then
    return remember(idem, idem_ttl_s, fail('unknown_department', to_department))
  end
  redis.call('HSET', ckey, 'dept', to_department, 'transferred_by', doctor_id)
  redis.call('HSET', dk(P, 'ticket', con.ticket), 'dept', to_department)
  back_to_queue(P, consultation_id, now, 'transferred', 'transferred')
  offers = assign_push(P, to_department, now, accept_ms, id_seed)
end
for _, value in ipairs(assign_push_for_doctor(P, doctor_id, now, accept_ms,
    id_seed .. '-d')) do
  offers[#offers + 1] = value
end
local state = redis.call('HGET', ckey, 'state')
return remember(idem, idem_ttl_s, {'ok', consultation_id, state, offers})
