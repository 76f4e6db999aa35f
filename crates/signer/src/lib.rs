//! The control plane's token signer. The functions build each token's claims and ask this service to
//! sign them, so private keys never enter a component's memory and RS256 runs natively (`ring`, about
//! 1 ms) instead of in wasm (10-17 ms, three times per mint). With an ES256 key configured, join and
//! pool-command tokens are signed ES256 (about 0.03 ms), leaving one RSA signature per mint. In
//! production the same role can be played by a KMS; the contract is one HTTP call per token.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/sign` | `{"claims": {...}}` -> `{"token", "kid"}`; `Authorization: Bearer <api key>` |
//! | `GET /v1/jwks` | the current, next and previous public keys, RSA then EC (what `/.well-known/jwks.json` publishes) |
//! | `GET /healthz` | liveness and the current `kid` |
//!
//! The signer is not a blank signing oracle: it signs only claims of our own token kinds, under our
//! issuer, issued now, within each kind's maximum lifetime (the core's `Issuer::check_signable`, which
//! the in-component signer applies too). A stolen API key still cannot mint a long-lived or
//! back-dated token.

pub mod config;
pub mod server;

pub use config::SignerConfig;
pub use server::Signer;
