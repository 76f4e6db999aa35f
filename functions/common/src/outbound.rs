//! Outbound HTTP with timeouts, on `wasi:http/outgoing-handler` directly (spin-sdk's `send` cannot set
//! request options). Blocking, which suits these request-scoped components. A refused connection is told
//! apart from a timeout: after a timeout the far side may have acted on the request.

use core::time::Duration;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};

/// A response read in full.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body, at most the caller's limit.
    pub body: Vec<u8>,
    /// `Cache-Control`, if sent.
    pub cache_control: Option<String>,
}

/// Why an outbound request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// No connection was made (refused, DNS, unreachable): the far side never saw the request.
    NotConnected(String),
    /// The far side did not answer in time; it may have acted on the request.
    TimedOut,
    /// The host's `allowed_outbound_hosts` refused the destination.
    Denied,
    /// The answer was larger than allowed.
    TooLarge,
    /// Anything else (bad URL, protocol error).
    Failed(String),
}

impl core::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OutboundError::NotConnected(m) => write!(f, "could not connect: {m}"),
            OutboundError::TimedOut => f.write_str("timed out"),
            OutboundError::Denied => f.write_str("destination not allowed"),
            OutboundError::TooLarge => f.write_str("answer too large"),
            OutboundError::Failed(m) => f.write_str(m),
        }
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// `GET` or `POST`.
    pub post: bool,
    /// Absolute `http(s)://` URL.
    pub url: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// Body (sent when `post`).
    pub body: &'a [u8],
    /// Connect timeout and time to the first response byte.
    pub timeout: Duration,
    /// Largest body read.
    pub max_body: usize,
}

/// Sends `call` and reads the whole answer.
pub fn send(call: &Call<'_>) -> Result<Answer, OutboundError> {
    let (scheme, rest) = match call.url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some(("http", rest)) => (Scheme::Http, rest),
        _ => return Err(OutboundError::Failed(format!("not an http(s) URL: {}", call.url))),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    for (name, value) in call.headers {
        headers
            .append(&(*name).to_owned(), &value.as_bytes().to_vec())
            .map_err(|e| OutboundError::Failed(format!("header {name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(headers);
    let bad = |what: &str| OutboundError::Failed(format!("invalid {what} in {}", call.url));
    request.set_method(if call.post { &Method::Post } else { &Method::Get }).map_err(|_| bad("method"))?;
    request.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
    request.set_authority(Some(authority)).map_err(|_| bad("authority"))?;
    request.set_path_with_query(Some(path)).map_err(|_| bad("path"))?;
    let body = request.body().map_err(|_| bad("body"))?;
    let options = RequestOptions::new();
    let nanos = u64::try_from(call.timeout.as_nanos()).unwrap_or(u64::MAX);
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    let pending = outgoing_handler::handle(request, Some(options)).map_err(classify)?;
    if call.post && !call.body.is_empty() {
        let stream = body.write().map_err(|_| bad("body stream"))?;
        for chunk in call.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| OutboundError::Failed(format!("writing the body: {e:?}")))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(body, None).map_err(classify)?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(classify(code)),
        _ => return Err(OutboundError::Failed("the response was lost".into())),
    };
    let status = response.status();
    let cache_control =
        response.headers().get(&"cache-control".to_owned()).first().map(|v| String::from_utf8_lossy(v).into_owned());
    let incoming = response.consume().map_err(|_| OutboundError::Failed("response body taken".into()))?;
    let stream = incoming.stream().map_err(|_| OutboundError::Failed("response stream taken".into()))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(16 * 1024) {
            Ok(chunk) => {
                if out.len() + chunk.len() > call.max_body {
                    return Err(OutboundError::TooLarge);
                }
                out.extend_from_slice(&chunk);
            }
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(OutboundError::Failed(format!("reading the response: {e:?}"))),
        }
    }
    Ok(Answer { status, body: out, cache_control })
}

fn classify(code: ErrorCode) -> OutboundError {
    match code {
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::ConnectionWriteTimeout => {
            OutboundError::TimedOut
        }
        ErrorCode::ConnectionRefused
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_) => OutboundError::NotConnected(format!("{code:?}")),
        ErrorCode::HttpRequestDenied => OutboundError::Denied,
        other => OutboundError::Failed(format!("{other:?}")),
    }
}
