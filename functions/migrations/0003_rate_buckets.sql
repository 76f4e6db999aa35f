-- edgeshell control plane, schema version 3: token buckets for rate limits.
--
-- One row per key: a client address before authentication (`addr:<ip>`, IPv6 by /64), and later a user
-- and a route. `edgeshell_core::ratelimit::TokenBucket` decides; a component reads and writes a row
-- under an advisory lock on its key. Tokens are stored in thousandths, the time in Unix milliseconds.
--
-- UNLOGGED: after a crash every bucket is full again, which only forgives a minute of counting.

CREATE UNLOGGED TABLE rate_buckets (
    key           text    PRIMARY KEY,
    milli_tokens  bigint  NOT NULL CHECK (milli_tokens >= 0),
    at_ms         bigint  NOT NULL
);
CREATE INDEX rate_buckets_at ON rate_buckets (at_ms);
