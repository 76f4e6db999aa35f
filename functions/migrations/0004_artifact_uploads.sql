-- edgeshell control plane, schema version 4: uploads in two steps, and ownership kept with the artifact.
--
-- An upload registers as 'pending' (its declared size reserved against the owner's quota), then
-- becomes 'stored' with the size and SHA-256 the edge counted while streaming it into storage. A failed
-- upload's row is deleted, releasing its path and quota; one left pending by a lost edge is deleted by
-- cleanup after an hour. Only stored artifacts are listed or linked.
--
-- The session's region is kept with the artifact, so its owner gets links for the whole retention
-- period, after the session's own row (UNLOGGED, deleted a day after the session ends) is gone.

ALTER TABLE artifacts ADD COLUMN state text NOT NULL DEFAULT 'stored' CHECK (state IN ('pending', 'stored'));
ALTER TABLE artifacts ADD COLUMN region text;
UPDATE artifacts a SET region = s.region FROM sessions s WHERE s.id = a.session_id;
ALTER TABLE artifacts ALTER COLUMN state SET DEFAULT 'pending';
CREATE INDEX artifacts_pending ON artifacts (created_at) WHERE state = 'pending';
