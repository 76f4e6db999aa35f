//! Colours, the terminal's width, and the small widgets (spinner frames, progress bars).

/// How output is decorated.
pub(crate) struct Style {
    colour: bool,
    width: usize,
}

const RESET: &str = "\x1b[0m";

impl Style {
    /// Colour unless `NO_COLOR` is set or `TERM` is `dumb`; width from the terminal.
    pub(crate) fn from_env() -> Style {
        let colour = std::env::var_os("NO_COLOR").is_none() && std::env::var("TERM").as_deref() != Ok("dumb");
        let width = rustix::termios::tcgetwinsize(rustix::stdio::stdout())
            .ok()
            .map(|w| usize::from(w.ws_col))
            .filter(|w| *w >= 20)
            .unwrap_or(80);
        Style { colour, width }
    }

    /// The terminal width in columns.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// True when colour is on (spinners redraw in place only then).
    pub(crate) fn live(&self) -> bool {
        self.colour
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn title(&self, text: &str) -> String {
        self.paint("1;38;5;213", text)
    }
    pub(crate) fn stage(&self, text: &str) -> String {
        self.paint("1;38;5;75", text)
    }
    pub(crate) fn ok(&self, text: &str) -> String {
        self.paint("38;5;114", text)
    }
    pub(crate) fn added(&self, text: &str) -> String {
        self.paint("32", text)
    }
    pub(crate) fn removed(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub(crate) fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    pub(crate) fn prompt(&self, text: &str) -> String {
        self.paint("1;38;5;221", text)
    }

    /// `[#####.....]  n/total` in the remaining width.
    pub(crate) fn bar(&self, done: usize, total: usize) -> String {
        let cells = self.width.saturating_sub(30).clamp(10, 40);
        let filled = (cells * done).checked_div(total).unwrap_or(cells);
        let bar = format!("{}{}", "█".repeat(filled), "░".repeat(cells - filled));
        format!("{} {done:>3}/{total}", self.paint("38;5;75", &bar))
    }
}

/// Spinner frames.
pub(crate) const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_in_proportion_and_plain_text_has_no_escapes() {
        let plain = Style { colour: false, width: 60 };
        assert_eq!(plain.bar(0, 4), format!("{}   0/4", "░".repeat(30)));
        assert_eq!(plain.bar(2, 4), format!("{}{}   2/4", "█".repeat(15), "░".repeat(15)));
        assert_eq!(plain.ok("done"), "done");
        let coloured = Style { colour: true, width: 60 };
        assert!(coloured.ok("done").starts_with("\x1b[") && coloured.ok("done").ends_with(RESET));
    }
}
