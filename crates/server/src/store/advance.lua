-- Moves an auction along its lifecycle when a deadline is due: the scheduler's one transition.
-- Fenced without reading the lease (which lives in another slot, perhaps on another node): the
-- caller must still be inside its lease as Redis tells time here, and no newer epoch may have
-- acted on this auction (docs/protocol.md, "Leadership and fencing", says why that is enough).
--
-- KEYS[1] auction hash    KEYS[2] durable event stream
-- ARGV[1] auction id    ARGV[2] caller's epoch
-- ARGV[3] the Redis time (ms) until which the caller's lease is surely still its own
-- ARGV[4] live channel    ARGV[5] publish command: SPUBLISH on a cluster, PUBLISH on one Redis
--
-- Returns one of
--   {"fenced"}                       the caller is not the leader (or an older one)
--   {"missing"}                      no such auction
--   {"final", state}                 already ended or cancelled: nothing to do, ever
--   {"wait", next deadline ms}       nothing due yet (a bid may have moved the close)
--   {"event", event, created_ms}     open -> active ({"type":"started",...}), or -> ended, once
--                                    ({"type":"ended",...}, with no winner when a reserve was not
--                                    met): the event it logged and published
--                                    (docs/protocol.md, "Events"), and the auction's created_ms
--                                    (its score in the status indexes, which the caller moves)

local function int(n) return string.format('%.0f', n) end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms >= tonumber(ARGV[3]) then return {'fenced'} end
local epoch = tonumber(ARGV[2])
local a = redis.call('HMGET', KEYS[1], 'state', 'start_ms', 'end_ms', 'current_bid', 'bidder',
  'seq', 'bid_count', 'fence', 'created_ms', 'reserve')
if not a[1] then return {'missing'} end
if a[8] and epoch < tonumber(a[8]) then return {'fenced'} end

local state, start_ms, end_ms = a[1], tonumber(a[2]), tonumber(a[3])
if state == 'ended' or state == 'cancelled' then return {'final', state} end

local seq = tonumber(a[6]) + 1

local function emit(event)
  local text = cjson.encode(event)
  redis.call('XADD', KEYS[2], '*', 'v', '2', 'event', text)
  redis.call(ARGV[5], ARGV[4], text)
  return {'event', text, a[9] or '0'}
end

if now_ms >= end_ms then
  local winner, price = a[5] or '', a[4] or ''
  local ended = {type = 'ended', auction_id = ARGV[1], seq = int(seq), bid_count = a[7],
    end_ms = int(end_ms)}
  -- A reserve the price did not reach (or no bid at all): no sale.
  if a[10] and a[10] ~= '' then
    local met = price ~= '' and tonumber(price) >= tonumber(a[10])
    ended.reserve_met = met and '1' or '0'
    if not met then winner, price = '', '' end
  end
  redis.call('HSET', KEYS[1], 'state', 'ended', 'seq', int(seq), 'fence', ARGV[2],
    'winner', winner, 'final_price', price)
  -- Without a sale, no winner and no price: the keys are left out.
  if winner ~= '' then ended.winner = winner end
  if price ~= '' then ended.final_price = price end
  return emit(ended)
end

if state == 'open' and now_ms >= start_ms then
  redis.call('HSET', KEYS[1], 'state', 'active', 'seq', int(seq), 'fence', ARGV[2])
  return emit({type = 'started', auction_id = ARGV[1], seq = int(seq), end_ms = int(end_ms)})
end

if state == 'open' then return {'wait', int(start_ms)} end
return {'wait', int(end_ms)}
