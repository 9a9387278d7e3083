-- transcript: the read and delivery marks shared by transcript_mark_read and
-- transcript_mark_delivered. Defines functions only; it reads no KEYS or ARGV. Needs common.lua.
--
--   c:<id>:meta   r:<user>   the highest seq the participant has read
--                 d:<user>   the highest seq the participant has received; never below r:<user>
--                            (a meta from before delivery marks may hold r:<user> alone)

-- Raise `user`'s read ('r') or delivery ('d') mark to `seq`, cut to the last message. A mark
-- never goes down; a delivery mark at or below the read mark changes nothing, and a read mark
-- carries the delivery mark up with it (what was read was delivered; the "r:" notice stands for
-- both). A raised mark is PUBLISHed as "<kind>:<role>:<seq>". Returns {'ok', mark, raised (0|1)}
-- (for 'd', the delivery mark counting the read mark), or a refusal: {'err', 'not_open'} without
-- a meta, {'err', 'not_participant', user} for a user who is not a `p:<user>` of it.
local function raise_mark(meta_key, channel, user, kind, seq)
  local stored = redis.call('HMGET', meta_key, 'epoch', 'seq', 'p:' .. user, 'r:' .. user, 'd:' .. user)
  local epoch, last_seq, role = stored[1], tonumber(stored[2]), stored[3]
  local read_seq, delivered_seq = tonumber(stored[4] or '0'), tonumber(stored[5] or '0')
  if not epoch then
    return fail('not_open')
  end
  if not role then
    return fail('not_participant', user)
  end
  seq = math.min(seq, last_seq)
  local held = read_seq
  if kind == 'd' then
    held = math.max(delivered_seq, read_seq)
  end
  if seq <= held then
    return {'ok', held, 0}
  end
  if kind == 'r' and seq > delivered_seq then
    redis.call('HSET', meta_key, 'r:' .. user, seq, 'd:' .. user, seq)
  else
    redis.call('HSET', meta_key, kind .. ':' .. user, seq)
  end
  redis.call('PUBLISH', channel, kind .. ':' .. role .. ':' .. seq)
  return {'ok', seq, 1}
end
