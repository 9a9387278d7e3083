-- consultation_end: a participant (the patient or the current doctor) ends an active
-- consultation, with the doctor's summary.
--
-- Frees the doctor's slot (and, in push departments, offers them the next patient). Refused
-- for anyone else (not_participant), for a consultation that is not active (already_ended, or
-- not_active while it is offered or queued). Returns {'ok', consultation_id, outcome, offers}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local retention_s = tonumber(ARGV[4])
local accept_ms = tonumber(ARGV[5])
local user_id = ARGV[6]
local consultation_id = ARGV[7]
local summary = ARGV[8]
local id_seed = ARGV[9]

local P, now, idem, prior = begin(meta_key, now_override, 'end', request_id)
if prior then
  return prior
end

local con = hgetall(dk(P, 'consultation', consultation_id))
if con.state == nil then
  return remember(idem, idem_ttl_s, fail('unknown_consultation', consultation_id))
end
if user_id ~= con.patient and user_id ~= con.doctor then
  return remember(idem, idem_ttl_s, fail('not_participant', user_id))
end
if con.state == 'ended' then
  return remember(idem, idem_ttl_s, fail('already_ended', con.outcome))
end
if con.state ~= 'active' then
  return remember(idem, idem_ttl_s, fail('not_active', con.state))
end
finish(P, consultation_id, now, 'completed', summary, retention_s)
local offers = assign_push_for_doctor(P, con.doctor, now, accept_ms, id_seed)
return remember(idem, idem_ttl_s, {'ok', consultation_id, 'completed', offers})
