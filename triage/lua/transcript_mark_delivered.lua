-- transcript_mark_delivered: a participant has received the transcript up to a seq (a delivery
-- receipt: the messages reached their device, whether or not they have been read).
--
-- Contract: refuses with {'err', 'not_open'} when the meta hash is missing and
-- {'err', 'not_participant', user} when the user is not a `p:<user>` of the meta. A seq past
-- the last message is cut to the last message. The meta's `d:<user>` only ever grows, and never
-- stands below the read mark `r:<user>` (transcript_mark_read raises it with the read mark): a
-- mark at or below either changes nothing. When it grows, PUBLISHes "d:<role>:<seq>" on the
-- channel (the other side shows the receipt). Returns {'ok', delivered_seq, raised (0|1)}.
-- The rules live in lib/transcript.lua (raise_mark), shared with transcript_mark_read.
local meta_key = KEYS[1]
local stream_key = KEYS[2] -- unused: the transcript scripts share one KEYS list
local dedup_key = KEYS[3] -- unused: as above
local now_override = ARGV[1] -- unused: a mark records no time
local channel = ARGV[2]
local user = ARGV[3]
local seq = tonumber(ARGV[4])

return raise_mark(meta_key, channel, user, 'd', seq)
