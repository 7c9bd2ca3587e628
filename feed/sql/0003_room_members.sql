-- requires: realtime/0001
-- Rooms are the hub's channels (their offsets live on the row); who belongs to them, with which
-- role, and whether they muted it, is the feed's.
ALTER TABLE room_members DROP CONSTRAINT room_members_role_check;
ALTER TABLE room_members ADD CONSTRAINT room_members_role_check CHECK (role IN ('owner', 'admin', 'member'));
ALTER TABLE room_members ADD COLUMN muted boolean NOT NULL DEFAULT false;
ALTER TABLE rooms ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
