-- The live nodes holding subscribers of a channel (expired registrations are dropped).
-- KEYS[1] interested nodes zset; ARGV[1] now (ms)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
