-- desk: the state transitions shared by the desk scripts (queues, doctors, consultations).
-- Defines functions only; it reads no KEYS or ARGV. Every desk key lives in the `{desk}` hash
-- slot: names are built from the prefix of the meta key, mirroring triage/keys.py.

-- Emergencies sort ahead of any join time minus any head start (ms since 1970 are ~1.8e12).
local EMERGENCY_OFFSET_MS = 10000000000000
-- Doctors in `available:<dept>` score load * this + last assignment time: fewer active
-- consultations first, then the one who has waited longest since their last patient.
local LOAD_WEIGHT = 10000000000000

local function desk_prefix(meta_key)
  return string.sub(meta_key, 1, #meta_key - #':meta')
end

local function dk(P, ...)
  return P .. ':' .. table.concat({...}, ':')
end

-- A hold after a Redis outage (presence_hold, set by a gateway reconnecting): until the live
-- gateways have restated who is connected, presence that ran out during the outage proves
-- nothing. No timer fires, no gateway is reaped, and no script lapses a doctor meanwhile.
local function held(P, now)
  local hold = redis.call('GET', dk(P, 'presence_hold'))
  return hold ~= false and tonumber(hold) > now
end

-- The start of every mutating desk script: the desk prefix, the time, the replay record's key
-- and, if this request id was seen before, its first result (which the script returns as is).
local function begin(meta_key, now_override, op, request_id)
  local P = desk_prefix(meta_key)
  local idem = request_id ~= '' and dk(P, 'idem', op, request_id) or ''
  return P, now_ms(now_override), idem, replayed(idem)
end

local function split(csv)
  local out = {}
  if csv == nil or csv == '' then
    return out
  end
  for part in string.gmatch(csv, '[^,]+') do
    out[#out + 1] = part
  end
  return out
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local out = {}
  for i = 1, #flat, 2 do
    out[flat[i]] = flat[i + 1]
  end
  return out
end

local function emit(P, kind, fields)
  local args = {'XADD', dk(P, 'events'), '*', 'type', kind}
  for name, value in pairs(fields) do
    args[#args + 1] = name
    args[#args + 1] = tostring(value)
  end
  redis.call(unpack(args))
end

local function place_of(join_ms, urgency, head_start_ms)
  if urgency == 'emergency' then
    return join_ms - EMERGENCY_OFFSET_MS
  end
  return join_ms - head_start_ms
end

local function routing_of(P, dept)
  return redis.call('HGET', dk(P, 'departments'), dept)
end

local function count(P, dept, field, by)
  redis.call('HINCRBY', dk(P, 'stats', dept), field, by or 1)
end

-- The windowed figures behind supervisors' metrics (desk_metrics.lua reads and trims them).
-- A first match: its wait (for percentiles) and time (for the window and the start rate), and
-- how far off the wait the patient was first quoted was (the gateway stores `quoted_eta_ms`).
local ETA_CHECKS_KEPT = 1000
local function record_match(P, dept, tid, now, waited, quoted_eta_ms)
  redis.call('ZADD', dk(P, 'waits', dept), waited, tid)
  redis.call('ZADD', dk(P, 'waits_at', dept), now, tid)
  if quoted_eta_ms ~= nil and quoted_eta_ms ~= false and quoted_eta_ms ~= '' then
    redis.call('LPUSH', dk(P, 'eta_checks', dept), now .. ':' .. quoted_eta_ms .. ':' .. waited)
    redis.call('LTRIM', dk(P, 'eta_checks', dept), 0, ETA_CHECKS_KEPT - 1)
  end
end

local function record_abandon(P, dept, tid, now, urgency, red_flags)
  redis.call('ZADD', dk(P, 'abandons', dept), now, tid)
  local flagged = red_flags ~= nil and red_flags ~= false and red_flags ~= '' and red_flags ~= '[]'
  if urgency == 'emergency' or urgency == 'urgent' or flagged then
    redis.call('ZADD', dk(P, 'abandons_flagged', dept), now, tid)
  end
end

-- Push routing looks this far down the available set for a doctor to offer a patient: past
-- the one who transferred the case, and (during a hold) past doctors whose presence ran out.
local PUSH_CANDIDATES = 8

-- A doctor's score in `available:<dept>`.
local function available_score(active, last_assigned)
  return active * LOAD_WEIGHT + last_assigned
end

-- A department's waiting tickets: the queue (by place) and two indexes kept in step with it,
-- by join time (the longest wait is its head) and the red-flagged ones, so a department's load
-- is read in O(log n) (triage/summary.py). Every change to the queue goes through these two.
local function is_flagged(red_flags_json)
  return red_flags_json ~= nil and red_flags_json ~= false and red_flags_json ~= ''
    and red_flags_json ~= '[]'
end

local function queue_add(P, dept, tid, place, join_ms, red_flags_json)
  redis.call('ZADD', dk(P, 'queue', dept), place, tid)
  redis.call('ZADD', dk(P, 'since', dept), join_ms, tid)
  if is_flagged(red_flags_json) then
    redis.call('SADD', dk(P, 'flagged', dept), tid)
  end
end

-- `red_flags_json`, when the caller has read it, spares the SREM for the (many) unflagged.
local function queue_remove(P, dept, tid, red_flags_json)
  redis.call('ZREM', dk(P, 'queue', dept), tid)
  redis.call('ZREM', dk(P, 'since', dept), tid)
  if red_flags_json == nil or is_flagged(red_flags_json) then
    redis.call('SREM', dk(P, 'flagged', dept), tid)
  end
end

-- Put a doctor in or out of each department's available set, from their stored state.
local function refresh_doctor(P, did, now)
  local doc = hgetall(dk(P, 'doctor', did))
  local active = tonumber(doc.active or '0')
  local capacity = tonumber(doc.capacity or '0')
  local alive = tonumber(doc.alive_until or '0') > now
  local on_duty = doc.status == 'available' or doc.status == 'away'
  -- A doctor whose last connection is gone (presence.lua) is offered no one meanwhile.
  local reachable = doc.connected ~= '0'
  for _, dept in ipairs(split(doc.departments)) do
    if doc.status == 'available' and alive and reachable and active < capacity then
      local score = available_score(active, tonumber(doc.last_assigned or '0'))
      redis.call('ZADD', dk(P, 'available', dept), score, did)
    else
      redis.call('ZREM', dk(P, 'available', dept), did)
    end
    if on_duty then
      redis.call('SADD', dk(P, 'serving', dept), did)
    else
      redis.call('SREM', dk(P, 'serving', dept), did)
    end
  end
end

local function close_segment(con, now, outcome)
  local history = cjson.decode(con.history or '[]')
  local last = history[#history]
  if last ~= nil and last.ended == nil then
    last.ended = now
    last.outcome = outcome
  end
  return cjson.encode(history)
end

-- A segment opened by an offer is marked `offer` until the doctor accepts it (activate): a
-- doctor who never accepted never saw the consultation, and must not count as its former
-- doctor (chatsvc's access matrix reads this).
local function open_segment(con, did, now, offer)
  local history = cjson.decode(con.history or '[]')
  history[#history + 1] = {doctor = did, started = now, offer = offer or nil}
  return cjson.encode(history)
end

local function accept_segment(con)
  local history = cjson.decode(con.history or '[]')
  local last = history[#history]
  if last ~= nil then
    last.offer = nil
  end
  return cjson.encode(history)
end

-- Give a doctor's slot back (the consultation left them for any reason).
local function release_slot(P, did, cid, now)
  if did == nil or did == '' then
    return
  end
  local removed = redis.call('SREM', dk(P, 'doctor', did, 'consultations'), cid)
  if removed == 1 then
    redis.call('HINCRBY', dk(P, 'doctor', did), 'active', -1)
  end
  refresh_doctor(P, did, now)
end

-- Take a doctor's slot for a consultation (offer or activation).
local function hold_slot(P, did, cid, now)
  local added = redis.call('SADD', dk(P, 'doctor', did, 'consultations'), cid)
  if added == 1 then
    redis.call('HINCRBY', dk(P, 'doctor', did), 'active', 1)
  end
  redis.call('HSET', dk(P, 'doctor', did), 'last_assigned', now)
  refresh_doctor(P, did, now)
end

-- A consultation goes back to its department's queue at the ticket's original place.
local function back_to_queue(P, cid, now, outcome, event)
  local ckey = dk(P, 'consultation', cid)
  local con = hgetall(ckey)
  local did = con.doctor
  local tkey = dk(P, 'ticket', con.ticket)
  redis.call('HSET', ckey, 'state', 'queued', 'doctor', '', 'accept_deadline', '',
    'history', close_segment(con, now, outcome))
  if did ~= nil and did ~= '' then
    redis.call('HSET', ckey, 'former_doctors',
      (con.former_doctors or '') .. (con.former_doctors and con.former_doctors ~= '' and ',' or '') .. did)
  end
  redis.call('ZREM', dk(P, 'timers'), 'accept|' .. cid)
  local held = redis.call('HMGET', tkey, 'place', 'join_ms', 'red_flags')
  redis.call('HSET', tkey, 'state', 'waiting', 'dept', con.dept)
  queue_add(P, con.dept, con.ticket, held[1], held[2], held[3])
  release_slot(P, did, cid, now)
  count(P, con.dept, event)
  emit(P, event, {consultation = cid, ticket = con.ticket, patient = con.patient,
    doctor = did or '', dept = con.dept})
end

-- Start (or resume) a consultation with a doctor: the match. The slot is already held.
local function activate(P, cid, did, now)
  local ckey = dk(P, 'consultation', cid)
  local con = hgetall(ckey)
  local tkey = dk(P, 'ticket', con.ticket)
  local ticket = hgetall(tkey)
  local waited = now - tonumber(ticket.join_ms)
  redis.call('HSET', ckey, 'state', 'active', 'doctor', did, 'accept_deadline', '',
    'history', accept_segment(con))
  if con.started_ms == nil or con.started_ms == '' then
    redis.call('HSET', ckey, 'started_ms', now)
  end
  redis.call('ZREM', dk(P, 'timers'), 'accept|' .. cid)
  if ticket.matched_ms == nil or ticket.matched_ms == '' then
    redis.call('HSET', tkey, 'matched_ms', now, 'waited_ms', waited)
    count(P, con.dept, 'matched')
    count(P, con.dept, 'wait_ms_matched', waited)
    record_match(P, con.dept, con.ticket, now, waited, ticket.quoted_eta_ms)
    -- Trimmed by the sweeper (Engine.trim_matches), not here: ETAs count by time anyway.
    redis.call('ZADD', dk(P, 'matches', con.dept), now, con.ticket)
  end
  emit(P, 'assigned', {consultation = cid, ticket = con.ticket, patient = con.patient,
    doctor = did, dept = con.dept, waited_ms = waited})
  return waited
end

-- Remove the best waiting ticket of a department and bind it to a consultation held by `did`.
-- `new_cid` names the consultation if the ticket has none yet (first match).
local function bind_ticket(P, tid, did, state, new_cid, now, deadline)
  local tkey = dk(P, 'ticket', tid)
  local ticket = hgetall(tkey)
  queue_remove(P, ticket.dept, tid, ticket.red_flags or '')
  local cid = ticket.consultation
  local ckey
  if cid == nil or cid == '' then
    cid = new_cid
    ckey = dk(P, 'consultation', cid)
    redis.call('HSET', ckey, 'id', cid, 'patient', ticket.patient, 'ticket', tid,
      'dept', ticket.dept, 'created_ms', now, 'history', '[]', 'former_doctors', '')
    redis.call('HSET', tkey, 'consultation', cid)
    redis.call('HSET', dk(P, 'patient', ticket.patient), 'consultation', cid)
    redis.call('ZADD', dk(P, 'patient', ticket.patient, 'consultations'), now, cid)
  else
    ckey = dk(P, 'consultation', cid)
  end
  local con = hgetall(ckey)
  redis.call('HSET', ckey, 'state', state, 'doctor', did, 'dept', ticket.dept,
    'history', open_segment(con, did, now, state == 'offered'))
  redis.call('HSET', tkey, 'state', 'assigned')
  -- With a doctor, the patient's connection is the consultation's business, not the queue's.
  redis.call('ZREM', dk(P, 'timers'), 'grace|' .. tid)
  hold_slot(P, did, cid, now)
  if state == 'offered' then
    redis.call('HSET', ckey, 'accept_deadline', deadline)
    redis.call('ZADD', dk(P, 'timers'), deadline, 'accept|' .. cid)
  end
  return cid, ticket
end

-- A doctor whose presence lapsed: offline, out of every set, open consultations requeued.
local function expire_doctor(P, did, now)
  local dkey = dk(P, 'doctor', did)
  redis.call('HSET', dkey, 'status', 'offline', 'status_since', now)
  redis.call('ZREM', dk(P, 'timers'), 'presence|' .. did)
  refresh_doctor(P, did, now)
  local open = redis.call('SMEMBERS', dk(P, 'doctor', did, 'consultations'))
  table.sort(open)
  for _, cid in ipairs(open) do
    back_to_queue(P, cid, now, 'requeued', 'requeued')
  end
  emit(P, 'doctor_status', {doctor = did, status = 'offline', reason = 'presence_lapsed'})
  return open
end

-- Declared ahead: a lapse re-offers the doctor's patients, and an offer can find a lapse.
local assign_push

-- A lapse noticed anywhere (the sweep, a heartbeat, a take, an offer) has the same effect:
-- the doctor goes offline and their patients are requeued and, in push departments, re-offered.
local function lapse_doctor(P, did, now, accept_ms, id_seed)
  local made = {}
  for j, cid in ipairs(expire_doctor(P, did, now)) do
    local dept = redis.call('HGET', dk(P, 'consultation', cid), 'dept')
    for _, value in ipairs(assign_push(P, dept, now, accept_ms, id_seed .. '-l' .. j)) do
      made[#made + 1] = value
    end
  end
  return made
end

-- Push routing: offer waiting tickets of `dept` to the least busy available doctors.
-- Returns a flat list {cid, did, cid, did, ...} of the offers made. `routing` is the
-- department's, if the caller has already read it (else it is read here).
assign_push = function(P, dept, now, accept_ms, id_seed, routing)
  local made = {}
  if (routing or routing_of(P, dept)) ~= 'push' then
    return made
  end
  local n = 0
  while true do
    local head = redis.call('ZRANGE', dk(P, 'queue', dept), 0, 0)
    if #head == 0 then
      break
    end
    -- A doctor who transferred this case to the department is not offered it back.
    local excluded = nil
    local head_cid = redis.call('HGET', dk(P, 'ticket', head[1]), 'consultation')
    if head_cid and head_cid ~= '' then
      excluded = redis.call('HGET', dk(P, 'consultation', head_cid), 'transferred_by')
    end
    -- The best-ranked doctor whose presence runs, skipping the one excluded; one whose
    -- presence ran out is lapsed here (as the sweep would) unless a hold after an outage is
    -- on, when it is passed over: not known to be there, not known to be gone.
    local hold = held(P, now)
    local did, lapsed = nil, nil
    local candidates = redis.call('ZRANGE', dk(P, 'available', dept), 0, PUSH_CANDIDATES - 1)
    for _, candidate in ipairs(candidates) do
      if candidate ~= excluded then
        local alive_until = tonumber(
          redis.call('HGET', dk(P, 'doctor', candidate), 'alive_until') or '0')
        if alive_until > now then
          did = candidate
          break
        elseif not hold then
          lapsed = candidate
          break
        end
      end
    end
    if lapsed ~= nil then
      for _, value in ipairs(lapse_doctor(P, lapsed, now, accept_ms, id_seed .. '-x' .. n)) do
        made[#made + 1] = value
      end
    elseif did == nil then
      break
    else
      n = n + 1
      local cid = bind_ticket(P, head[1], did, 'offered', id_seed .. '-' .. n, now, now + accept_ms)
      local ticket_patient = redis.call('HGET', dk(P, 'ticket', head[1]), 'patient')
      emit(P, 'offered', {consultation = cid, ticket = head[1], patient = ticket_patient,
        doctor = did, dept = dept, accept_deadline = now + accept_ms})
      made[#made + 1] = cid
      made[#made + 1] = did
    end
  end
  return made
end

-- Push routing for every push department a doctor serves (after their slot frees up).
local function assign_push_for_doctor(P, did, now, accept_ms, id_seed)
  local made = {}
  local depts = split(redis.call('HGET', dk(P, 'doctor', did), 'departments'))
  for i, dept in ipairs(depts) do
    for _, value in ipairs(assign_push(P, dept, now, accept_ms, id_seed .. '-' .. i)) do
      made[#made + 1] = value
    end
  end
  return made
end

-- A consultation ends for good: record, free the slot, forget the patient's open case.
local function finish(P, cid, now, outcome, summary, retention_s)
  local ckey = dk(P, 'consultation', cid)
  local con = hgetall(ckey)
  redis.call('HSET', ckey, 'state', 'ended', 'outcome', outcome, 'ended_ms', now,
    'summary', summary or '', 'accept_deadline', '', 'history', close_segment(con, now, outcome))
  redis.call('ZREM', dk(P, 'timers'), 'accept|' .. cid, 'grace|' .. con.ticket)
  queue_remove(P, con.dept, con.ticket)
  -- A queued consultation's ticket was waiting again; it was served, so it is done with.
  redis.call('HSET', dk(P, 'ticket', con.ticket), 'state', 'assigned')
  release_slot(P, con.doctor, cid, now)
  local pkey = dk(P, 'patient', con.patient)
  if redis.call('HGET', pkey, 'consultation') == cid then
    redis.call('DEL', pkey)
  end
  redis.call('EXPIRE', ckey, retention_s)
  redis.call('EXPIRE', dk(P, 'ticket', con.ticket), retention_s)
  redis.call('EXPIRE', dk(P, 'patient', con.patient, 'consultations'), retention_s)
  count(P, con.dept, 'ended')
  redis.call('ZADD', dk(P, 'ends', con.dept), now, cid)
  emit(P, 'ended', {consultation = cid, ticket = con.ticket, patient = con.patient,
    doctor = con.doctor or '', dept = con.dept, outcome = outcome})
  return con
end

-- A waiting ticket is given up (the patient left, or stayed disconnected past the grace).
local function abandon(P, ticket_id, now, reason, retention_s)
  local tkey = dk(P, 'ticket', ticket_id)
  local ticket = hgetall(tkey)
  if ticket.state ~= 'waiting' or (ticket.consultation ~= nil and ticket.consultation ~= '') then
    return fail('not_waiting', ticket.state or 'unknown')
  end
  local waited = now - tonumber(ticket.join_ms)
  queue_remove(P, ticket.dept, ticket_id, ticket.red_flags or '')
  redis.call('HSET', tkey, 'state', 'abandoned', 'abandoned_ms', now, 'waited_ms', waited,
    'abandon_reason', reason)
  redis.call('EXPIRE', tkey, retention_s)
  redis.call('ZREM', dk(P, 'timers'), 'grace|' .. ticket_id)
  local pkey = dk(P, 'patient', ticket.patient)
  if redis.call('HGET', pkey, 'ticket') == ticket_id then
    redis.call('DEL', pkey)
  end
  count(P, ticket.dept, 'abandoned')
  count(P, ticket.dept, 'wait_ms_abandoned', waited)
  record_abandon(P, ticket.dept, ticket_id, now, ticket.urgency, ticket.red_flags)
  emit(P, 'abandoned', {ticket = ticket_id, patient = ticket.patient, dept = ticket.dept,
    urgency = ticket.urgency, red_flags = ticket.red_flags, waited_ms = waited, reason = reason})
  return {'ok', ticket_id, waited, ticket.urgency, ticket.red_flags}
end

-- Push routing: an offer not accepted in time. The doctor is set away (they are evidently not
-- at their desk) and the ticket returns at its original place, to be offered to someone else.
local function fire_accept_timeout(P, cid, now, accept_ms, id_seed)
  local ckey = dk(P, 'consultation', cid)
  local con = redis.call('HMGET', ckey, 'state', 'doctor', 'accept_deadline', 'dept')
  if con[1] ~= 'offered' or tonumber(con[3]) > now then
    return {}
  end
  local did = con[2]
  redis.call('HSET', dk(P, 'doctor', did), 'status', 'away', 'status_since', now)
  back_to_queue(P, cid, now, 'not_accepted', 'offer_expired')
  emit(P, 'doctor_status', {doctor = did, status = 'away', reason = 'offer_expired'})
  return assign_push(P, con[4], now, accept_ms, id_seed)
end
