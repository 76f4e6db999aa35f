//! The handoff of an upgrade from the Worker to the session's `SessionRoom`: the Worker writes what it
//! verified into internal headers of a request only it can send (a Durable Object is reachable only
//! through its namespace binding, never from the internet), and the room reads them back. The room
//! still re-checks scope and session and owns replay; it never sees the raw token.

use edgeshell_core::dangerous::assume_verified;
use edgeshell_core::ids::{Kid, SessionId};
use edgeshell_core::protocol::{CloseCode, Role, UpgradeRefused};
use edgeshell_core::secret::Secret;
use edgeshell_core::tokens::{Claims, Verified};
use worker::{Env, Headers, Method, Request, RequestInit, Response};

/// The Durable Object namespace binding of the rooms (`wrangler.toml`).
pub const ROOMS_BINDING: &str = "SESSION_ROOMS";
/// The room's route for the control plane's orders (the Worker's `/internal/sessions/{id}/end` and
/// `/extend` lead here); the order is in [`ORDER`].
pub const ORDER_PATH: &str = "/order";
const ORDER: &str = "x-edgeshell-order";

/// What the control plane tells a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomOrder {
    /// End the session now.
    End,
    /// The session's new deadline, seconds since the epoch.
    Extend(u64),
}

impl RoomOrder {
    /// Reads the order of a request to [`ORDER_PATH`].
    pub fn read(req: &Request) -> Option<RoomOrder> {
        let text = req.headers().get(ORDER).ok()??;
        match text.split_once(' ') {
            Some(("extend", ends)) => ends.parse().ok().map(RoomOrder::Extend),
            None if text == "end" => Some(RoomOrder::End),
            _ => None,
        }
    }
}

const SESSION: &str = "x-edgeshell-session";
const ROLE: &str = "x-edgeshell-role";
const CLAIMS: &str = "x-edgeshell-claims";
const KID: &str = "x-edgeshell-kid";
const TICKET: &str = "x-edgeshell-ticket";
const OFFSET: &str = "x-edgeshell-offset";

/// What the Worker passes to the room.
pub struct Handoff {
    headers: Headers,
    failed: Option<String>,
}

impl Handoff {
    /// A handoff for `session`'s room from a peer in `role`.
    pub fn new(session: &SessionId, role: Role) -> Handoff {
        let mut handoff = Handoff { headers: Headers::new(), failed: None };
        handoff.set("upgrade", "websocket");
        handoff.set(SESSION, session.as_str());
        handoff.set(
            ROLE,
            match role {
                Role::Browser => "browser",
                Role::Runner => "runner",
            },
        );
        handoff
    }

    fn set(&mut self, name: &str, value: &str) {
        if let Err(e) = self.headers.set(name, value) {
            self.failed.get_or_insert_with(|| format!("{name}: {e}"));
        }
    }

    /// The peer presented this verified token.
    pub fn verified(&mut self, token: &Verified) {
        match serde_json::to_string(token.claims()) {
            Ok(json) => self.set(CLAIMS, &json),
            Err(e) => self.failed = Some(e.to_string()),
        }
        self.set(KID, token.kid().as_str());
    }

    /// The peer presented a resume ticket (and, a browser, the offset it has).
    pub fn resume(&mut self, ticket: &str, offset: Option<u64>) {
        self.set(TICKET, ticket);
        if let Some(offset) = offset {
            self.set(OFFSET, &offset.to_string());
        }
    }
}

/// Opens the connection in `session`'s room, created near `hint` if it does not exist yet.
pub async fn open(
    env: &Env,
    session: &SessionId,
    hint: Option<&str>,
    handoff: Handoff,
) -> Result<Response, UpgradeRefused> {
    let internal = |e: worker::Error| UpgradeRefused::new(CloseCode::InternalError, format!("the session room: {e}"));
    if let Some(e) = handoff.failed {
        return Err(UpgradeRefused::new(CloseCode::InternalError, e));
    }
    let rooms = env.durable_object(ROOMS_BINDING).map_err(internal)?;
    let object = match hint {
        Some(hint) => rooms.get_by_name_with_location_hint(session.as_str(), hint),
        None => rooms.get_by_name(session.as_str()),
    }
    .map_err(internal)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(handoff.headers);
    let request = Request::new_with_init("https://room.internal/connect", &init).map_err(internal)?;
    object.fetch_with_request(request).await.map_err(internal)
}

/// Ends `session`'s room at once, if it exists: the room's answer (200, or 404 when there is none;
/// nothing is created for a session that has no room).
pub async fn order(env: &Env, session: &SessionId, order: RoomOrder) -> worker::Result<Response> {
    let object = env.durable_object(ROOMS_BINDING)?.get_by_name(session.as_str())?;
    let headers = Headers::new();
    headers.set(
        ORDER,
        &match order {
            RoomOrder::End => "end".to_owned(),
            RoomOrder::Extend(ends) => format!("extend {ends}"),
        },
    )?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers);
    let request = Request::new_with_init(&format!("https://room.internal{ORDER_PATH}"), &init)?;
    object.fetch_with_request(request).await
}

/// What the room was handed.
#[derive(Debug)]
pub enum Admission {
    /// A browser with a verified attach token.
    Attach(Verified),
    /// A runner with a verified join token.
    Join(Verified),
    /// A browser resuming at `offset`.
    BrowserResume {
        /// The ticket.
        ticket: Secret,
        /// Output bytes it has.
        offset: u64,
    },
    /// The runner resuming.
    RunnerResume {
        /// The ticket.
        ticket: Secret,
    },
}

/// Reads a handoff in the room.
pub fn read(req: &Request) -> Result<(SessionId, Admission), UpgradeRefused> {
    let bad = |what: &str| UpgradeRefused::new(CloseCode::InternalError, format!("bad handoff: {what}"));
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let session = SessionId::new(header(SESSION).ok_or_else(|| bad("no session"))?).map_err(|_| bad("session"))?;
    let role = header(ROLE).ok_or_else(|| bad("no role"))?;
    let verified = || -> Result<Verified, UpgradeRefused> {
        let claims: Claims =
            serde_json::from_str(&header(CLAIMS).ok_or_else(|| bad("no claims"))?).map_err(|_| bad("claims"))?;
        let kid = Kid::new(header(KID).ok_or_else(|| bad("no kid"))?).map_err(|_| bad("kid"))?;
        // Verified by the Worker (signature and every claim) just before the handoff; the object is
        // reachable only through the Worker's namespace binding.
        Ok(assume_verified(claims, kid))
    };
    let admission = match (role.as_str(), header(TICKET)) {
        ("browser", None) => Admission::Attach(verified()?),
        ("runner", None) => Admission::Join(verified()?),
        ("browser", Some(ticket)) => {
            let offset = header(OFFSET).and_then(|o| o.parse().ok()).ok_or_else(|| bad("offset"))?;
            Admission::BrowserResume { ticket: ticket.into(), offset }
        }
        ("runner", Some(ticket)) => Admission::RunnerResume { ticket: ticket.into() },
        _ => return Err(bad("role")),
    };
    Ok((session, admission))
}
