-- Session templates: each agent reports the public part of the templates its catalogue offers in its
-- region (docs/templates.md) with every heartbeat. Like the rest of an agent's row, it is replaced by
-- the next heartbeat, so nothing here needs to survive a crash beyond what the next report restores.
ALTER TABLE pool_agents ADD COLUMN templates jsonb NOT NULL DEFAULT '[]';

-- The template each session runs, for its owner's list (sessions from before templates ran `default`).
ALTER TABLE sessions ADD COLUMN template text NOT NULL DEFAULT 'default';
