-- Add (or refresh) one connection's presence entry. Returns 1 when this made the user present
-- (first entry of that user), else 0.
-- KEYS[1] entries zset (member "<user>|<conn>", score expiry ms), KEYS[2] users hash (user -> entries)
-- ARGV[1] user, ARGV[2] member, ARGV[3] expiry (ms), ARGV[4] key ttl (s)
local added = redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
local first = 0
if added == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[1], 1) == 1 then
    first = 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return first
