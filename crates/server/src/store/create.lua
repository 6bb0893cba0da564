-- Creates an auction if its id is free, and logs the creation to its durable stream: the last step
-- of a create, after the deadline and list index entries (docs/protocol.md, "Creating an auction").
--
-- KEYS[1] auction hash       KEYS[2] durable event stream
-- ARGV[1] auction id  ARGV[2] title  ARGV[3] start_ms  ARGV[4] end_ms  ARGV[5] starting bid (cents)
-- ARGV[6] extension window (s)  ARGV[7] extension (s)  ARGV[8] created_ms (Redis time, read by the
-- caller before its index entries)  ARGV[9] the Redis time (ms) after which the create must not
-- happen, since the scheduler may then drop the auction's deadline entry as a leftover
-- ARGV[10] the Idempotency-Key, or ""  ARGV[11] the request's fingerprint, or ""
-- ARGV[12] the reserve (cents), or ""  ARGV[13] the buy-it-now price (cents), or ""
--
-- Returns one of
--   {"created", event}   the creation's event ({"type":"created",...}, docs/protocol.md "Events")
--   {"replay"}           the id is taken by an auction created with this key and this request
--   {"mismatch"}         the id is taken by an auction created with this key and another request
--   {"taken"}            the id is taken otherwise
--   {"late"}             ARGV[9] has passed: nothing written

local found = redis.call('HMGET', KEYS[1], 'id', 'idem_key', 'request')
if found[1] then
  if ARGV[10] ~= '' and found[2] == ARGV[10] then
    if found[3] == ARGV[11] then return {'replay'} end
    return {'mismatch'}
  end
  return {'taken'}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms > tonumber(ARGV[9]) then return {'late'} end

local created = {type = 'created', auction_id = ARGV[1], seq = '0', title = ARGV[2],
  start_ms = ARGV[3], end_ms = ARGV[4], starting_bid = ARGV[5], ext_window_s = ARGV[6],
  ext_s = ARGV[7], created_ms = ARGV[8]}
if ARGV[12] ~= '' then created.reserve = ARGV[12] end
if ARGV[13] ~= '' then created.buy_now = ARGV[13] end
local event = cjson.encode(created)
-- The stream first: if it cannot be written (a key of the wrong type), nothing is, since a script
-- that fails keeps what it wrote before.
redis.call('XADD', KEYS[2], '*', 'v', '2', 'event', event)
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'title', ARGV[2], 'state', 'open',
  'start_ms', ARGV[3], 'end_ms', ARGV[4], 'starting_bid', ARGV[5], 'current_bid', '',
  'bidder', '', 'seq', '0', 'bid_count', '0', 'ext_window_s', ARGV[6], 'ext_s', ARGV[7],
  'created_ms', ARGV[8])
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[1], 'idem_key', ARGV[10], 'request', ARGV[11])
end
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], 'reserve', ARGV[12]) end
if ARGV[13] ~= '' then redis.call('HSET', KEYS[1], 'buy_now', ARGV[13]) end
return {'created', event}
