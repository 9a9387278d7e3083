-- desk_metrics: the whole desk's live figures, read in one step (so they agree with each other).
--
-- KEYS[1] desk meta. ARGV: now_override, window_ms (waits, abandons, ends and ETA checks count
-- from the last window_ms), alert_after_ms (a red-flagged patient waiting longer raises a safety
-- alert), cache_ms (a result computed less than this long ago is returned as it is: every
-- gateway pushes metrics every second, and the desk needs computing once), alert_limit (how many
-- alerts are listed per kind; all are counted).
--
-- Trims what fell out of the window first (waits by their match time, abandons, ends, message
-- counts), then returns cjson: {computed_ms, window_ms, messages_last_10s, departments = {...}}.
-- Percentiles are nearest-rank over the patients first matched in the window: p-th is the wait at
-- rank ceil(p/100 * n) in ascending order.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local window_ms = tonumber(ARGV[2])
local alert_after_ms = tonumber(ARGV[3])
local cache_ms = tonumber(ARGV[4])
local alert_limit = tonumber(ARGV[5])

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
local cache_key = dk(P, 'metrics_cache')
if cache_ms > 0 then
  local cached = redis.call('HMGET', cache_key, 'at', 'json')
  if cached[1] and now - tonumber(cached[1]) < cache_ms and now >= tonumber(cached[1]) then
    return cached[2]
  end
end

local since = now - window_ms
local minute_ago = now - 60000

local function nearest_rank(key, n, p)
  if n == 0 then
    return cjson.null
  end
  local rank = math.ceil(p * n / 100)
  local hit = redis.call('ZRANGE', key, rank - 1, rank - 1, 'WITHSCORES')
  return tonumber(hit[2])
end

