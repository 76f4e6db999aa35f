//! The control plane as one piece: a migrated private Postgres, the dev OIDC issuer, optionally the
//! token signer, and the functions host configured for them.

use crate::functions_host::FunctionsHost;
use crate::postgres;
use edgeshell_core::grants::{SignerClient, SignerClients, FUNCTIONS_AUDIENCES, FUNCTIONS_SCOPES};
use edgeshell_core::secret::Secret;
use edgeshell_dev_oidc::{DevIssuer, IdTokenRequest};
use edgeshell_keys::KeyRing;
use edgeshell_signer::{Signer, SignerConfig};
use local_postgres::LocalPostgres;
use std::path::PathBuf;

/// How to configure the control plane.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    /// The signing key, a private JWK (JSON).
    pub signing_key: Secret,
    /// Sign with an `edgeshell-signer` (in this process) holding `signing_key`, instead of in the
    /// components, which then get no private key at all.
    pub signer: bool,
    /// `iss` of the tokens it mints.
    pub token_issuer: String,
    /// The edge's base URL (`ws://` or `wss://`), for the URLs in minted sessions.
    pub edge_url: String,
    /// The shared secret of internal routes.
    pub internal_key: Secret,
    /// The key-encryption key of users' secrets (`id:key`, [`new_secrets_kek`]).
    pub secrets_kek: Secret,
    /// The dev issuer's client id (the ID tokens' audience).
    pub client_id: String,
    /// More `SPIN_VARIABLE_*` lines, overriding the above.
    pub extra: String,
    /// Where compiled components are cached.
    pub cache_dir: PathBuf,
    /// Requests the host runs at once.
    pub max_instances: u32,
}

/// A running control plane; everything stops when dropped.
pub struct ControlPlane {
    /// The functions host.
    pub host: FunctionsHost,
    /// The dev OIDC issuer users sign in with.
    pub issuer: DevIssuer,
    /// The control database's URL.
    pub db_url: String,
    /// A client of it.
    pub db: tokio_postgres::Client,
    /// `host:port` of the database (the host's allowed outbound Postgres host).
    pub db_host: String,
    /// The token signer, when `signer` was asked for.
    pub signer: Option<Signer>,
    /// The private cluster, when the control plane started its own (dropped last).
    pub pg: Option<LocalPostgres>,
}

/// The bearer key the functions present to the stack's signer.
pub const SIGNER_API_KEY: &str = "edgeshell-stack-signer-key-0123456789";

impl ControlPlane {
    /// Starts a private Postgres, the issuer and the host.
    pub async fn start(settings: &ControlSettings) -> anyhow::Result<ControlPlane> {
        ControlPlane::start_with(settings, None).await
    }

    /// Starts the issuer and the host on `database_url` (migrated first), or on a private Postgres
    /// when it is `None`.
    pub async fn start_with(settings: &ControlSettings, database_url: Option<&str>) -> anyhow::Result<ControlPlane> {
        let (pg, db_url, db) = match database_url {
            None => {
                let (pg, url, db) = postgres::migrated().await?;
                (Some(pg), url, db)
            }
            Some(url) => (None, url.to_owned(), postgres::migrate_existing(url).await?),
        };
        let db_host = postgres::host_of(&db_url)?;
        let issuer = DevIssuer::start("127.0.0.1:0", &settings.client_id).await?;
        let signer = match settings.signer {
            true => Some(start_signer(settings).await?),
            false => None,
        };
        let env = host_env(settings, &db_url, &db_host, &issuer, signer.as_ref());
        let host = FunctionsHost::start(&env, &settings.cache_dir, settings.max_instances, None).await?;
        Ok(ControlPlane { host, issuer, db_url, db, db_host, signer, pg })
    }

    /// Restarts the functions host at the same address with new settings (a deploy: new keys, new
    /// variables), keeping the database, the issuer and the signer. Requests in flight are cut.
    pub async fn redeploy(&mut self, settings: &ControlSettings) -> anyhow::Result<()> {
        let env = host_env(settings, &self.db_url, &self.db_host, &self.issuer, self.signer.as_ref());
        let addr = self.host.addr;
        self.host.stop().await;
        self.host = FunctionsHost::start(&env, &settings.cache_dir, settings.max_instances, Some(addr)).await?;
        Ok(())
    }

