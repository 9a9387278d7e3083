-- transcript_mark_read: a participant has read the transcript up to a seq (a read receipt).
--
-- Contract: refuses with {'err', 'not_open'} when the meta hash is missing and
-- {'err', 'not_participant', user} when the user is not a `p:<user>` of the meta. A seq past
-- the last message is cut to the last message. The meta's `r:<user>` only ever grows: a mark at
-- or below it changes nothing. When it grows, PUBLISHes "r:<role>:<seq>" on the channel (the
-- other side shows the receipt). Returns {'ok', read_seq, raised (0|1)}.
local meta_key = KEYS[1]
local stream_key = KEYS[2] -- unused: the transcript scripts share one KEYS list
local dedup_key = KEYS[3] -- unused: as above
local now_override = ARGV[1] -- unused: a mark records no time
local channel = ARGV[2]
local user = ARGV[3]
local seq = tonumber(ARGV[4])

local stored = redis.call('HMGET', meta_key, 'epoch', 'seq', 'p:' .. user, 'r:' .. user)
local epoch, last_seq, role, read_seq = stored[1], tonumber(stored[2]), stored[3], tonumber(stored[4] or '0')
if not epoch then
  return fail('not_open')
end
if not role then
  return fail('not_participant', user)
end
if seq > last_seq then
  seq = last_seq
end
if seq <= read_seq then
  return {'ok', read_seq, 0}
end
redis.call('HSET', meta_key, 'r:' .. user, seq)
redis.call('PUBLISH', channel, 'r:' .. role .. ':' .. seq)
return {'ok', seq, 1}
