-- A connection left: keep its entry for a short grace period instead of removing it, so that a
-- leave followed by a rejoin (page reload, deploy) shows no leave/join flicker. The sweep removes
-- it after the grace and reports the user gone if no other entry remains.
-- KEYS[1] entries zset; ARGV[1] member, ARGV[2] expiry (ms)
return redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
