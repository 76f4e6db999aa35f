//! Outbound plain-HTTP requests of the components over kept-alive connections, shared by all requests
//! of the host: a mint calls the token signer and a pool, and opening a TCP connection for each call
//! was a tenth of the machine's time in the mint profile (`wasmtime-wasi-http`'s default sender
//! connects per request). HTTPS keeps the default sender (TLS to outside services is rare and slow
//! anyway).
//!
//! The guest's per-request timeouts still hold: connecting and the first byte together within the
//! sum of its connect and first-byte timeouts (a reused connection needs no connect), then at most
//! the between-bytes timeout between body frames.

use bytes::Bytes;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// How long an idle connection is kept.
const IDLE: Duration = Duration::from_secs(30);
/// Idle connections kept per origin.
const MAX_IDLE_PER_ORIGIN: usize = 64;
/// Timeouts a guest leaves unset (`wasmtime-wasi-http`'s default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The host's pool of outbound connections.
#[derive(Clone)]
pub struct KeptAlive {
    client: Client<HttpConnector, WasiBody>,
}

impl KeptAlive {
    /// An empty pool.
    pub fn new() -> KeptAlive {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE)
            .pool_max_idle_per_host(MAX_IDLE_PER_ORIGIN)
            .build(connector);
        KeptAlive { client }
    }

    /// Sends `request` (an absolute `http://` URI) on a pooled connection.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let timeout =
            |pick: fn(&RequestOptions) -> Option<Duration>| options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT);
        let head_within = timeout(|o| o.connect_timeout).saturating_add(timeout(|o| o.first_byte_timeout));
        let between_bytes = timeout(|o| o.between_bytes_timeout).max(Duration::from_nanos(1));
        let response = match tokio::time::timeout(head_within, self.client.request(request)).await {
            Err(_) => return Err(Error::ConnectionReadTimeout),
            Ok(Err(e)) if e.is_connect() => return Err(Error::Connect(std::io::Error::other(e.to_string()))),
            Ok(Err(_)) => return Err(Error::ConnectionTerminated),
            Ok(Ok(response)) => response,
        };
        Ok(response.map(|body| Paced { body, between_bytes, timer: None }.boxed_unsync()))
    }
}

impl Default for KeptAlive {
    fn default() -> Self {
        KeptAlive::new()
    }
}

/// A response body whose frames must each arrive within `between_bytes` of the last.
struct Paced {
    body: hyper::body::Incoming,
    between_bytes: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Error::from)))
            }
            Poll::Pending => {
                let between_bytes = self.between_bytes;
                let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(between_bytes)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
