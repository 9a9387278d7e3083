-- queue_reprioritise: raise a waiting ticket's urgency (new symptoms, a doctor's or a
-- supervisor's call), keeping its join time: its place becomes join time minus the new head
-- start. Lowering is refused (not_raised); so is a ticket that is not waiting (not_waiting).
-- Returns {'ok', ticket_id, urgency, position}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local ticket_id = ARGV[4]
local urgency = ARGV[5]
local head_start_ms = tonumber(ARGV[6])
local reason = ARGV[7]

local LEVELS = {routine = 0, priority = 1, urgent = 2, emergency = 3}
local P, now, idem, prior = begin(meta_key, now_override, 'reprioritise', request_id)
if prior then
  return prior
end

local tkey = dk(P, 'ticket', ticket_id)
local ticket = hgetall(tkey)
if ticket.state ~= 'waiting' then
  return remember(idem, idem_ttl_s, fail('not_waiting', ticket.state or 'unknown'))
end
if LEVELS[urgency] <= LEVELS[ticket.urgency] then
  return remember(idem, idem_ttl_s, fail('not_raised', ticket.urgency))
end
local place = place_of(tonumber(ticket.join_ms), urgency, head_start_ms)
local history = cjson.decode(ticket.urgency_history or '[]')
history[#history + 1] = {urgency = urgency, at = now, reason = reason}
redis.call('HSET', tkey, 'urgency', urgency, 'place', place, 'urgency_history',
  cjson.encode(history))
redis.call('ZADD', dk(P, 'queue', ticket.dept), 'XX', place, ticket_id)
emit(P, 'reprioritised', {ticket = ticket_id, patient = ticket.patient,
  dept = ticket.dept, urgency = urgency, reason = reason})
local rank = redis.call('ZRANK', dk(P, 'queue', ticket.dept), ticket_id)
return remember(idem, idem_ttl_s, {'ok', ticket_id, urgency, rank and (rank + 1) or 0})
