//! The session's screen as the runner keeps it, for the snapshots a browser attaching afresh is drawn
//! from (the core's `runner_link` says when; the room keeps the latest). Every byte the program writes
//! is fed to a terminal-state library, `vt100` (picked for its fidelity on the alternate screen,
//! colours and attributes, cursor, input modes and wide characters, and because it can write a screen
//! back out as escape sequences: decision 0024). A snapshot is what redraws the terminal from a reset:
//! the primary screen's recent history and contents, then, while a full-screen program runs, the
//! alternate screen over it, then the input modes (keypad, cursor keys, bracketed paste, mouse).
//!
//! The library shows only the active screen, so the primary one is kept as it stood when a program
//! switched to the alternate screen: that is what reappears when it switches back.

use std::num::NonZeroU16;

/// Lines of history above the screen a snapshot carries (the room holds the raw output after it).
pub const HISTORY_LINES: usize = 1000;

/// What a program writes to switch to the alternate screen (xterm's three forms).
const ALTERNATE_ON: [&[u8]; 3] = [b"\x1b[?1049h", b"\x1b[?1047h", b"\x1b[?47h"];
/// The longest of them, less one: how much of a chunk's end may hold the start of one.
const TAIL: usize = 7;

/// The terminal state of one session.
pub struct Screen {
    parser: vt100::Parser,
    /// The primary screen as it stood when the alternate one was entered (while it is active).
    primary: Option<vt100::Screen>,
    /// The last bytes fed, where a switch split across two reads may have begun.
    tail: Vec<u8>,
}

fn size(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

impl Screen {
    /// A blank terminal of this size.
    pub fn new(cols: u16, rows: u16) -> Screen {
        Screen { parser: vt100::Parser::new(size(rows), size(cols), HISTORY_LINES), primary: None, tail: Vec::new() }
    }

    /// The terminal was resized (as the PTY was).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.parser.set_size(size(rows), size(cols));
        if let Some(primary) = &mut self.primary {
            let mut parser = vt100::Parser::new(size(rows), size(cols), 0);
            parser.process(primary.contents_formatted().as_bytes());
            *primary = parser.screen().clone();
        }
    }

    /// Output the program wrote.
    pub fn feed(&mut self, bytes: &[u8]) {
        let entering = if self.parser.screen().alternate_screen() { None } else { alternate_on(&self.tail, bytes) };
        match entering {
            Some(at) => {
                self.parser.process(&bytes[..at]);
                self.primary = Some(self.parser.screen().clone());
                self.parser.process(&bytes[at..]);
            }
            None => self.parser.process(bytes),
        }
        if !self.parser.screen().alternate_screen() {
            self.primary = None;
        }
        let keep = bytes.len().min(TAIL);
        self.tail.extend_from_slice(&bytes[bytes.len() - keep..]);
        let excess = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..excess);
    }

    /// The escape sequences that draw this terminal on one just reset.
    pub fn snapshot(&self) -> Vec<u8> {
        let active = self.parser.screen();
        let mut out = String::new();
        match (&self.primary, active.alternate_screen()) {
            (Some(primary), true) => {
                draw_primary(primary, &mut out);
                out.push_str("\x1b[?1049h");
                out.push_str(&active.contents_formatted());
            }
            _ => draw_primary(active, &mut out),
        }
        out.push_str(&active.input_mode_formatted());
        out.into_bytes()
    }

    /// The library's view of the active screen (for tests and tools).
    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }
}

/// The primary screen: its history lines scrolled up out of view, then its contents.
fn draw_primary(screen: &vt100::Screen, out: &mut String) {
    let (rows, cols) = screen.size();
    let (rows, cols) = (rows.get(), cols.get());
    let history = screen.scrollback_len();
    if history > 0 {
        let mut view = screen.clone();
        // Page through the history from its oldest line; each page's first rows are history lines.
        let mut left = history;
        while left > 0 {
            view.set_scrollback(left);
            let take = left.min(usize::from(rows));
            for row in view.rows_formatted(0, cols).take(take) {
                out.push_str(&row);
                out.push_str("\x1b[m\r\n");
            }
            left -= take;
        }
        // Scroll the last of them off the screen, into the terminal's history.
        for _ in 0..rows {
            out.push_str("\r\n");
        }
    }
    out.push_str(&screen.contents_formatted());
}

