-- transcript_append: store one message at the next seq, once per (sender, client_msg_id).
--
-- Contract: refuses with {'err', 'not_open'} when the meta hash is missing (never opened, or
-- lost: transcript_open starts a new epoch) and {'err', 'not_participant', sender} when the
-- sender is not a `p:<user>` of the meta; both store nothing. A (sender, client_msg_id) seen
-- before returns the first entry's id, seq and ts with duplicate = 1 and stores nothing, even
-- after close (a retried send whose reply was lost must learn it was stored). Otherwise refuses
-- with {'err', 'closed'} when the transcript is closed, else XADDs entry `<seq>-0` (seq = the
-- meta's seq + 1, so 1, 2, 3, ... with no gap) with fields sender, role, kind, body, cmid, ts,
-- records the dedup field and PUBLISHes "<epoch>:<seq>:<entry as JSON>" on the channel (a hint
-- that carries the entry for readers already at seq - 1; the stream
-- is the truth). Before all this, when an open transcript's meta survives but its stream was lost
-- (seq > 0, no stream), starts a new epoch and drops the dedup map, as transcript_open does, so
-- a retry of a lost message is stored again.
-- Returns {'ok', entry_id, epoch, seq, ts_ms, duplicate (0|1)}.
--
-- The dedup field is "<#sender>:<sender><client_msg_id>": two participants' clients may pick the
-- same client_msg_id, and the length prefix keeps any pair of strings apart.
local meta_key = KEYS[1]
local stream_key = KEYS[2]
local dedup_key = KEYS[3]
local now_override = ARGV[1]
local channel = ARGV[2]
local sender = ARGV[3]
local client_msg_id = ARGV[4]
local kind = ARGV[5]
local body = ARGV[6]

local stored = redis.call('HMGET', meta_key, 'epoch', 'seq', 'closed', 'p:' .. sender)
local epoch, seq, closed, role = stored[1], tonumber(stored[2]), stored[3], stored[4]

if not epoch then
  return fail('not_open')
end
if not role then
  return fail('not_participant', sender)
end

if closed ~= '1' and seq > 0 and redis.call('EXISTS', stream_key) == 0 then
  local t = redis.call('TIME')
  epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', meta_key, 'epoch', epoch)
  redis.call('DEL', dedup_key)
end

local dedup_field = #sender .. ':' .. sender .. client_msg_id
local first_seq = redis.call('HGET', dedup_key, dedup_field)
if first_seq then
  local first_id = first_seq .. '-0'
  local found = redis.call('XRANGE', stream_key, first_id, first_id)
  local ts = 0 -- the entry was trimmed: its time is no longer known
  if found[1] then
    local fields = found[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'ts' then
        ts = tonumber(fields[i + 1])
      end
    end
  end
  return {'ok', first_id, epoch, tonumber(first_seq), ts, 1}
end

if closed == '1' then
  return fail('closed')
end

local ts = now_ms(now_override)
local next_seq = seq + 1
local entry_id = next_seq .. '-0'
-- XADD first: if it is refused, nothing else has been written.
redis.call('XADD', stream_key, entry_id, 'sender', sender, 'role', role, 'kind', kind,
  'body', body, 'cmid', client_msg_id, 'ts', ts)
redis.call('HSET', meta_key, 'seq', next_seq)
redis.call('HSET', dedup_key, dedup_field, next_seq)
-- The entry rides along, so a reader already at seq - 1 needs no read-back.
redis.call('PUBLISH', channel, epoch .. ':' .. next_seq .. ':' .. cjson.encode({
  sender = sender, role = role, kind = kind, body = body, cmid = client_msg_id, ts = ts}))

return {'ok', entry_id, epoch, next_seq, ts, 0}
