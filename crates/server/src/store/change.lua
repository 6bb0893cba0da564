-- An operator's change to a running auction: extend its close, or cancel it. Only an auction that
-- is scheduled or active (by Redis time) can change.
--
-- KEYS[1] auction hash    KEYS[2] durable event stream
-- ARGV[1] auction id    ARGV[2] "extend" or "cancel"    ARGV[3] seconds to extend by
-- ARGV[4] live channel    ARGV[5] publish command: SPUBLISH on a cluster, PUBLISH on one Redis
--
-- Returns {"missing"}, {"conflict", status}, or {"event", the event it logged and published,
-- created_ms} ({"type":"extended",...} or {"type":"cancelled",...}, docs/protocol.md "Events";
-- created_ms is the auction's score in the status indexes, which the caller moves on a cancel).

local function int(n) return string.format('%.0f', n) end

local a = redis.call('HMGET', KEYS[1], 'state', 'end_ms', 'seq', 'created_ms')
if not a[1] then return {'missing'} end
local state, end_ms = a[1], tonumber(a[2])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if state == 'cancelled' then return {'conflict', 'cancelled'} end
if state == 'ended' or now_ms >= end_ms then return {'conflict', 'ended'} end
local seq = tonumber(a[3]) + 1

local event
if ARGV[2] == 'extend' then
  local new_end = end_ms + tonumber(ARGV[3]) * 1000
  redis.call('HSET', KEYS[1], 'end_ms', int(new_end), 'seq', int(seq))
  event = cjson.encode({type = 'extended', auction_id = ARGV[1], seq = int(seq),
    end_ms = int(new_end), prev_end_ms = int(end_ms)})
else
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'seq', int(seq))
  event = cjson.encode({type = 'cancelled', auction_id = ARGV[1], seq = int(seq)})
end
redis.call('XADD', KEYS[2], '*', 'v', '2', 'event', event)
redis.call(ARGV[5], ARGV[4], event)
return {'event', event, a[4] or '0'}
