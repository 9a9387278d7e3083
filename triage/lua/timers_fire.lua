-- timers_fire: fire the deadlines that are due (any gateway may call it; each timer fires once).
--
-- Each due member is removed and its transition re-checked against the current state in this
-- same step, so a timer never acts on a state that has moved on (an accept that came first, a
-- heartbeat that renewed presence, a patient who reconnected):
--   accept|<consultation>  offer not accepted: doctor away, ticket back at its place
--   presence|<doctor>      heartbeats stopped: doctor offline, consultations requeued
--   grace|<ticket>         waiting patient still disconnected: abandoned
--   cgrace|<consultation>  the patient of an active consultation still gone: patient_left
-- Nothing fires while presence is held (after a Redis outage, see lib/presence.lua).
-- Returns {'ok', fired_members...} (only those whose transition happened).
local meta_key = KEYS[1]
local now_override = ARGV[1]
local retention_s = tonumber(ARGV[2])
local accept_ms = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local id_seed = ARGV[5]

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
local tkey = dk(P, 'timers')
-- One due timer: re-check the state it guards and perform the transition. True if it fired.
local function fire(member, seed)
  local sep = string.find(member, '|', 1, true)
  local kind = string.sub(member, 1, sep - 1)
  local id = string.sub(member, sep + 1)
  if kind == 'accept' then
    if redis.call('HGET', dk(P, 'consultation', id), 'state') == 'offered' then
      fire_accept_timeout(P, id, now, accept_ms, seed)
      return true
    end
  elseif kind == 'presence' then
    local doc = redis.call('HMGET', dk(P, 'doctor', id), 'status', 'alive_until')
    if doc[1] and doc[1] ~= 'offline' and tonumber(doc[2]) <= now then
      lapse_doctor(P, id, now, accept_ms, seed)
      return true
    end
  elseif kind == 'cgrace' then
    return fire_patient_grace(P, id, now, retention_s, accept_ms, seed)
  elseif kind == 'grace' then
    local ticket = redis.call('HMGET', dk(P, 'ticket', id), 'state', 'connected', 'consultation')
    if ticket[1] == 'waiting' and ticket[2] == '0' then
      if ticket[3] and ticket[3] ~= '' then
        finish(P, ticket[3], now, 'patient_left', '', retention_s)
      else
        abandon(P, id, now, 'disconnected', retention_s)
      end
      return true
    end
  end
  return false
end

local fired = {'ok'}
if held(P, now) then
  return fired
end
local due = redis.call('ZRANGEBYSCORE', tkey, '-inf', now, 'LIMIT', 0, limit)
for i, member in ipairs(due) do
  -- Only what is still due: an earlier timer of this sweep may have re-armed this one.
  local deadline = redis.call('ZSCORE', tkey, member)
  if deadline and tonumber(deadline) <= now then
    redis.call('ZREM', tkey, member)
    if fire(member, id_seed .. '-' .. i) then
      fired[#fired + 1] = member
    end
  end
end
return fired
