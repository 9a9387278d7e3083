-- ticket_note_quote: remember the first wait a patient was quoted (for ETA accuracy).
--
-- KEYS[1] desk meta. ARGV: now_override (unused), ticket_id, eta_ms. Only a waiting ticket, and only its first quote:
-- a later quote (after a requeue, say) does not replace what the patient was first told.
-- Returns {'ok', 1} if noted, {'ok', 0} if not.
local meta_key = KEYS[1]
local ticket_id = ARGV[2]
local eta_ms = ARGV[3]

local P = desk_prefix(meta_key)
local tkey = dk(P, 'ticket', ticket_id)
if redis.call('HGET', tkey, 'state') ~= 'waiting' then
  return {'ok', 0}
end
return {'ok', redis.call('HSETNX', tkey, 'quoted_eta_ms', eta_ms)}
