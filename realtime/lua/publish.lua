-- Append one durable event to a channel stream at an offset assigned by PostgreSQL, and return the
-- nodes to route it to. One slot: every key has the channel's hash tag.
--
-- KEYS[1] meta hash, KEYS[2] history stream, KEYS[3] interested nodes zset
-- ARGV[1] epoch, ARGV[2] offset, ARGV[3] payload (encoded frame), ARGV[4] maxlen,
-- ARGV[5] now (ms), ARGV[6] ttl of the history (s)
--
-- Returns {status, top, nodes}: status 0 appended, 1 duplicate (offset already there: a retry),
-- 2 gap (offset > top + 1: the caller appends the missing offsets first, from PostgreSQL).
-- A missing meta (a new channel; or Redis lost it, or it expired) or another epoch starts the stream
-- again. A channel of at most WHOLE events starts whole: the answer is a gap from 0, so the caller
-- appends the earlier offsets from PostgreSQL first (two publishers of a new channel can reach Redis
-- out of order, and the first to arrive must not decide where its history begins). A longer one
-- restarts at this offset: older offsets are then served from PostgreSQL.
local WHOLE = 64
local meta, stream, nodes = KEYS[1], KEYS[2], KEYS[3]
local epoch, offset = ARGV[1], tonumber(ARGV[2])
local cur = redis.call('HMGET', meta, 'e', 'top')
local top
if (not cur[1]) or cur[1] ~= epoch then
  redis.call('DEL', stream)
  if offset > 1 and offset <= WHOLE then
    redis.call('HSET', meta, 'e', epoch, 'top', 0)
    redis.call('EXPIRE', meta, ARGV[6])
    return {2, 0, {}}
  end
  top = offset - 1
else
  top = tonumber(cur[2])
  if offset <= top then
    return {1, top, {}}
  end
  if offset > top + 1 then
    return {2, top, {}}
  end
end
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], offset .. '-0', 'p', ARGV[3])
redis.call('HSET', meta, 'e', epoch, 'top', offset)
redis.call('EXPIRE', meta, ARGV[6])
redis.call('EXPIRE', stream, ARGV[6])
redis.call('ZREMRANGEBYSCORE', nodes, '-inf', ARGV[5])
return {0, offset, redis.call('ZRANGE', nodes, 0, -1)}
