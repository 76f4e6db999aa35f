-- Pools dial out: a region is served by one or more agents, each connected to the edge's pool room and
-- reporting here under its own name. Nothing calls an agent, so no endpoint is kept.
DROP TABLE pools;

CREATE TABLE pool_agents (
    region          text        NOT NULL,
    agent           text        NOT NULL,
    capacity        integer     NOT NULL CHECK (capacity >= 0),
    load            integer     NOT NULL CHECK (load >= 0),
    draining        boolean     NOT NULL DEFAULT false,
    last_heartbeat  timestamptz NOT NULL DEFAULT now(),
    registered_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, agent)
);

-- A rotated key stays valid until its revoked_at (a grace for the new one's rollout).
DROP INDEX pool_api_keys_region;
CREATE INDEX pool_api_keys_region ON pool_api_keys (region);
