-- queue_take_next: an available doctor under capacity takes the best ticket of their
-- departments, and the consultation starts in the same step.
--
-- "Best" is the lowest place across the doctor's department queues, ties to the earlier
-- arrival. Refused when the doctor is not available (not_available), their presence has lapsed
-- (offline), they are at capacity (at_capacity) or nobody waits (queue_empty). A ticket that
-- returned to the queue (transfer, requeue) resumes its consultation. Returns {'ok',
-- consultation_id, ticket_id, patient_id, dept, waited_ms}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local doctor_id = ARGV[4]
local new_consultation_id = ARGV[5]
local accept_ms = tonumber(ARGV[6])

local P, now, idem, prior = begin(meta_key, now_override, 'take_next', request_id)
if prior then
  return prior
end

local dkey = dk(P, 'doctor', doctor_id)
local doc = redis.call('HMGET', dkey, 'status', 'alive_until', 'active', 'capacity',
  'departments')
local status, active, capacity = doc[1], tonumber(doc[3]), tonumber(doc[4])
if not status or status == 'offline' then
  return remember(idem, idem_ttl_s, fail('offline', doctor_id))
end
if tonumber(doc[2]) <= now and not held(P, now) then
  lapse_doctor(P, doctor_id, now, accept_ms, new_consultation_id)
  return remember(idem, idem_ttl_s, fail('offline', doctor_id))
end
if status ~= 'available' then
  return remember(idem, idem_ttl_s, fail('not_available', status))
end
if active >= capacity then
  return remember(idem, idem_ttl_s, fail('at_capacity', doc[3]))
end

local departments = split(doc[5])
local best_ticket, best_place
for _, dept in ipairs(departments) do
  local head = redis.call('ZRANGE', dk(P, 'queue', dept), 0, 0, 'WITHSCORES')
  if #head > 0 then
    local place = tonumber(head[2])
    if best_place == nil or place < best_place or (place == best_place and head[1] < best_ticket) then
      best_ticket, best_place = head[1], place
    end
  end
end
if best_ticket == nil then
  return remember(idem, idem_ttl_s, fail('queue_empty', ''))
end

-- The match, in one pass: what bind_ticket + hold_slot + activate do for any caller, with each
-- record read once (only the fields needed: a ticket holds the whole intake) and written once.
-- This is the hottest call of a busy desk, and every write a script makes also goes to the AOF.
local tid = best_ticket
local tkey = dk(P, 'ticket', tid)
local ticket = redis.call('HMGET', tkey, 'patient', 'dept', 'consultation', 'join_ms',
  'matched_ms', 'red_flags', 'quoted_eta_ms')
local patient, dept, cid, matched_ms = ticket[1], ticket[2], ticket[3], ticket[5]
local waited = now - tonumber(ticket[4])
queue_remove(P, dept, tid, ticket[6] or '')
local ckey
local ticket_fields = {'state', 'assigned'}
if cid == false or cid == '' then
  -- A first match: the consultation is new, so is every field of it.
  cid = new_consultation_id
  ckey = dk(P, 'consultation', cid)
  redis.call('HSET', ckey, 'id', cid, 'patient', patient, 'ticket', tid, 'dept', dept,
    'created_ms', now, 'history', open_segment({}, doctor_id, now), 'former_doctors', '',
    'state', 'active', 'doctor', doctor_id, 'accept_deadline', '', 'started_ms', now)
  ticket_fields[#ticket_fields + 1] = 'consultation'
  ticket_fields[#ticket_fields + 1] = cid
  redis.call('HSET', dk(P, 'patient', patient), 'consultation', cid)
  redis.call('ZADD', dk(P, 'patient', patient, 'consultations'), now, cid)
else
  -- Back from a transfer or requeue: a new segment, and the start time of the first one.
  ckey = dk(P, 'consultation', cid)
  local con = redis.call('HMGET', ckey, 'history', 'started_ms')
  local fields = {'state', 'active', 'doctor', doctor_id, 'dept', dept, 'accept_deadline', '',
    'history', open_segment({history = con[1] or nil}, doctor_id, now)}
  if not con[2] or con[2] == '' then
    fields[#fields + 1] = 'started_ms'
    fields[#fields + 1] = now
  end
  redis.call('HSET', ckey, unpack(fields))
end
local first_match = not matched_ms or matched_ms == ''
if first_match then
  ticket_fields[#ticket_fields + 1] = 'matched_ms'
  ticket_fields[#ticket_fields + 1] = now
  ticket_fields[#ticket_fields + 1] = 'waited_ms'
  ticket_fields[#ticket_fields + 1] = waited
end
redis.call('HSET', tkey, unpack(ticket_fields))
-- With a doctor, the patient's connection is the consultation's business, not the queue's.
redis.call('ZREM', dk(P, 'timers'), 'grace|' .. tid, 'accept|' .. cid)
-- The slot: the doctor's new load from the value read; they stay available (so on duty: their
-- serving sets are already right) and leave the available sets only when now full.
active = active + redis.call('SADD', dk(P, 'doctor', doctor_id, 'consultations'), cid)
redis.call('HSET', dkey, 'active', active, 'last_assigned', now)
for _, d in ipairs(departments) do
  if active < capacity then
    redis.call('ZADD', dk(P, 'available', d), available_score(active, now), doctor_id)
  else
    redis.call('ZREM', dk(P, 'available', d), doctor_id)
  end
end
if first_match then
  count(P, dept, 'matched')
  count(P, dept, 'wait_ms_matched', waited)
  redis.call('ZADD', dk(P, 'matches', dept), now, tid)
  record_match(P, dept, tid, now, waited, ticket[7])
end
emit(P, 'assigned', {consultation = cid, ticket = tid, patient = patient,
  doctor = doctor_id, dept = dept, waited_ms = waited})
return remember(idem, idem_ttl_s, {'ok', cid, tid, patient, dept, waited})
