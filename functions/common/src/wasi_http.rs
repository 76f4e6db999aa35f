//! Requests and responses on `wasi:http` directly. spin-sdk's `Request` reads the whole body before
//! the handler runs, so a caller could make a component buffer any amount before it was authenticated;
//! here a handler reads headers first (authentication, `Content-Length`) and the body only when it asks,
//! up to its limit, refusing a declared size over the limit without reading a byte. Each header is asked
//! of the host when read, and the answer is written in one piece. The rules stay those of
//! [`request`](crate::request) and [`reply`](crate::reply).

use crate::reply::{ApiError, ErrorCode, JSON_HEADERS};
use crate::request::too_large;
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, Response, ResponseOutparam};
use wasi::io::streams::StreamError;

/// The most one write to an output stream may carry (`wasi:io/streams` guarantees 4096).
const WRITE_CHUNK: usize = 4096;

/// An incoming request, read as far as its handler needs.
pub struct Incoming {
    request: IncomingRequest,
    path_with_query: String,
}

impl Incoming {
    /// Wraps the request the handler was given.
    pub fn new(request: IncomingRequest) -> Incoming {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        Incoming { request, path_with_query }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.request.method()
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.path_with_query.split_once('?').map_or(self.path_with_query.as_str(), |(path, _)| path)
    }

    /// The query, without the `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.path_with_query.split_once('?').map_or("", |(_, query)| query)
    }

    /// The first value of header `name` (lower case), if it is there and is UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.request.headers().get(name);
        values.into_iter().next().and_then(|v| String::from_utf8(v).ok())
    }

    /// The whole body, at most `max` bytes: 413 for a declared `Content-Length` over `max` before
    /// anything is read, and as soon as more than `max` bytes arrive otherwise (chunked bodies declare
    /// no length). Readable once.
    pub fn body(&self, max: usize) -> Result<Vec<u8>, ApiError> {
        if let Some(declared) = self.header("content-length") {
            let declared: u64 = declared
                .trim()
                .parse()
                .map_err(|_| ApiError::new(ErrorCode::BadRequest, "Content-Length is not a number"))?;
            if declared > max as u64 {
                return Err(too_large(max));
            }
        }
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
    write_response(out, status, &headers, &body);
}

/// Sends a response built with spin-sdk's builder.
pub fn send(out: ResponseOutparam, response: Response) {
    let headers: Vec<(String, Vec<u8>)> =
        response.headers().map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec())).collect();
    write_response(out, *response.status(), &headers, response.body());
}

fn write_response(out: ResponseOutparam, status: u16, headers: &[(String, Vec<u8>)], body: &[u8]) {
    let fields = Fields::from_list(headers).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    // Our statuses are all valid; the guard keeps a bad one from going out as 200.
    if response.set_status_code(status).is_err() {
        let _ = response.set_status_code(500);
    }
    let Ok(outgoing) = response.body() else { return };
    out.set(response);
    if let Err(e) = write_all(&outgoing, body) {
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
