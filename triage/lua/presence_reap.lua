-- presence_reap: forget the connections of gateways whose lease lapsed (a SIGKILLed process,
-- a lost host). Each of their users with no live connection elsewhere is gone (user_gone), as
-- if their last connection had closed. Does nothing while presence is held. At most `limit`
-- gateways per call. Returns {'ok', reaped gateway ids...}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local doctor_grace_ms = tonumber(ARGV[2])
local patient_grace_ms = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
local reaped = {'ok'}
if held(P, now) then
  return reaped
end
local dead = redis.call('ZRANGEBYSCORE', dk(P, 'gateways'), '-inf', now, 'LIMIT', 0, limit)
for _, gateway in ipairs(dead) do
  local ukey = dk(P, 'gateway', gateway, 'users')
  local members = redis.call('SMEMBERS', ukey)
  table.sort(members)
  redis.call('ZREM', dk(P, 'gateways'), gateway)
  for _, member in ipairs(members) do
    local sep = string.find(member, '|', 1, true)
    local role, user = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
    redis.call('HDEL', dk(P, 'presence', user), gateway)
    if live_connections(P, user, now) == 0 then
      user_gone(P, user, role, now, doctor_grace_ms, patient_grace_ms)
    end
  end
  redis.call('DEL', ukey)
  reaped[#reaped + 1] = gateway
end
return reaped
