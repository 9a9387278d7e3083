-- presence: who is connected, per (user, gateway), under each gateway's liveness lease.
-- Defines functions only; it reads no KEYS or ARGV. Needs desk.lua (loaded before it).
--
--   gateways                      sorted set: gateway id -> lease expiry (ms)
--   presence:<user>               hash: gateway id -> open connections there
--   gateway:<id>:users            set of "<role>|<user>" with connections on that gateway
--   presence_hold                 string: no timer fires and no lease is reaped before this
--                                 (ms), so after a Redis outage the live gateways re-assert
--                                 presence before anyone counts as gone

-- Connections of `user` on gateways whose lease is alive.
local function live_connections(P, user, now)
  local flat = redis.call('HGETALL', dk(P, 'presence', user))
  local total = 0
  for i = 1, #flat, 2 do
    local lease = redis.call('ZSCORE', dk(P, 'gateways'), flat[i])
    if lease and tonumber(lease) > now then
      total = total + tonumber(flat[i + 1])
    end
  end
  return total
end


-- The user's last live connection is gone. A doctor's presence now runs out after the doctor
-- grace (then their patients are requeued, by the `presence` timer); a patient's open
-- consultation ends as patient_left after the patient grace (`cgrace`), a waiting one leaves
-- the queue after it (`grace`). The other side is told at once (events *_away).
local function user_gone(P, user, role, now, doctor_grace_ms, patient_grace_ms)
  if role == 'doctor' then
    local dkey = dk(P, 'doctor', user)
    local doc = redis.call('HMGET', dkey, 'status', 'alive_until')
    if doc[1] and doc[1] ~= 'offline' then
      local until_ms = math.min(tonumber(doc[2] or '0'), now + doctor_grace_ms)
      redis.call('HSET', dkey, 'alive_until', until_ms, 'connected', 0)
      refresh_doctor(P, user, now) -- out of the available sets: no new patients meanwhile
      redis.call('ZADD', dk(P, 'timers'), until_ms, 'presence|' .. user)
      emit(P, 'doctor_away', {doctor = user, until_ms = until_ms})
    end
    return
  end
  if role ~= 'patient' then
    return
  end
  local open = redis.call('HMGET', dk(P, 'patient', user), 'ticket', 'consultation')
  local tid, cid = open[1], open[2]
  if cid and cid ~= '' then
    local con = redis.call('HMGET', dk(P, 'consultation', cid), 'state', 'doctor')
    if con[1] == 'active' or con[1] == 'offered' then
      redis.call('ZADD', dk(P, 'timers'), now + patient_grace_ms, 'cgrace|' .. cid)
      emit(P, 'patient_away', {consultation = cid, patient = user, doctor = con[2] or ''})
      return
    end
  end
  if tid and tid ~= '' then
    local tkey = dk(P, 'ticket', tid)
    if redis.call('HGET', tkey, 'state') == 'waiting' then
      redis.call('HSET', tkey, 'connected', 0, 'disconnected_ms', now)
      redis.call('ZADD', dk(P, 'timers'), now + patient_grace_ms, 'grace|' .. tid)
    end
  end
end

-- Cancel a patient's absence timers (their open consultation's and their waiting ticket's).
-- Returns the consultation whose absence was running, if any.
local function cancel_patient_absence(P, user)
  local open = redis.call('HMGET', dk(P, 'patient', user), 'ticket', 'consultation')
  local tid, cid = open[1], open[2]
  local was_away = nil
  if cid and cid ~= '' and redis.call('ZREM', dk(P, 'timers'), 'cgrace|' .. cid) == 1 then
    was_away = cid
  end
  if tid and tid ~= '' then
    redis.call('ZREM', dk(P, 'timers'), 'grace|' .. tid)
    if redis.call('EXISTS', dk(P, 'ticket', tid)) == 1 then
      redis.call('HSET', dk(P, 'ticket', tid), 'connected', 1)
    end
  end
  return was_away
end

-- The user had no live connection and now has one: cancel what `user_gone` started.
local function user_back(P, user, role, now)
  if role == 'doctor' then
    local status = redis.call('HGET', dk(P, 'doctor', user), 'status')
    if status then
      redis.call('HSET', dk(P, 'doctor', user), 'connected', 1)
      refresh_doctor(P, user, now)
    end
    if status and status ~= 'offline' then
      emit(P, 'doctor_back', {doctor = user})
    end
    return
  end
  if role ~= 'patient' then
    return
  end
  local cid = cancel_patient_absence(P, user)
  if cid then
    local doctor = redis.call('HGET', dk(P, 'consultation', cid), 'doctor')
    emit(P, 'patient_back', {consultation = cid, patient = user, doctor = doctor or ''})
  end
end

-- A patient of an active (or offered) consultation stayed away past the grace: it ends.
local function fire_patient_grace(P, cid, now, retention_s, accept_ms, seed)
  local con = redis.call('HMGET', dk(P, 'consultation', cid), 'state', 'patient', 'doctor')
  if (con[1] ~= 'active' and con[1] ~= 'offered') or live_connections(P, con[2], now) > 0 then
    return false
  end
  finish(P, cid, now, 'patient_left', '', retention_s)
  if con[3] and con[3] ~= '' then
    assign_push_for_doctor(P, con[3], now, accept_ms, seed)
  end
  return true
end
