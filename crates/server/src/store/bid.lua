-- Places one bid, atomically: the steps of docs/protocol.md, "The bid script", with the rules of
-- "Proxy bids, reserve and buy-it-now", in one call.
--
-- KEYS[1] auction hash       KEYS[2] recent-bids list
-- KEYS[3] outcomes hash      KEYS[4] durable event stream
-- ARGV[1] auction id         ARGV[2] bidder            ARGV[3] bid id
-- ARGV[4] amount in cents    ARGV[5] increment bands, "from:increment,..." in cents, ascending
-- ARGV[6] live channel       ARGV[7] how many recent bids to keep
-- ARGV[8] publish command: SPUBLISH on a cluster, PUBLISH on one Redis
-- ARGV[9] "1" to store the outcome (the client chose the bid id and may retry it), "0" not to
--         (the server made the id: nobody can ever send it again)
-- ARGV[10] the version of the increment table in ARGV[5]
-- ARGV[11] MAX_BID in cents     ARGV[12] "1" to apply the table even if it is older than one
--                               already applied to this auction (the newer one is gone from Redis)
-- ARGV[13] the bid's max in cents (a proxy bid: amount <= max <= MAX_BID, checked by the caller),
--          or "" for a plain bid, whose max is its amount
--
-- Returns the outcome as JSON, stored under "bidder:bid id" so that a retry gets the very same
-- text back (until the auction's keys expire, docs/protocol.md "Retention"):
--   a plain bid that leads at its own amount: the bid's event (the one text also logged,
--     published and kept as a recent bid: {"type":"bid",...}, see docs/protocol.md, "Events");
--   any other accepted bid (one with a max, one a standing max beat, a raise of the leader's max,
--     a buy): {"type":"accepted","seq":..,"amount":..,"current":..,"min_next":..?,"leading":"1"|"0",
--     "your_max":..?,"bought_now":"1"?,"end_ms":..,"prev_end_ms":..,"placed_us":..,"created_ms":..?};
--   {"type":"rejected","reason":..,"current":..?,"min_next":..?};
-- or, not stored (nothing was decided): {"type":"stale_rules","rules_v":..}, when the table is
-- older than one already applied to this auction: the caller reloads the table and tries again.
--
-- Numbers never go through tostring (which keeps 14 digits): int() formats them whole.

-- '%d' prints a whole number through C's integer formatting, several times cheaper than '%.0f'
-- (every value here is a whole number of cents or milliseconds, far below 2^53).
local function int(n) return string.format('%d', n) end

-- JSON built as text. obj() serves the rare raise of a leader's max; the event and answer of
-- every price change are one concatenation each, since both a table of pieces and cjson.encode
-- cost more there (a beaten bid's answer built with obj() was 48,000 of its 303,000 instructions,
-- cjson.encode of the event 9,000: docs/capacity.md, "The bid script's paths, counted"). Only for
-- values that need no escaping: ids (letters, digits and `_ . @ -`, checked by the services),
-- decimal integers and the fixed words of this script.
local function obj(fields)
  local parts = {}
  for i = 1, #fields, 2 do parts[#parts + 1] = '"' .. fields[i] .. '":"' .. fields[i + 1] .. '"' end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- Step 1: a retry gets the stored outcome; an auction that does not exist gets nothing stored.
local keep = ARGV[9] == '1'
local outcome_field = ARGV[2] .. ':' .. ARGV[3]
if keep then
  local prior = redis.call('HGET', KEYS[3], outcome_field)
  if prior then return prior end
end

local a = redis.call('HMGET', KEYS[1], 'state', 'start_ms', 'end_ms', 'starting_bid',
  'current_bid', 'bidder', 'seq', 'bid_count', 'ext_window_s', 'ext_s', 'rules_v', 'max',
  'reserve', 'buy_now', 'created_ms')
if not a[1] then
  -- Not stored: an outcome here would create keys for an auction that does not exist.
  return cjson.encode({type = 'rejected', reason = 'auction_not_found'})
end

-- Step 1b: one table per bid, never an older one than this auction has already seen. Not
-- stored either: the node reloads the table and the same bid comes again.
local rules_v, applied_v = tonumber(ARGV[10]), (a[11] and tonumber(a[11])) or 0
if rules_v < applied_v and ARGV[12] ~= '1' then
  return cjson.encode({type = 'stale_rules', rules_v = int(applied_v)})
end
if rules_v ~= applied_v then redis.call('HSET', KEYS[1], 'rules_v', int(rules_v)) end

local state, start_ms, end_ms = a[1], tonumber(a[2]), tonumber(a[3])
local starting_bid = tonumber(a[4])
local current = nil
if a[5] and a[5] ~= '' then current = tonumber(a[5]) end
local seq, bid_count = tonumber(a[7]), tonumber(a[8])
local ext_window_ms, ext_ms = tonumber(a[9]) * 1000, tonumber(a[10]) * 1000
local bidder, amount = ARGV[2], tonumber(ARGV[4])

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local placed_us = t[1] .. string.format('%06d', tonumber(t[2]))

