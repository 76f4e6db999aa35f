//! The session's terms in the room: adopted from the first verified token (every attach and join token
//! carries them, [`crate::lifetime`]), moved later by an extension (the control plane's
//! [`super::Event::Extend`], or a newer token signed after one), and told to the runner and every
//! browser as a [`Frame::Deadline`] so the page can count down and the runner can keep its backstop.

use super::{ConnId, Effect, Phase, Room};
use crate::protocol::Frame;
use crate::tokens::Verified;

impl Room {
    /// Takes the terms a verified token carries: the first token's whole terms, and from any later one
    /// a deadline that lies further (a token signed after an extension that this room missed).
    pub(super) fn adopt_terms(&mut self, token: &Verified, fx: &mut Vec<Effect>) {
        let Some(terms) = token.claims().ses else { return };
        match self.terms {
            None => self.terms = Some(terms),
            Some(_) => self.extend_to(terms.ends, fx),
        }
    }

    /// Moves the deadline to `ends` if that is later, and tells every peer. A deadline never moves
    /// earlier: an extension is the only way it changes, and ending early is [`super::Event::End`].
    pub(super) fn extend_to(&mut self, ends: u64, fx: &mut Vec<Effect>) {
        if matches!(self.phase, Phase::Ended(_)) {
            return;
        }
        let Some(terms) = self.terms.as_mut().filter(|t| ends > t.ends) else { return };
        terms.ends = ends;
        let frame = Frame::Deadline { ends_at: ends };
        self.broadcast(&frame, fx);
        if let Some(runner) = self.runner.conn {
            Self::send(fx, runner, &frame);
        }
    }

    /// Tells a newly admitted peer the deadline.
    pub(super) fn send_deadline(&self, conn: ConnId, fx: &mut Vec<Effect>) {
        if let Some(terms) = self.terms {
            Self::send(fx, conn, &Frame::Deadline { ends_at: terms.ends });
        }
    }

    /// The deadline, once the room knows its terms.
    pub fn deadline(&self) -> Option<u64> {
        self.terms.map(|t| t.ends)
    }
}
