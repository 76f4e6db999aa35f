//! Opening the runner's WebSocket to its session's room: the credential travels in
//! `Sec-WebSocket-Protocol` (see [`edgeshell_core::protocol::Credential`]), TLS is rustls with the
//! webpki roots, and a refusal before the upgrade is told apart from a network failure, because only the
//! latter is worth retrying.

use edgeshell_core::protocol::{Credential, MAX_FRAME_BYTES};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open connection to the room.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The edge answered the upgrade with an error status.
    #[error("the edge refused the connection with HTTP {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The start of the error body.
        body: String,
    },
    /// The URL is unusable.
    #[error("bad join URL: {0}")]
    BadUrl(String),
    /// Network or TLS failure, or the handshake timed out.
    #[error("could not reach the edge: {0}")]
    Unreachable(String),
}

impl DialError {
    /// True when retrying cannot help: the edge looked at the credential and said no.
    pub fn is_permanent(&self) -> bool {
        match self {
            DialError::Refused { status, .. } => (400..500).contains(status) && !matches!(status, 408 | 429),
            DialError::BadUrl(_) => true,
            DialError::Unreachable(_) => false,
        }
    }
}

/// Connects to `url` presenting `credential`.
pub async fn dial(url: &str, credential: &Credential, timeout: Duration) -> Result<Socket, DialError> {
    use tokio_tungstenite::tungstenite::Error;
    let mut request = url.into_client_request().map_err(|e| DialError::BadUrl(e.to_string()))?;
    let offer = credential.header_value().parse().map_err(|_| DialError::BadUrl("credential not a header".into()))?;
    request.headers_mut().insert("sec-websocket-protocol", offer);
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_FRAME_BYTES);
    config.max_frame_size = Some(MAX_FRAME_BYTES);
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(DialError::Unreachable(format!("no handshake within {timeout:?}"))),
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(Error::Http(response))) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            Err(DialError::Refused { status: response.status().as_u16(), body: body.chars().take(300).collect() })
        }
        Ok(Err(Error::Url(e))) => Err(DialError::BadUrl(e.to_string())),
        Ok(Err(e)) => Err(DialError::Unreachable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_credential_refusals_are_permanent() {
        let refused = |status| DialError::Refused { status, body: String::new() };
        assert!(refused(401).is_permanent() && refused(409).is_permanent() && refused(410).is_permanent());
        assert!(!refused(503).is_permanent() && !refused(429).is_permanent() && !refused(408).is_permanent());
        assert!(!DialError::Unreachable("x".into()).is_permanent());
    }
}