/// Where in `bytes` a switch to the alternate screen begins (0 when it began in `tail`).
fn alternate_on(tail: &[u8], bytes: &[u8]) -> Option<usize> {
    let mut joined = Vec::with_capacity(tail.len() + bytes.len().min(64));
    joined.extend_from_slice(tail);
    // Only the joined region can hold a sequence that began in the tail; the rest is searched in place.
    joined.extend_from_slice(&bytes[..bytes.len().min(TAIL)]);
    let found_in = |hay: &[u8]| ALTERNATE_ON.iter().filter_map(|seq| find(hay, seq)).min();
    if let Some(at) = found_in(&joined) {
        if at < tail.len() {
            return Some(0);
        }
    }
    found_in(bytes)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws `snapshot` on a fresh terminal of the same size.
    fn redraw(screen: &Screen, cols: u16, rows: u16) -> Screen {
        let mut copy = Screen::new(cols, rows);
        copy.feed(&screen.snapshot());
        copy
    }

    #[test]
    fn a_snapshot_redraws_colours_the_cursor_wide_characters_and_modes() {
        let mut s = Screen::new(40, 8);
        s.feed("plain \x1b[1;31mbold red\x1b[m 中文 ok\r\n\x1b[44mblue bg\x1b[m\r\n".as_bytes());
        s.feed(b"\x1b[?2004h\x1b[?1h\x1b[5;7H");
        let copy = redraw(&s, 40, 8);
        assert_eq!(copy.screen().contents_formatted(), s.screen().contents_formatted());
        assert_eq!(copy.screen().cursor_position(), (4, 6));
        assert!(copy.screen().bracketed_paste() && copy.screen().application_cursor());
        let cell = copy.screen().cell(0, 7).unwrap();
        assert!(cell.bold() && cell.fgcolor() == vt100::Color::Idx(1));
        assert!(copy.screen().cell(0, 15).unwrap().is_wide(), "中 takes two columns");
    }

    #[test]
    fn a_full_screen_program_is_drawn_over_the_primary_screen_it_will_return_to() {
        let mut s = Screen::new(30, 6);
        s.feed(b"$ ls\r\nfile-a file-b\r\n$ vim\r\n");
        // The switch arrives split across two reads.
        s.feed(b"\x1b[?10");
        s.feed(b"49h\x1b[H\x1b[2J~ vim buffer\x1b[6;1H-- INSERT --");
        let snapshot = s.snapshot();
        let mut copy = Screen::new(30, 6);
        copy.feed(&snapshot);
        assert!(copy.screen().alternate_screen());
        assert_eq!(copy.screen().contents(), s.screen().contents());
        // The program exits: both return to the same primary screen.
        s.feed(b"\x1b[?1049l");
        copy.feed(b"\x1b[?1049l");
        assert_eq!(copy.screen().contents(), s.screen().contents());
        assert!(copy.screen().contents().contains("file-a file-b"), "{}", copy.screen().contents());
    }

    #[test]
    fn history_above_the_screen_comes_along() {
        let mut s = Screen::new(20, 4);
        for i in 0..30 {
            s.feed(format!("line {i}\r\n").as_bytes());
        }
        let mut copy = redraw(&s, 20, 4);
        assert_eq!(copy.screen().contents(), s.screen().contents());
        copy.parser.screen_mut().set_scrollback(usize::MAX);
        let mut orig = Screen::new(20, 4);
        for i in 0..30 {
            orig.feed(format!("line {i}\r\n").as_bytes());
        }
        orig.parser.screen_mut().set_scrollback(usize::MAX);
        assert_eq!(copy.screen().contents(), orig.screen().contents(), "the oldest history lines match");
    }
}
