-- presence_update: connections opened (delta 1) and closed (delta -1) on a gateway, in order.
--
-- Counts connections per (user, gateway); a gateway sends the changes of one moment together
-- (one round trip and one fsync for many connects). Each change is judged after the ones
-- before it. Opening is refused (code 'too_many_connections', nothing counted) when the user
-- already holds `max_connections` live ones (0: no limit). When the first live connection
-- opens, what the user's absence started is cancelled (user_back); when the last live one
-- closes, the absence starts (user_gone): grace timers and the *_away events. Connections on
-- gateways whose lease lapsed do not count.
--
-- ARGV after the gateway and the limits: user, role, delta triples. Returns {'ok', then per
-- change 7 values: code ('ok' or the refusal), live connections after, changed (1 when the
-- user came back or went), and for a patient's counted opening where they stand now (else
-- ''): ticket id, ticket state, ticket department, consultation id}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local gateway = ARGV[2]
local doctor_grace_ms = tonumber(ARGV[3])
local patient_grace_ms = tonumber(ARGV[4])
local max_connections = tonumber(ARGV[5])
local FIRST_CHANGE = 6

local P = desk_prefix(meta_key)
local now = now_ms(now_override)

-- A patient's open ticket (its state and department) and consultation, as restore shows them.
local function open_case(user)
  local open = redis.call('HMGET', dk(P, 'patient', user), 'ticket', 'consultation')
  local tid, cid = open[1] or '', open[2] or ''
  local ticket = {false, false}
  if tid ~= '' then
    ticket = redis.call('HMGET', dk(P, 'ticket', tid), 'state', 'dept')
  end
  return tid, ticket[1] or '', ticket[2] or '', cid
end

local function change(user, role, delta)
  local pkey = dk(P, 'presence', user)
  local before = live_connections(P, user, now)
  if delta > 0 then
    if max_connections > 0 and before >= max_connections then
      return {'too_many_connections', before, 0, '', '', '', ''}
    end
    redis.call('HINCRBY', pkey, gateway, 1)
    redis.call('SADD', dk(P, 'gateway', gateway, 'users'), role .. '|' .. user)
    if before == 0 then
      user_back(P, user, role, now)
    end
    local changed = before == 0 and 1 or 0
    if role == 'patient' then
      local tid, state, dept, cid = open_case(user)
      return {'ok', before + 1, changed, tid, state, dept, cid}
    end
    return {'ok', before + 1, changed, '', '', '', ''}
  end
  local left = redis.call('HINCRBY', pkey, gateway, -1)
  if left <= 0 then
    redis.call('HDEL', pkey, gateway)
    redis.call('SREM', dk(P, 'gateway', gateway, 'users'), role .. '|' .. user)
  end
  local after = live_connections(P, user, now)
  if before > 0 and after == 0 then
    user_gone(P, user, role, now, doctor_grace_ms, patient_grace_ms)
    return {'ok', 0, 1, '', '', '', ''}
  end
  return {'ok', after, 0, '', '', '', ''}
end

local reply = {'ok'}
for i = FIRST_CHANGE, #ARGV, 3 do
  for _, value in ipairs(change(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]))) do
    reply[#reply + 1] = value
  end
end
return reply
