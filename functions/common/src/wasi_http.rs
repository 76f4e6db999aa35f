//! Requests and responses on `wasi:http` directly, for routes on the hot path (the one-time JTI check).
//! spin-sdk's `Request` first copies in every header, the method, scheme, authority and URI, and reads
//! the body through its async executor; a JTI check needs one header and a small body, and each of
//! those copies is a call into the host. Here a handler asks for only what it reads, and the answer is
//! written in one piece. The rules stay those of [`request`](crate::request) and [`reply`](crate::reply).

use crate::reply::{ApiError, ErrorCode, JSON_HEADERS};
use crate::request::too_large;
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::StreamError;

/// The most one write to an output stream may carry (`wasi:io/streams` guarantees 4096).
const WRITE_CHUNK: usize = 4096;

/// An incoming request, read as far as its handler needs.
pub struct Incoming {
    request: IncomingRequest,
}

impl Incoming {
    /// Wraps the request the handler was given.
    pub fn new(request: IncomingRequest) -> Incoming {
        Incoming { request }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.request.method()
    }

    /// The first value of header `name` (lower case), if it is there and is UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.request.headers().get(name);
        values.into_iter().next().and_then(|v| String::from_utf8(v).ok())
    }

    /// The whole body, at most `max` bytes (413 beyond).
    pub fn body(self, max: usize) -> Result<Vec<u8>, ApiError> {
        let unreadable = |what: &str| ApiError::new(ErrorCode::BadRequest, format!("the request body {what}"));
        let body = self.request.consume().map_err(|()| unreadable("was already read"))?;
        let mut out = Vec::new();
        {
            let stream = body.stream().map_err(|()| unreadable("was already read"))?;
            loop {
                // One byte past the limit is enough to tell a body that is too large.
                let room = (max + 1).saturating_sub(out.len()) as u64;
                match stream.blocking_read(room) {
                    Ok(chunk) => out.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(unreadable(&format!("could not be read: {}", e.to_debug_string())))
                    }
                }
                if out.len() > max {
                    return Err(too_large(max));
                }
            }
        }
        drop(spin_sdk::wit::wasi::http0_2_0::types::IncomingBody::finish(body));
        Ok(out)
    }
}

/// Answers with `status` and the JSON `body`, or with the failure's JSON error.
pub fn respond(out: ResponseOutparam, reply: Result<(u16, Vec<u8>), ApiError>) {
    let field = |(name, value): (&str, String)| (name.to_owned(), value.into_bytes());
    let (status, headers, body): (u16, Vec<_>, _) = match reply {
        Ok((status, body)) => {
            (status, JSON_HEADERS.map(|(name, value)| field((name, value.to_owned()))).to_vec(), body)
        }
        Err(failure) => (failure.status(), failure.headers().into_iter().map(field).collect(), failure.body()),
    };
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    // Our statuses are all valid; the guard keeps a bad one from going out as 200.
    if response.set_status_code(status).is_err() {
        let _ = response.set_status_code(500);
    }
    let Ok(outgoing) = response.body() else { return };
    out.set(response);
    if let Err(e) = write_all(&outgoing, &body) {
        eprintln!("could not write the response: {e:?}");
        return;
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

fn write_all(body: &OutgoingBody, bytes: &[u8]) -> Result<(), StreamError> {
    let stream = body.write().map_err(|()| StreamError::Closed)?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}
