-- edgeshell control plane, schema version 1.
--
-- UNLOGGED tables hold ephemeral, high-churn state: they skip the write-ahead log (several times faster
-- to write) and are emptied after a crash. That is acceptable only where losing every row is safe:
--   * sessions: live sessions survive anyway (the edge and runners do not read this table); after a crash
--     the pool agents reap runners whose session is unknown, and quotas restart from zero.
--   * token_jtis: every JTI here belongs to a token that expires within minutes; after a crash a replay
--     window opens only for tokens still alive, which is why one-time checks that matter most (attach,
--     join) live in the session's Durable Object instead.
--   * mint_windows: rate-limit counters; losing them resets a minute of counting.
-- Logged (durable) tables hold what must survive: pools and their API key hashes (operator-provisioned),
-- artifacts (objects stay in storage for the retention period and must be found to be deleted), and the
-- audit log.

CREATE UNLOGGED TABLE sessions (
    id          text        PRIMARY KEY,
    owner       text        NOT NULL,
    region      text,
    state       text        NOT NULL CHECK (state IN ('starting', 'running', 'ended')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    end_reason  text
);
CREATE INDEX sessions_owner_live ON sessions (owner) WHERE state <> 'ended';
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE UNLOGGED TABLE token_jtis (
    jti         text        PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX token_jtis_expires_at ON token_jtis (expires_at);

CREATE UNLOGGED TABLE mint_windows (
    owner        text        NOT NULL,
    window_start timestamptz NOT NULL,
    mints        integer     NOT NULL CHECK (mints >= 0),
    PRIMARY KEY (owner, window_start)
);
CREATE INDEX mint_windows_window_start ON mint_windows (window_start);

CREATE TABLE pools (
    region          text        PRIMARY KEY,
    endpoint        text        NOT NULL,
    capacity        integer     NOT NULL CHECK (capacity >= 0),
    load            integer     NOT NULL CHECK (load >= 0),
    draining        boolean     NOT NULL DEFAULT false,
    last_heartbeat  timestamptz,
    registered_at   timestamptz NOT NULL DEFAULT now()
);

-- API keys are shown once and stored only as SHA-256 hashes.
CREATE TABLE pool_api_keys (
    key_id      text        PRIMARY KEY,
    region      text        NOT NULL,
    key_sha256  bytea       NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX pool_api_keys_region ON pool_api_keys (region) WHERE revoked_at IS NULL;

CREATE TABLE artifacts (
    session_id  text        NOT NULL,
    path        text        NOT NULL,
    owner       text        NOT NULL,
    size_bytes  bigint      NOT NULL CHECK (size_bytes >= 0),
    sha256      bytea       CHECK (sha256 IS NULL OR length(sha256) = 32),
    object_key  text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (session_id, path)
);
CREATE INDEX artifacts_owner ON artifacts (owner);
CREATE INDEX artifacts_expires_at ON artifacts (expires_at);

CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    session_id  text,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_session ON audit_log (session_id, at);
CREATE INDEX audit_log_at ON audit_log (at);
