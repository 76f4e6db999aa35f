//! Things that skip a check. Every use outside tests needs a comment saying why the check is not needed.

use crate::ids::Kid;
use crate::tokens::{Claims, Verified};

/// Treats `claims` as verified without any signature or claim check. For tests of code that consumes
/// verified claims (the session room) and for tools that inspect tokens offline.
pub fn assume_verified(claims: Claims, kid: Kid) -> Verified {
    Verified::new_unchecked(claims, kid)
}
