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

/// Time spent in one kind of work, for `Server-Timing`.
#[derive(Debug, Default)]
pub struct Spent {
    nanos: core::cell::Cell<u64>,
    count: core::cell::Cell<u32>,
}

impl Spent {
    /// Runs `f`, adding its duration.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = monotonic_ns();
        let out = f();
        self.nanos.set(self.nanos.get() + monotonic_ns().saturating_sub(start));
        self.count.set(self.count.get() + 1);
        out
    }

    /// A `Server-Timing` entry: `name;dur=<ms>;desc="<count> <what>"`.
    pub fn entry(&self, name: &str, what: &str) -> String {
        format!("{name};dur={:.3};desc=\"{} {what}\"", self.nanos.get() as f64 / 1e6, self.count.get())
    }
}
