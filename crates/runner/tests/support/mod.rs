//! What the runner's session tests share: one signing key per test binary, tokens as the control plane
//! mints them, and a room host that trusts the key.

#![allow(dead_code, unreachable_pub)]

pub mod bundles;

use edgeshell_core::ids::{Kid, RegionId, SessionId, Subject};
use edgeshell_core::issue::{session_id, Issuer};
use edgeshell_core::jwks::KeySet;
pub use edgeshell_core::lifetime::{LifetimePolicy, Terms};
use edgeshell_core::room::RoomConfig;
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::sign;
use edgeshell_keys::RsaSigner;
use edgeshell_room_host::{Options, RoomHost};
use edgeshell_runner::pty::Program;
use edgeshell_runner::relay::Settings;
use std::sync::OnceLock;
use std::time::Duration;

pub const ISSUER: &str = "https://control.test";

pub fn signer() -> &'static RsaSigner {
    static SIGNER: OnceLock<RsaSigner> = OnceLock::new();
    SIGNER.get_or_init(|| RsaSigner::generate(Kid::new("test-key").unwrap(), 2048, &mut rand::thread_rng()).unwrap())
}

pub fn now() -> Timestamp {
    Timestamp::from_secs(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
}

pub fn region() -> RegionId {
    RegionId::new("local").unwrap()
}

pub fn new_session() -> SessionId {
    session_id(rand::random())
}

/// The terms of the tests' sessions: the default policy's, minted now.
pub fn terms() -> Terms {
    LifetimePolicy::DEFAULT.terms_at_mint(None, now()).unwrap()
}

pub fn join_token(sid: &SessionId) -> String {
    join_token_with(sid, terms())
}

pub fn join_token_with(sid: &SessionId, terms: Terms) -> String {
    sign(&Issuer::new(ISSUER).join((sid, &region()), terms, rand::random(), now()), signer()).unwrap()
}

pub fn attach_token(sid: &SessionId) -> String {
    let user = Subject::new("dev:alice").unwrap();
    sign(&Issuer::new(ISSUER).attach(&user, (sid, &region()), terms(), rand::random(), now()), signer()).unwrap()
}

pub async fn room_host(config: RoomConfig) -> RoomHost {
    let keys = KeySet::from_keys(vec![signer().verifying_key().clone()]).unwrap();
    RoomHost::start(Options { issuer: ISSUER.into(), keys, config }).await.unwrap()
}

pub fn settings(host: &RoomHost, sid: &SessionId) -> Settings {
    Settings {
        join_url: host.join_url(sid),
        join_token: join_token(sid).into(),
        deadline: None,
        max_offline: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        status_file: None,
        screen: true,
        workspace: None,
        files: None,
    }
}

pub fn shell(dir: &std::path::Path, args: &[&str]) -> Program {
    Program {
        command: "/bin/sh".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: dir.to_owned(),
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("PS1".into(), "$ ".into()),
            ("TERM".into(), "xterm".into()),
        ],
        size: (80, 24),
        memory_limit: None,
        process_limit: None,
        user: None,
    }
}
