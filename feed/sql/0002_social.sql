-- The social domain: profiles, the follow graph with private accounts and blocks, post kinds and
-- their feed order, comments, and who watches a post.

ALTER TABLE users ADD COLUMN bio text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN private boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN followers_count bigint NOT NULL DEFAULT 0 CHECK (followers_count >= 0);
ALTER TABLE users ADD COLUMN following_count bigint NOT NULL DEFAULT 0 CHECK (following_count >= 0);
ALTER TABLE users ADD COLUMN posts_count bigint NOT NULL DEFAULT 0 CHECK (posts_count >= 0);

-- Pagination of followers and following, newest first.
CREATE INDEX follows_followee_recent ON follows (followee_id, created_at DESC, follower_id);
CREATE INDEX follows_follower_recent ON follows (follower_id, created_at DESC, followee_id);

-- A follow of a private account waits here until its owner accepts (or declines) it.
CREATE TABLE follow_requests (
    requester_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (requester_id, target_id),
    CHECK (requester_id <> target_id)
);
CREATE INDEX follow_requests_target ON follow_requests (target_id, created_at DESC, requester_id);

-- A block hides the blocker from the blocked, both ways of every relationship: no follow, no
-- request, no message, no post, no presence.
CREATE TABLE blocks (
    blocker_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id, blocker_id);

-- Posts: text, image or video. ``feed_seq`` orders timelines: it is taken when a post is
-- published, under a lock held to the commit, so it follows commit order and a cursor that went
-- past a value never misses a post committed later below it (feed/posts.py).
ALTER TABLE posts ADD COLUMN kind text NOT NULL DEFAULT 'video' CHECK (kind IN ('text', 'image', 'video'));
ALTER TABLE posts ADD COLUMN feed_seq bigint UNIQUE;
ALTER TABLE posts ADD COLUMN comments_count bigint NOT NULL DEFAULT 0 CHECK (comments_count >= 0);
ALTER TABLE posts ADD COLUMN edited_at timestamptz;
CREATE SEQUENCE post_feed_seq;
CREATE INDEX posts_author_feed ON posts (author_id, feed_seq DESC) WHERE feed_seq IS NOT NULL;

-- Comments, one level of replies (a reply's parent is a top-level comment of the same post).
CREATE TABLE comments (
    id         uuid PRIMARY KEY,
    post_id    uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_id  uuid REFERENCES comments (id) ON DELETE CASCADE,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX comments_post ON comments (post_id, created_at, id);

-- Who hears about a post's comments and reactions in their feed: its author and its commenters.
CREATE TABLE post_watchers (
    post_id    uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id)
);
