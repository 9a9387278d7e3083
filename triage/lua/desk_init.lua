-- desk_init: stamp the desk's schema version and creation time once; record the departments.
--
-- Contract: on a new Redis, records schema_version = ARGV[1] and created_ms = Redis TIME.
-- On an existing desk, keeps both. Every call sets each configured department's routing
-- (ARGV[2..] as id, routing pairs) so that scripts know which departments assign by push.
-- Returns {stored_schema_version, created_ms} so the caller can refuse data from a newer schema.
local meta_key = KEYS[1]
local schema_version = tonumber(ARGV[1])
local first_department_arg = 2

if redis.call('EXISTS', meta_key) == 0 then
  redis.call('HSET', meta_key, 'schema_version', schema_version, 'created_ms', now_ms(''))
end

local stored = redis.call('HMGET', meta_key, 'schema_version', 'created_ms')
if tonumber(stored[1]) <= schema_version then
  local departments_key = desk_prefix(meta_key) .. ':departments'
  for i = first_department_arg, #ARGV, 2 do
    redis.call('HSET', departments_key, ARGV[i], ARGV[i + 1])
  end
end
return {tonumber(stored[1]), tonumber(stored[2])}
