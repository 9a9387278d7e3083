-- common: helpers prepended to every script at load time (scripts.py). Defines functions only;
-- it reads no KEYS or ARGV of its own.

-- The one clock: Redis TIME in milliseconds, unless the caller passes a test override (the
-- Python engine only does so when built with a test clock, which no config can enable).
local function now_ms(override)
  if override ~= nil and override ~= '' then
    return tonumber(override)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A refused call: {'err', code, detail}. Python turns the code into a typed exception.
local function fail(code, detail)
  return {'err', code, detail or ''}
end

-- Idempotency: a request id seen before returns the first result unchanged.
local function replayed(idem_key)
  if idem_key == nil or idem_key == '' then
    return nil
  end
  local stored = redis.call('GET', idem_key)
  if stored then
    return cjson.decode(stored)
  end
  return nil
end

local function remember(idem_key, ttl_s, result)
  if idem_key ~= nil and idem_key ~= '' then
    redis.call('SET', idem_key, cjson.encode(result), 'EX', ttl_s)
  end
  return result
end
