-- Places one bid, atomically: the steps of docs/protocol.md, "The bid script", in one call.
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
--
-- Returns the outcome as JSON, stored under "bidder:bid id" so that a retry gets the very same
-- text back (until the auction's keys expire, docs/protocol.md "Retention"): an accepted bid's event (the one text also logged, published and kept as a recent
-- bid: {"type":"bid",...}, see docs/protocol.md, "Events"), or
--   {"type":"rejected","reason":..,"current":..?,"min_next":..?}
-- or, not stored (nothing was decided): {"type":"stale_rules","rules_v":..}, when the table is
-- older than one already applied to this auction: the caller reloads the table and tries again.
--
-- Numbers never go through tostring (which keeps 14 digits): int() formats them whole.

local function int(n) return string.format('%.0f', n) end

-- Step 1: a retry gets the stored outcome; an auction that does not exist gets nothing stored.
local keep = ARGV[9] == '1'
local outcome_field = ARGV[2] .. ':' .. ARGV[3]
if keep then
  local prior = redis.call('HGET', KEYS[3], outcome_field)
  if prior then return prior end
end

local a = redis.call('HMGET', KEYS[1], 'state', 'start_ms', 'end_ms', 'starting_bid',
  'current_bid', 'bidder', 'seq', 'bid_count', 'ext_window_s', 'ext_s', 'rules_v')
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
local amount = tonumber(ARGV[4])

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local placed_us = t[1] .. string.format('%06d', tonumber(t[2]))

local function increment_at(price)
  local inc = nil
  for from, step in string.gmatch(ARGV[5], '(%d+):(%d+)') do
    if inc == nil or tonumber(from) <= price then inc = tonumber(step) else break end
  end
  return inc or 1
end

-- The next bid's minimum, capped at MAX_BID (the last raise may be smaller than the increment);
-- nil once no bid can be placed, so no answer ever carries a price above the maximum.
local max_bid = tonumber(ARGV[11])
local min_next = starting_bid
if current then min_next = math.max(math.min(current + increment_at(current), max_bid), current) end
if min_next > max_bid or (current and min_next <= current) then min_next = nil end

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
-- Step 3.
if a[6] and a[6] == ARGV[2] then return reject('already_highest_bidder', true) end
-- Step 4.
if not min_next then return reject('max_bid_reached', true) end
if amount < min_next then return reject('bid_too_low', true) end

-- Step 5: accept, and extend the close when the bid lands inside the window.
seq = seq + 1
bid_count = bid_count + 1
local new_end = end_ms
if ext_window_ms > 0 and end_ms - now_ms <= ext_window_ms and now_ms + ext_ms > end_ms then
  new_end = now_ms + ext_ms
end
redis.call('HSET', KEYS[1], 'current_bid', ARGV[4], 'bidder', ARGV[2], 'seq', int(seq),
  'bid_count', int(bid_count), 'end_ms', int(new_end))
local event = cjson.encode({type = 'bid', auction_id = ARGV[1], seq = int(seq), bid_id = ARGV[3],
  bidder = ARGV[2], amount = ARGV[4], bid_count = int(bid_count), placed_us = placed_us,
  end_ms = int(new_end), prev_end_ms = int(end_ms)})
redis.call('LPUSH', KEYS[2], event)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)

-- Step 6: the durable log first, then live fan-out (which may drop).
redis.call('XADD', KEYS[4], '*', 'v', '2', 'event', event)
redis.call(ARGV[8], ARGV[6], event)
return finish(event)
