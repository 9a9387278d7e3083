-- presence_reassert: a gateway states the connections it holds now, replacing what Redis held
-- for it (after a Redis outage or restart, its counts may be stale or gone, or it may have
-- been reaped meanwhile). Emits no events: the users it names were connected throughout, so
-- a patient's absence timers that a reap may have started are cancelled. ARGV after the
-- gateway: role, user, count, role, user, count, ... Returns {'ok', users}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local gateway = ARGV[2]

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
local ukey = dk(P, 'gateway', gateway, 'users')
for _, member in ipairs(redis.call('SMEMBERS', ukey)) do
  local sep = string.find(member, '|', 1, true)
  redis.call('HDEL', dk(P, 'presence', string.sub(member, sep + 1)), gateway)
end
redis.call('DEL', ukey)
local users = 0
for i = 3, #ARGV, 3 do
  local role, user, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if count > 0 then
    redis.call('HSET', dk(P, 'presence', user), gateway, count)
    redis.call('SADD', ukey, role .. '|' .. user)
    if role == 'patient' then
      cancel_patient_absence(P, user)
    elseif role == 'doctor' and redis.call('EXISTS', dk(P, 'doctor', user)) == 1 then
      redis.call('HSET', dk(P, 'doctor', user), 'connected', 1)
      refresh_doctor(P, user, now)
    end
    users = users + 1
  end
end
return {'ok', users}
