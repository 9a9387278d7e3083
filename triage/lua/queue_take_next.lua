-- queue_take_next: an available doctor under capacity takes the best ticket of their
-- departments, and the consultation starts in the same step.
--
-- "Best" is the lowest place across the doctor's department queues, ties to the earlier
-- arrival. Refused when the doctor is not available (not_available), their presence has lapsed
-- (offline), they are at capacity (at_capacity) or nobody waits (queue_empty). A ticket that
-- returned to the queue (transfer, requeue) resumes its consultation. Returns {'ok',
-- consultation_id, ticket_id, patient_id, dept, waited_ms}.
local meta_key = KEYS[1]
local now_override = ARGV[1]
local request_id = ARGV[2]
local idem_ttl_s = tonumber(ARGV[3])
local doctor_id = ARGV[4]
local new_consultation_id = ARGV[5]
local accept_ms = tonumber(ARGV[6])

local P, now, idem, prior = begin(meta_key, now_override, 'take_next', request_id)
if prior then
  return prior
end

local dkey = dk(P, 'doctor', doctor_id)
local doc = hgetall(dkey)
if doc.status == nil or doc.status == 'offline' then
  return remember(idem, idem_ttl_s, fail('offline', doctor_id))
end
if tonumber(doc.alive_until) <= now then
  lapse_doctor(P, doctor_id, now, accept_ms, new_consultation_id)
  return remember(idem, idem_ttl_s, fail('offline', doctor_id))
end
if doc.status ~= 'available' then
  return remember(idem, idem_ttl_s, fail('not_available', doc.status))
end
if tonumber(doc.active) >= tonumber(doc.capacity) then
  return remember(idem, idem_ttl_s, fail('at_capacity', doc.active))
end

local best_ticket, best_place
for _, dept in ipairs(split(doc.departments)) do
  local head = redis.call('ZRANGE', dk(P, 'queue', dept), 0, 0, 'WITHSCORES')
  if #head > 0 then
    local place = tonumber(head[2])
    if best_place == nil or place < best_place or (place == best_place and head[1] < best_ticket) then
      best_ticket, best_place = head[1], place
    end
  end
end
if best_ticket == nil then
  return remember(idem, idem_ttl_s, fail('queue_empty', ''))
end

local cid, ticket = bind_ticket(P, best_ticket, doctor_id, 'active', new_consultation_id, now, 0)
local waited = activate(P, cid, doctor_id, now)
return remember(idem, idem_ttl_s, {'ok', cid, best_ticket, ticket.patient, ticket.dept, waited})
