-- desk_init: stamp the desk's schema version and creation time, once.
--
-- Contract: on a new Redis, records schema_version = ARGV[1] and created_ms = Redis TIME.
-- On an existing desk, changes nothing. Returns {stored_schema_version, created_ms} so the
-- caller can refuse to run against data from a newer schema.
local meta_key = KEYS[1]
local schema_version = tonumber(ARGV[1])

if redis.call('EXISTS', meta_key) == 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('HSET', meta_key, 'schema_version', schema_version, 'created_ms', now_ms)
end

local stored = redis.call('HMGET', meta_key, 'schema_version', 'created_ms')
return {tonumber(stored[1]), tonumber(stored[2])}
