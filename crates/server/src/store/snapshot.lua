-- Reads an auction's whole state together with Redis time, so that status is derived from the one
-- clock that decides bids.
--
-- KEYS[1] auction hash       KEYS[2] recent-bids list
-- ARGV[1] how many recent bids to return
--
-- Returns {} when the auction does not exist, else
-- {{seconds, microseconds}, {field, value, ...}, {recent bid JSON, ...newest first}}.

if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
return {
  redis.call('TIME'),
  redis.call('HGETALL', KEYS[1]),
  redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1),
}
