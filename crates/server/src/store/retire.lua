-- Gives a finished auction's keys their retention: once the auction is ended or cancelled and
-- its log holds nothing the analytics group has not written and acknowledged (so MySQL has all
-- of it), every key of the auction expires after the retention. Also the analytics sweep's
-- one look at a quiet auction: it says whether the log has work.
--
-- KEYS[1] auction hash   KEYS[2] recent-bids list   KEYS[3] outcomes hash
-- KEYS[4] durable event stream   KEYS[5] the stream's owner key
-- ARGV[1] the consumer group   ARGV[2] retention in ms
--
-- Returns one of
--   {"work"}                  the log holds entries the group has not acknowledged (or no group yet)
--   {"live"}                  nothing to write, but the auction is not over
--   {"retired", expiry ms}    its keys expire at that Redis time (set now, or by an earlier call,
--                             which is kept: calling again never extends the retention)
--   {"gone"}                  no such auction (expired already, or never created)

local function int(n) return string.format('%.0f', n) end

-- Whether stream id a is older than b ("ms-seq", compared as numbers).
local function older(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end

if redis.call('EXISTS', KEYS[4]) == 1 then
  local group = nil
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[4])) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == ARGV[1] then group = info end
  end
  if group == nil then
    if redis.call('XLEN', KEYS[4]) > 0 then return {'work'} end
  else
    if tonumber(group['pending']) > 0 then return {'work'} end
    local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
    if #last > 0 and older(group['last-delivered-id'], last[1][1]) then return {'work'} end
  end
end

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone'} end
if state ~= 'ended' and state ~= 'cancelled' then return {'live'} end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return {'retired', int(now_ms + left)} end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
-- The owner key always carries its own short TTL (owner.lua); one without is given the retention.
if redis.call('PTTL', KEYS[5]) == -1 then redis.call('PEXPIRE', KEYS[5], ARGV[2]) end
return {'retired', int(now_ms + tonumber(ARGV[2]))}
