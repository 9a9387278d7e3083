-- consultation_requeue: a consultation whose doctor vanished returns to its department's queue
-- at the ticket's original place, keeping its id and transcript for the next doctor.
--
-- The doctor who lost it is set away if they were available, so it is not pushed straight back
-- to them; they go available again themselves. Refused unless the consultation is offered or
-- active (not_active). Returns {'ok', consultation_id, former_doctor, state, offers}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local accept_ms = tonumber(ARGV[4])
local consultation_id = ARGV[5]
local id_seed = ARGV[6]

local P, now, idem, prior = begin(meta_key, now_override, 'requeue', request_id)
if prior then
  return prior
end

local con = hgetall(dk(P, 'consultation', consultation_id))
if con.state ~= 'active' and con.state ~= 'offered' then
  return remember(idem, idem_ttl_s, fail('not_active', con.state or 'unknown'))
end
-- The doctor lost this patient (they vanished): no new patients until they say they are back.
local dkey = dk(P, 'doctor', con.doctor)
if redis.call('HGET', dkey, 'status') == 'available' then
  redis.call('HSET', dkey, 'status', 'away', 'status_since', now)
  emit(P, 'doctor_status', {doctor = con.doctor, status = 'away', reason = 'requeued'})
end
back_to_queue(P, consultation_id, now, 'requeued', 'requeued')
local offers = assign_push(P, con.dept, now, accept_ms, id_seed)
local state = redis.call('HGET', dk(P, 'consultation', consultation_id), 'state')
return remember(idem, idem_ttl_s, {'ok', consultation_id, con.doctor, state, offers})
