//! The screen off the relay's path: a thread of its own feeds the terminal-state library (which parses
//! some tens of MB/s, while the relay moves more than a hundred), so keeping the screen never slows the
//! program's output. When output outruns it, the bytes it could not take are not queued without
//! bound: the keeper falls behind, keeps the last [`TAIL_BYTES`] of output, and once the thread has
//! caught up it plays that tail over the screen it has (the modes, the alternate screen and what was
//! drawn stay; what scrolled or was redrawn comes back from the tail: plain output and programs that
//! redraw in place are whole again; only what the skipped bytes alone changed is lost). A snapshot
//! asked for while behind waits for that.

use crate::screen::Screen;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Output chunks waiting for the screen thread at most (each at most one PTY read).
const QUEUE: usize = 64;
/// Output kept to rebuild the screen from after falling behind.
pub const TAIL_BYTES: usize = 256 * 1024;

/// A snapshot: the output offset it stands at and the drawing.
pub type Snapshot = (u64, Vec<u8>);

enum Job {
    Output(Vec<u8>),
    Resize(u16, u16),
    /// Play `tail`, the output that ends at `offset`, over the screen (output before it was skipped).
    Restart {
        offset: u64,
        tail: Vec<u8>,
    },
    Snapshot(oneshot::Sender<Snapshot>),
}

/// The relay's handle on the screen thread.
pub struct ScreenKeeper {
    jobs: SyncSender<Job>,
    /// Jobs sent and not yet done.
    queued: Arc<AtomicUsize>,
    /// Output bytes read so far.
    read: u64,
    /// The thread missed output since `tail` began; it restarts from it once idle.
    behind: bool,
    tail: VecDeque<u8>,
    size: (u16, u16),
    /// How many times the thread was restarted from the tail.
    restarts: u64,
}

impl ScreenKeeper {
    /// A blank screen of this size, kept by a new thread (which ends with the keeper).
    pub fn start(cols: u16, rows: u16) -> std::io::Result<ScreenKeeper> {
        let (jobs, inbox) = sync_channel::<Job>(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let done = queued.clone();
        std::thread::Builder::new().name("screen".into()).spawn(move || {
            let mut screen = Screen::new(cols, rows);
            let mut at = 0u64;
            while let Ok(job) = inbox.recv() {
                match job {
                    Job::Output(bytes) => {
                        screen.feed(&bytes);
                        at += bytes.len() as u64;
                    }
                    Job::Resize(cols, rows) => screen.resize(cols, rows),
                    Job::Restart { offset, tail } => {
                        screen.feed(resumable(&tail));
                        at = offset;
                    }
                    Job::Snapshot(reply) => {
                        let _ = reply.send((at, screen.snapshot()));
                    }
                }
                done.fetch_sub(1, Ordering::AcqRel);
            }
        })?;
        Ok(ScreenKeeper {
            jobs,
            queued,
            read: 0,
            behind: false,
            tail: VecDeque::new(),
            size: (cols, rows),
            restarts: 0,
        })
    }

    fn send(&self, job: Job) -> Result<(), TrySendError<Job>> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.jobs.try_send(job).inspect_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Output read from the PTY.
    pub fn output(&mut self, bytes: &[u8]) {
        self.read += bytes.len() as u64;
        if self.behind || self.send(Job::Output(bytes.to_vec())).is_err() {
            if !self.behind {
                self.behind = true;
                self.tail.clear();
            }
            self.tail.extend(bytes);
            let excess = self.tail.len().saturating_sub(TAIL_BYTES);
            self.tail.drain(..excess);
            self.catch_up();
        }
    }

    /// The terminal was resized.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.size = (cols, rows);
        if self.send(Job::Resize(cols, rows)).is_err() {
            // The queue is full of output: the restart after it takes the new size.
            self.behind = true;
        }
    }

