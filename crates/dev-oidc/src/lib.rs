//! A local OpenID Connect issuer for the dev stack and tests. It is a real issuer (RS256 ID tokens,
//! discovery, JWKS, the authorization-code flow with PKCE, rotating refresh tokens with reuse
//! detection, revocation) with one shortcut: anyone may sign in as any named dev user. Never expose it
//! beyond loopback. ID tokens live an hour unless a test shortens them ([`DevIssuer::set_id_token_secs`],
//! `--id-token-secs`) to prove that renewal works.
//!
//! | route | what |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | discovery |
//! | `GET /jwks.json` | the public key |
//! | `GET /authorize` | the sign-in page (`response_type=code`, PKCE `S256`, loopback `redirect_uri` only) |
//! | `POST /authorize` | the page's form: redirects to `redirect_uri?code=...&state=...` |
//! | `POST /token` (form) | `grant_type=authorization_code` (with `code_verifier`) or `refresh_token` |
//! | `POST /token` (JSON) | `{"user": "alice"}` -> `{"id_token", "expires_in"}` (scripts and tests) |
//! | `POST /revoke` | revokes a refresh token's sign-in (RFC 7009) |

mod grants;
mod pages;
mod server;

pub use server::{DevIssuer, IdTokenRequest, ID_TOKEN_SECS};