    /// The functions' base URL.
    pub fn url(&self) -> &str {
        &self.host.url
    }

    /// Where the control plane publishes its keys.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.host.url)
    }

    /// An ID token of the dev issuer for `user`.
    pub fn id_token(&self, user: &str) -> anyhow::Result<String> {
        self.issuer.id_token(&IdTokenRequest { user: user.into(), ..Default::default() })
    }

    /// A new pool API key for `region` (what `edgeshell-db pool-key add` prints).
    pub async fn add_pool_key(&self, region: &str) -> anyhow::Result<String> {
        Ok(edgeshell_control_db::pool_keys::add(&self.db, region).await?.1)
    }
}

/// A fresh key-encryption key for users' secrets, named `id`.
pub fn new_secrets_kek(id: &str) -> Secret {
    edgeshell_core::vault::Kek::generate_text(id, rand::random()).into()
}

/// A signer on a loopback port holding `settings.signing_key` and a fresh ES256 key, as production's
/// signer does (join and pool-command tokens ES256, attach tokens RS256).
async fn start_signer(settings: &ControlSettings) -> anyhow::Result<Signer> {
    let (_, es256) = edgeshell_keys::Es256Signer::generate()?;
    // The functions' client, with the functions' grant, as terraform configures it.
    let functions = SignerClient::new("functions", SIGNER_API_KEY, &FUNCTIONS_SCOPES, &FUNCTIONS_AUDIENCES);
    let config = SignerConfig {
        listen: "127.0.0.1:0".parse()?,
        issuer: settings.token_issuer.clone(),
        clients: SignerClients::from_clients(vec![functions]),
        keys: KeyRing::from_secrets(settings.signing_key.expose(), "", "")?.with_es256(&es256, "", "")?,
    };
    Signer::start(config).await
}

/// The host's variables for `settings` on this database and issuer, signing at `signer` if given.
fn host_env(
    settings: &ControlSettings,
    db_url: &str,
    db_host: &str,
    issuer: &DevIssuer,
    signer: Option<&Signer>,
) -> String {
    let signing = match signer {
        None => format!("SPIN_VARIABLE_SIGNING_KEY='{}'", settings.signing_key.expose()),
        Some(signer) => format!(
            "SPIN_VARIABLE_SIGNER_URL=http://{addr}
SPIN_VARIABLE_SIGNER_ORIGIN=http://{addr}
SPIN_VARIABLE_SIGNER_API_KEY={SIGNER_API_KEY}",
            addr = signer.addr()
        ),
    };
    format!(
        "{signing}
SPIN_VARIABLE_DATABASE_URL={db_url}
SPIN_VARIABLE_DATABASE_HOST={db_host}
SPIN_VARIABLE_INTERNAL_API_KEY={internal}
SPIN_VARIABLE_SECRETS_KEK={kek}
SPIN_VARIABLE_TOKEN_ISSUER={token_issuer}
SPIN_VARIABLE_EDGE_URL={edge}
SPIN_VARIABLE_EDGE_ORIGIN={edge_origin}
SPIN_VARIABLE_OIDC_ISSUER={iss}
SPIN_VARIABLE_OIDC_AUDIENCE={client}
SPIN_VARIABLE_OIDC_JWKS_URL={jwks}
SPIN_VARIABLE_OIDC_JWKS_ORIGIN=http://127.0.0.1:{issuer_port}
# Every caller of a local stack is 127.0.0.1 (tests, the dev page, the pool agents): one address's
# bucket would hold them all. Tests of the limit set their own.
SPIN_VARIABLE_PREAUTH_BURST=100000
SPIN_VARIABLE_PREAUTH_PER_MINUTE=100000
{extra}",
        internal = settings.internal_key.expose(),
        kek = settings.secrets_kek.expose(),
        token_issuer = settings.token_issuer,
        edge = settings.edge_url,
        edge_origin = settings.edge_url.replacen("wss://", "https://", 1).replacen("ws://", "http://", 1),
        iss = issuer.issuer(),
        client = settings.client_id,
        jwks = issuer.jwks_url(),
        issuer_port = issuer.addr().port(),
        extra = settings.extra,
    )
}