    /// Once the thread has done everything it was given, a keeper that fell behind restarts it from
    /// the tail.
    fn catch_up(&mut self) {
        if !self.behind || self.queued.load(Ordering::Acquire) > 0 {
            return;
        }
        let _ = self.send(Job::Resize(self.size.0, self.size.1));
        let tail: Vec<u8> = self.tail.drain(..).collect();
        if self.send(Job::Restart { offset: self.read, tail }).is_ok() {
            self.behind = false;
            self.restarts += 1;
            tracing::debug!(restarts = self.restarts, "the screen caught up with the output from its tail");
        }
    }

    /// How many times output outran the screen thread, which then started afresh from the tail.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Asks for a snapshot of the screen as it stands after everything given so far; `None` while
    /// the thread is still catching up (ask again later).
    pub fn snapshot(&mut self) -> Option<oneshot::Receiver<Snapshot>> {
        self.catch_up();
        if self.behind {
            return None;
        }
        let (reply, answer) = oneshot::channel();
        self.send(Job::Snapshot(reply)).ok().map(|()| answer)
    }
}

/// `tail` from its first line start or escape sequence (within its first 4 KiB), so playing it does
/// not begin inside a sequence or a character cut in half.
fn resumable(tail: &[u8]) -> &[u8] {
    let head = &tail[..tail.len().min(4096)];
    match head.iter().position(|b| *b == b'\n' || *b == 0x1b) {
        Some(at) if head[at] == b'\n' => &tail[at + 1..],
        Some(at) => &tail[at..],
        None => tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_snapshot_stands_after_all_the_output_given() {
        let mut keeper = ScreenKeeper::start(40, 5).unwrap();
        keeper.output(b"hello\r\n\x1b[1mworld");
        let (offset, drawing) = keeper.snapshot().unwrap().await.unwrap();
        assert_eq!(offset, 16);
        let mut copy = Screen::new(40, 5);
        copy.feed(&drawing);
        assert_eq!(copy.screen().contents(), "hello\nworld");
    }

    #[tokio::test]
    async fn a_flood_it_cannot_keep_up_with_is_skipped_and_the_screen_rebuilt_from_the_tail() {
        let mut keeper = ScreenKeeper::start(30, 4).unwrap();
        let mut last = String::new();
        for i in 0..200_000 {
            last = format!("line {i}\r\n");
            keeper.output(last.as_bytes());
        }
        keeper.output(b"$ ");
        // Whatever it skipped, once it catches up the screen is the flood's last lines.
        let answer = loop {
            if let Some(answer) = keeper.snapshot() {
                break answer.await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let mut copy = Screen::new(30, 4);
        copy.feed(&answer.1);
        assert_eq!(answer.0, keeper.read, "the snapshot stands after every byte read");
        assert!(keeper.restarts() > 0, "the flood outran the thread");
        assert!(copy.screen().contents().contains(last.trim_end()), "{}", copy.screen().contents());
        assert!(copy.screen().contents().ends_with("$ "), "{}", copy.screen().contents());
    }

    #[tokio::test]
    async fn a_full_screen_program_flooding_in_place_keeps_its_screen_and_drawing_through_a_catch_up() {
        let mut keeper = ScreenKeeper::start(40, 12).unwrap();
        keeper.output(b"$ top\r\n\x1b[?1049h\x1b[2J\x1b[1;1HAGENT working\x1b[5;3Hbox");
        for i in 0..100_000 {
            keeper.output(format!("\x1b[10;1Hstep {i:06}").as_bytes());
        }
        let (_, drawing) = loop {
            if let Some(answer) = keeper.snapshot() {
                break answer.await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert!(keeper.restarts() > 0, "the flood outran the thread");
        let mut copy = Screen::new(40, 12);
        copy.feed(&drawing);
        assert!(copy.screen().alternate_screen());
        let contents = copy.screen().contents();
        assert!(contents.starts_with("AGENT working") && contents.contains("box"), "{contents}");
        assert!(contents.contains("step 099999"), "{contents}");
        copy.feed(b"\x1b[?1049l");
        assert!(copy.screen().contents().starts_with("$ top"), "{}", copy.screen().contents());
    }
}
