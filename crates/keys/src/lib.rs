//! Signature backends for the core's signature port (RS256 and ES256), and loading of signing keys.
//!
//! - [`MontgomeryRs256`]: verify with `crypto-bigint` (pure Rust; every target, and fast in wasm, where
//!   the components use it).
//! - [`JwtCompactRs256`] (feature `reference`): verify with `jwt-compact` + `rsa` (pure Rust), the
//!   independent reference the tests hold the others to.
//! - [`RingVerifier`]: verify RS256 and ES256 with `ring`, the fast native path.
//! - [`Es256Signer`]: sign ES256, for the tokens only our own services verify.
//! - [`RsaSigner`]: sign RS256 with `ring`, on every target. Signing uses the operating system's
//!   randomness, which is why it lives here and not in the I/O-free core. `rsa`, whose private-key
//!   arithmetic is not constant-time (RUSTSEC-2023-0071), signs nothing: it only finds the primes of a
//!   generated key (feature `generate`) and backs the reference verifier.
//! - [`KeyRing`]: the current, next and previous keys of a rotation, and the JWKS they publish.
//!
//! WebCrypto, the Worker's backend, lives in the edge gateway.

mod es256;
mod keyring;
mod montgomery;
mod private_jwk;
mod signer;
mod verifiers;

pub use es256::Es256Signer;
pub use keyring::{KeyRing, KeyRingError};
pub use montgomery::MontgomeryRs256;
pub use private_jwk::PrivateJwk;
pub use signer::{KeyError, RsaSigner};
#[cfg(feature = "reference")]
pub use verifiers::JwtCompactRs256;
pub use verifiers::RingVerifier;

/// Resolves a future that is ready at once (the native verifiers never wait). Panics if it is not: that
/// would be a misuse with an asynchronous backend.
pub fn now_or_never<F: core::future::Future>(future: F) -> F::Output {
    let mut future = core::pin::pin!(future);
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        core::task::Poll::Ready(output) => output,
        core::task::Poll::Pending => panic!("now_or_never used with a future that waits"),
    }
}
