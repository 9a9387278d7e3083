-- transcript_open: start a consultation's transcript, or add participants to it (idempotent).
--
-- Contract: when the meta hash is missing, creates it with a new epoch (Redis TIME as
-- "<sec><usec>", unique per creation), seq = 0 and created_ms. When the meta was lost but the
-- stream survives, the new epoch continues seq from the stream's last generated id, so entry
-- ids keep increasing and readers holding the old epoch must reset. When the meta survives but
-- its stream was lost (seq > 0, no stream), starts a new epoch, keeps seq and drops the dedup
-- map (its seqs point at lost entries). Then adds `p:<user>` = role for each participant
-- (union). A participant already present with another role refuses the whole call
-- ({'err', 'role_conflict', user}) and changes nothing. A closed transcript is never changed.
-- Returns {'ok', epoch, seq, closed (0|1)}.
local meta_key = KEYS[1]
local stream_key = KEYS[2]
local dedup_key = KEYS[3]
local now_override = ARGV[1]
local participants_json = ARGV[2] -- JSON object {user_id: role}; may be empty

local function new_epoch()
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', tonumber(t[2]))
end

-- The seq of the stream's last generated id (kept even when entries were trimmed), or nil.
local function stream_last_seq()
  if redis.call('EXISTS', stream_key) == 0 then
    return nil
  end
  local info = redis.call('XINFO', 'STREAM', stream_key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return tonumber(string.match(info[i + 1], '^(%d+)-'))
    end
  end
  return nil
end

local participants = cjson.decode(participants_json)
local stored = redis.call('HMGET', meta_key, 'epoch', 'seq', 'closed')
local epoch, seq, closed = stored[1], tonumber(stored[2]), stored[3]

if epoch and closed == '1' then
  return {'ok', epoch, seq, 1}
end

for user, role in pairs(participants) do
  local held = redis.call('HGET', meta_key, 'p:' .. user)
  if held and held ~= role then
    return fail('role_conflict', user)
  end
end

if not epoch then
  epoch = new_epoch()
  seq = stream_last_seq() or 0
  redis.call('HSET', meta_key, 'epoch', epoch, 'seq', seq, 'closed', 0,
    'created_ms', now_ms(now_override))
elseif seq > 0 and redis.call('EXISTS', stream_key) == 0 then
  epoch = new_epoch()
  redis.call('HSET', meta_key, 'epoch', epoch)
  redis.call('DEL', dedup_key)
end

for user, role in pairs(participants) do
  redis.call('HSET', meta_key, 'p:' .. user, role)
end

return {'ok', epoch, seq, 0}
