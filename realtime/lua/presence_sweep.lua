-- Remove expired presence entries (dead nodes, leaves past their grace) and return the users who
-- are no longer present at all. Atomic: when several nodes sweep, each leave is reported once.
-- With ARGV[2] > 0 also return a snapshot: {left, count, users (at most ARGV[2]), truncated}.
-- KEYS[1] entries zset, KEYS[2] users hash; ARGV[1] now (ms), ARGV[2] snapshot limit (0: none)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local left = {}
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[1], member)
  local user = string.match(member, '^([^|]*)|')
  if user then
    if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
      redis.call('HDEL', KEYS[2], user)
      table.insert(left, user)
    end
  end
end
local limit = tonumber(ARGV[2])
if limit <= 0 then
  return {left}
end
local count = redis.call('HLEN', KEYS[2])
local users
local truncated = 0
if count <= limit then
  users = redis.call('HKEYS', KEYS[2])
else
  users = {}
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', KEYS[2], cursor, 'COUNT', limit)
    cursor = page[1]
    for i = 1, #page[2], 2 do
      if #users < limit then table.insert(users, page[2][i]) end
    end
  until cursor == '0' or #users >= limit
  truncated = 1
end
return {left, count, users, truncated}
