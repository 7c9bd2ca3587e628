-- A chat message's frame is rebuilt from its columns (realtime/store.py, message_from_row), so the
-- send is one statement; created_at carries the published timestamp to the millisecond.
ALTER TABLE messages DROP COLUMN frame;
