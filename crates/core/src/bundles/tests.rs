//! The bundle policy and the extraction plan against an attack corpus of entry headers.

use super::*;

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn policy() -> BundlePolicy {
    BundlePolicy::new(&["bundles.example.com"], &[format!("sha256:{DIGEST}")]).unwrap()
}

fn check_url(url: &str, ok: bool) {
    assert_eq!(policy().check_url(url).is_ok(), ok, "{url}");
}

#[test]
fn urls() {
    check_url("https://bundles.example.com/cli-1.2.tar.gz", true);
    check_url("https://BUNDLES.example.com:443/x", true);
    check_url("http://bundles.example.com/x", false);
    check_url("https://bundles.example.com.evil.net/x", false);
    check_url("https://evil.net/bundles.example.com", false);
    check_url("https://bundles.example.com@evil.net/x", false);
    check_url("https://bundles.example.com:8443/x", false);
    check_url("https://bundles.example.com:/x", false);
    let ported = BundlePolicy::new(&["mirror.example.com:8443"], &[DIGEST]).unwrap();
    assert!(ported.check_url("https://mirror.example.com:8443/x").is_ok());
    assert!(ported.check_url("https://mirror.example.com/x").is_err());
    assert!(ported.check_url("https://mirror.example.com:9443/x").is_err());
    check_url("https://bundles.example.com\n/x", false);
    check_url("file:///etc/passwd", false);
}

#[test]
fn digests() {
    let p = policy();
    let mut d = parse_digest(DIGEST).unwrap();
    assert_eq!(p.check_download(10, &d), Ok(()));
    d[0] ^= 1;
    assert!(matches!(p.check_download(10, &d), Err(BundleError::DigestNotAllowed(_))));
    assert!(matches!(p.check_download(p.max_download_bytes + 1, &d), Err(BundleError::TooLarge { .. })));
    assert!(BundlePolicy::new(&["h"], &["abc"]).is_err());
    assert!(BundlePolicy::new(&["h"], &[&"zz".repeat(32)]).is_err());
}

fn file(path: &str) -> EntryHeader<'_> {
    EntryHeader { path: path.as_bytes(), kind: EntryKind::File, size: 10, mode: 0o4777 }
}

fn link<'a>(path: &'a str, target: &str, hard: bool) -> EntryHeader<'a> {
    let target = target.as_bytes().to_vec();
    let kind = if hard { EntryKind::Hardlink { target } } else { EntryKind::Symlink { target } };
    EntryHeader { path: path.as_bytes(), kind, size: 0, mode: 0o777 }
}