local function listed(key, from)
  local out = {}
  -- The newest first: after alert_limit of them, supervisors must still see the latest.
  local hits = redis.call('ZREVRANGEBYSCORE', key, '+inf', from, 'WITHSCORES', 'LIMIT', 0,
    alert_limit)
  for i = 1, #hits, 2 do
    out[#out + 1] = {ticket = hits[i], at_ms = tonumber(hits[i + 1])}
  end
  return out
end

local function department_figures(dept)
  local d = {name = dept}
  -- The queue now.
  d.waiting = redis.call('ZCARD', dk(P, 'queue', dept))
  local oldest = redis.call('ZRANGE', dk(P, 'since', dept), 0, 0, 'WITHSCORES')
  d.longest_wait_ms = oldest[2] and math.max(0, now - tonumber(oldest[2])) or 0
  -- Safety: red-flagged patients waiting past alert_after_ms, the longest first.
  local flagged = redis.call('SMEMBERS', dk(P, 'flagged', dept))
  d.red_flags_waiting = #flagged
  local overdue = {}
  for _, tid in ipairs(flagged) do
    local joined = redis.call('ZSCORE', dk(P, 'since', dept), tid)
    if joined and now - tonumber(joined) > alert_after_ms then
      overdue[#overdue + 1] = {ticket = tid, waited_ms = now - tonumber(joined)}
    end
  end
  table.sort(overdue, function(a, b)
    return a.waited_ms > b.waited_ms or (a.waited_ms == b.waited_ms and a.ticket < b.ticket)
  end)
  d.red_flags_overdue = #overdue
  d.red_flags_overdue_list = {}
  for i = 1, math.min(#overdue, alert_limit) do
    d.red_flags_overdue_list[i] = overdue[i]
  end

  -- Waits of the patients first matched in the window.
  local waits, waits_at = dk(P, 'waits', dept), dk(P, 'waits_at', dept)
  local gone = redis.call('ZRANGEBYSCORE', waits_at, '-inf', '(' .. since)
  for i = 1, #gone, 500 do
    redis.call('ZREM', waits, unpack(gone, i, math.min(i + 499, #gone)))
  end
  redis.call('ZREMRANGEBYSCORE', waits_at, '-inf', '(' .. since)
  local matched = redis.call('ZCARD', waits_at)
  d.matched_in_window = matched
  d.wait_p50_ms = nearest_rank(waits, matched, 50)
  d.wait_p90_ms = nearest_rank(waits, matched, 90)
  d.started_last_minute = redis.call('ZCOUNT', waits_at, minute_ago, '+inf')

  -- Abandons and ends.
  for _, name in ipairs({'abandons', 'abandons_flagged', 'ends'}) do
    redis.call('ZREMRANGEBYSCORE', dk(P, name, dept), '-inf', '(' .. since)
  end
  d.abandoned_in_window = redis.call('ZCARD', dk(P, 'abandons', dept))
  d.abandoned_last_minute = redis.call('ZCOUNT', dk(P, 'abandons', dept), minute_ago, '+inf')
  d.flagged_abandoned_in_window = redis.call('ZCARD', dk(P, 'abandons_flagged', dept))
  d.flagged_abandoned_list = listed(dk(P, 'abandons_flagged', dept), since)
  d.ended_last_minute = redis.call('ZCOUNT', dk(P, 'ends', dept), minute_ago, '+inf')

  -- ETA accuracy: the first wait each patient was quoted against the wait they had.
  local checks = redis.call('LRANGE', dk(P, 'eta_checks', dept), 0, -1)
  local n, abs_error_ms, within = 0, 0, 0
  for _, check in ipairs(checks) do
    local at, quoted, waited = string.match(check, '^(%d+):(%d+):(%d+)$')
    if at and tonumber(at) >= since then
      n = n + 1
      local err = math.abs(tonumber(waited) - tonumber(quoted))
      abs_error_ms = abs_error_ms + err
      -- Within a quarter of the real wait, or a minute for short waits.
      if err <= math.max(60000, tonumber(waited) / 4) then
        within = within + 1
      end
    end
  end
  d.eta_checks = n
  d.eta_abs_error_ms_sum = abs_error_ms
  d.eta_within = within

  -- Doctors on duty in the department and the consultations they hold in it.
  local available, busy, away, active, capacity, consultations = 0, 0, 0, 0, 0, 0
  for _, did in ipairs(redis.call('SMEMBERS', dk(P, 'serving', dept))) do
    local doc = redis.call('HMGET', dk(P, 'doctor', did), 'status', 'active', 'capacity')
    local held, slots = tonumber(doc[2]) or 0, tonumber(doc[3]) or 0
    if doc[1] == 'away' then
      away = away + 1
    elseif held >= slots then
      busy = busy + 1
    else
      available = available + 1
    end
    if doc[1] ~= 'away' then
      active = active + held
      capacity = capacity + slots
    end
    for _, cid in ipairs(redis.call('SMEMBERS', dk(P, 'doctor', did, 'consultations'))) do
      local con = redis.call('HMGET', dk(P, 'consultation', cid), 'dept', 'state')
      if con[1] == dept and con[2] == 'active' then
        consultations = consultations + 1
      end
    end
  end
  d.doctors_available, d.doctors_busy, d.doctors_away = available, busy, away
  d.slots_held, d.slots_total = active, capacity
  d.active_consultations = consultations
  local surge = redis.call('GET', dk(P, 'surge', dept))
  d.surge_since_ms = surge and tonumber(surge) or cjson.null
  return d
end

local names = redis.call('HKEYS', dk(P, 'departments'))
table.sort(names)
local departments = {}
for i, dept in ipairs(names) do
  departments[i] = department_figures(dept)
end

-- Messages: per-second counts the gateways add (`messages`), kept for a minute.
local messages_key = dk(P, 'messages')
local second = math.floor(now / 1000)
local recent = 0
for _, field in ipairs(redis.call('HKEYS', messages_key)) do
  local at = tonumber(field)
  if at == nil or at < second - 60 then
    redis.call('HDEL', messages_key, field)
  elseif at < second and at >= second - 10 then
    recent = recent + tonumber(redis.call('HGET', messages_key, field))
  end
end

local result = cjson.encode({
  computed_ms = now,
  window_ms = window_ms,
  alert_after_ms = alert_after_ms,
  messages_last_10s = recent,
  departments = departments,
})
if cache_ms > 0 then
  redis.call('HSET', cache_key, 'at', now, 'json', result)
end
return result
