//! A local OpenID Connect issuer for the dev stack and tests. It is a real issuer (RS256 ID tokens,
//! discovery, JWKS) with one shortcut: anyone may sign in as any named dev user. Never expose it beyond
//! loopback.
//!
//! | route | what |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | discovery |
//! | `GET /jwks.json` | the public key |
//! | `POST /token` | `{"user": "alice"}` -> `{"id_token", "expires_in"}` (scripts and tests) |
//! | `GET /authorize` | implicit-flow sign-in page (`response_type=id_token`, loopback `redirect_uri` only) |
//! | `POST /authorize` | the page's form: redirects to `redirect_uri#id_token=...&state=...` |

mod pages;
mod server;

pub use server::{DevIssuer, IdTokenRequest};
