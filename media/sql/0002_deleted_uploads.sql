-- An upload whose post was deleted: its bytes no longer count against the user's quota, and its
-- objects are removed.
ALTER TABLE media_uploads DROP CONSTRAINT media_uploads_state_check;
ALTER TABLE media_uploads ADD CONSTRAINT media_uploads_state_check
    CHECK (state IN ('uploading', 'complete', 'enqueued', 'terminated', 'expired', 'rejected', 'deleted'));
