-- Takes or keeps a short ownership of one auction's event stream for one analytics instance, so
-- that each auction's events reach MySQL in order, from one consumer at a time.
--
-- KEYS[1] the stream's owner key    ARGV[1] instance id    ARGV[2] TTL in ms
-- Returns 1 if the caller owns the stream now, 0 if another instance does.

local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
