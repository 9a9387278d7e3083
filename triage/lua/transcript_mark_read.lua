-- transcript_mark_read: a participant has read the transcript up to a seq (a read receipt).
--
-- Contract: refuses with {'err', 'not_open'} when the meta hash is missing and
-- {'err', 'not_participant', user} when the user is not a `p:<user>` of the meta. A seq past
-- the last message is cut to the last message. The meta's `r:<user>` only ever grows: a mark at
-- or below it changes nothing. When it grows, PUBLISHes "r:<role>:<seq>" on the channel (the
-- other side shows the receipt). What was read was delivered: a read mark that grows past the
-- delivery mark `d:<user>` (see transcript_mark_delivered) raises it to the same seq, with no
-- notice of its own (the read receipt says as much). Returns {'ok', read_seq, raised (0|1)}.
-- The rules live in lib/transcript.lua (raise_mark), shared with transcript_mark_delivered.
local meta_key = KEYS[1]
local stream_key = KEYS[2] -- unused: the transcript scripts share one KEYS list
local dedup_key = KEYS[3] -- unused: as above
local now_override = ARGV[1] -- unused: a mark records no time
local channel = ARGV[2]
local user = ARGV[3]
local seq = tonumber(ARGV[4])

return raise_mark(meta_key, channel, user, 'r', seq)