-- The table, read from ARGV[5] once, on first use: a bid with a max looks up two or three
-- increments, a plain one only one.
local bands = nil
local function increment_at(price)
  if not bands then
    bands = {}
    for from, step in string.gmatch(ARGV[5], '(%d+):(%d+)') do
      bands[#bands + 1] = tonumber(from)
      bands[#bands + 1] = tonumber(step)
    end
  end
  local inc = nil
  for i = 1, #bands, 2 do
    if inc == nil or bands[i] <= price then inc = bands[i + 1] else break end
  end
  return inc or 1
end

-- The next bid's minimum after price `price` (nil: before the first bid), capped at MAX_BID (the
-- last raise may be smaller than the increment); nil once no bid can be placed, so no answer ever
-- carries a price above the maximum.
local max_bid = tonumber(ARGV[11])
local function next_min(price)
  local m = starting_bid
  if price then m = math.max(math.min(price + increment_at(price), max_bid), price) end
  if m > max_bid or (price and m <= price) then return nil end
  return m
end
local min_next = next_min(current)

local function finish(text)
  if keep then redis.call('HSET', KEYS[3], outcome_field, text) end
  return text
end

local function reject(reason, with_prices)
  local o = {type = 'rejected', reason = reason}
  if with_prices then
    if min_next then o.min_next = int(min_next) end
    if current then o.current = int(current) end
  end
  return finish(cjson.encode(o))
end

-- Step 2: Redis time decides, whatever the stored lifecycle state says. These two answers are
-- final (nothing reopens an auction), so a retry gets the same one without a stored outcome, and
-- bids sent to a finished auction add nothing to keys that are about to expire.
if state == 'cancelled' then return cjson.encode({type = 'rejected', reason = 'auction_cancelled'}) end
if state == 'ended' or now_ms >= end_ms then
  return cjson.encode({type = 'rejected', reason = 'auction_ended'})
end
if now_ms < start_ms then return reject('auction_not_started', false) end

-- The proxy terms (docs/protocol.md, "Proxy bids, reserve and buy-it-now"): the leader and their
-- max (an auction bid on before maxes existed: the price), the reserve, the buy-it-now price.
local leader = nil
if a[6] and a[6] ~= '' then leader = a[6] end
local has_max = ARGV[13] ~= nil and ARGV[13] ~= ''
local max = amount
if has_max then max = tonumber(ARGV[13]) end
local leader_max = current
if a[12] and a[12] ~= '' then leader_max = tonumber(a[12]) end
local reserve, buy_now = nil, nil
if a[13] and a[13] ~= '' then reserve = tonumber(a[13]) end
if a[14] and a[14] ~= '' then buy_now = tonumber(a[14]) end
local buy_available = buy_now ~= nil and (current == nil or (reserve ~= nil and current < reserve))

-- The bid's own terms, logged beside its event (the `proxy` field): one concatenation, the
-- fields in the order obj() would give them.
local function proxy_terms()
  return '{"bidder":"' .. bidder .. '","bid_id":"' .. ARGV[3] .. '","amount":"' .. ARGV[4] .. '","max":"' ..
    ARGV[13] .. '","placed_us":"' .. placed_us .. '"}'
end

-- What the bid does: the price after it, who leads then with which max, whether it buys, and
-- whether a max (not the bid's own amount) set the price.
local price, leads, leads_max, bought, raise = nil, bidder, max, false, false

if leader == bidder then
  -- Rule 1, the leader: only a higher max changes anything.
  if not has_max or max <= leader_max then return reject('already_highest_bidder', true) end
  raise = true
  if buy_available and max >= buy_now then
    price, bought = buy_now, true
  elseif reserve and current < reserve and reserve <= max then
    price = reserve
  else
    -- Nothing public changes: no seq, no publish; the log keeps the raise (and its max, beside
    -- the event) for audit.
    redis.call('HSET', KEYS[1], 'max', int(max))
    local raised = obj({'type', 'max_raised', 'auction_id', ARGV[1], 'seq', a[7], 'bidder', bidder,
      'bid_id', ARGV[3], 'placed_us', placed_us})
    redis.call('XADD', KEYS[4], '*', 'v', '3', 'event', raised, 'proxy', proxy_terms())
    local o = {'type', 'accepted', 'seq', a[7], 'amount', a[5], 'current', a[5], 'leading', '1',
      'your_max', ARGV[13], 'end_ms', a[3], 'prev_end_ms', a[3], 'placed_us', placed_us}
    if min_next then o[#o + 1] = 'min_next'; o[#o + 1] = int(min_next) end
    return finish(obj(o))
  end
else
  -- Rule 2: the max plays no part in these.
  if not min_next then return reject('max_bid_reached', true) end
  if amount < min_next then return reject('bid_too_low', true) end
  if buy_available and max >= buy_now then
    -- Rule 5: the bid buys.
    price, bought = buy_now, true
  elseif not current then
    -- Rule 3: the first bid.
    price = amount
  elseif max > leader_max then
    -- Rule 4: a higher max takes the lead, one increment above the old max (at most its own).
    price = math.max(amount, math.min(leader_max + increment_at(leader_max), max))
  else
    -- Rule 4: the standing max answers (ties go to the earlier max); the bid still counts.
    price = math.min(max + increment_at(max), leader_max)
    leads, leads_max = leader, leader_max
  end
  -- Rule 6: a leading max at or above the reserve puts the price at the reserve at least.
  if not bought and reserve and leads_max >= reserve and price < reserve then price = reserve end
end

-- Step 5: accept, and extend the close when the price changes inside the window; a buy ends the
-- auction at once instead.
local auto = raise or price ~= amount or leads ~= bidder
seq = seq + 1
bid_count = bid_count + 1
local new_end = end_ms
if bought then
  new_end = now_ms
elseif ext_window_ms > 0 and end_ms - now_ms <= ext_window_ms and now_ms + ext_ms > end_ms then
  new_end = now_ms + ext_ms
end
-- Each number's text made once: the state, the event and the answer share them.
local seq_text, price_text, count_text, end_text = int(seq), int(price), int(bid_count), int(new_end)
redis.call('HSET', KEYS[1], 'current_bid', price_text, 'bidder', leads, 'max', int(leads_max),
  'seq', seq_text, 'bid_count', count_text, 'end_ms', end_text)
-- The event, its keys in a fixed order (docs/protocol.md, "Events": key order is arbitrary).
local event = '{"type":"bid","auction_id":"' .. ARGV[1] .. '","seq":"' .. seq_text .. '","bid_id":"' ..
  ARGV[3] .. '","bidder":"' .. leads .. '","amount":"' .. price_text .. '","bid_count":"' .. count_text ..
  '","placed_us":"' .. placed_us .. '","end_ms":"' .. end_text .. '","prev_end_ms":"' .. a[3] ..
  (auto and '","auto":"1' or '') .. ((leads ~= bidder) and ('","placed_by":"' .. bidder) or '') ..
  (reserve and ((price >= reserve) and '","reserve_met":"1' or '","reserve_met":"0') or '') .. '"}'
redis.call('LPUSH', KEYS[2], event)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)

-- Step 6: the durable log first, then live fan-out (which may drop). A bid with a max logs the
-- max beside the event, never in it (the event is published).
if has_max then
  redis.call('XADD', KEYS[4], '*', 'v', '3', 'event', event, 'proxy', proxy_terms())
elseif auto then
  redis.call('XADD', KEYS[4], '*', 'v', '3', 'event', event)
else
  redis.call('XADD', KEYS[4], '*', 'v', '2', 'event', event)
end
redis.call(ARGV[8], ARGV[6], event)

if bought then
  -- The buy ends the auction: the end at the next seq, as advance.lua would write it.
  seq = seq + 1
  local ended_seq = int(seq)
  redis.call('HSET', KEYS[1], 'state', 'ended', 'seq', ended_seq, 'winner', bidder,
    'final_price', price_text)
  local ended = {type = 'ended', auction_id = ARGV[1], seq = ended_seq, winner = bidder,
    final_price = price_text, bid_count = count_text, end_ms = end_text, bought_now = '1'}
  if reserve then ended.reserve_met = '1' end
  local text = cjson.encode(ended)
  redis.call('XADD', KEYS[4], '*', 'v', '2', 'event', text)
  redis.call(ARGV[8], ARGV[6], text)
end

-- The plain path: a plain bid that leads at its own amount is answered with its event.
if not has_max and not auto and not bought then return finish(event) end
-- Any other accepted bid is answered with the `accepted` outcome, one text like the event.
local leading = leads == bidder
local rest = ''
if bought then
  rest = '","bought_now":"1","created_ms":"' .. (a[15] or '0')
else
  local m = next_min(price)
  if m then rest = '","min_next":"' .. int(m) end
  if leading and has_max then rest = rest .. '","your_max":"' .. ARGV[13] end
end
return finish('{"type":"accepted","seq":"' .. seq_text .. '","amount":"' .. (leading and price_text or ARGV[4]) ..
  '","current":"' .. price_text .. '","leading":"' .. (leading and '1' or '0') .. '","end_ms":"' .. end_text ..
  '","prev_end_ms":"' .. a[3] .. '","placed_us":"' .. placed_us .. rest .. '"}')
