-- NARA-1r's media catalog: one row per upload (id = the upload id). Workers write it, keyed by the
-- upload id, before each media event they emit (a reclaimed job rewrites the same row); the
-- playback API reads it. Object keys all live under media/<id>/ and never change once written.
CREATE TABLE media (
    id                uuid PRIMARY KEY,
    owner_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id           uuid REFERENCES posts (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('video', 'image')),
    state             text NOT NULL DEFAULT 'processing'
                      CHECK (state IN ('processing', 'good_enough', 'upgraded', 'failed')),
    failure_reason    text,                          -- stable code from nara.errors
    failure_detail    text,
    probe             jsonb,                         -- summary: size, rotation, fps, duration, codecs
    plan_id           text,
    plan              jsonb,                         -- the stored Plan, with its reasons
    fast_playlist     text,                          -- phase 1 EVENT playlist (grows until complete)
    fast_complete     boolean NOT NULL DEFAULT false,
    poster            text,
    placeholder       text,                          -- tiny blurred JPEG as a data URI
    master_playlist   text,                          -- phase 2
    renditions        jsonb NOT NULL DEFAULT '[]',   -- name, width, height, fps, bandwidth, playlist key
    variants          jsonb NOT NULL DEFAULT '[]',   -- images: width, webp and jpeg keys
    preview           text,
    storyboard_sprite text,
    storyboard_vtt    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    good_enough_at    timestamptz,
    upgraded_at       timestamptz,
    failed_at         timestamptz
);
CREATE INDEX media_owner ON media (owner_id, created_at DESC);
CREATE INDEX media_post ON media (post_id);
