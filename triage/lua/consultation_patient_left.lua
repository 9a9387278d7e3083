-- consultation_patient_left: the patient of a consultation is gone for good (they closed it, or
-- stayed disconnected past the grace period); it ends as patient_left whatever its state.
--
-- Frees the doctor's slot if one was held (offering the next patient in push departments).
-- Refused for a consultation that already ended (already_ended). Returns {'ok',
-- consultation_id, doctor_id, offers}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local retention_s = tonumber(ARGV[4])
local accept_ms = tonumber(ARGV[5])
local consultation_id = ARGV[6]
local id_seed = ARGV[7]

local P, now, idem, prior = begin(meta_key, now_override, 'patient_left', request_id)
if prior then
  return prior
end

local con = hgetall(dk(P, 'consultation', consultation_id))
if con.state == nil then
  return remember(idem, idem_ttl_s, fail('unknown_consultation', consultation_id))
end
if con.state == 'ended' then
  return remember(idem, idem_ttl_s, fail('already_ended', con.outcome))
end
finish(P, consultation_id, now, 'patient_left', '', retention_s)
local offers = {}
if con.doctor ~= nil and con.doctor ~= '' then
  offers = assign_push_for_doctor(P, con.doctor, now, accept_ms, id_seed)
end
return remember(idem, idem_ttl_s, {'ok', consultation_id, con.doctor or '', offers})
