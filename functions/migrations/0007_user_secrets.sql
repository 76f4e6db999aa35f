-- Users' secrets, sealed (crates/core/src/vault.rs): each user's data key is stored only wrapped by the
-- key-encryption key named in kek_id (never stored here), and each secret only as AES-256-GCM
-- ciphertext under that data key, bound to its owner and name. Logged tables: a secret set is kept.
CREATE TABLE user_keys (
    owner         text        PRIMARY KEY,
    kek_id        text        NOT NULL,
    wrapped       bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rewrapped_at  timestamptz
);
-- The rewrap after a KEK rotation looks for keys on earlier KEKs.
CREATE INDEX user_keys_kek ON user_keys (kek_id);

CREATE TABLE user_secrets (
    owner   text        NOT NULL,
    name    text        NOT NULL,
    sealed  bytea       NOT NULL,
    set_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name)
);
