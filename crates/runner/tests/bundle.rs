//! The bundle installer against an attack corpus, served over real HTTPS (a throwaway CA, the name
//! `bundles.test` resolved to loopback): each bad bundle is refused with a clear error, the target
//! directory is gone afterwards, and nothing is written anywhere else. A good bundle installs with its
//! modes.

mod support;

use edgeshell_core::bundles::{BundleError, BundlePolicy};
use edgeshell_runner::bundle::{client_builder, install, InstallError};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use support::bundles::{digest, gzip, pax_bomb, Server, Tar, HOST};

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
        case(
            "symlink chain out",
            // a/b is the root; a/c = a/b/.. is lexically a, but really the root's parent (and so on to /).
            Tar::new()
                .entry(b"a/b", T::Symlink, b"..", b"", 0o777)
                .entry(b"a/c", T::Symlink, b"b/..", b"", 0o777)
                .finish(),
            |e| refused(e, |b| matches!(b, BundleError::LinkEscape { kind: "symlink", .. })),
        ),
        case(
            "symlink redirecting an earlier one",
            Tar::new()
                .entry(b"c", T::Symlink, b"a/b/../x", b"", 0o777)
                .entry(b"a/b", T::Symlink, b"..", b"", 0o777)
                .finish(),
            |e| refused(e, |b| matches!(b, BundleError::UnsafePath { reason, .. } if reason.contains("redirect"))),
        ),
        case("PAX record of 64 MiB", pax_bomb(64 << 20), |e| {
            refused(e, |b| matches!(b, BundleError::Bomb { what: "metadata size", .. }))
        }),
        case("terminal escapes in a name", Tar::new().file("x\u{1b}]0;pwned\u{7}", b"x").finish(), |e| {
            refused(e, |b| matches!(b, BundleError::UnsafePath { .. }))
        }),
        case("terminal escapes in a header field", escapes_in_the_size_field(), |e| {
            matches!(e, InstallError::Archive(_))
        }),
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
        assert!(!error.to_string().chars().any(char::is_control), "{}: archive bytes printed raw: {error:?}", c.name);
        assert!(!dest.exists(), "{}: the target directory was left behind", c.name);
        assert_eq!(tree(root.path()), before, "{}: something was written outside the target", c.name);
        assert!(!Path::new("/tmp/edgeshell-absolute-escape").exists());
    }
}

/// A tar whose size field holds a terminal escape (with a valid checksum, so the reader parses it).
fn escapes_in_the_size_field() -> Vec<u8> {
    let mut archive = Tar::new().file("x", b"1").finish();
    let mut header = tar::Header::new_old();
    header.as_mut_bytes().copy_from_slice(&archive[..512]);
    header.as_old_mut().size.copy_from_slice(b"\x1b[2J\x1b]0;xy\x07 ");
    header.set_cksum();
    archive[..512].copy_from_slice(header.as_bytes());
    archive
}

/// Runs `program` in `dir`, failing the test on a non-zero exit.
fn run(dir: &Path, program: &str, args: &[&str]) {
    let status = std::process::Command::new(program).args(args).current_dir(dir).status().unwrap();
    assert!(status.success(), "{program} {args:?}: {status}");
}

#[tokio::test]
async fn bundles_made_by_git_archive_and_tar_c_install() {
    use std::os::unix::fs::PermissionsExt;
    // The two most common ways to package a directory: `tar -C dir .` (a `./` entry first) and
    // `git archive` (a global PAX header with the commit first).
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::create_dir_all(src.join("share")).unwrap();
    std::fs::write(src.join("bin/cli"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(src.join("bin/cli"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(src.join("share/readme"), "read me").unwrap();
    std::os::unix::fs::symlink("cli", src.join("bin/cli-link")).unwrap();
    run(dir.path(), "tar", &["-czf", "tar-c.tgz", "-C", "src", "."]);
    run(&src, "git", &["init", "-q"]);
    run(&src, "git", &["add", "-A"]);
    run(&src, "git", &["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "bundle"]);
    run(&src, "git", &["archive", "--format=tar.gz", "-o", "../git-archive.tgz", "HEAD"]);
    let bodies: Vec<(String, Vec<u8>)> = ["tar-c.tgz", "git-archive.tgz"]
        .iter()
        .map(|name| (format!("/{name}"), std::fs::read(dir.path().join(name)).unwrap()))
        .collect();
    let server = Server::start(bodies.iter().cloned().collect()).await;
    for (path, body) in &bodies {
        let policy = BundlePolicy::new(&[server.host()], &[digest(body)]).unwrap();
        let client =
            client_builder(&policy, server.ca_pem.as_bytes()).unwrap().resolve(HOST, server.addr).build().unwrap();
        let dest = dir.path().join(format!("installed{}", path.replace(['/', '.'], "-")));
        let installed = install(&client, &policy, &server.url(path), &dest).await;
        let installed = installed.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(installed.entries >= 5, "{path}: {installed:?}");
        let out = std::process::Command::new(dest.join("bin/cli")).output().unwrap();
        assert_eq!(out.stdout, b"hi\n", "{path}");
        assert_eq!(std::fs::read(dest.join("share/readme")).unwrap(), b"read me", "{path}");
        assert_eq!(std::fs::read_link(dest.join("bin/cli-link")).unwrap(), Path::new("cli"), "{path}");
        assert!(!dest.join("pax_global_header").exists(), "{path}: a global header became a file");
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
