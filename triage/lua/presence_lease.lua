-- presence_lease: a gateway says it is alive until now + ttl (renewed well before that).
--
-- With hold_ms > 0 (a gateway whose Redis link has just come back), also holds timers and
-- reaping until now + hold_ms (never shortening a hold already set): during an outage nobody
-- could renew anything, so presence must be re-asserted before anyone counts as gone.
-- Returns {'ok', lease_until_ms}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local gateway = ARGV[2]
local ttl_ms = tonumber(ARGV[3])
local hold_ms = tonumber(ARGV[4])

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
if gateway ~= '' then -- '' asks for the hold alone
  redis.call('ZADD', dk(P, 'gateways'), now + ttl_ms, gateway)
end
if hold_ms > 0 then
  local hkey = dk(P, 'presence_hold')
  local hold = tonumber(redis.call('GET', hkey) or '0')
  if now + hold_ms > hold then
    redis.call('SET', hkey, now + hold_ms, 'PX', hold_ms)
  end
end
return {'ok', now + ttl_ms}
