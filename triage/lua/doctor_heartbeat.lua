-- doctor_heartbeat: a doctor's client is still there; presence runs until now + ttl.
--
-- Refused for a doctor who is offline (signed off, or presence already lapsed and fired): the
-- client must set a status again, so nobody silently comes back into rotation. Returns
-- {'ok', alive_until_ms}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local doctor_id = ARGV[2]
local presence_ttl_ms = tonumber(ARGV[3])
local accept_ms = tonumber(ARGV[4])
local id_seed = ARGV[5]

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
local dkey = dk(P, 'doctor', doctor_id)
local doc = redis.call('HMGET', dkey, 'status', 'alive_until')
if doc[1] == false or doc[1] == 'offline' then
  return fail('offline', doctor_id)
end
if tonumber(doc[2]) <= now and not held(P, now) then
  -- Lapsed but not yet swept: the lapse wins, exactly as if the sweep had come first. (During
  -- a hold after an outage the heartbeat renews instead: the doctor's client is evidently there.)
  lapse_doctor(P, doctor_id, now, accept_ms, id_seed)
  return fail('offline', doctor_id)
end
local alive_until = now + presence_ttl_ms
redis.call('HSET', dkey, 'alive_until', alive_until)
redis.call('ZADD', dk(P, 'timers'), alive_until, 'presence|' .. doctor_id)
return {'ok', alive_until}
