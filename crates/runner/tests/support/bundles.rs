//! Bundles as the installer meets them: tar archives built entry by entry (malicious ones included)
//! and an HTTPS server with a throwaway CA that serves them.

use edgeshell_core::bundles::hex;
use http_body_util::Full;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const HOST: &str = "bundles.test";

/// An HTTPS server for `bundles.test` with fixed paths (a value starting `redirect:` is a 302).
pub struct Server {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub requests: Arc<AtomicUsize>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(files: HashMap<String, Vec<u8>>) -> Server {
        use tokio_rustls::rustls;
        let certified =
            rcgen::generate_simple_self_signed(vec![HOST.to_owned(), "other.test".to_owned(), "localhost".to_owned()])
                .unwrap();
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

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.host())
    }

    /// `bundles.test:<port>`, as the policy allows it.
    pub fn host(&self) -> String {
        format!("{HOST}:{}", self.addr.port())
    }
}

/// Builds tar archives entry by entry, writing names and link targets raw (tar's own builder refuses
/// the malicious ones, which is the point of this corpus).
pub struct Tar(Vec<u8>);

impl Tar {
    pub fn new() -> Tar {
        Tar(Vec::new())
    }

    pub fn entry(mut self, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8], mode: u32) -> Tar {
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

    pub fn file(self, name: &str, data: &[u8]) -> Tar {
        self.entry(name.as_bytes(), tar::EntryType::Regular, b"", data, 0o644)
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub fn digest(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// A gzip stream (of concatenated members, which gzip allows) of a tar holding one PAX extended
/// header whose single record is `record_bytes` long, followed by a good file `bin/cli`: a few
/// hundred bytes per decompressed MiB, so a 1 GiB record downloads as about 1 MB.
pub fn pax_bomb(record_bytes: u64) -> Vec<u8> {
    const MIB: usize = 1024 * 1024;
    let prefix = format!("{record_bytes} comment=");
    let filler = record_bytes as usize - prefix.len() - 1;
    let mut header = tar::Header::new_ustar();
    header.set_path("PaxHeaders/bin").unwrap();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_size(record_bytes);
    header.set_mode(0o644);
    header.set_cksum();
    let mut first = header.as_bytes().to_vec();
    first.extend_from_slice(prefix.as_bytes());
    let mut out = gzip(&first);
    let full = gzip(&vec![b'a'; MIB]);
    for _ in 0..filler / MIB {
        out.extend_from_slice(&full);
    }
    let mut last = vec![b'a'; filler % MIB];
    last.push(b'\n');
    let padding = (512 - (record_bytes % 512) as usize) % 512;
    last.resize(last.len() + padding, 0);
    last.extend_from_slice(&Tar::new().file("bin/cli", b"#!/bin/sh\necho hi\n").finish());
    out.extend_from_slice(&gzip(&last));
    out
}
