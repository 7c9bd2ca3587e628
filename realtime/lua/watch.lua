-- A node starts (or keeps) holding subscribers of a channel: register it for routing, then read
-- the channel position. Every event with an offset above the returned top is routed to this node.
--
-- KEYS[1] interested nodes zset, KEYS[2] meta hash
-- ARGV[1] node id, ARGV[2] expiry (ms), ARGV[3] ttl of the zset (s)
-- Returns {epoch or false, top or false}.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('HMGET', KEYS[2], 'e', 'top')
