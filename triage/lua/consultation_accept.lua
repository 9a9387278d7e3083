-- consultation_accept: a doctor accepts a consultation offered to them (push routing or a
-- transfer to them by name); it becomes active.
--
-- Refused when the consultation is not offered to this doctor (not_offered), e.g. because the
-- accept deadline fired first and the ticket went back to the queue. Returns {'ok',
-- consultation_id, ticket_id, patient_id, dept, waited_ms}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local doctor_id = ARGV[4]
local consultation_id = ARGV[5]
local accept_ms = tonumber(ARGV[6])
local id_seed = ARGV[7]

local P, now, idem, prior = begin(meta_key, now_override, 'accept', request_id)
if prior then
  return prior
end

local con = hgetall(dk(P, 'consultation', consultation_id))
if con.state ~= 'offered' or con.doctor ~= doctor_id then
  return remember(idem, idem_ttl_s, fail('not_offered', con.state or 'unknown'))
end
local alive_until = redis.call('HGET', dk(P, 'doctor', doctor_id), 'alive_until')
if tonumber(alive_until or '0') <= now and not held(P, now) then
  -- The doctor's presence lapsed (not yet swept): they are never assigned, as if swept.
  lapse_doctor(P, doctor_id, now, accept_ms, id_seed)
  return remember(idem, idem_ttl_s, fail('offline', doctor_id))
end
if tonumber(con.accept_deadline) <= now then
  -- The deadline passed but the sweep has not run: the timeout wins, as if it had.
  fire_accept_timeout(P, consultation_id, now, accept_ms, id_seed)
  return remember(idem, idem_ttl_s, fail('not_offered', 'expired'))
end
local waited = activate(P, consultation_id, doctor_id, now)
return remember(idem, idem_ttl_s, {'ok', consultation_id, con.ticket, con.patient, con.dept, waited})
