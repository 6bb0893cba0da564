-- Takes or renews the leader lease, and hands out a fencing epoch that rises with every new lease.
--
-- KEYS[1] lease key (value "instance|epoch", with a TTL)     KEYS[2] epoch counter
-- ARGV[1] instance id    ARGV[2] TTL in ms    ARGV[3] the epoch the caller holds ("0" if none)
--
-- Returns {held (1|0), epoch, holder, ms left, Redis time (ms) when the lease runs out}. A caller that holds the lease renews it and keeps
-- its epoch; when the lease is free the caller takes it with a new epoch, even if it held the
-- previous one (a lapsed lease is a new leadership, and must fence the old one out).

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function until_ms(left) return string.format('%.0f', now_ms + left) end

local current = redis.call('GET', KEYS[1])
if current then
  if current == ARGV[1] .. '|' .. ARGV[3] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, ARGV[3], ARGV[1], tonumber(ARGV[2]), until_ms(tonumber(ARGV[2]))}
  end
  local sep = string.find(current, '|', 1, true)
  local left = redis.call('PTTL', KEYS[1])
  return {0, string.sub(current, sep + 1), string.sub(current, 1, sep - 1), left, until_ms(left)}
end
local epoch = string.format('%.0f', redis.call('INCR', KEYS[2]))
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
return {1, epoch, ARGV[1], tonumber(ARGV[2]), until_ms(tonumber(ARGV[2]))}
