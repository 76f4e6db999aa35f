//! RS256 costs: verify with `ring`, `crypto-bigint` (`MontgomeryRs256`) and `jwt-compact` + `rsa` (same
//! key, same token, same run), and signing with `RsaSigner` (`ring` natively). Report ratios; absolute
//! figures depend on the machine.
#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use edgeshell_core::tokens::{SignatureVerifier, TokenSigner};
use edgeshell_keys::{now_or_never, JwtCompactRs256, MontgomeryRs256, PrivateJwk, RingVerifier, RsaSigner};

fn signer() -> RsaSigner {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/pyjwt-rs256.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let jwk: PrivateJwk = serde_json::from_value(v["jwk"].clone()).unwrap();
    RsaSigner::from_jwk(None, &jwk).unwrap()
}

fn rs256(c: &mut Criterion) {
    let signer = signer();
    let input = b"eyJhbGciOiJSUzI1NiIsImtpZCI6InB5and0LTEifQ.eyJzaWQiOiJzMSIsInNjb3BlIjoic2Vzc2lvbjphdHRhY2gifQ";
    let sig = signer.sign(input).unwrap();
    let key = signer.verifying_key();
    let mut g = c.benchmark_group("rs256_2048");
    g.bench_function("verify_ring", |b| {
        b.iter(|| now_or_never(RingVerifier.verify(key, black_box(input), &sig)).unwrap())
    });
    g.bench_function("verify_jwt_compact_rsa", |b| {
        b.iter(|| now_or_never(JwtCompactRs256.verify(key, black_box(input), &sig)).unwrap())
    });
    g.bench_function("verify_montgomery", |b| {
        b.iter(|| now_or_never(MontgomeryRs256.verify(key, black_box(input), &sig)).unwrap())
    });
    g.bench_function("sign_ring", |b| b.iter(|| signer.sign(black_box(input)).unwrap()));
    g.finish();
}

criterion_group!(benches, rs256);
criterion_main!(benches);
