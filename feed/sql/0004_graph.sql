-- The follow graph, continued: "my blocks" newest first, read with the same keyset as the
-- followers and following lists (created_at DESC, then the other user's id).
CREATE INDEX blocks_blocker_recent ON blocks (blocker_id, created_at DESC, blocked_id);
