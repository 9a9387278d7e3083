-- presence_update: a user's connection opened (delta 1) or closed (delta -1) on a gateway.
--
-- Counts connections per (user, gateway). Opening is refused with {'err',
-- 'too_many_connections', n} when the user already holds `max_connections` live ones (0: no
-- limit). When the first live connection opens, what the user's absence started is cancelled
-- (user_back); when the last live one closes, the absence starts (user_gone): grace timers and
-- the *_away events. Connections on gateways whose lease lapsed do not count. Returns {'ok',
-- live connections after, changed (1 when the user came back or went)}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local gateway = ARGV[2]
local user = ARGV[3]
local role = ARGV[4]
local delta = tonumber(ARGV[5])
local doctor_grace_ms = tonumber(ARGV[6])
local patient_grace_ms = tonumber(ARGV[7])
local max_connections = tonumber(ARGV[8])

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
local pkey = dk(P, 'presence', user)
local before = live_connections(P, user, now)
if delta > 0 then
  if max_connections > 0 and before >= max_connections then
    return fail('too_many_connections', tostring(before))
  end
  redis.call('HINCRBY', pkey, gateway, 1)
  redis.call('SADD', dk(P, 'gateway', gateway, 'users'), role .. '|' .. user)
  if before == 0 then
    user_back(P, user, role, now)
  end
  return {'ok', before + 1, before == 0 and 1 or 0}
end
local left = redis.call('HINCRBY', pkey, gateway, -1)
if left <= 0 then
  redis.call('HDEL', pkey, gateway)
  redis.call('SREM', dk(P, 'gateway', gateway, 'users'), role .. '|' .. user)
end
local after = live_connections(P, user, now)
if before > 0 and after == 0 then
  user_gone(P, user, role, now, doctor_grace_ms, patient_grace_ms)
  return {'ok', 0, 1}
end
return {'ok', after, 0}
