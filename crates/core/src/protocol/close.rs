//! The one table of how sessions end: WebSocket close codes, the HTTP status used when the same condition
//! is refused before the upgrade, and what a client should do next. docs/wire-protocol.md reproduces it.

use crate::api_error::ErrorCode;
use crate::tokens::TokenError;
use serde::{Deserialize, Serialize};

/// What a client should do after a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Reconnect with the resume ticket (with backoff).
    Resume,
    /// Get a new attach token from the control plane, then attach.
    NewToken,
    /// The session is over or unusable; offer a new session.
    NewSession,
    /// Try again later (with backoff).
    Later,
    /// Nothing will help; show the reason.
    GiveUp,
}

/// Why a session connection is closed. Codes 4000-4999 are the application range of RFC 6455.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u16)]
pub enum CloseCode {
    /// Normal closure.
    Normal = 1000,
    /// The peer broke the protocol: undecodable frame, unsupported version, frame not allowed for its
    /// role, output beyond its credit.
    ProtocolError = 4000,
    /// No token, a malformed or forged one, an unknown kid, or a bad resume ticket.
    Unauthorized = 4001,
    /// The token (or the session's authorization) expired and no refresh arrived in time.
    TokenExpired = 4002,
    /// A valid token that does not grant this: another session, another scope.
    Forbidden = 4003,
    /// No such session.
    SessionNotFound = 4004,
    /// The token's one-time id was already used.
    Replayed = 4009,
    /// The session ended (program exited, deleted, idle, deadline).
    SessionEnded = 4010,
    /// The runner disconnected and did not come back within the grace period.
    RunnerLost = 4011,
    /// A newer connection of the same seat (or runner) took over.
    Superseded = 4012,
    /// Too many connections or the room is busy; retry later.
    Overloaded = 4013,
    /// No message or heartbeat within the heartbeat timeout.
    HeartbeatTimeout = 4014,
    /// The resume point is no longer held (or lies beyond the stream): attach afresh.
    ResumeFailed = 4015,
    /// Input arrived faster than the program reads it, beyond what the room holds for it: the excess
    /// was not delivered. The connection may resume.
    InputOverflow = 4016,
    /// A bug or platform failure on our side.
    InternalError = 1011,
}

/// Every close code, for tables and exhaustive tests.
pub const ALL_CLOSE_CODES: [CloseCode; 15] = [
    CloseCode::Normal,
    CloseCode::ProtocolError,
    CloseCode::Unauthorized,
    CloseCode::TokenExpired,
    CloseCode::Forbidden,
    CloseCode::SessionNotFound,
    CloseCode::Replayed,
    CloseCode::SessionEnded,
    CloseCode::RunnerLost,
    CloseCode::Superseded,
    CloseCode::Overloaded,
    CloseCode::HeartbeatTimeout,
    CloseCode::ResumeFailed,
    CloseCode::InputOverflow,
    CloseCode::InternalError,
];

