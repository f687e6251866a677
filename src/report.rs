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

/// Writes the pipe's log lines, and on GitHub Actions its workflow commands.
pub struct Reporter {
    out: Box<dyn Write>,
    commands: Box<dyn Write>,
    workflow_commands: bool,
    color: bool,
    debug: bool,
    quiet: bool,
    masks: Vec<String>,
}

impl Reporter {
    /// A reporter writing log lines to `log` (stderr) and workflow commands to `commands`
    /// (stdout), in colour unless `color` is false.
    pub fn new(log: Box<dyn Write>, commands: Box<dyn Write>, color: bool) -> Self {
        Reporter {
            out: log,
            commands,
            workflow_commands: false,
            color,
            debug: false,
            quiet: false,
            masks: Vec::new(),
        }
    }

    /// Switches to GitHub Actions: secrets are also registered with `::add-mask::`, warnings
    /// and failures also become annotations, and every line goes to the command stream, so
    /// the runner sees an `::add-mask::` before any line that follows it (the runner reads
    /// stdout and stderr separately and would not keep their order).
    pub fn enable_workflow_commands(&mut self) {
        self.workflow_commands = true;
    }

    /// Whether GitHub workflow commands are written.
    pub fn has_workflow_commands(&self) -> bool {
        self.workflow_commands
    }

    /// Keeps INFO and success lines out of the log (git prints a credential helper's
    /// stderr); warnings and failures still show.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// Turns DEBUG lines on or off.
    pub fn set_debug(&mut self, debug: bool) {
        self.debug = debug;
    }

    /// Whether DEBUG lines are written.
    pub fn is_debug(&self) -> bool {
        self.debug
    }

    /// Registers a secret: from now on it is written as `***` wherever it appears, and on
    /// GitHub Actions the runner is told to mask it too (the one line that carries it,
    /// consumed by the runner and never shown).
    pub fn mask(&mut self, secret: &str) {
        // A multi-line secret is also masked line by line: log lines are matched one at a
        // time (vault-action leaked multi-line secrets this way, GHSA-4mgv-m5cm-f9h7).
        let mut pieces = vec![secret];
        if secret.contains(['\n', '\r']) {
            pieces.extend(secret.lines().map(str::trim_end));
        }
        for piece in pieces {
            if piece.len() < MIN_MASK_LEN || self.masks.iter().any(|m| m == piece) {
                continue;
            }
            if self.workflow_commands {
                let _ = writeln!(self.commands, "::add-mask::{}", escape_data(piece));
                let _ = self.commands.flush();
            }
            self.masks.push(piece.to_owned());
        }
        // Longest first, so a secret containing another is masked whole.
        self.masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
    }

    /// An `INFO:` line.
    pub fn info(&mut self, message: impl Display) {
        if self.quiet {
            return;
        }
        self.prefixed(BLUE, "INFO: ", &message.to_string());
    }

    /// A `WARNING:` line (and a warning annotation on GitHub Actions).
    pub fn warn(&mut self, message: impl Display) {
        let message = message.to_string();
        self.prefixed(YELLOW, "WARNING: ", &message);
        if self.workflow_commands {
            let line = format!(
                "::warning title={}::{}",
                escape_property("oauth-token-pipe"),
                escape_data(&self.masked(&message))
            );
            self.command(&line);
        }
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
        if self.quiet {
            return;
        }
        self.whole(GREEN, "✔ ", &message.to_string());
    }

    /// The red `✖` line(s) that end a failed run (and an error annotation titled `title` on
    /// GitHub Actions).
    pub fn fail(&mut self, title: &str, message: impl Display) {
        let message = message.to_string();
        self.whole(RED, "✖ ", &message);
        if self.workflow_commands {
            let line = format!(
                "::error title={}::{}",
                escape_property(title),
                escape_data(&self.masked(&message))
            );
            self.command(&line);
        }
    }

    fn command(&mut self, line: &str) {
        let _ = writeln!(self.commands, "{line}");
        let _ = self.commands.flush();
    }

    fn sink(&mut self) -> &mut dyn Write {
        if self.workflow_commands {
            &mut *self.commands
        } else {
            &mut *self.out
        }
    }

    fn prefixed(&mut self, color: &str, prefix: &str, message: &str) {
        let lines: Vec<String> = message.lines().map(|line| self.masked(line)).collect();
        let color_on = self.color;
        let out = self.sink();
        for line in lines {
            let _ = if color_on {
                writeln!(out, "{color}{prefix}{RESET}{line}")
            } else {
                writeln!(out, "{prefix}{line}")
            };
        }
        let _ = out.flush();
    }

    fn whole(&mut self, color: &str, mark: &str, message: &str) {
        let lines: Vec<String> = message.lines().map(|line| self.masked(line)).collect();
        let color_on = self.color;
        let out = self.sink();
        for (i, line) in lines.iter().enumerate() {
            let mark = if i == 0 { mark } else { "  " };
            let _ = if color_on {
                writeln!(out, "{color}{mark}{line}{RESET}")
            } else {
                writeln!(out, "{mark}{line}")
            };
        }
        let _ = out.flush();
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

/// Escapes a workflow command's data as @actions/core does: `%`, `\r`, `\n`.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property: the data escapes plus `:` and `,`.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
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
        let mut r = Reporter::new(Box::new(sink.clone()), Box::new(Sink::default()), false);
        r.mask("abcd");
        r.mask("abcdefgh");
        r.mask("ab");
        r.info("x abcdefgh y abcd z ab");
        assert_eq!(sink.text(), "INFO: x *** y *** z ab\n");
    }

    #[test]
    fn colour_and_plain_forms() {
        let sink = Sink::default();
        let mut r = Reporter::new(Box::new(sink.clone()), Box::new(Sink::default()), true);
        r.success("done");
        r.fail("title", "bad\nsecond");
        assert_eq!(
            sink.text(),
            "\x1b[32m✔ done\x1b[0m\n\x1b[31m✖ bad\x1b[0m\n\x1b[31m  second\x1b[0m\n"
        );
    }

    #[test]
    fn debug_is_lazy_and_off_by_default() {
        let sink = Sink::default();
        let mut r = Reporter::new(Box::new(sink.clone()), Box::new(Sink::default()), false);
        r.debug(|| panic!("formatted while off"));
        r.set_debug(true);
        r.debug(|| "on".into());
        assert_eq!(sink.text(), "DEBUG: on\n");
    }

    #[test]
    fn github_mode_masks_first_and_annotates() {
        let (log, commands) = (Sink::default(), Sink::default());
        let mut r = Reporter::new(Box::new(log.clone()), Box::new(commands.clone()), false);
        r.enable_workflow_commands();
        r.mask("s3cr%t-one\nline-two");
        r.info("uses s3cr%t-one\nline-two here");
        r.warn("careful: a, b");
        r.fail("oauth-token-pipe: bad, (exit 3)", "line one\nline 100%");
        assert_eq!(
            log.text(),
            "",
            "everything goes to the command stream, in order"
        );
        assert_eq!(
            commands.text(),
            "::add-mask::s3cr%25t-one%0Aline-two\n::add-mask::s3cr%25t-one\n::add-mask::line-two\n\
             INFO: uses ***\nINFO: *** here\nWARNING: careful: a, b\n::warning title=oauth-token-pipe::careful: a, b\n\
             ✖ line one\n  line 100%\n::error title=oauth-token-pipe%3A bad%2C (exit 3)::line one%0Aline 100%25\n"
        );
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
