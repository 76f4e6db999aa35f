//! Resume tickets: opaque secrets the room hands to a connected peer so it can come back after a network
//! drop without a token and without the control plane. The room stores only a SHA-256 of the secret,
//! compares in constant time, and replaces the ticket on every use, so a ticket works once.

use crate::base64url;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Which peer a ticket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// The browser seat with this id.
    Seat(u32),
    /// The runner.
    Runner,
}

/// The stored half of a ticket.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TicketHash([u8; 32]);

impl core::fmt::Debug for TicketHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TicketHash(..)")
    }
}

impl TicketHash {
    pub(crate) fn matches(&self, secret: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(secret).into();
        bool::from(self.0.ct_eq(&digest))
    }
}

/// Makes a ticket for `holder` from fresh random bytes; returns the text to give out and the hash to keep.
pub(crate) fn issue(holder: Holder, entropy: &[u8; 32]) -> (String, TicketHash) {
    let prefix = match holder {
        Holder::Seat(id) => id.to_string(),
        Holder::Runner => "r".to_owned(),
    };
    (format!("{prefix}.{}", base64url::encode(entropy)), TicketHash(Sha256::digest(entropy).into()))
}

/// Splits ticket text into its holder and secret.
pub(crate) fn parse(text: &str) -> Option<(Holder, Vec<u8>)> {
    let (prefix, secret) = text.split_once('.')?;
    let holder = if prefix == "r" { Holder::Runner } else { Holder::Seat(prefix.parse().ok()?) };
    let secret = base64url::decode(secret).ok().filter(|s| s.len() == 32)?;
    Some((holder, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_parse_match() {
        let (text, hash) = issue(Holder::Seat(7), &[9; 32]);
        let (holder, secret) = parse(&text).unwrap();
        assert_eq!(holder, Holder::Seat(7));
        assert!(hash.matches(&secret));
        assert!(!hash.matches(&[8; 32]));
        let (text, _) = issue(Holder::Runner, &[1; 32]);
        assert_eq!(parse(&text).unwrap().0, Holder::Runner);
        for bad in ["", "7", "x.AAAA", "7.AAAA", "-1.AAAA"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
