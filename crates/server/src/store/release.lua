-- Gives the leader lease up, if the caller still holds it.
--
-- KEYS[1] lease key    ARGV[1] "instance|epoch" of the caller
-- Returns 1 if released, 0 if the caller did not hold it.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
