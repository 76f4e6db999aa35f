-- edgeshell control plane, schema version 8: an artifact may be replaced by a newer upload at its path.
--
-- The runner uploads a file of the session's outbox again whenever it changes, and `edgeshell-files put
-- --replace` replaces on purpose. A path holds at most one stored and at most one pending row: the
-- pending one becomes the stored one when it completes, and the version it replaces is deleted in the
-- same transaction (its object by the edge, or else by the bucket's lifecycle rule). A failed
-- replacement leaves the stored version as it was.

ALTER TABLE artifacts DROP CONSTRAINT artifacts_pkey;
ALTER TABLE artifacts ADD COLUMN id bigserial PRIMARY KEY;
CREATE UNIQUE INDEX artifacts_stored_path ON artifacts (session_id, path) WHERE state = 'stored';
CREATE UNIQUE INDEX artifacts_pending_path ON artifacts (session_id, path) WHERE state = 'pending';
