//! A real Git server over HTTPS on loopback for tests: `git http-backend` (Git's own smart-HTTP CGI)
//! behind a TLS server with a throwaway certificate for `127.0.0.1`. Repositories are bare ones made
//! with real `git` commands; those marked private answer 401 unless the request carries HTTP basic
//! credentials whose password is the server's token, as a forge does for a personal access token.

use http_body_util::{BodyExt, Full};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A running server; stops when dropped.
pub struct GitServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A PEM file of its certificate, for `GIT_SSL_CAINFO` (`EDGESHELL_GIT_CA_FILE`).
    pub ca_file: PathBuf,
    /// The password private repositories take.
    pub token: String,
    root: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("git")
        .args(["-c", "user.name=edgeshell", "-c", "user.email=test@edgeshell.invalid", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "git {args:?} failed in {}", dir.display());
    Ok(())
}

/// One repository to serve: its name, its files (path and content), and whether it is private.
pub type Repo<'a> = (&'a str, &'a [(&'a str, &'a [u8])], bool);

impl GitServer {
    /// Serves `repos`, each with one commit on `main` and a tag `v1`.
    pub async fn start(repos: &[Repo<'_>]) -> anyhow::Result<GitServer> {
        let root = tempfile::tempdir()?;
        let mut private = BTreeSet::new();
        for (name, files, is_private) in repos {
            let work = root.path().join(format!("{name}.work"));
            std::fs::create_dir_all(&work)?;
            git(&work, &["init", "-q"])?;
            for (path, content) in *files {
                let file = work.join(path);
                std::fs::create_dir_all(file.parent().unwrap_or(&work))?;
                std::fs::write(file, content)?;
            }
            git(&work, &["add", "-A"])?;
            git(&work, &["commit", "-q", "-m", "the first commit"])?;
            git(&work, &["tag", "v1"])?;
            git(root.path(), &["clone", "-q", "--bare", &format!("{name}.work"), &format!("{name}.git")])?;
            if *is_private {
                private.insert(format!("/{name}.git"));
            }
        }
        let token = format!("ghp_{:032x}", rand::random::<u128>());
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        let ca_file = root.path().join("ca.pem");
        std::fs::write(&ca_file, certified.cert.pem())?;
        use tokio_rustls::rustls;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { root: root.path().to_owned(), private, token: token.clone() });
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else { continue };
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(shared.serve(req, peer).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(GitServer { addr, ca_file, token, root, task })
    }

    /// `127.0.0.1:<port>`, the host a template allows.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The clone URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("https://{}/{name}.git", self.addr)
    }

    /// Where the bare repositories are.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

struct Shared {
    root: PathBuf,
    private: BTreeSet<String>,
    token: String,
}

type Reply = hyper::Response<Full<bytes::Bytes>>;

fn status(code: u16, extra: &[(&'static str, &str)]) -> Reply {
    let mut response = hyper::Response::new(Full::new(bytes::Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in extra {
        if let Ok(v) = v.parse() {
            response.headers_mut().insert(*k, v);
        }
    }
    response
}

impl Shared {
    fn authorized(&self, req: &hyper::Request<hyper::body::Incoming>) -> bool {
        use base64::Engine as _;
        let Some(basic) = req.headers().get("authorization").and_then(|h| h.to_str().ok()?.strip_prefix("Basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic) else { return false };
        let text = String::from_utf8_lossy(&decoded);
        text.split_once(':').is_some_and(|(_, password)| password == self.token)
    }

    async fn serve(&self, req: hyper::Request<hyper::body::Incoming>, peer: SocketAddr) -> Reply {
        let path = req.uri().path().to_owned();
        let repo = path.find(".git").map(|i| &path[..i + 4]).unwrap_or_default().to_owned();
        if self.private.contains(&repo) && !self.authorized(&req) {
            return status(401, &[("www-authenticate", "Basic realm=\"git\"")]);
        }
        let method = req.method().to_string();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let header = |name: &str| req.headers().get(name).and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
        let (content_type, protocol) = (header("content-type"), header("git-protocol"));
        let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else { return status(400, &[]) };
        let mut cgi = tokio::process::Command::new("git");
        cgi.arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", &path)
            .env("QUERY_STRING", query)
            .env("REQUEST_METHOD", method)
            .env("CONTENT_TYPE", content_type)
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("GIT_PROTOCOL", protocol)
            .env("REMOTE_ADDR", peer.ip().to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let Ok(mut child) = cgi.spawn() else { return status(500, &[]) };
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(&body).await;
        }
        let Ok(output) = child.wait_with_output().await else { return status(500, &[]) };
        cgi_response(&output.stdout)
    }
}

/// A CGI script's output as a response: its headers (`Status:` sets the status) and its body.
fn cgi_response(out: &[u8]) -> Reply {
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let split = split.or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, gap)) = split else { return status(502, &[]) };
    let mut response = hyper::Response::new(Full::new(bytes::Bytes::copy_from_slice(&out[end + gap..])));
    for line in String::from_utf8_lossy(&out[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(500);
            *response.status_mut() =
                hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(value)) =
            (hyper::header::HeaderName::from_bytes(name.trim().as_bytes()), value.parse())
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
