-- Trims an auction's event stream of what every consumer group has acknowledged: entries below
-- the oldest entry still pending or not yet delivered, for every group. With no group, nothing
-- is trimmed (nobody has read anything yet).
--
-- KEYS[1] the stream
-- Returns the number of entries removed.

local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local function older(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end
local keep = nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local floor
  local pending = redis.call('XPENDING', KEYS[1], info['name'], '-', '+', 1)
  if #pending > 0 then
    floor = pending[1][1]
  else
    -- Everything up to the last delivered entry is acknowledged; keep that one as the floor.
    floor = info['last-delivered-id']
  end
  if keep == nil or older(floor, keep) then keep = floor end
end
return redis.call('XTRIM', KEYS[1], 'MINID', keep)
