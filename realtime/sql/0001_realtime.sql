-- Realtime hub: rooms, chat, receipts, reactions and the durable channel event log.
--
-- PostgreSQL is the source of truth for every durable event: a channel's offsets are assigned here
-- (rooms.last_seq for room:<id>, channels.last_seq for every other channel), in the same
-- transaction that stores the event, and Redis streams mirror them under the same offsets.
-- Each stored row keeps the exact encoded frame (``frame``), so a node can refill a gap or serve a
-- resume from PostgreSQL byte for byte when Redis lost its copy.

CREATE TABLE rooms (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('direct', 'group')),
    title       text NOT NULL DEFAULT '',
    -- A direct room is unique per pair of users: "<smaller uuid>:<larger uuid>".
    direct_key  text UNIQUE,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    epoch       text NOT NULL,
    last_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE room_members (
    room_id   uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);

CREATE TABLE messages (
    room_id    uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    mid        text NOT NULL UNIQUE,
    cmid       text NOT NULL,
    sender     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body       text NOT NULL,
    reply_to   text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    frame      bytea NOT NULL,
    PRIMARY KEY (room_id, seq),
    UNIQUE (room_id, sender, cmid)
);

-- Latest delivered/read position per member: only ever moves forward.
CREATE TABLE receipts (
    room_id    uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('delivered', 'read')),
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id, kind)
);

CREATE TABLE reactions (
    target_kind text NOT NULL CHECK (target_kind IN ('post', 'message')),
    target_id   text NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_kind, target_id, user_id, emoji)
);

CREATE TABLE reaction_counts (
    target_kind text NOT NULL,
    target_id   text NOT NULL,
    emoji       text NOT NULL,
    count       bigint NOT NULL DEFAULT 0 CHECK (count >= 0),
    PRIMARY KEY (target_kind, target_id, emoji)
);

-- Offsets of every non-room channel (user:<id>, post:<id>).
CREATE TABLE channels (
    name     text PRIMARY KEY,
    epoch    text NOT NULL,
    last_seq bigint NOT NULL DEFAULT 0
);

-- The durable log (outbox) of every non-chat event: feed updates, media events, published events.
-- ``idem_key`` makes publishing idempotent per (channel, sender): a retry returns the stored row.
CREATE TABLE channel_events (
    channel    text NOT NULL,
    seq        bigint NOT NULL,
    mid        text NOT NULL UNIQUE,
    kind       text NOT NULL,
    sender     text NOT NULL DEFAULT '',
    idem_key   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    frame      bytea NOT NULL,
    PRIMARY KEY (channel, seq),
    UNIQUE (channel, sender, idem_key)
);
