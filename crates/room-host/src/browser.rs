//! A browser-side client of the session protocol for tests and benchmarks: attaches with a token (or
//! resumes with a ticket), acknowledges output as it arrives, and collects it, exactly as the web client
//! does.

use edgeshell_core::protocol::{CloseCode, Credential, ExitStatus, Frame, Signal, Welcome};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An attached browser.
pub struct Browser {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The welcome it got.
    pub welcome: Welcome,
    /// Every output byte received, in order.
    pub output: Vec<u8>,
    /// The screen snapshot a fresh attach was drawn from (its parts joined), if the room had one.
    pub screen: Vec<u8>,
    /// The offset of the byte after `output`'s last one.
    pub offset: u64,
    /// The program's exit, once reported.
    pub exit: Option<ExitStatus>,
    /// Control frames received other than output (runner away/back/lost, closing).
    pub events: Vec<Frame>,
    /// The close code, once closed.
    pub closed: Option<(CloseCode, String)>,
    /// Text `pong`s received (answers to [`Browser::heartbeat`]).
    pub pongs: u32,
    /// When this many output bytes arrived unacknowledged, an `Ack` is sent.
    pub ack_every: u64,
    acked: u64,
}

/// Why an attach failed.
#[derive(Debug)]
pub enum AttachError {
    /// Refused before the upgrade with this HTTP status.
    Refused(u16),
    /// Closed right after the upgrade with this code.
    Closed(CloseCode, String),
    /// Anything else.
    Other(String),
}

impl Browser {
    /// Attaches to `url` with `credential`; `url` carries `?offset=` for a resume.
    pub async fn attach(url: &str, credential: &Credential) -> Result<Browser, AttachError> {
        Browser::attach_from(url, credential, None).await
    }

    /// [`Browser::attach`] as a page of `origin` would (its `Origin` header), or as a program (`None`).
    pub async fn attach_from(url: &str, credential: &Credential, origin: Option<&str>) -> Result<Browser, AttachError> {
        use tokio_tungstenite::tungstenite::Error;
        let mut request = url.into_client_request().map_err(|e| AttachError::Other(e.to_string()))?;
        request.headers_mut().insert("sec-websocket-protocol", credential.header_value().parse().expect("header"));
        if let Some(origin) = origin {
            let value = origin.parse().map_err(|_| AttachError::Other(format!("{origin:?} is not a header value")))?;
            request.headers_mut().insert("origin", value);
        }
        let mut socket = match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => socket,
            Err(Error::Http(response)) => return Err(AttachError::Refused(response.status().as_u16())),
            Err(e) => return Err(AttachError::Other(e.to_string())),
        };
        loop {
            match socket.next().await {
                Some(Ok(Message::Binary(bytes))) => match Frame::decode(&bytes) {
                    Ok(Frame::Welcome(welcome)) => {
                        let offset = welcome.offset;
                        return Ok(Browser {
                            socket,
                            welcome,
                            output: Vec::new(),
                            screen: Vec::new(),
                            offset,
                            exit: None,
                            events: Vec::new(),
                            closed: None,
                            pongs: 0,
                            ack_every: 64 * 1024,
                            acked: offset,
                        });
                    }
                    Ok(Frame::Closing { .. }) => {}
                    other => return Err(AttachError::Other(format!("expected a welcome, got {other:?}"))),
                },
                Some(Ok(Message::Close(Some(close)))) => {
                    let code = CloseCode::from_code(close.code.into()).unwrap_or(CloseCode::InternalError);
                    return Err(AttachError::Closed(code, close.reason.to_string()));
                }
                Some(Ok(_)) => {}
                other => return Err(AttachError::Other(format!("connection ended before a welcome: {other:?}"))),
            }
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: Frame) {
        self.socket.send(Message::Binary(frame.encode().into())).await.expect("send to the room");
    }

    /// Types `text`; false when the connection is gone.
    pub async fn try_input(&mut self, text: &[u8]) -> bool {
        let frame = Frame::Input { data: text.to_vec() }.encode();
        self.socket.send(Message::Binary(frame.into())).await.is_ok()
    }

    /// Types `text`.
    pub async fn input(&mut self, text: &[u8]) {
        self.send(Frame::Input { data: text.to_vec() }).await;
    }

