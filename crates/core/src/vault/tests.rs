//! Envelope encryption: round trips, rotation, and what must not open.

use super::*;

fn ring(current: (&str, u8), previous: &[(&str, u8)]) -> KekRing {
    let text = |(id, b): (&str, u8)| Kek::generate_text(id, [b; 32]);
    let previous: Vec<String> = previous.iter().map(|p| text(*p)).collect();
    KekRing::parse(&text(current), &previous.join(",")).unwrap()
}

#[test]
fn a_secret_round_trips_through_a_wrapped_data_key() {
    let ring = ring(("k1", 1), &[]);
    let key = DataKey::from_random([9; 32]);
    let wrapped = ring.wrap("dev:alice", &key, [1; NONCE_LEN]);
    assert_eq!(wrapped.kek_id, "k1");
    let sealed = key.seal("dev:alice", "ANTHROPIC_API_KEY", b"sk-ant-123", [2; NONCE_LEN]);
    assert!(!sealed.windows(10).any(|w| w == b"sk-ant-123"), "the value is not in the ciphertext");
    let key = ring.unwrap("dev:alice", &wrapped).unwrap();
    assert_eq!(key.open("dev:alice", "ANTHROPIC_API_KEY", &sealed).unwrap(), b"sk-ant-123");
    assert!(!format!("{key:?} {ring:?}").contains("9, 9"), "key material is never printed");
}

#[test]
fn nothing_opens_for_another_owner_name_key_or_after_tampering() {
    let ring = ring(("k1", 1), &[]);
    let key = DataKey::from_random([9; 32]);
    let sealed = key.seal("dev:alice", "TOKEN", b"value", [2; NONCE_LEN]);
    assert_eq!(key.open("dev:bob", "TOKEN", &sealed), Err(VaultError::Unsealable));
    assert_eq!(key.open("dev:alice", "OTHER", &sealed), Err(VaultError::Unsealable));
    assert_eq!(DataKey::from_random([8; 32]).open("dev:alice", "TOKEN", &sealed), Err(VaultError::Unsealable));
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 1;
        assert_eq!(key.open("dev:alice", "TOKEN", &bad), Err(VaultError::Unsealable), "byte {i}");
    }
    assert_eq!(key.open("dev:alice", "TOKEN", &sealed[..sealed.len() - 1]), Err(VaultError::Unsealable));
    assert_eq!(key.open("dev:alice", "TOKEN", &[]), Err(VaultError::Unsealable));
    // A wrapped key moved to another user does not unwrap.
    let wrapped = ring.wrap("dev:alice", &key, [1; NONCE_LEN]);
    assert_eq!(ring.unwrap("dev:bob", &wrapped).unwrap_err(), VaultError::Unsealable);
}

#[test]
fn rotation_keeps_every_key_readable_and_rewraps_to_the_current() {
    let old = ring(("k1", 1), &[]);
    let key = DataKey::from_random([9; 32]);
    let sealed = key.seal("u", "S", b"v", [2; NONCE_LEN]);
    let wrapped = old.wrap("u", &key, [1; NONCE_LEN]);
    let rotated = ring(("k2", 2), &[("k1", 1)]);
    assert!(rotated.needs_rewrap(&wrapped));
    let key = rotated.unwrap("u", &wrapped).unwrap();
    let rewrapped = rotated.wrap("u", &key, [3; NONCE_LEN]);
    assert!(!rotated.needs_rewrap(&rewrapped));
    // Once every key is rewrapped, the old KEK can go.
    let only_new = ring(("k2", 2), &[]);
    assert_eq!(only_new.unwrap("u", &rewrapped).unwrap().open("u", "S", &sealed).unwrap(), b"v");
    assert_eq!(only_new.unwrap("u", &wrapped).unwrap_err(), VaultError::UnknownKek("k1".into()));
}

#[test]
fn bad_keks_and_values_are_refused() {
    for bad in ["", "k1", "k1:short", ":AAAA", "k 1:AAAA", &format!("{}:x", "a".repeat(33))] {
        assert!(matches!(Kek::parse(bad), Err(VaultError::BadKek(_))), "{bad:?}");
    }
    let k = Kek::generate_text("k1", [1; 32]);
    assert!(KekRing::parse(&k, &k).is_err(), "one id is current or previous");
    assert!(check_secret_value("").is_err() && check_secret_value("a\0b").is_err());
    assert!(check_secret_value(&"x".repeat(MAX_SECRET_VALUE + 1)).is_err());
    assert!(check_secret_name("ANTHROPIC_API_KEY").is_ok() && check_secret_name("PATH").is_err());
}