impl CloseCode {
    /// The numeric WebSocket close code.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code for a number, if it is one of ours.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        ALL_CLOSE_CODES.into_iter().find(|c| c.code() == code)
    }

    /// The HTTP error for refusing the same condition before a WebSocket upgrade (the native room host
    /// does; the edge always upgrades and closes): a row of the one error table. `None` for a normal
    /// closure, which is no error.
    pub fn error_code(self) -> Option<ErrorCode> {
        Some(match self {
            CloseCode::Normal => return None,
            CloseCode::ProtocolError => ErrorCode::ProtocolError,
            CloseCode::Unauthorized => ErrorCode::Unauthorized,
            CloseCode::TokenExpired => ErrorCode::TokenExpired,
            CloseCode::Forbidden => ErrorCode::Forbidden,
            CloseCode::SessionNotFound => ErrorCode::SessionNotFound,
            CloseCode::Replayed => ErrorCode::ReplayedToken,
            CloseCode::SessionEnded => ErrorCode::SessionEnded,
            CloseCode::RunnerLost => ErrorCode::RunnerLost,
            CloseCode::Superseded => ErrorCode::Superseded,
            CloseCode::Overloaded => ErrorCode::Overloaded,
            CloseCode::HeartbeatTimeout => ErrorCode::HeartbeatTimeout,
            CloseCode::ResumeFailed => ErrorCode::ResumeFailed,
            CloseCode::InputOverflow => ErrorCode::InputOverflow,
            CloseCode::InternalError => ErrorCode::InternalError,
        })
    }

    /// The HTTP status of [`CloseCode::error_code`] (200 for a normal closure).
    pub fn http_status(self) -> u16 {
        self.error_code().map_or(200, ErrorCode::status)
    }

    /// A stable machine-readable name, used in logs; the same as its error code's name.
    pub fn name(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::ProtocolError => "protocol_error",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::TokenExpired => "token_expired",
            CloseCode::Forbidden => "forbidden",
            CloseCode::SessionNotFound => "session_not_found",
            CloseCode::Replayed => "replayed_token",
            CloseCode::SessionEnded => "session_ended",
            CloseCode::RunnerLost => "runner_lost",
            CloseCode::Superseded => "superseded",
            CloseCode::Overloaded => "overloaded",
            CloseCode::HeartbeatTimeout => "heartbeat_timeout",
            CloseCode::ResumeFailed => "resume_failed",
            CloseCode::InputOverflow => "input_overflow",
            CloseCode::InternalError => "internal_error",
        }
    }

    /// What the client should do next.
    pub fn next_step(self) -> NextStep {
        match self {
            CloseCode::Normal | CloseCode::HeartbeatTimeout | CloseCode::InputOverflow | CloseCode::InternalError => {
                NextStep::Resume
            }
            CloseCode::TokenExpired | CloseCode::ResumeFailed => NextStep::NewToken,
            CloseCode::SessionEnded | CloseCode::RunnerLost | CloseCode::SessionNotFound => NextStep::NewSession,
            CloseCode::Overloaded => NextStep::Later,
            CloseCode::ProtocolError
            | CloseCode::Unauthorized
            | CloseCode::Forbidden
            | CloseCode::Replayed
            | CloseCode::Superseded => NextStep::GiveUp,
        }
    }

    /// What a close means, for a person (the page shows it), with the close's own reason after it.
    pub fn explain(self, reason: &str) -> String {
        let text = match self {
            CloseCode::Normal => "The connection was closed.",
            CloseCode::ProtocolError => "The terminal and the server disagreed about the protocol; reload the page.",
            CloseCode::Unauthorized => "This session link is not valid; sign in again.",
            CloseCode::TokenExpired => "Your access to this session expired.",
            CloseCode::Forbidden => "You do not have access to this session.",
            CloseCode::SessionNotFound => "This session no longer exists.",
            CloseCode::Replayed => "This session link was already used; open the session from your list.",
            CloseCode::SessionEnded => "The session has ended.",
            CloseCode::RunnerLost => "The machine running this session stopped answering; the session is lost.",
            CloseCode::Superseded => "This session was opened in another tab or window.",
            CloseCode::Overloaded => "The service is busy; try again shortly.",
            CloseCode::HeartbeatTimeout => "The connection went quiet and was closed.",
            CloseCode::ResumeFailed => "The session could not continue where it left off.",
            CloseCode::InputOverflow => {
                "The program is not reading its input: what was typed or pasted beyond the limit was not delivered."
            }
            CloseCode::InternalError => "Something went wrong on our side.",
        };
        if reason.is_empty() {
            text.to_owned()
        } else {
            format!("{text} ({reason})")
        }
    }
}

/// A close reason as a WebSocket close frame can carry it: at most 123 bytes of UTF-8, cut at a
/// character boundary. (The full text travels in the `Closing` frame before the close.)
pub fn close_reason(reason: &str) -> String {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason[..cut].to_owned()
}

impl From<&TokenError> for CloseCode {
    fn from(e: &TokenError) -> CloseCode {
        if e.is_expiry() {
            CloseCode::TokenExpired
        } else if e.is_forbidden() {
            CloseCode::Forbidden
        } else {
            CloseCode::Unauthorized
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(&cut) && cut.len() == 122);
    }

    #[test]
    fn codes_are_unique_and_round_trip() {
        for (i, c) in ALL_CLOSE_CODES.iter().enumerate() {
            assert_eq!(CloseCode::from_code(c.code()), Some(*c));
            for other in &ALL_CLOSE_CODES[i + 1..] {
                assert_ne!(c.code(), other.code());
                assert_ne!(c.name(), other.name());
            }
            assert!(c.code() == 1000 || c.code() == 1011 || (4000..5000).contains(&c.code()));
            if let Some(error) = c.error_code() {
                assert_eq!(error.name(), c.name(), "a close code and its HTTP error share a name");
            }
        }
        assert_eq!(CloseCode::from_code(4999), None);
    }

    #[test]
    fn every_close_code_has_a_message() {
        for code in ALL_CLOSE_CODES {
            let text = code.explain("");
            assert!(text.ends_with('.') && text.len() > 10, "{code:?}: {text}");
        }
        assert_eq!(CloseCode::RunnerLost.explain("grace over").matches("(grace over)").count(), 1);
    }

    #[test]
    fn token_errors_map() {
        assert_eq!(CloseCode::from(&TokenError::Expired { exp: 1, now: 2 }), CloseCode::TokenExpired);
        assert_eq!(CloseCode::from(&TokenError::WrongSession), CloseCode::Forbidden);
        assert_eq!(CloseCode::from(&TokenError::BadSignature), CloseCode::Unauthorized);
    }
}
