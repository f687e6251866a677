//! What every provider hands downstream: a [`Token`], its [`Expiry`], and what validating it
//! showed ([`Validated`]). Outputs, reuse, `exec`, `git-credential` and the reporter see only
//! these types, never a provider, and render them through their `Display` so the log, the
//! step summary and `status` say the same thing.
//!
//! The token grammar lives here because it is what keeps a hostile or broken response from
//! injecting lines or shell syntax into the files we write: a token that passes
//! [`check_token`] and scopes that pass [`is_inert_scope`] need no quoting in a dotenv file.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

/// The longest lifetime accepted: anything above a year is a broken response, not a token.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// An access token as issued (or read back), with what is known about it.
#[derive(Debug)]
pub struct Token {
    /// The bearer token itself. Never formatted anywhere.
    pub secret: SecretString,
    /// Its length in characters, which is all the log says about it.
    pub len: usize,
    /// When it expires.
    pub expiry: Expiry,
    /// The granted scopes (or permissions), in the order given.
    pub scopes: Vec<String>,
    /// Extra step outputs a provider adds (name, value), never secrets.
    pub outputs: Vec<(&'static str, String)>,
}

impl Token {
    /// A token of `secret`, checked against [`check_token`] by the caller.
    pub fn new(secret: &str, expiry: Expiry, scopes: Vec<String>) -> Token {
        Token {
            len: secret.chars().count(),
            secret: SecretString::from(secret),
            expiry,
            scopes,
            outputs: Vec::new(),
        }
    }

    /// The scopes for the log: comma-separated, or "none listed".
    pub fn scope_list(&self) -> String {
        if self.scopes.is_empty() {
            "none listed".to_owned()
        } else {
            self.scopes.join(", ")
        }
    }
}

/// When a token stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The response did not say.
    Unknown,
    /// At this instant (never later than the truth: computed from the request's start).
    At(SystemTime),
}

impl Expiry {
    /// `sent_at + seconds`, refusing 0 and more than [`MAX_LIFETIME`].
    pub fn after(sent_at: SystemTime, seconds: u64) -> Result<Expiry, String> {
        match seconds {
            0 => Err("expires_in is 0: the token would already be expired".into()),
            s if s > MAX_LIFETIME.as_secs() => {
                Err(format!("expires_in is {s} seconds, more than a year"))
            }
            s => Ok(Expiry::At(sent_at + Duration::from_secs(s))),
        }
    }

    /// The instant, when known.
    pub fn at(self) -> Option<SystemTime> {
        match self {
            Expiry::At(at) => Some(at),
            Expiry::Unknown => None,
        }
    }

    /// Time left at `now` (zero when expired or unknown).
    pub fn left(self, now: SystemTime) -> Duration {
        self.at()
            .and_then(|at| at.duration_since(now).ok())
            .unwrap_or(Duration::ZERO)
    }
}

impl fmt::Display for Expiry {
    /// `expires in 7200 s, at 2026-11-30T20:07:53Z`, or `expiry unknown`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Unknown => write!(f, "expiry unknown"),
            // Rounded: a token issued with expires_in 3600 a few milliseconds ago says 3600.
            Expiry::At(at) => write!(
                f,
                "expires in {} s, at {}",
                (self.left(SystemTime::now()).as_millis() + 500) / 1000,
                format_time(*at)
            ),
        }
    }
}

/// What validation showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validated {
    /// VALIDATE=false (or nothing was asked for): the token was not tested.
    Skipped,
    /// An API call with the token passed: `what` it did and the status.
    Called {
        /// E.g. `read repository acme/widgets` or `GET https://…`.
        what: String,
        /// The 2xx status.
        status: u16,
        /// The scopes validation showed were granted, when the token response did not say
        /// (introspection's `scope`, a JWT's `scope` or `scp`).
        scopes: Option<Vec<String>>,
    },
}

impl fmt::Display for Validated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Validated::Skipped => write!(f, "not validated (VALIDATE=false)"),
            Validated::Called { what, .. } => write!(f, "validated ({what})"),
        }
    }
}

/// UTC RFC 3339 to the second, e.g. `2026-11-29T20:07:53Z`.
pub fn format_time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// RFC 6750 `b64token` (`[A-Za-z0-9._~+/-]+=*`), not starting with `~` (which sh would
/// expand). The error names the position, never the character's neighbours.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("access_token is empty".into());
    }
    if token.starts_with('~') {
        return Err("access_token starts with '~'".into());
    }
    let body = token.trim_end_matches('=');
    if body.is_empty() {
        return Err("access_token is only '=' padding".into());
    }
    match body
        .chars()
        .position(|c| !(c.is_ascii_alphanumeric() || "-._~+/".contains(c)))
    {
        None => Ok(()),
        Some(at) => Err(format!(
            "access_token has a character that RFC 6750 does not allow in a bearer token (at position {at}); refusing it"
        )),
    }
}

/// Splits a scope list on commas and whitespace, dropping empty items and duplicates,
/// keeping order.
pub fn parse_list(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .filter(|s| seen.insert(*s))
        .map(str::to_owned)
        .collect()
}

/// A scope that can be written into a dotenv file unquoted: `[A-Za-z0-9._~+/:@=-]`, not
/// starting with `~` or `=`, and no `~` after a `:` (a shell expands `A=x:~root` to
/// `x:/root`, as it does `PATH=a:~/bin`: POSIX 2.6.1). RFC 6749 §3.3 allows `$`, `` ` ``,
/// `'` and `;` in scopes; those are never written.
pub fn is_inert_scope(scope: &str) -> bool {
    !scope.is_empty()
        && !scope.starts_with(['~', '='])
        && !scope.contains(":~")
        && scope
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._~+/:@=-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_be_b64token() {
        for ok in [
            "abc",
            "a.b.c",
            "A-Z_a~z+/0",
            "x==",
            "eyJhbGciOi.eyJzdWIi.sig",
        ] {
            assert!(check_token(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "~x", "===", "a b", "a\nb", "a\"b", "a$b", "a'b", "a\0b", "a<<EOF", "a=b", "tök",
        ] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scope_lists_split_on_commas_and_spaces() {
        assert_eq!(
            parse_list(" repository,pullrequest  webhook,,repository\t"),
            ["repository", "pullrequest", "webhook"]
        );
        assert!(parse_list(" , ").is_empty());
    }

    #[test]
    fn inert_scopes() {
        for ok in [
            "repository:write",
            "api://x/.default",
            "read:user@x=1",
            "https://graph.microsoft.com/.default",
        ] {
            assert!(is_inert_scope(ok), "{ok}");
        }
        for bad in [
            "", "a$b", "a`b", "a'b", "a;b", "~x", "=x", "a b", "a\"b", "$(id)", "x:~root",
        ] {
            assert!(!is_inert_scope(bad), "{bad:?}");
        }
    }

    #[test]
    fn expiry_bounds_and_rendering() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_069_273_500);
        assert_eq!(format_time(t), "2026-11-30T20:07:53Z");
        assert!(Expiry::after(t, 0).is_err());
        assert!(Expiry::after(t, 366 * 24 * 3600).is_err());
        assert_eq!(
            Expiry::after(t, 60),
            Ok(Expiry::At(t + Duration::from_secs(60)))
        );
        assert_eq!(Expiry::Unknown.to_string(), "expiry unknown");
        assert_eq!(
            Expiry::At(t).left(t + Duration::from_secs(1)),
            Duration::ZERO
        );
    }
}
