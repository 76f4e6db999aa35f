-- edgeshell control plane, schema version 9: artifacts' content sealed under a data key per session.
--
-- The edge seals an artifact as it streams it into R2 (crates/core/src/sealed_stream.rs) with its
-- session's data key, stored here only wrapped by the key-encryption key named in kek_id, like users'
-- keys (0007): a leaked bucket holds ciphertext, a leaked database wrapped keys. Artifacts stored
-- before this version are not sealed (sealed = false) and are served as they are until they expire.
-- A session's key is deleted once the session's row and its last artifact are gone (cleanup): what
-- might be left in the bucket then opens with nothing.

CREATE TABLE session_keys (
    session_id    text        PRIMARY KEY,
    kek_id        text        NOT NULL,
    wrapped       bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rewrapped_at  timestamptz
);
CREATE INDEX session_keys_kek ON session_keys (kek_id);

ALTER TABLE artifacts ADD COLUMN sealed boolean NOT NULL DEFAULT false;
