//! A lean HTTP/1.1 client (the control bench's load generator, and tests that need the raw bytes of a
//! request): one kept-alive connection, one request at a time, each
//! request written in one piece from bytes made before the clock starts, the response head parsed with
//! `httparse` and its body read by `content-length` or chunked. The generator shares the machine's
//! two cores with what it measures, so it should cost as little as it can: hyper's client runs each
//! connection as a task of its own and hands every request and response across a channel, two task
//! wake-ups per request that the host then does not get.

use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request as it goes on the wire.
pub(crate) struct Request(Vec<u8>);

impl Request {
    /// `method path` with a bearer token and a JSON body.
    pub(crate) fn new(method: &str, path: &str, bearer: &str, body: &str) -> Request {
        Request(
            format!(
                "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {bearer}\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }

    /// The request as it goes on the wire.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A response: status, headers and the whole body.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// One connection.
pub(crate) struct Client {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
}

const MAX_HEADERS: usize = 32;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Client {
    pub(crate) async fn connect(url: &str) -> io::Result<Client> {
        let stream = TcpStream::connect(url.trim_start_matches("http://")).await?;
        stream.set_nodelay(true)?;
        Ok(Client { stream, buf: Vec::with_capacity(8192) })
    }

    /// Sends `request` and reads its response.
    pub(crate) async fn send(&mut self, request: &Request) -> io::Result<Response> {
        self.stream.write_all(request.bytes()).await?;
        let (status, headers, head_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&self.buf).map_err(|e| invalid(format!("response head: {e}")))? {
                httparse::Status::Complete(len) => {
                    let mut headers = http::HeaderMap::new();
                    for h in parsed.headers.iter() {
                        let name =
                            http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
                        let value = http::HeaderValue::from_bytes(h.value).map_err(|e| invalid(e.to_string()))?;
                        headers.append(name, value);
                    }
                    break (parsed.code.ok_or_else(|| invalid("no status"))?, headers, len);
                }
                httparse::Status::Partial => self.fill().await?,
            }
        };
        self.buf.drain(..head_len);
        let length = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let chunked = headers
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let body = match (length, chunked) {
            (_, true) => self.chunked().await?,
            (Some(n), false) => self.exactly(n).await?,
            (None, false) => return Err(invalid("a response without a length on a kept-alive connection")),
        };
        Ok(Response { status, headers, body })
    }

    /// Reads more from the socket into `buf`.
    async fn fill(&mut self) -> io::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        Ok(())
    }

    async fn exactly(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// A line ending in CRLF, without it.
    async fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..at].to_vec();
                self.buf.drain(..at + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// A chunked body (chunk extensions ignored, trailers read and dropped).
    async fn chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = std::str::from_utf8(&line).ok().and_then(|l| l.split(';').next()).map(str::trim);
            let size = size
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .ok_or_else(|| invalid(format!("chunk size {:?}", String::from_utf8_lossy(&line))))?;
            if size == 0 {
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exactly(size).await?);
            if !self.line().await?.is_empty() {
                return Err(invalid("a chunk longer than its size"));
            }
        }
    }
}