fn check(entries: &[EntryHeader<'_>], expected: Result<usize, &str>) {
    let mut plan = ExtractionPlan::new(ExtractionLimits { max_entries: 5, ..ExtractionLimits::default() });
    let got = entries.iter().try_fold(0, |n, e| plan.admit(e).map(|_| n + 1)).map_err(|e| e.to_string());
    match (&got, expected) {
        (Ok(n), Ok(m)) => assert_eq!(*n, m),
        (Err(g), Err(w)) => assert!(g.contains(w), "got {g:?}, want {w:?}"),
        _ => panic!("got {got:?}, want {expected:?}"),
    }
}

#[test]
fn attack_corpus() {
    check(&[file("bin/cli"), file("./lib/x.js")], Ok(2));
    check(&[file("../escape")], Err("parent directory"));
    check(&[file("a/../../escape")], Err("parent directory"));
    check(&[file("/etc/passwd")], Err("absolute path"));
    check(&[file("C:/x")], Err("absolute path"));
    check(&[file("a\\..\\x")], Err("backslash"));
    check(&[file("a\u{1b}[2J")], Err("control character"));
    check(&[link("l", "/etc", false)], Err("points outside"));
    check(&[link("a/l", "../../etc", false)], Err("points outside"));
    check(&[link("a/l", "../b", false)], Ok(1));
    check(&[link("l", "a", false), file("l/passwd")], Err("through a symlink"));
    check(&[link("l", "a", false), file("l")], Err("through a symlink"));
    check(&[link("h", "/etc/shadow", true)], Err("points outside"));
    check(&[link("h", "../x", true)], Err("points outside"));
    check(&[link("h", "not-yet", true)], Err("points outside"));
    check(&[file("x"), link("h", "x", true)], Ok(2));
    check(&[file("x"), file("x")], Err("duplicate"));
    // Chains: lexically inside, but through an earlier symlink to the root's parent (and on to `/`).
    check(&[link("a/b", "..", false), link("c", "a/b/../etc", false)], Err("points outside"));
    check(&[link("a/b", "..", false), link("c", "a/b/..", false)], Err("points outside"));
    // The same in the other order: the later link would redirect the earlier one.
    check(&[link("c", "a/b/../x", false), link("a/b", "..", false)], Err("redirect an earlier symlink"));
    // Chains that stay inside, and a loop (harmless itself), which nothing may resolve through.
    check(&[link("a/b", "..", false), link("c", "a/b/x", false), link("d", "c", false)], Ok(3));
    check(&[link("x", "y", false), link("y", "x", false), link("z", "x/..", false)], Err("points outside"));
    // What `tar -C dir .` and `git archive` write around the files.
    let root = EntryHeader { path: b"./", kind: EntryKind::Dir, size: 0, mode: 0o755 };
    let global = EntryHeader { path: b"pax_global_header", kind: EntryKind::GlobalHeader, size: 52, mode: 0o666 };
    check(&[global, root.clone(), file("./bin/cli")], Ok(3));
    check(&[EntryHeader { kind: EntryKind::File, ..root }], Err("empty path"));
    for (kind, name) in [
        (EntryKind::CharDevice, "character device"),
        (EntryKind::BlockDevice, "block device"),
        (EntryKind::Fifo, "fifo"),
    ] {
        check(&[EntryHeader { path: b"dev", kind, size: 0, mode: 0 }], Err(name));
    }
    check(&[file("1"), file("2"), file("3"), file("4"), file("5"), file("6")], Err("entry count"));
    check(&[EntryHeader { path: b"big", kind: EntryKind::File, size: u64::MAX, mode: 0 }], Err("file size"));
}

#[test]
fn metadata_is_capped_before_it_is_buffered() {
    let mut plan = policy().extraction();
    // The first header and a PAX record: metadata, capped at 64 KiB.
    assert!(plan.check_stream(512, 100).is_ok());
    assert!(matches!(plan.check_stream(64 * 1024, 200), Err(BundleError::Bomb { what: "metadata size", .. })));
    // Content is not metadata; what follows it is again.
    let mut plan = policy().extraction();
    plan.check_stream(512, 100).unwrap();
    plan.content_begins();
    plan.check_stream(1024 * 1024, 100_000).unwrap();
    plan.content_ends();
    plan.check_stream(60 * 1024, 100_000).unwrap();
    assert!(plan.check_stream(8 * 1024, 100_000).is_err());
}

#[test]
fn quoted_archive_bytes_are_printable() {
    assert_eq!(printable("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
    let mut plan = policy().extraction();
    let error = plan.admit(&file("x\u{1b}]0;pwned\u{7}")).unwrap_err().to_string();
    assert!(!error.chars().any(char::is_control), "{error:?}");
}

#[test]
fn modes_are_sanitized_and_bombs_caught() {
    let mut plan = policy().extraction();
    assert_eq!(plan.admit(&file("x")).unwrap(), SafeEntry::File { path: "x".into(), mode: 0o755, size: 10 });
    assert!(plan.check_ratio(1000, 1024 * 1024).is_ok());
    assert!(plan.check_ratio(100_000, 100 * 100_000).is_ok());
    assert!(matches!(
        plan.check_ratio(100_000, 101 * 100_000),
        Err(BundleError::Bomb { what: "compression ratio", .. })
    ));
    let mut total = ExtractionPlan::new(ExtractionLimits { max_total_bytes: 15, ..ExtractionLimits::default() });
    assert!(total.admit(&file("a")).is_ok());
    assert!(matches!(total.admit(&file("b")), Err(BundleError::Bomb { what: "total size", .. })));
}
