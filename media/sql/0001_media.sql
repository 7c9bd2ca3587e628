-- Resumable uploads (tus). PostgreSQL holds the truth of every upload; Redis only locks and limits.
-- States: uploading -> complete (object published, post processing) -> enqueued (NARA job placed);
-- or uploading -> terminated (client DELETE) | expired (cleanup) | rejected (sniffing refused it).
CREATE TABLE media_uploads (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id       uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    state         text NOT NULL DEFAULT 'uploading'
                  CHECK (state IN ('uploading', 'complete', 'enqueued', 'terminated', 'expired', 'rejected')),
    length        bigint NOT NULL CHECK (length > 0),
    "offset"      bigint NOT NULL DEFAULT 0 CHECK ("offset" >= 0 AND "offset" <= length),
    object_key    text NOT NULL UNIQUE,
    multipart_id  text NOT NULL,
    parts         jsonb NOT NULL DEFAULT '[]',  -- etags of committed parts 1..n, in order
    tail_key      text,                         -- staged unfinished part, NULL on a part boundary
    header        bytea NOT NULL,               -- encryption header: key id, wrapped data key, nonce prefix
    content_type  text,                         -- sniffed from the first bytes, never the declared type
    metadata      jsonb NOT NULL DEFAULT '{}',  -- Upload-Metadata pairs (filename, filetype, ...)
    active_ms     bigint NOT NULL DEFAULT 0,    -- time spent receiving bytes: the uploader's real uplink
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    completed_at  timestamptz
);
CREATE INDEX media_uploads_user_live ON media_uploads (user_id) WHERE state IN ('uploading', 'complete', 'enqueued');
CREATE INDEX media_uploads_expiry ON media_uploads (expires_at) WHERE state = 'uploading';
CREATE INDEX media_uploads_handoff ON media_uploads (completed_at) WHERE state = 'complete';

-- Published, encrypted originals. key_id mirrors the header stored beside the object so re-wrap
-- finds objects still on an old master key without reading every header.
CREATE TABLE media_objects (
    id            uuid PRIMARY KEY,             -- the upload id
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id       uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    object_key    text NOT NULL UNIQUE,
    content_type  text NOT NULL,
    size          bigint NOT NULL,              -- plaintext bytes
    key_id        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rewrapped_at  timestamptz
);
CREATE INDEX media_objects_key_id ON media_objects (key_id);
