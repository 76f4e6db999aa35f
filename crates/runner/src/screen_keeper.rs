//! The screen off the relay's path: a thread of its own feeds the terminal-state library (which parses
//! some tens of MB/s, while the relay moves more than a hundred), so keeping the screen never slows the
//! program's output. Output waits for the thread in a queue of up to [`QUEUE_BYTES`], which absorbs
//! the bursts of full-screen programs whole. Only a flood longer than that is not queued without bound:
//! the keeper falls behind, keeps the last [`TAIL_BYTES`] of output, and once the thread has caught up
//! it plays that tail over the screen it has, from the first point in it that sets where the cursor is
//! (a line start or a cursor position), so nothing of the tail is drawn where the skipped bytes would
//! not have left the cursor. The modes, the alternate screen and what was drawn stay; what scrolled or
//! was redrawn comes back from the tail: plain output and programs that redraw in place are whole
//! again; only what the skipped bytes alone changed is lost. A snapshot asked for while behind waits.

use crate::screen::Screen;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, SendError, Sender};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Output bytes waiting for the screen thread at most.
pub const QUEUE_BYTES: usize = 4 << 20;
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
    jobs: Sender<Job>,
    /// Jobs sent and not yet done.
    queued: Arc<AtomicUsize>,
    /// Output bytes sent and not yet parsed.
    queued_bytes: Arc<AtomicUsize>,
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
        let (jobs, inbox) = channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let (done, parsed) = (queued.clone(), queued_bytes.clone());
        std::thread::Builder::new().name("screen".into()).spawn(move || {
            let mut screen = Screen::new(cols, rows);
            let mut at = 0u64;
            while let Ok(job) = inbox.recv() {
                match job {
                    Job::Output(bytes) => {
                        screen.feed(&bytes);
                        at += bytes.len() as u64;
                        parsed.fetch_sub(bytes.len(), Ordering::AcqRel);
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
            queued_bytes,
            read: 0,
            behind: false,
            tail: VecDeque::new(),
            size: (cols, rows),
            restarts: 0,
        })
    }

    fn send(&self, job: Job) -> Result<(), SendError<Job>> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.jobs.send(job).inspect_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Queues output for the thread unless that would pass [`QUEUE_BYTES`].
    fn send_output(&self, bytes: &[u8]) -> bool {
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if queued + bytes.len() > QUEUE_BYTES {
            return false;
        }
        self.queued_bytes.fetch_add(bytes.len(), Ordering::AcqRel);
        let sent = self.send(Job::Output(bytes.to_vec())).is_ok();
        if !sent {
            self.queued_bytes.fetch_sub(bytes.len(), Ordering::AcqRel);
        }
        sent
    }

    /// Output read from the PTY.
    pub fn output(&mut self, bytes: &[u8]) {
        self.read += bytes.len() as u64;
        if self.behind || !self.send_output(bytes) {
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

/// How far into the tail a point that sets the cursor is looked for.
const RESUME_SEARCH: usize = 64 * 1024;

/// `tail` from its first point that sets where the cursor is (within its first 64 KiB): after a line
/// feed (plain output goes on from a line start), or at a cursor position (`ESC [ row ; col H` or `f`,
/// what full-screen programs draw from). Failing both, from its first escape sequence, so playing it at
/// least never begins inside a sequence or a character cut in half.
fn resumable(tail: &[u8]) -> &[u8] {
    let head = &tail[..tail.len().min(RESUME_SEARCH)];
    let positions = |at: usize| {
        let params = head[at..].iter().skip(2).take_while(|b| b.is_ascii_digit() || **b == b';').count();
        head.get(at + 1) == Some(&b'[') && matches!(head.get(at + 2 + params), Some(b'H' | b'f'))
    };
    let sets_cursor = head.iter().enumerate().find_map(|(at, b)| match b {
        b'\n' => Some(at + 1),
        0x1b if positions(at) => Some(at),
        _ => None,
    });
    match sets_cursor.or_else(|| head.iter().position(|b| *b == 0x1b)) {
        Some(at) => &tail[at..],
        None => tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot once the keeper has caught up (it answers `None` while behind).
    async fn caught_up(keeper: &mut ScreenKeeper) -> Snapshot {
        loop {
            if let Some(answer) = keeper.snapshot() {
                return answer.await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

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
        for i in 0..1_000_000 {
            last = format!("line {i}\r\n");
            keeper.output(last.as_bytes());
        }
        keeper.output(b"$ ");
        // Whatever it skipped, once it catches up the screen is the flood's last lines.
        let answer = caught_up(&mut keeper).await;
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
        for i in 0..500_000 {
            keeper.output(format!("\x1b[10;1Hstep {i:06}").as_bytes());
        }
        let (_, drawing) = caught_up(&mut keeper).await;
        assert!(keeper.restarts() > 0, "the flood outran the thread");
        let mut copy = Screen::new(40, 12);
        copy.feed(&drawing);
        assert!(copy.screen().alternate_screen());
        let contents = copy.screen().contents();
        assert!(contents.starts_with("AGENT working") && contents.contains("box"), "{contents}");
        assert!(contents.contains("step 499999"), "{contents}");
        copy.feed(b"\x1b[?1049l");
        assert!(copy.screen().contents().starts_with("$ top"), "{}", copy.screen().contents());
    }

    /// A program that redraws a line in place with colours: after a catch-up, the screen is exactly the
    /// one a terminal that saw every byte has, cell by cell, attributes included (the tail is not
    /// played from the middle of a line, which once left " of the plan" beyond the line's end).
    #[tokio::test]
    async fn a_catch_up_in_a_program_redrawing_in_place_gives_the_exact_screen() {
        let mut chunks =
            vec![b"$ agent\r\n\x1b[?1049h\x1b[2J\x1b[H\x1b[1;33mAGENT\x1b[0m working\x1b[5;10H\x1b[44;37m box \x1b[0m"
                .to_vec()];
        for i in 0..400_000 {
            chunks
                .push(format!("\x1b[12;1H\x1b[32mstep {i:06}\x1b[0m of the plan .......................").into_bytes());
        }
        chunks.push(b"\x1b[3;20H".to_vec());
        let mut keeper = ScreenKeeper::start(80, 24).unwrap();
        for chunk in &chunks {
            keeper.output(chunk);
        }
        let mut everything = Screen::new(80, 24);
        everything.feed(&chunks.concat());
        let (_, drawing) = caught_up(&mut keeper).await;
        assert!(keeper.restarts() > 0, "the flood outran the thread");
        let mut copy = Screen::new(80, 24);
        copy.feed(&drawing);
        assert_eq!(copy.screen().contents_formatted(), everything.screen().contents_formatted());
        assert_eq!(copy.screen().cursor_position(), (2, 19));
    }

    #[test]
    fn the_tail_is_played_from_where_the_cursor_is_set() {
        assert_eq!(resumable(b"lan ...\x1b[0m of\x1b[12;1Hstep"), b"\x1b[12;1Hstep");
        assert_eq!(resumable(b"\x1b[0mtail of a line\r\nnext"), b"next");
        assert_eq!(resumable(b"\x1b[Hhome"), b"\x1b[Hhome");
        assert_eq!(resumable(b"cut\x1b[1mbold"), b"\x1b[1mbold");
        assert_eq!(resumable(b"no sequence"), b"no sequence");
    }
}
