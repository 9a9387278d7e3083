-- queue_enqueue: a patient joins a department's queue.
--
-- The ticket's place is join time minus the urgency's head start (emergency: ahead of all);
-- its id is the zero-padded desk arrival number, so equal places keep arrival order. A patient
-- holds at most one open ticket or consultation (already_waiting / in_consultation), consent
-- is required, and the department must be configured. In a push department the ticket is
-- offered at once if a doctor has a free slot. Returns {'ok', ticket_id, arrival, position,
-- offers} (position 0 once offered).
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local accept_ms = tonumber(ARGV[4])
local patient_id = ARGV[5]
local dept = ARGV[6]
local urgency = ARGV[7]
local head_start_ms = tonumber(ARGV[8])
local intake_json = ARGV[9]
local consent_ms = ARGV[10]
local red_flags_json = ARGV[11]
local id_seed = ARGV[12]

local P, now, idem, prior = begin(meta_key, now_override, 'enqueue', request_id)
if prior then
  return prior
end

local routing = routing_of(P, dept)
if not routing then
  return remember(idem, idem_ttl_s, fail('unknown_department', dept))
end
if consent_ms == '' then
  return remember(idem, idem_ttl_s, fail('consent_required', ''))
end
local open = redis.call('HMGET', dk(P, 'patient', patient_id), 'ticket', 'consultation')
if open[2] and open[2] ~= '' then
  return remember(idem, idem_ttl_s, fail('in_consultation', open[2]))
end
if open[1] and open[1] ~= '' then
  return remember(idem, idem_ttl_s, fail('already_waiting', open[1]))
end

local arrival = redis.call('HINCRBY', meta_key, 'arrivals', 1)
local ticket_id = string.format('t%012d', arrival)
local place = place_of(now, urgency, head_start_ms)
redis.call('HSET', dk(P, 'ticket', ticket_id), 'id', ticket_id, 'patient', patient_id,
  'dept', dept, 'urgency', urgency, 'join_ms', now, 'place', place, 'arrival', arrival,
  'state', 'waiting', 'intake', intake_json, 'consent_ms', consent_ms,
  'red_flags', red_flags_json, 'consultation', '', 'connected', 1,
  'urgency_history', cjson.encode({{urgency = urgency, at = now, reason = 'intake'}}))
queue_add(P, dept, ticket_id, place, now, red_flags_json)
redis.call('HSET', dk(P, 'patient', patient_id), 'ticket', ticket_id, 'consultation', '')
count(P, dept, 'joined')
emit(P, 'enqueued', {ticket = ticket_id, patient = patient_id, dept = dept,
  urgency = urgency, red_flags = red_flags_json})

local offers = assign_push(P, dept, now, accept_ms, id_seed, routing)
local rank = redis.call('ZRANK', dk(P, 'queue', dept), ticket_id)
local position = rank and (rank + 1) or 0
return remember(idem, idem_ttl_s, {'ok', ticket_id, arrival, position, offers})