    /// Resizes the terminal.
    pub async fn resize(&mut self, cols: u16, rows: u16) {
        self.send(Frame::Resize { cols, rows }).await;
    }

    /// Delivers a signal.
    pub async fn signal(&mut self, signal: Signal) {
        self.send(Frame::Signal { signal }).await;
    }

    /// Sends the text heartbeat the platform answers with `pong` without waking the room.
    pub async fn heartbeat(&mut self) {
        self.socket.send(Message::Text("ping".into())).await.expect("send to the room");
    }

    /// Handles one message; false when the connection is over.
    pub async fn step(&mut self) -> bool {
        let message = match self.socket.next().await {
            Some(Ok(message)) => message,
            _ => return false,
        };
        match message {
            Message::Binary(bytes) => match Frame::decode(&bytes).expect("a valid frame from the room") {
                Frame::Output { offset, data } => {
                    assert_eq!(offset, self.offset, "output must continue at the exact byte");
                    self.offset += data.len() as u64;
                    self.output.extend_from_slice(&data);
                    if self.offset - self.acked >= self.ack_every {
                        self.acked = self.offset;
                        self.send(Frame::Ack { offset: self.offset }).await;
                    }
                }
                // A fresh attach's screen: the output continues at its offset.
                Frame::Snapshot { offset, data, .. } => {
                    self.offset = offset;
                    self.acked = offset;
                    self.screen.extend_from_slice(&data);
                }
                Frame::Exited { status } => {
                    self.exit = Some(status);
                    self.send(Frame::Ack { offset: self.offset }).await;
                }
                Frame::Ping { nonce } => self.send(Frame::Pong { nonce }).await,
                other => self.events.push(other),
            },
            Message::Close(close) => {
                self.closed = close.map(|c| {
                    (CloseCode::from_code(c.code.into()).unwrap_or(CloseCode::InternalError), c.reason.to_string())
                });
                return false;
            }
            Message::Text(text) if text.as_str() == "pong" => self.pongs += 1,
            _ => {}
        }
        true
    }

    /// Reads until `done` holds for this browser; false if the connection ended or `within` passed first.
    pub async fn step_until(&mut self, within: Duration, done: impl Fn(&Browser) -> bool) -> bool {
        tokio::time::timeout(within, async {
            while !done(self) {
                if !self.step().await {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false)
    }

    /// Reads until `needle` appears in the output after byte `from`; panics after `within`. Each byte
    /// is searched once, so waiting for a marker after megabytes of output stays linear.
    pub async fn expect_from(&mut self, from: usize, needle: &str, within: Duration) -> usize {
        let needle_bytes = needle.as_bytes();
        let mut searched = from;
        let found = tokio::time::timeout(within, async {
            loop {
                let start = searched.min(self.output.len());
                if let Some(at) = find(&self.output[start..], needle_bytes) {
                    return Some(start + at + needle_bytes.len());
                }
                // The next search starts where a match could still begin.
                searched = self.output.len().saturating_sub(needle_bytes.len().saturating_sub(1)).max(from);
                if !self.step().await {
                    return None;
                }
            }
        })
        .await;
        match found {
            Ok(Some(end)) => end,
            outcome => {
                let tail = &self.output[from.min(self.output.len()).max(self.output.len().saturating_sub(400))..];
                let why = if outcome.is_ok() {
                    format!("closed ({:?})", self.closed)
                } else {
                    format!("not within {within:?}")
                };
                panic!(
                    "{needle:?} did not arrive: {why}; {} bytes after {from}, ending {:?}; events {:?}",
                    self.output.len().saturating_sub(from),
                    String::from_utf8_lossy(tail),
                    self.events
                )
            }
        }
    }

    /// Reads until the program's exit is reported; panics after `within`.
    pub async fn expect_exit(&mut self, within: Duration) -> ExitStatus {
        let done = tokio::time::timeout(within, async {
            while self.exit.is_none() {
                if !self.step().await {
                    break;
                }
            }
        })
        .await;
        assert!(done.is_ok(), "no exit within {within:?}");
        self.exit.unwrap_or_else(|| panic!("closed without an exit: {:?}", self.closed))
    }

    /// Reads until the connection closes; returns the close code.
    pub async fn expect_close(&mut self, within: Duration) -> Option<(CloseCode, String)> {
        let _ = tokio::time::timeout(within, async { while self.step().await {} }).await;
        self.closed.clone()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
