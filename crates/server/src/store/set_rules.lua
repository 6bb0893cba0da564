-- Replaces the increment table and gives it a new version, in one step, so that a reader never
-- sees one table with another's version.
--
-- KEYS[1] the table (JSON of BidRules)     KEYS[2] its version (same slot: see keys.rs)
-- ARGV[1] the new table's JSON
--
-- Returns the new version: Redis time in microseconds, or one more than the previous version if
-- that is not below it. Time, not a counter, so that a version lost with a failover is never
-- handed out again for another table.

local t = redis.call('TIME')
local version = tonumber(t[1]) * 1000000 + tonumber(t[2])
local previous = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if version <= previous then version = previous + 1 end
version = string.format('%.0f', version)
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], version)
return version
