//! The native platform under the I/O-free core, shared by every native edgeshell program (the token
//! signer, the dev issuer, the functions host, the pool agent, the runner, the room host): the wall
//! clock ([`clock`]), the core's settings read from the process environment ([`environment`]), and
//! HTTP/1.1 servers on hyper that answer in the core's JSON shapes ([`http`]). The Worker and the Spin
//! components have their own platform glue (`edge-gateway/src`, `functions/common`).

pub mod clock;
pub mod environment;
pub mod http;
