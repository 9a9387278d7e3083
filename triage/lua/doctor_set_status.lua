-- doctor_set_status: a doctor signs on, changes status or profile, or signs off.
--
-- Creates or updates the doctor's profile (name, departments, capacity) and status. Any status
-- but offline also renews presence until now + presence_ttl (a heartbeat). Going offline with
-- open consultations is refused (end, transfer or go away first). Going available in a push
-- department offers waiting patients at once. Returns {'ok', status, active, capacity, offers}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local accept_ms = tonumber(ARGV[4])
local doctor_id = ARGV[5]
local status = ARGV[6]
local display_name = ARGV[7]
local departments_csv = ARGV[8]
local capacity = tonumber(ARGV[9])
local presence_ttl_ms = tonumber(ARGV[10])
local id_seed = ARGV[11]

local P, now, idem, prior = begin(meta_key, now_override, 'set_status', request_id)
if prior then
  return prior
end

local dkey = dk(P, 'doctor', doctor_id)
local open = redis.call('SCARD', dk(P, 'doctor', doctor_id, 'consultations'))
if status == 'offline' and open > 0 then
  return remember(idem, idem_ttl_s, fail('open_consultations', tostring(open)))
end

-- Leave the sets of departments no longer served before the profile changes.
local old_departments = redis.call('HGET', dkey, 'departments')
if old_departments then
  for _, dept in ipairs(split(old_departments)) do
    redis.call('ZREM', dk(P, 'available', dept), doctor_id)
    redis.call('SREM', dk(P, 'serving', dept), doctor_id)
  end
end

redis.call('HSET', dkey, 'id', doctor_id, 'name', display_name, 'departments', departments_csv,
  'capacity', capacity, 'status', status, 'status_since', now)
redis.call('HSETNX', dkey, 'active', 0)
-- Never assigned yet: idle since signing on (push ties go to the one idle longest).
redis.call('HSETNX', dkey, 'last_assigned', now)
if status == 'offline' then
  redis.call('HSET', dkey, 'alive_until', 0)
  redis.call('ZREM', dk(P, 'timers'), 'presence|' .. doctor_id)
else
  redis.call('HSET', dkey, 'alive_until', now + presence_ttl_ms)
  redis.call('ZADD', dk(P, 'timers'), now + presence_ttl_ms, 'presence|' .. doctor_id)
end
refresh_doctor(P, doctor_id, now)
emit(P, 'doctor_status', {doctor = doctor_id, status = status})

local offers = {}
if status == 'available' then
  offers = assign_push_for_doctor(P, doctor_id, now, accept_ms, id_seed)
end
local active = tonumber(redis.call('HGET', dkey, 'active'))
return remember(idem, idem_ttl_s, {'ok', status, active, capacity, offers})
