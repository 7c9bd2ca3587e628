-- Accounts and refresh sessions. Usernames are unique case-insensitively.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- One row per refresh token. Only the SHA-256 of the token is stored. A refresh rotates the token:
-- the old row is marked used and points at its successor; presenting a used token again revokes
-- the whole family (token theft detection).
CREATE TABLE auth_sessions (
    id           uuid PRIMARY KEY,
    family_id    uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz,
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);
CREATE INDEX auth_sessions_family ON auth_sessions (family_id);

-- Posts exist from the upload path on: a video upload creates a draft post that the feed
-- publishes once its media is good enough.
CREATE TABLE posts (
    id          uuid PRIMARY KEY,
    author_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state       text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'processing', 'published', 'failed', 'deleted')),
    visibility  text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'followers', 'private')),
    body        text NOT NULL DEFAULT '',
    media_id    uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_author ON posts (author_id, created_at DESC);

CREATE TABLE follows (
    follower_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id);
