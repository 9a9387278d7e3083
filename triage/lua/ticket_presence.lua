-- ticket_presence: a waiting patient's connection went away (start the grace timer) or came
-- back (cancel it). When the timer fires with the patient still away, the ticket is abandoned
-- (timers_fire), so doctors never take ghosts. Returns {'ok', state}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local ticket_id = ARGV[2]
local connected = ARGV[3]
local grace_ms = tonumber(ARGV[4])

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
local tkey = dk(P, 'ticket', ticket_id)
local state = redis.call('HGET', tkey, 'state')
if not state then
  return fail('unknown_ticket', ticket_id)
end
if connected == '1' then
  redis.call('HSET', tkey, 'connected', 1)
  redis.call('ZREM', dk(P, 'timers'), 'grace|' .. ticket_id)
elseif state == 'waiting' then
  redis.call('HSET', tkey, 'connected', 0, 'disconnected_ms', now)
  redis.call('ZADD', dk(P, 'timers'), now + grace_ms, 'grace|' .. ticket_id)
end
return {'ok', state}
