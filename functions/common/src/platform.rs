//! The clock and randomness, the two inputs the core takes from its caller.

use edgeshell_core::time::Timestamp;

/// Wall-clock time now.
pub fn now() -> Timestamp {
    let t = wasi::clocks::wall_clock::now();
    Timestamp::from_millis(t.seconds * 1000 + u64::from(t.nanoseconds / 1_000_000))
}

/// Monotonic time in nanoseconds, for durations.
pub fn monotonic_ns() -> u64 {
    wasi::clocks::monotonic_clock::now()
}

/// 16 bytes from the host's cryptographically secure generator.
pub fn entropy() -> [u8; 16] {
    let bytes = wasi::random::random::get_random_bytes(16);
    let mut out = [0u8; 16];
    out.copy_from_slice(&bytes[..16]);
    out
}
