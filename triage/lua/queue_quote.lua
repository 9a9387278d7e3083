-- queue_quote: what a patient would face on joining now, or faces now (read-only).
--
-- With ARGV ticket empty: the place a new ticket of this urgency would get. With a ticket:
-- that ticket's place. Returns {'ok', state, ahead, waiting, serving, free_slots,
-- recent_matches, dept, now_ms}; Python turns the numbers into position and ETA (triage/eta.py).
local meta_key = KEYS[1]
local now_override = ARGV[1]
local dept = ARGV[2]
local urgency = ARGV[3]
local head_start_ms = tonumber(ARGV[4])
local window_ms = tonumber(ARGV[5])
local ticket_id = ARGV[6]

local P = desk_prefix(meta_key)
local now = now_ms(now_override)
local qkey = dk(P, 'queue', dept)
local state = 'new'
local ahead
if ticket_id ~= '' then
  local ticket = redis.call('HMGET', dk(P, 'ticket', ticket_id), 'state', 'dept')
  if not ticket[1] then
    return fail('unknown_ticket', ticket_id)
  end
  state = ticket[1]
  dept = ticket[2]
  qkey = dk(P, 'queue', dept)
  local rank = redis.call('ZRANK', qkey, ticket_id)
  ahead = rank or 0
else
  if not routing_of(P, dept) then
    return fail('unknown_department', dept)
  end
  -- Ties go to those already waiting (they arrived first).
  ahead = redis.call('ZCOUNT', qkey, '-inf', place_of(now, urgency, head_start_ms))
end

local free_slots = 0
for _, did in ipairs(redis.call('ZRANGE', dk(P, 'available', dept), 0, -1)) do
  local doc = redis.call('HMGET', dk(P, 'doctor', did), 'capacity', 'active', 'alive_until')
  if tonumber(doc[3] or '0') > now then
    free_slots = free_slots + math.max(0, tonumber(doc[1]) - tonumber(doc[2]))
  end
end
local recent = redis.call('ZCOUNT', dk(P, 'matches', dept), now - window_ms, '+inf')
return {'ok', state, ahead, redis.call('ZCARD', qkey), redis.call('SCARD', dk(P, 'serving', dept)),
  free_slots, recent, dept, now}
