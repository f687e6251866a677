//! The only way anything reaches the log.
//!
//! The library never prints: every line goes through a [`Reporter`], which formats it the way
//! official Bitbucket pipes do (`INFO:` lines, a green `✔` on success, a red `✖` on failure,
//! ANSI colour even without a terminal, because Bitbucket's log renders it, and none when
//! NO_COLOR is set). Log lines and GitHub workflow commands share one stream, standard
//! error: the runner reads commands from both streams of a container action, one stream
//! keeps an `::add-mask::` ahead of the line it covers, and standard output stays free for
//! what belongs there (git's credential answer, `--help`, an `exec` child's own output).
//!
//! Every registered secret is replaced by `***` in every line, as a second line of defence
//! after [`redact::quote_remote`]: code must still never format a secret, which the test
//! build proves by switching this mask off ([`Reporter::without_mask`]).

pub mod redact;

use std::fmt::Display;
use std::io::Write;

pub use redact::quote_remote;

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BLUE: &str = "\x1b[34m";
const GREY: &str = "\x1b[90m";
const RESET: &str = "\x1b[0m";

/// Writes the pipe's log lines, and on GitHub Actions its workflow commands.
pub struct Reporter {
    out: Box<dyn Write>,
    workflow_commands: bool,
    color: bool,
    debug: bool,
    quiet: bool,
    mask: bool,
    basic_users: Vec<String>,
}

impl Reporter {
    /// A reporter writing to `out` (standard error), in colour unless `color` is false.
    pub fn new(out: Box<dyn Write>, color: bool) -> Self {
        Reporter {
            out,
            workflow_commands: false,
            color,
            debug: false,
            quiet: false,
            mask: true,
            basic_users: Vec::new(),
        }
    }

    /// For the leak audit only: no `***` replacement and no `::add-mask::` lines, so any
    /// secret the code itself formats shows up in the output. The binary offers this only
    /// in builds with debug assertions (tests), never in a release.
    pub fn without_mask(mut self) -> Self {
        self.mask = false;
        self
    }

    /// Switches to GitHub Actions: secrets are also registered with `::add-mask::`, and
    /// warnings and failures also become annotations.
    pub fn enable_workflow_commands(&mut self) {
        self.workflow_commands = true;
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

    /// Registers a secret (and its derived forms): from now on it is written as `***`
    /// wherever it appears, and on GitHub Actions the runner is told to mask each form too.
    pub fn mask(&mut self, secret: &str) {
        let mut added = redact::register(secret);
        for user in &self.basic_users {
            added.extend(redact::register_basic(user, secret));
        }
        self.add_masks(&added);
    }

    /// Every secret masked from now on is also masked as the base64 of `user:secret` (git's
    /// Basic header carries a token that way), from the moment it is parsed: a token
    /// response echoing that form must not show it before the caller registers it.
    pub fn mask_basic_with(&mut self, user: &str) {
        if !self.basic_users.iter().any(|u| u == user) {
            self.basic_users.push(user.to_owned());
        }
    }

    /// Registers the base64 of `user:secret`, the form an HTTP Basic header carries.
    pub fn mask_basic(&mut self, user: &str, secret: &str) {
        let added = redact::register_basic(user, secret);
        self.add_masks(&added);
    }

    fn add_masks(&mut self, forms: &[String]) {
        if !(self.workflow_commands && self.mask) {
            return;
        }
        for form in forms {
            let _ = writeln!(self.out, "::add-mask::{}", escape_data(form));
        }
        let _ = self.out.flush();
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
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    fn prefixed(&mut self, color: &str, prefix: &str, message: &str) {
        let lines: Vec<String> = message.lines().map(|line| self.masked(line)).collect();
        for line in lines {
            let _ = if self.color {
                writeln!(self.out, "{color}{prefix}{RESET}{line}")
            } else {
                writeln!(self.out, "{prefix}{line}")
            };
        }
        let _ = self.out.flush();
    }

    fn whole(&mut self, color: &str, mark: &str, message: &str) {
        let lines: Vec<String> = message.lines().map(|line| self.masked(line)).collect();
        for (i, line) in lines.iter().enumerate() {
            let mark = if i == 0 { mark } else { "  " };
            let _ = if self.color {
                writeln!(self.out, "{color}{mark}{line}{RESET}")
            } else {
                writeln!(self.out, "{mark}{line}")
            };
        }
        let _ = self.out.flush();
    }

    fn masked(&self, line: &str) -> String {
        if self.mask {
            redact::redact(line)
        } else {
            line.to_owned()
        }
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
        r.mask("qwer");
        r.mask("qwertyui");
        r.mask("qw");
        r.info("x qwertyui y qwer z qw");
        assert_eq!(sink.text(), "INFO: x *** y *** z qw\n");
    }

    #[test]
    fn without_mask_shows_what_the_code_formats() {
        let sink = Sink::default();
        let mut r = Reporter::new(Box::new(sink.clone()), false).without_mask();
        r.enable_workflow_commands();
        r.mask("unmasked-canary");
        r.info("x unmasked-canary");
        assert_eq!(sink.text(), "INFO: x unmasked-canary\n");
    }

    #[test]
    fn colour_and_plain_forms() {
        let sink = Sink::default();
        let mut r = Reporter::new(Box::new(sink.clone()), true);
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
        let mut r = Reporter::new(Box::new(sink.clone()), false);
        r.debug(|| panic!("formatted while off"));
        r.set_debug(true);
        r.debug(|| "on".into());
        assert_eq!(sink.text(), "DEBUG: on\n");
    }

    #[test]
    fn github_mode_masks_first_and_annotates_on_one_stream() {
        let out = Sink::default();
        let mut r = Reporter::new(Box::new(out.clone()), false);
        r.enable_workflow_commands();
        r.mask("s3cr%t-one\nline-two");
        r.info("uses s3cr%t-one\nline-two here");
        r.warn("careful: a, b");
        r.fail("oauth-token-pipe: bad, (exit 3)", "line one\nline 100%");
        let text = out.text();
        assert!(
            text.starts_with("::add-mask::s3cr%25t-one%0Aline-two\n::add-mask::s3cr%25t-one\n::add-mask::line-two\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "INFO: uses ***\nINFO: *** here\nWARNING: careful: a, b\n::warning title=oauth-token-pipe::careful: a, b\n\
                 ✖ line one\n  line 100%\n::error title=oauth-token-pipe%3A bad%2C (exit 3)::line one%0Aline 100%25\n"
            ),
            "{text}"
        );
    }
}
