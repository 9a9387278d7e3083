-- queue_cancel: a waiting patient leaves the queue (counted as abandoned, with their wait).
--
-- Refused when the patient has no waiting ticket (not_waiting), including when their ticket
-- was already offered to or taken by a doctor: that consultation ends through
-- consultation_patient_left instead. Returns {'ok', ticket_id, waited_ms, urgency, red_flags}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local retention_s = tonumber(ARGV[4])
local patient_id = ARGV[5]
local reason = ARGV[6]

local P, now, idem, prior = begin(meta_key, now_override, 'cancel', request_id)
if prior then
  return prior
end

local ticket_id = redis.call('HGET', dk(P, 'patient', patient_id), 'ticket')
if not ticket_id or ticket_id == '' then
  return remember(idem, idem_ttl_s, fail('not_waiting', patient_id))
end
local result = abandon(P, ticket_id, now, reason, retention_s)
return remember(idem, idem_ttl_s, result)
