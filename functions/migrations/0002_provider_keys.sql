-- edgeshell control plane, schema version 2: the identity provider's signing keys, cached.
--
-- Each mint verifies a user's OIDC ID token against the provider's JWKS. Components are instantiated per
-- request and keep nothing in memory, so the last good JWKS is cached here and fetched again only as the
-- core's JWKS cache policy says (refresh after 5 minutes, one refetch per 30 s on an unknown kid, stale
-- keys served up to a day while the provider is down).
--
-- UNLOGGED: a cache; after a crash the next mint fetches the keys again.

CREATE UNLOGGED TABLE provider_keys (
    jwks_url          text        PRIMARY KEY,
    jwks              text        NOT NULL,
    fetched_at        timestamptz NOT NULL,
    last_unknown_kid  timestamptz,
    last_failure      timestamptz
);
