-- Group commit of chat sends (realtime/chat.py, ChatStore.send_batch): one call stores a batch of
-- messages from any rooms in one transaction, one round trip.
--
-- Order and locks. The rooms of the batch are locked first, in one order (by id) on every node, so
-- two batches sharing rooms never deadlock. The statement after the lock runs on a fresh snapshot
-- (READ COMMITTED, a volatile function): every message committed before the lock is visible, so
-- the membership check and the cmid dedupe are exact and the INSERT cannot hit the unique key.
-- Offsets: a room's fresh messages take last_seq + 1, + 2, ... in batch order (``ord``).
--
-- Returns one row per stored message: its position in the input, the room epoch and its offset.
-- Inputs without a row were not stored: an earlier message with that cmid exists (a retry), or the
-- sender is not a member. The caller deduplicates cmids within a batch before calling.
CREATE FUNCTION chat_send_batch(
    p_room uuid[], p_sender uuid[], p_cmid text[], p_mid text[], p_body text[], p_reply text[], p_ts bigint[]
) RETURNS TABLE (out_ord bigint, out_epoch text, out_seq bigint)
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM 1 FROM rooms r WHERE r.id = ANY (p_room) ORDER BY r.id FOR UPDATE;
    RETURN QUERY
    WITH input AS (
        SELECT t.room_id, t.sender, t.cmid, t.mid, t.body, t.reply_to, t.ts, t.ord
          FROM unnest(p_room, p_sender, p_cmid, p_mid, p_body, p_reply, p_ts) WITH ORDINALITY
               AS t (room_id, sender, cmid, mid, body, reply_to, ts, ord)
    ), fresh AS (
        SELECT i.*, row_number() OVER (PARTITION BY i.room_id ORDER BY i.ord) AS n
          FROM input i
         WHERE EXISTS (SELECT 1 FROM room_members rm WHERE rm.room_id = i.room_id AND rm.user_id = i.sender)
           AND NOT EXISTS (SELECT 1 FROM messages m
                            WHERE m.room_id = i.room_id AND m.sender = i.sender AND m.cmid = i.cmid)
    ), bumped AS (
        UPDATE rooms r SET last_seq = r.last_seq + c.cnt
          FROM (SELECT f.room_id, count(*) AS cnt FROM fresh f GROUP BY f.room_id) c
         WHERE r.id = c.room_id
        RETURNING r.id, r.epoch, r.last_seq - c.cnt AS base
    ), stored AS (
        INSERT INTO messages (room_id, seq, mid, cmid, sender, body, reply_to, created_at)
        SELECT f.room_id, b.base + f.n, f.mid, f.cmid, f.sender, f.body, f.reply_to,
               to_timestamp(f.ts::float8 / 1000)
          FROM fresh f JOIN bumped b ON b.id = f.room_id
        RETURNING 1
    )
    SELECT f.ord, b.epoch, b.base + f.n FROM fresh f JOIN bumped b ON b.id = f.room_id ORDER BY f.ord;
END
$fn$;
