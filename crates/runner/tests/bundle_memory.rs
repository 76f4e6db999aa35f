//! A bundle of about 1 MB whose single PAX record decompresses to 1 GiB: the installer refuses it after
//! reading 64 KiB of metadata, and its memory does not grow with the record (an archive reader that
//! buffers metadata whole took the runner to 2.1 GiB). Alone in its test binary so the process's peak
//! memory is this test's.

mod support;

use edgeshell_core::bundles::{BundleError, BundlePolicy};
use edgeshell_runner::bundle::{extract_fresh, InstallError};
use support::bundles::pax_bomb;

/// The process's peak resident memory (`VmHWM`), in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_gigabyte_pax_record_is_refused_without_being_buffered() {
    let bomb = pax_bomb(1 << 30);
    assert!(bomb.len() < 2 << 20, "the bomb is {} bytes", bomb.len());
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bomb.tgz");
    std::fs::write(&archive, &bomb).unwrap();
    let policy = BundlePolicy::new(&["bundles.test"], &[] as &[&str]).unwrap();
    let before = peak_kib();
    let result = extract_fresh(std::fs::File::open(&archive).unwrap(), &policy, &dir.path().join("out"));
    let grown = peak_kib().saturating_sub(before);
    let error = result.expect_err("the bomb installed");
    assert!(matches!(&error, InstallError::Refused(BundleError::Bomb { what: "metadata size", .. })), "{error:?}");
    assert!(grown < 32 * 1024, "peak memory grew by {grown} KiB reading the bomb");
    assert!(!dir.path().join("out").exists());
}
