//! What keeping the screen costs the runner: the relay's work for 1 MiB of PTY output (the core's link
//! taking each chunk and framing it for the room) with and without feeding the terminal-state library,
//! on three kinds of output (a log flood of plain lines, coloured compiler-style lines with wide
//! characters, a full-screen program redrawing in place), and what one snapshot costs. `cargo xtask
//! bench` prints the ratios; the target is a throughput with the screen of at least 0.8x the
//! throughput without.

#![allow(missing_docs)] // criterion_group! generates undocumented functions.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgeshell_core::machine::StateMachine;
use edgeshell_core::protocol::{Frame, Role, Welcome};
use edgeshell_core::runner_link::{Effect, Event, LinkConfig, RunnerLink};
use edgeshell_core::time::Timestamp;
use edgeshell_runner::screen::Screen;

/// What the relay reads from the PTY at once.
const CHUNK: usize = 16 * 1024;

/// 1 MiB of each kind of output.
fn outputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut i = 0u64;
    let mut plain = Vec::new();
    while plain.len() < 1 << 20 {
        plain.extend_from_slice(format!("2026-12-07T14:00:00Z INFO request {i} served in 3 ms\r\n").as_bytes());
        i += 1;
    }
    let mut colour = Vec::new();
    while colour.len() < 1 << 20 {
        let line = format!("\x1b[1;32m   Compiling\x1b[0m crate-{i} v0.1.0 (\x1b[36m/work/crate-{i}\x1b[0m) 中文\r\n");
        colour.extend_from_slice(line.as_bytes());
        i += 1;
    }
    let mut tui = b"\x1b[?1049h".to_vec();
    while tui.len() < 1 << 20 {
        tui.extend_from_slice(format!("\x1b[{};1H\x1b[44;37m step {i:06} \x1b[0m\x1b[K", i % 40 + 1).as_bytes());
        i += 1;
    }
    vec![("plain", plain), ("colour", colour), ("tui", tui)]
}

/// A link welcomed with all the credit it can use, as the relay holds it.
fn link(now: Timestamp) -> RunnerLink {
    let mut link = RunnerLink::new(LinkConfig::DEFAULT, "join".into(), None, 7, now);
    link.handle_timeout(now);
    link.handle_event(Event::Connected, now);
    let welcome = Welcome {
        role: Role::Runner,
        session: "s".into(),
        offset: 0,
        resume_ticket: "r".into(),
        window: u32::MAX,
        expires_at: 0,
        heartbeat_ms: 30_000,
    };
    link.handle_event(Event::Message(Frame::Welcome(welcome).encode()), now);
    link
}

/// The relay's work for `bytes`: each chunk to the screen (when there is one) and to the link, whose
/// frames are counted; the room's credit acknowledges each, so nothing piles up.
fn relay(bytes: &[u8], mut screen: Option<&mut Screen>) -> u64 {
    let now = Timestamp::from_secs(1_000_000);
    let mut link = link(now);
    let mut sent = 0u64;
    for chunk in bytes.chunks(CHUNK) {
        if let Some(screen) = screen.as_deref_mut() {
            screen.feed(chunk);
        }
        for effect in link.handle_event(Event::Output(chunk.to_vec()), now) {
            if let Effect::Send(frame) = effect {
                sent += frame.len() as u64;
            }
        }
        let acked = link.produced();
        link.handle_event(Event::Message(Frame::Credit { acked, limit: acked + u64::from(u32::MAX) }.encode()), now);
    }
    sent
}

fn screen_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay");
    for (kind, bytes) in outputs() {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("without_screen", kind), &bytes, |b, bytes| {
            b.iter(|| relay(black_box(bytes), None))
        });
        group.bench_with_input(BenchmarkId::new("with_screen", kind), &bytes, |b, bytes| {
            let mut screen = Screen::new(120, 40);
            b.iter(|| relay(black_box(bytes), Some(&mut screen)))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("snapshot");
    for (kind, bytes) in outputs() {
        let mut screen = Screen::new(120, 40);
        screen.feed(&bytes);
        group.bench_function(BenchmarkId::new("120x40", kind), |b| b.iter(|| black_box(screen.snapshot()).len()));
    }
    group.finish();
}

criterion_group!(benches, screen_cost);
criterion_main!(benches);
