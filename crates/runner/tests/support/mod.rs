//! What the runner's session tests share: one signing key per test binary, tokens as the control plane
//! mints them, and a room host that trusts the key.

#![allow(dead_code, unreachable_pub)]

pub mod bundles;

use edgeshell_core::ids::{Kid, RegionId, SessionId, Subject};
use edgeshell_core::issue::{session_id, Issuer};
use edgeshell_core::jwks::KeySet;
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

pub fn join_token(sid: &SessionId) -> String {
    sign(&Issuer::new(ISSUER).join(sid, &region(), rand::random(), now()), signer()).unwrap()
}

pub fn attach_token(sid: &SessionId) -> String {
    let user = Subject::new("dev:alice").unwrap();
    sign(&Issuer::new(ISSUER).attach(&user, sid, &region(), rand::random(), now()), signer()).unwrap()
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
        idle_timeout: Duration::from_secs(600),
        max_offline: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        status_file: None,
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
