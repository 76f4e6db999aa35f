//! What attaching costs: a fresh attach (open -> the screen drawn) against a resume with a ticket, and
//! the bytes a fresh attach to a full-screen program gets against the raw replay of before.

use super::{attach, ready, Path, WAIT};
use edgeshell_core::protocol::Credential;
use std::time::{Duration, Instant};

/// Open -> the screen drawn (a snapshot, or the first output byte), with fresh tokens, and -> the first
/// output byte with the resume ticket of each. A room seats at
/// most four browsers (detached ones stay resumable), so every third attach gets a fresh session.
pub(crate) async fn attach_latencies(path: &mut Path, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (mut with_token, mut with_ticket) = (Vec::new(), Vec::new());
    let mut session = None;
    for i in 0..n {
        if i % 3 == 0 {
            if let Some((old, _)) = session.take() {
                path.end(&old).await;
            }
            session = Some(ready(path).await);
        }
        let (session, _first) = session.as_ref().expect("a session every third attach");
        let token = path.token(session).await;
        let opened = Instant::now();
        let mut browser = attach(&session.attach_url, Credential::Token(token)).await;
        // Drawn: the room's screen snapshot, or (before the runner sent one) its history.
        assert!(browser.step_until(WAIT, |b| !b.output.is_empty() || !b.screen.is_empty()).await);
        with_token.push(opened.elapsed());
        let (ticket, offset) = (browser.welcome.resume_ticket.expose().to_owned(), browser.welcome.offset);
        drop(browser);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // One byte back, so the resume has a byte to deliver even when the snapshot stood at the end.
        let url = format!("{}?offset={}", session.attach_url, offset.saturating_sub(1));
        let opened = Instant::now();
        let mut resumed = attach(&url, Credential::Resume(ticket)).await;
        assert!(resumed.step_until(WAIT, |b| !b.output.is_empty()).await);
        with_ticket.push(opened.elapsed());
    }
    // The sessions made here end here: left running, they would fill the pool for the measurements after.
    if let Some((session, _)) = session {
        path.end(&session).await;
    }
    with_token.sort();
    with_ticket.sort();
    (with_token, with_ticket)
}

/// What a fresh attach to a full-screen program costs: an 80x24 TUI (alternate screen, colours, cursor
/// moves) that has redrawn one line in place 5,000 times (about 330 KB of output) is opened by a new
/// browser. Returns the bytes it got until its screen was complete (the snapshot, then the output after
/// it) and what the raw replay of before would have sent (the last 64 KiB of history), the program's
/// total output, and open -> drawn.
pub(crate) async fn tui_fresh_attach(path: &mut Path) -> TuiAttach {
    let (session, mut watcher) = ready(path).await;
    let from = watcher.output.len();
    let tui = concat!(
        r"printf '\033[?1049h\033[2J\033[H\033[1;33mAGENT\033[0m working\033[5;10H\033[44;37m box \033[0m'; ",
        r"i=0; while [ $i -lt 5000 ]; do printf '\033[12;1H\033[32mstep %05d\033[0m of the plan ....................' $i; ",
        r"i=$((i+1)); done; printf '\033[3;20H'; read x; printf '\033[?1049l'",
        "\n"
    );
    watcher.input(tui.as_bytes()).await;
    watcher.expect_from(from, "step 04999", WAIT).await;
    let total = watcher.output.len() - from;
    // The runner snapshots once output settles.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let token = path.token(&session).await;
    let opened = Instant::now();
    let mut fresh = attach(&session.attach_url, Credential::Token(token)).await;
    assert!(fresh.step_until(WAIT, |b| !b.screen.is_empty() || !b.output.is_empty()).await);
    let drawn = opened.elapsed();
    // Anything after the snapshot arrives at once; wait a little for it.
    fresh.step_until(Duration::from_millis(300), |_| false).await;
    let fresh_bytes = fresh.screen.len() + fresh.output.len();
    watcher.input(b"\n").await;
    drop((fresh, watcher));
    path.end(&session).await;
    TuiAttach { fresh_bytes, replay_bytes: total.min(64 * 1024), total, drawn }
}

pub(crate) struct TuiAttach {
    pub(crate) fresh_bytes: usize,
    pub(crate) replay_bytes: usize,
    pub(crate) total: usize,
    pub(crate) drawn: Duration,
}
