//! The bundle installer against an attack corpus, served over real HTTPS (a throwaway CA, the name
//! `bundles.test` resolved to loopback): each bad bundle is refused with a clear error, the target
//! directory is gone afterwards, and nothing is written anywhere else. A good bundle installs with its
//! modes.

use edgeshell_core::bundles::{hex, BundleError, BundlePolicy};
use edgeshell_runner::bundle::{client_builder, install, InstallError};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const HOST: &str = "bundles.test";

/// An HTTPS server for `bundles.test` with fixed paths (a value starting `redirect:` is a 302).
struct Server {
    addr: SocketAddr,
    ca_pem: String,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(files: HashMap<String, Vec<u8>>) -> Server {
        use tokio_rustls::rustls;
        let certified = rcgen::generate_simple_self_signed(vec![HOST.to_owned(), "other.test".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let files = Arc::new(files);
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, files, counter) = (acceptor.clone(), files.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let body = files.get(req.uri().path()).cloned();
                        async move {
                            let mut response = hyper::Response::new(Full::new(bytes::Bytes::new()));
                            match body {
                                Some(b) if b.starts_with(b"redirect:") => {
                                    *response.status_mut() = hyper::StatusCode::FOUND;
                                    let to = String::from_utf8(b[9..].to_vec()).unwrap();
                                    response.headers_mut().insert("location", to.parse().unwrap());
                                }
                                Some(b) => *response.body_mut() = Full::new(bytes::Bytes::from(b)),
                                None => *response.status_mut() = hyper::StatusCode::NOT_FOUND,
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Server { addr, ca_pem: certified.cert.pem(), requests, task }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.host())
    }

    /// `bundles.test:<port>`, as the policy allows it.
    fn host(&self) -> String {
        format!("{HOST}:{}", self.addr.port())
    }
}

/// Builds tar archives entry by entry, writing names and link targets raw (tar's own builder refuses
/// the malicious ones, which is the point of this corpus).
struct Tar(Vec<u8>);

impl Tar {
    fn new() -> Tar {
        Tar(Vec::new())
    }

    fn entry(mut self, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8], mode: u32) -> Tar {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name);
            gnu.linkname[..link.len()].copy_from_slice(link);
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Tar {
        self.entry(name.as_bytes(), tar::EntryType::Regular, b"", data, 0o644)
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn digest(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Everything under `root`, as relative paths.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

struct Case {
    name: &'static str,
    body: Vec<u8>,
    /// Policy tweaks for this case.
    tweak: fn(&mut BundlePolicy),
    /// Whether the digest goes in the allowlist.
    allowed: bool,
    expect: fn(&InstallError) -> bool,
}

fn case(name: &'static str, body: Vec<u8>, expect: fn(&InstallError) -> bool) -> Case {
    Case { name, body, tweak: |_| {}, allowed: true, expect }
}

fn refused(e: &InstallError, f: fn(&BundleError) -> bool) -> bool {
    matches!(e, InstallError::Refused(b) if f(b))
}

#[tokio::test]
async fn the_attack_corpus_is_refused_and_nothing_escapes() {
    use tar::EntryType as T;
    let zeros = vec![0u8; 40 * 1024 * 1024];
    let many = (0..1001).fold(Tar::new(), |t, i| t.file(&format!("f{i}"), b"x")).finish();
    let cases = vec![
        case("ratio bomb", gzip(&Tar::new().file("zeros", &zeros).finish()), |e| {
            refused(e, |b| matches!(b, BundleError::Bomb { what: "compression ratio", .. }))
        }),
        Case {
            tweak: |p| p.limits.max_entries = 1000,
            ..case("count bomb", many, |e| refused(e, |b| matches!(b, BundleError::Bomb { what: "entry count", .. })))
        },
        case("dot-dot traversal", Tar::new().file("ok", b"1").file("a/../../escaped", b"x").finish(), |e| {
            refused(e, |b| matches!(b, BundleError::UnsafePath { reason, .. } if reason.contains("..")))
        }),
        case("absolute path", Tar::new().file("/tmp/edgeshell-absolute-escape", b"x").finish(), |e| {
            refused(e, |b| matches!(b, BundleError::UnsafePath { reason: "absolute path", .. }))
        }),
        case("symlink out", Tar::new().entry(b"link", T::Symlink, b"../../outside", b"", 0o777).finish(), |e| {
            refused(e, |b| matches!(b, BundleError::LinkEscape { kind: "symlink", .. }))
        }),
        case("absolute symlink", Tar::new().entry(b"etc", T::Symlink, b"/etc", b"", 0o777).finish(), |e| {
            refused(e, |b| matches!(b, BundleError::LinkEscape { kind: "symlink", .. }))
        }),
        case(
            "write through a symlink",
            Tar::new().entry(b"d", T::Symlink, b".", b"", 0o777).file("d/x", b"x").finish(),
            |e| refused(e, |b| matches!(b, BundleError::UnsafePath { reason: "path goes through a symlink", .. })),
        ),
        case("hardlink out", Tar::new().entry(b"h", T::Link, b"../../outside/secret", b"", 0o644).finish(), |e| {
            refused(e, |b| matches!(b, BundleError::LinkEscape { kind: "hardlink", .. }))
        }),
        case("character device", Tar::new().entry(b"null", T::Char, b"", b"", 0o666).finish(), |e| {
            refused(e, |b| matches!(b, BundleError::ForbiddenType { kind: "character device", .. }))
        }),
        case("block device", Tar::new().entry(b"sda", T::Block, b"", b"", 0o666).finish(), |e| {
            refused(e, |b| matches!(b, BundleError::ForbiddenType { .. }))
        }),
        case("fifo", Tar::new().entry(b"pipe", T::Fifo, b"", b"", 0o666).finish(), |e| {
            refused(e, |b| matches!(b, BundleError::ForbiddenType { kind: "fifo", .. }))
        }),
        case("duplicate overwrite", Tar::new().file("bin", b"good").file("bin", b"evil").finish(), |e| {
            refused(e, |b| matches!(b, BundleError::UnsafePath { .. }))
        }),
        Case {
            allowed: false,
            ..case("sha mismatch", gzip(&Tar::new().file("bin", b"not the bundle you allowed").finish()), |e| {
                refused(e, |b| matches!(b, BundleError::DigestNotAllowed(_)))
            })
        },
        Case {
            tweak: |p| p.max_download_bytes = 64 * 1024,
            ..case("oversize", Tar::new().file("big", &vec![7u8; 200 * 1024]).finish(), |e| {
                refused(e, |b| matches!(b, BundleError::TooLarge { limit: 65536 }))
            })
        },
        case("not a tar", b"<html>hello</html>".to_vec(), |e| matches!(e, InstallError::Archive(_))),
    ];
    let files: HashMap<String, Vec<u8>> =
        cases.iter().enumerate().map(|(i, c)| (format!("/b{i}.tgz"), c.body.clone())).collect();
    let server = Server::start(files).await;
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"do not touch").unwrap();
    let work = root.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let before = tree(root.path());

    for (i, c) in cases.iter().enumerate() {
        let allowlist = if c.allowed { vec![digest(&c.body)] } else { vec![digest(b"something else")] };
        let mut policy = BundlePolicy::new(&[server.host()], &allowlist).unwrap();
        (c.tweak)(&mut policy);
        let client =
            client_builder(&policy, server.ca_pem.as_bytes()).unwrap().resolve(HOST, server.addr).build().unwrap();
        let dest = work.join("bundle");
        let result = install(&client, &policy, &server.url(&format!("/b{i}.tgz")), &dest).await;
        let error = result.expect_err(c.name);
        assert!((c.expect)(&error), "{}: unexpected error {error:?}", c.name);
        assert!(!error.to_string().is_empty());
        assert!(!dest.exists(), "{}: the target directory was left behind", c.name);
        assert_eq!(tree(root.path()), before, "{}: something was written outside the target", c.name);
        assert!(!Path::new("/tmp/edgeshell-absolute-escape").exists());
    }
}

#[tokio::test]
async fn urls_are_checked_before_and_during_the_download() {
    let good = gzip(&Tar::new().file("bin/cli", b"#!/bin/sh\necho hi\n").finish());
    let files = HashMap::from([("/good.tgz".to_owned(), good.clone())]);
    let mut server = Server::start(files).await;
    let port = server.addr.port();
    // Redirects to another host and to plain HTTP, made after the start because they name the port.
    server.task.abort();
    let files = HashMap::from([
        ("/good.tgz".to_owned(), good.clone()),
        ("/hop".to_owned(), format!("redirect:https://evil.test:{port}/good.tgz").into_bytes()),
        ("/downgrade".to_owned(), format!("redirect:http://{HOST}:{port}/good.tgz").into_bytes()),
    ]);
    server = Server::start(files).await;
    let policy = BundlePolicy::new(&[server.host()], &[digest(&good)]).unwrap();
    let client = client_builder(&policy, server.ca_pem.as_bytes())
        .unwrap()
        .resolve(HOST, server.addr)
        .resolve("evil.test", server.addr)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("bundle");

    let host = server.host();
    for url in [
        format!("https://evil.test:{}/good.tgz", server.addr.port()),
        format!("http://{host}/good.tgz"),
        format!("https://user@{host}/good.tgz"),
        format!("https://{HOST}/good.tgz"),
    ] {
        let e = install(&client, &policy, &url, &dest).await.unwrap_err();
        assert!(matches!(e, InstallError::Refused(BundleError::UrlRefused(_))), "{url}: {e:?}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 0, "refused URLs are never fetched");

    // Redirects are checked hop by hop: to another host, and down to plain HTTP.
    for path in ["/hop", "/downgrade"] {
        let e = install(&client, &policy, &server.url(path), &dest).await.unwrap_err();
        assert!(matches!(&e, InstallError::Fetch(why) if why.contains("bundle URL refused")), "{path}: {e:?}");
        assert!(!dest.exists());
    }
    // The real thing works with the same client.
    install(&client, &policy, &server.url("/good.tgz"), &dest).await.unwrap();
    assert_eq!(std::fs::read(dest.join("bin/cli")).unwrap(), b"#!/bin/sh\necho hi\n");
}

#[tokio::test]
async fn a_good_bundle_installs_with_its_modes() {
    use std::os::unix::fs::PermissionsExt;
    let good = gzip(
        &Tar::new()
            .entry(b"bin/", tar::EntryType::Directory, b"", b"", 0o755)
            .entry(b"bin/cli", tar::EntryType::Regular, b"", b"#!/bin/sh\necho hi\n", 0o4777)
            .entry(b"bin/cli-link", tar::EntryType::Symlink, b"cli", b"", 0o777)
            .entry(b"share/readme", tar::EntryType::Regular, b"", b"read me", 0o666)
            .entry(b"share/readme-again", tar::EntryType::Link, b"share/readme", b"", 0o644)
            .finish(),
    );
    let server = Server::start(HashMap::from([("/cli.tgz".to_owned(), good.clone())])).await;
    let policy = BundlePolicy::new(&[server.host()], &[digest(&good)]).unwrap();
    let client = client_builder(&policy, server.ca_pem.as_bytes()).unwrap().resolve(HOST, server.addr).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("bundle");
    let installed = install(&client, &policy, &server.url("/cli.tgz"), &dest).await.unwrap();
    assert_eq!((installed.entries, installed.size, installed.sha256), (5, good.len() as u64, digest(&good)));
    // A second install into the same place is refused rather than merged.
    let again = install(&client, &policy, &server.url("/cli.tgz"), &dest).await.unwrap_err();
    assert!(matches!(again, InstallError::Target { .. }), "{again:?}");
    assert!(dest.join("bin/cli").exists(), "the refused second install left the first alone");
    let mode = |p: &str| std::fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("bin/cli"), 0o755, "setuid and group/other write cleared");
    assert_eq!(mode("share/readme"), 0o644);
    assert_eq!(std::fs::read_link(dest.join("bin/cli-link")).unwrap(), Path::new("cli"));
    assert_eq!(std::fs::read(dest.join("share/readme-again")).unwrap(), b"read me");
    let out = std::process::Command::new(dest.join("bin/cli")).output().unwrap();
    assert_eq!(out.stdout, b"hi\n");
}
