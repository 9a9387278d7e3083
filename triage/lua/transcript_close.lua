-- transcript_close: mark a transcript closed and let its keys expire after retention (idempotent).
--
-- Contract: refuses with {'err', 'not_open'} when the meta hash is missing. The first call sets
-- closed = 1 and closed_ms, and EXPIREs the meta, stream and dedup keys after retention_s (a
-- stream that never got a message does not exist and needs none). A later call changes nothing,
-- so a retry does not push the expiry back. After close, transcript_append refuses new messages.
-- Returns {'ok', epoch, seq, closed_ms}.
local meta_key = KEYS[1]
local stream_key = KEYS[2]
local dedup_key = KEYS[3]
local now_override = ARGV[1]
local retention_s = tonumber(ARGV[2])

local stored = redis.call('HMGET', meta_key, 'epoch', 'seq', 'closed', 'closed_ms')
local epoch, seq, closed, closed_ms = stored[1], tonumber(stored[2]), stored[3], stored[4]

if not epoch then
  return fail('not_open')
end
if closed == '1' then
  return {'ok', epoch, seq, tonumber(closed_ms)}
end

local now = now_ms(now_override)
redis.call('HSET', meta_key, 'closed', 1, 'closed_ms', now)
redis.call('EXPIRE', meta_key, retention_s)
redis.call('EXPIRE', stream_key, retention_s)
redis.call('EXPIRE', dedup_key, retention_s)

return {'ok', epoch, seq, now}
