//! Streaming one artifact to the edge: `PUT /artifacts/{sid}/{path}` with the session's `artifact:put`
//! token, exactly `size` bytes read from any reader in chunks (memory stays at a chunk or two whatever
//! the size), SHA-256 computed on the way and checked against what the edge counted.

use edgeshell_core::api_error::{ErrorCode, Retry};
use edgeshell_core::artifacts::ArtifactPath;
use edgeshell_core::files::{upload_url, PutReply};
use edgeshell_core::ids::SessionId;
use edgeshell_core::secret::Secret;
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The size of the chunks read and sent.
const CHUNK: usize = 64 * 1024;

/// Uploads a session's artifacts.
#[derive(Clone)]
pub struct Uploader {
    client: reqwest::Client,
    join_url: String,
    session: SessionId,
    token: Secret,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader").field("session", &self.session).finish_non_exhaustive()
    }
}

/// An upload's result, as the socket's clients get it.
pub type Reply = PutReply;

impl Uploader {
    /// An uploader to the edge of `join_url` for `session` with its upload `token`.
    pub fn new(join_url: &str, session: SessionId, token: Secret) -> anyhow::Result<Uploader> {
        // Checked once here: the same edge as the join URL, over TLS (or to this machine).
        let probe = ArtifactPath::new("probe").map_err(|e| anyhow::anyhow!(e))?;
        upload_url(join_url, &session, &probe).map_err(|e| anyhow::anyhow!("uploads: {e}"))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            // A stalled edge cannot hold an upload forever; a large one at a slow pace still fits.
            .read_timeout(Duration::from_secs(120))
            .build()?;
        Ok(Uploader { client, join_url: join_url.to_owned(), session, token })
    }

    /// Streams exactly `size` bytes of `body` to `path`; `replace` replaces an artifact stored there.
    pub async fn put<R>(&self, path: &ArtifactPath, size: u64, replace: bool, body: R) -> Reply
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let refused = |code: &str, message: String| Reply::Refused { code: code.to_owned(), message };
        let url = match upload_url(&self.join_url, &self.session, path) {
            Ok(url) => url,
            Err(e) => return refused(ErrorCode::Misconfigured.name(), e),
        };
        let hash = Arc::new(Mutex::new((Sha256::new(), 0u64)));
        let counting = hash.clone();
        let chunks = tokio_util::io::ReaderStream::with_capacity(body.take(size), CHUNK).map_ok(move |chunk| {
            let mut h = counting.lock().unwrap_or_else(|e| e.into_inner());
            h.0.update(&chunk);
            h.1 += chunk.len() as u64;
            chunk
        });
        let mut request = self
            .client
            .put(url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(chunks));
        if !replace {
            request = request.header(reqwest::header::IF_NONE_MATCH, "*");
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let sent = hash.lock().unwrap_or_else(|e| e.into_inner()).1;
                if sent < size {
                    let why = format!("the file ended after {sent} of its {size} bytes");
                    return refused(ErrorCode::ContentMismatch.name(), why);
                }
                return refused(ErrorCode::StorageUnavailable.name(), format!("the edge could not be reached: {e}"));
            }
        };
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let code = answer["error"]["code"].as_str().unwrap_or(ErrorCode::InternalError.name());
            let message = answer["error"]["message"]
                .as_str()
                .map_or_else(|| format!("the edge answered {status}"), str::to_owned);
            return refused(code, message);
        }
        let (digest, sent) =
            std::mem::replace(&mut *hash.lock().unwrap_or_else(|e| e.into_inner()), (Sha256::new(), 0));
        let sha256 = edgeshell_core::bundles::hex(&digest.finalize());
        let stored = (answer["size"].as_u64(), answer["sha256"].as_str());
        if stored != (Some(sent), Some(sha256.as_str())) || sent != size {
            return refused(
                ErrorCode::ContentMismatch.name(),
                format!("sent {sent} bytes with SHA-256 {sha256}; the edge stored {:?} {:?}", stored.0, stored.1),
            );
        }
        Reply::Stored { path: path.as_str().to_owned(), size, sha256 }
    }
}

/// Whether a refusal can pass by itself (the edge or the control plane unreachable, another upload
/// under way), so that the same version is worth another try later: the error table's retry rule.
/// A code outside the table (an edge that was never reached) may pass too.
pub fn may_pass(code: &str) -> bool {
    ErrorCode::from_name(code).is_none_or(|c| c.retry() != Retry::Never)
}
