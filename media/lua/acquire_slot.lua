-- KEYS[1] sorted set of a user's active upload requests (member = lease token, score = expiry ms).
-- ARGV[1] token, ARGV[2] now ms, ARGV[3] lease ms, ARGV[4] limit. Expired leases (a crashed node)
-- free themselves. Returns 1 when the slot is taken, 0 when the user is at the limit.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
