-- KEYS[1] guard key, KEYS[2] jobs stream. ARGV[1] msgpack job, ARGV[2] guard ttl s.
-- The guard and the XADD happen atomically: a retried hand-off never enqueues the job twice.
-- No MAXLEN here: trimming an unconsumed job would lose it; NARA trims what it acknowledged.
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
end
return false
