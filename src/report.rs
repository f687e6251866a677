//! The only way anything reaches the log.
//!
//! The library never prints: every line goes through a [`Reporter`], which formats it the way
//! official Bitbucket pipes do (`INFO:` lines, a green `✔` on success, a red `✖` on failure,
//! ANSI colour even without a terminal, because Bitbucket's log renders it, and none when
//! NO_COLOR is set), and which replaces every registered secret with `***` as a last line
//! of defence, like GitHub's log masker. Code must still never format a secret: the mask
//! only catches the exact strings registered.

use std::fmt::Display;
use std::io::Write;

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BLUE: &str = "\x1b[34m";
const GREY: &str = "\x1b[90m";
const RESET: &str = "\x1b[0m";

/// Masks shorter than this are not applied: replacing every "a" would wreck the log, and no
/// real secret or token is that short.
const MIN_MASK_LEN: usize = 4;

/// Writes the pipe's log lines to one sink.
pub struct Reporter {
    out: Box<dyn Write>,
    color: bool,
    debug: bool,
    masks: Vec<String>,
}

impl Reporter {
    /// A reporter writing to `out`, in colour unless `color` is false.
    pub fn new(out: Box<dyn Write>, color: bool) -> Self {
        Reporter {
            out,
            color,
            debug: false,
            masks: Vec::new(),
        }
    }

    /// Turns DEBUG lines on or off.
    pub fn set_debug(&mut self, debug: bool) {
        self.debug = debug;
    }

    /// Whether DEBUG lines are written.
    pub fn is_debug(&self) -> bool {
        self.debug
    }

    /// Registers a secret: from now on it is written as `***` wherever it appears.
    pub fn mask(&mut self, secret: &str) {
        if secret.len() >= MIN_MASK_LEN && !self.masks.iter().any(|m| m == secret) {
            self.masks.push(secret.to_owned());
            // Longest first, so a secret containing another is masked whole.
            self.masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
        }
    }

    /// An `INFO:` line.
    pub fn info(&mut self, message: impl Display) {
        self.prefixed(BLUE, "INFO: ", &message.to_string());
    }

    /// A `WARNING:` line.
    pub fn warn(&mut self, message: impl Display) {
        self.prefixed(YELLOW, "WARNING: ", &message.to_string());
    }

    /// A `DEBUG:` line, written only when DEBUG is on. Takes a closure so that nothing is
    /// formatted when debugging is off.
    pub fn debug(&mut self, message: impl FnOnce() -> String) {
        if self.debug {
            self.prefixed(GREY, "DEBUG: ", &message());
        }
    }

    /// The green `✔` line that ends a successful run.
    pub fn success(&mut self, message: impl Display) {
        self.whole(GREEN, "✔ ", &message.to_string());
    }

    /// The red `✖` line(s) that end a failed run.
    pub fn fail(&mut self, message: impl Display) {
        self.whole(RED, "✖ ", &message.to_string());
    }

    fn prefixed(&mut self, color: &str, prefix: &str, message: &str) {
        for line in message.lines() {
            let line = self.masked(line);
            let _ = if self.color {
                writeln!(self.out, "{color}{prefix}{RESET}{line}")
            } else {
                writeln!(self.out, "{prefix}{line}")
            };
        }
        let _ = self.out.flush();
    }

    fn whole(&mut self, color: &str, mark: &str, message: &str) {
        for (i, line) in message.lines().enumerate() {
            let mark = if i == 0 { mark } else { "  " };
            let line = self.masked(line);
            let _ = if self.color {
                writeln!(self.out, "{color}{mark}{line}{RESET}")
            } else {
                writeln!(self.out, "{mark}{line}")
            };
        }
        let _ = self.out.flush();
    }

    fn masked(&self, line: &str) -> String {
        let mut line = line.to_owned();
        for secret in &self.masks {
            if line.contains(secret.as_str()) {
                line = line.replace(secret.as_str(), "***");
            }
        }
        line
    }
}

/// Quotes text received from the network for the log: control characters (which could
/// forge log lines or ANSI colours) are escaped and the text is cut to `max` characters.
pub fn quote_remote(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn masks_registered_secrets_longest_first() {
        let sink = Sink::default();
        let mut r = Reporter::new(Box::new(sink.clone()), false);
        r.mask("abcd");
        r.mask("abcdefgh");
        r.mask("ab");
        r.info("x abcdefgh y abcd z ab");
        assert_eq!(sink.text(), "INFO: x *** y *** z ab\n");
    }

    #[test]
    fn colour_and_plain_forms() {
        let sink = Sink::default();
        let mut r = Reporter::new(Box::new(sink.clone()), true);
        r.success("done");
        r.fail("bad\nsecond");
        assert_eq!(
            sink.text(),
            "\x1b[32m✔ done\x1b[0m\n\x1b[31m✖ bad\x1b[0m\n\x1b[31m  second\x1b[0m\n"
        );
    }

    #[test]
    fn debug_is_lazy_and_off_by_default() {
        let sink = Sink::default();
        let mut r = Reporter::new(Box::new(sink.clone()), false);
        r.debug(|| panic!("formatted while off"));
        r.set_debug(true);
        r.debug(|| "on".into());
        assert_eq!(sink.text(), "DEBUG: on\n");
    }

    #[test]
    fn remote_text_cannot_forge_lines() {
        assert_eq!(
            quote_remote("a\nINFO: b\x1b[31m", 100),
            "a\\nINFO: b\\u{1b}[31m"
        );
        assert_eq!(quote_remote("abcdef", 3), "abc…");
    }
}
