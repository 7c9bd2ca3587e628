-- Posts as content: publication, announcement, deletion; comments in commit order; counters kept
-- exact by the database itself; graph changes announced to the hubs (their caches and timelines).

ALTER TABLE posts ADD COLUMN published_at timestamptz;
ALTER TABLE posts ADD COLUMN deleted_at timestamptz;
-- Announcing a published post (post.created, timelines) happens once, after its commit, by whichever
-- hub claims it: a claim is a lease (announce_until); announced_at is set when it is done. A lease
-- that ran out (its node died) is taken over by the periodic sweep (feed/announce.py).
ALTER TABLE posts ADD COLUMN announced_at timestamptz;
ALTER TABLE posts ADD COLUMN announce_until timestamptz;
-- A deleted post's media goes back to its owner's quota (media/): done, or still to do.
ALTER TABLE posts ADD COLUMN media_released_at timestamptz;
-- Comments of a post are numbered under the post's row lock, so their order is their commit order.
ALTER TABLE posts ADD COLUMN comments_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE comments ADD COLUMN seq bigint NOT NULL DEFAULT 0;
CREATE INDEX comments_post_seq ON comments (post_id, seq);
CREATE INDEX comments_parent ON comments (parent_id) WHERE parent_id IS NOT NULL;

CREATE INDEX posts_unannounced ON posts (published_at) WHERE state = 'published' AND announced_at IS NULL;
CREATE INDEX posts_unreleased ON posts (deleted_at) WHERE deleted_at IS NOT NULL AND media_released_at IS NULL;

-- Posts published before this file: in the feed already (ordered as they were created), announced.
WITH ordered AS (
    SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM posts
    WHERE state = 'published' AND feed_seq IS NULL
)
UPDATE posts p SET feed_seq = o.n + coalesce((SELECT max(feed_seq) FROM posts), 0)
FROM ordered o WHERE p.id = o.id;
SELECT setval('post_feed_seq', greatest((SELECT coalesce(max(feed_seq), 0) FROM posts), 1),
              (SELECT max(feed_seq) IS NOT NULL FROM posts));
UPDATE posts SET published_at = updated_at, announced_at = now() WHERE state = 'published';

-- users.posts_count: the author's published posts, whoever moves a post's state (the feed, uploads,
-- NARA-1r in its own transaction).
CREATE FUNCTION posts_count_follows_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state = 'published' THEN
            UPDATE users SET posts_count = posts_count + 1 WHERE id = NEW.author_id;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.state = 'published' AND OLD.state <> 'published' THEN
            UPDATE users SET posts_count = posts_count + 1 WHERE id = NEW.author_id;
        ELSIF OLD.state = 'published' AND NEW.state <> 'published' THEN
            UPDATE users SET posts_count = posts_count - 1 WHERE id = NEW.author_id;
        END IF;
    ELSIF OLD.state = 'published' THEN
        UPDATE users SET posts_count = posts_count - 1 WHERE id = OLD.author_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER posts_count AFTER INSERT OR UPDATE OF state OR DELETE ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_count_follows_state();
UPDATE users u SET posts_count = (SELECT count(*) FROM posts p WHERE p.author_id = u.id AND p.state = 'published');

-- Follows and blocks change what a viewer may see and what their home timeline holds: every hub
-- hears of it (LISTEN amaro_feed_graph) and drops what it cached, whoever changed the rows.
CREATE FUNCTION feed_graph_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'follows' THEN
        PERFORM pg_notify('amaro_feed_graph', 'follow:' || r.follower_id || ':' || r.followee_id);
    ELSE
        PERFORM pg_notify('amaro_feed_graph', 'block:' || r.blocker_id || ':' || r.blocked_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER follows_changed AFTER INSERT OR DELETE ON follows FOR EACH ROW EXECUTE FUNCTION feed_graph_changed();
CREATE TRIGGER blocks_changed AFTER INSERT OR DELETE ON blocks FOR EACH ROW EXECUTE FUNCTION feed_graph_changed();
