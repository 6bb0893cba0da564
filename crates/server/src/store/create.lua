-- Creates an auction if its id is free, and logs the creation to its durable stream.
--
-- KEYS[1] auction hash       KEYS[2] durable event stream
-- ARGV[1] auction id  ARGV[2] title  ARGV[3] start_ms  ARGV[4] end_ms  ARGV[5] starting bid (cents)
-- ARGV[6] extension window (s)  ARGV[7] extension (s)
--
-- Returns the creation's event ({"type":"created",...}, docs/protocol.md "Events"; its
-- created_ms is Redis time), or an empty string when the id is taken.

if redis.call('EXISTS', KEYS[1]) == 1 then return '' end
local t = redis.call('TIME')
local created_ms = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'title', ARGV[2], 'state', 'open',
  'start_ms', ARGV[3], 'end_ms', ARGV[4], 'starting_bid', ARGV[5], 'current_bid', '',
  'bidder', '', 'seq', '0', 'bid_count', '0', 'ext_window_s', ARGV[6], 'ext_s', ARGV[7],
  'created_ms', created_ms)
local event = cjson.encode({type = 'created', auction_id = ARGV[1], seq = '0', title = ARGV[2],
  start_ms = ARGV[3], end_ms = ARGV[4], starting_bid = ARGV[5], ext_window_s = ARGV[6],
  ext_s = ARGV[7], created_ms = created_ms})
redis.call('XADD', KEYS[2], '*', 'v', '2', 'event', event)
return event
