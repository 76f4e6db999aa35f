//! Signing our tokens with the current key (`signing_key`, a secret variable) under our issuer name
//! (`token_issuer`). The next key is only published (by the jwks component) until it is promoted.

use crate::platform::Spent;
use crate::reply::Failure;
use crate::request::variable;
use edgeshell_core::issue::Issuer;
use edgeshell_core::tokens::{sign, Claims};
use edgeshell_keys::RsaSigner;

/// The current signer and issuer.
pub struct Signing {
    signer: RsaSigner,
    /// Builds the claims of each token kind.
    pub issuer: Issuer,
    /// Time spent signing, for `Server-Timing`.
    pub spent: Spent,
}

impl Signing {
    /// Loads the key and the issuer name from variables.
    pub fn load() -> Result<Signing, Failure> {
        let signer = RsaSigner::from_secret(&variable("signing_key")?)
            .map_err(|e| Failure::internal(format!("signing_key: {e}")))?;
        Ok(Signing { signer, issuer: Issuer::new(variable("token_issuer")?), spent: Spent::default() })
    }

    /// A compact JWS of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, Failure> {
        self.spent.time(|| sign(claims, &self.signer)).map_err(|e| Failure::internal(format!("signing: {e}")))
    }
}
