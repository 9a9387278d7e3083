-- queue_assign: offer a push department's waiting tickets to doctors with free slots.
--
-- Every push transition already does this; gateways also call it periodically as a safety
-- net (e.g. after a configuration change made a department push). Returns {'ok', offers}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local accept_ms = tonumber(ARGV[2])
local dept = ARGV[3]
local id_seed = ARGV[4]

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
return {'ok', assign_push(P, dept, now, accept_ms, id_seed)}
