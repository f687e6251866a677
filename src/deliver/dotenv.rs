//! The dotenv file's format, written and read back in one place.
//!
//! The file holds only `NAME=value` lines whose values need no quoting at all: the token is
//! an RFC 6750 `b64token`, the expiry an RFC 3339 time, the scopes [`is_inert_scope`] words
//! joined by commas, the client a hex fingerprint, a provider's outputs (a GitHub App's
//! installation ID and slug) inert words of the same alphabet. So it reads back identically through
//! `. ./file` in POSIX sh, `set -a`, `docker run --env-file` and GitLab's dotenv report (no
//! comment lines: GitLab's parser rejects them).
//!
//! A file read back may have been planted (a malicious commit, a `pull_request_target`
//! checkout), so [`parse`] checks every field exactly as strictly as a fresh token response:
//! a value that fails is never reused, and so never rewritten into a file someone sources.

use std::time::SystemTime;

use secrecy::ExposeSecret;

use crate::provider::OUTPUTS;
use crate::token::{self, Expiry, Token, check_token, format_time, is_inert_scope};

/// The suffixes of the lines written for a variable `V`: `V`, `V_EXPIRES_AT`, `V_SCOPES`,
/// `V_CLIENT`, and one per provider output ([`output_suffix`]).
const SUFFIXES: [&str; 4] = ["", "_EXPIRES_AT", "_SCOPES", "_CLIENT"];

/// The line suffix of the provider output `name`: `installation_id` → `_INSTALLATION_ID`.
pub fn output_suffix(name: &str) -> String {
    format!("_{}", name.to_ascii_uppercase())
}

/// Whether `key` is a line this program writes for `variable`.
fn is_ours(key: &str, variable: &str) -> bool {
    key.strip_prefix(variable).is_some_and(|suffix| {
        SUFFIXES.contains(&suffix) || OUTPUTS.iter().any(|name| suffix == output_suffix(name))
    })
}

/// The dotenv text for `token` under `variable`, recording the reuse fingerprint `client`;
/// also the scopes left out because they are not shell-inert.
pub fn render(variable: &str, token: &Token, client: &str) -> (String, Vec<String>) {
    let mut text = format!("{variable}={}\n", token.secret.expose_secret());
    if let Some(at) = token.expiry.at() {
        text.push_str(&format!("{variable}_EXPIRES_AT={}\n", format_time(at)));
    }
    let (inert, dropped): (Vec<&String>, Vec<&String>) =
        token.scopes.iter().partition(|s| is_inert_scope(s));
    let inert: Vec<&str> = inert.into_iter().map(String::as_str).collect();
    text.push_str(&format!("{variable}_SCOPES={}\n", inert.join(",")));
    text.push_str(&format!("{variable}_CLIENT={client}\n"));
    // Outputs are the provider's words (digits, a slug); one that is not inert is left out
    // rather than quoted, exactly as a scope is.
    for (name, value) in token.outputs.iter().filter(|(_, v)| is_inert_scope(v)) {
        text.push_str(&format!("{variable}{}={value}\n", output_suffix(name)));
    }
    (text, dropped.into_iter().cloned().collect())
}

/// A token read back from a file this program wrote.
#[derive(Debug)]
pub struct Stored {
    /// The token, with its expiry and scopes.
    pub token: Token,
    /// The reuse fingerprint recorded with it.
    pub client: String,
}

/// The keys in `text` that this program does not write for `variable` (never values).
///
/// Only what looks like a variable name is named; any other line (the continuation of a
/// quoted multi-line value such as a PEM key, a JSON file given as OUTPUT_FILE) is value, not
/// key, and is only counted, so the message never quotes the user's secrets.
pub fn foreign_keys(text: &str, variable: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut other = 0;
    // The quote that opened a value not closed on its own line.
    let mut open: Option<char> = None;
    for line in text.lines() {
        if let Some(quote) = open {
            if line.ends_with(quote) {
                open = None;
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        if is_ours(key, variable) {
            continue;
        }
        let name = key.strip_prefix("export ").unwrap_or(key).trim();
        if crate::vars::is_variable_name(name) {
            keys.push(name.to_owned());
        } else {
            other += 1;
        }
        if let Some(quote) = value.chars().next().filter(|c| matches!(c, '"' | '\'')) {
            if value.len() == 1 || !value.ends_with(quote) {
                open = Some(quote);
            }
        }
    }
    match other {
        0 => {}
        1 => keys.push("1 other line".to_owned()),
        n => keys.push(format!("{n} other lines")),
    }
    keys
}

/// Parses `text` as a file written for `variable`, checking every field.
pub fn parse(text: &str, variable: &str, now: SystemTime) -> Result<Stored, String> {
    let foreign = foreign_keys(text, variable);
    if !foreign.is_empty() {
        return Err(format!(
            "it has lines this program does not write ({})",
            foreign.join(", ")
        ));
    }
    let value = |suffix: &str| -> Result<Option<&str>, String> {
        let key = format!("{variable}{suffix}=");
        let mut found = text.lines().filter_map(|line| line.strip_prefix(&key));
        let first = found.next();
        if found.next().is_some() {
            return Err(format!("it has {variable}{suffix} twice"));
        }
        Ok(first)
    };
    let missing = |suffix: &str| format!("it has no {variable}{suffix} line");
    let secret = value("")?.ok_or_else(|| missing(""))?;
    check_token(secret).map_err(|e| format!("its token is unusable: {e}"))?;
    let client = value("_CLIENT")?.ok_or_else(|| missing("_CLIENT"))?;
    if client.len() != 16 || !client.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "its {variable}_CLIENT is not a fingerprint this program writes"
        ));
    }
    let expires = value("_EXPIRES_AT")?.ok_or_else(|| missing("_EXPIRES_AT"))?;
    let at = humantime::parse_rfc3339(expires)
        .map_err(|_| format!("its {variable}_EXPIRES_AT is not an RFC 3339 time"))?;
    if at
        .duration_since(now)
        .is_ok_and(|left| left > token::MAX_LIFETIME)
    {
        return Err(format!(
            "its {variable}_EXPIRES_AT is more than a year away"
        ));
    }
    let scopes = token::parse_list(value("_SCOPES")?.unwrap_or(""));
    if scopes.iter().any(|s| !is_inert_scope(s)) {
        return Err(format!(
            "its {variable}_SCOPES has a character this program never writes"
        ));
    }
    let mut token = Token::new(secret, Expiry::At(at), scopes);
    for name in OUTPUTS {
        let suffix = output_suffix(name);
        if let Some(value) = value(&suffix)? {
            if !is_inert_scope(value) {
                return Err(format!(
                    "its {variable}{suffix} has a character this program never writes"
                ));
            }
            token.outputs.push((name, value.to_owned()));
        }
    }
    Ok(Stored {
        token,
        client: client.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn token(scopes: &[&str]) -> Token {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_003_600);
        Token::new(
            "abc.def",
            Expiry::At(at),
            scopes.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn reads_back_what_render_writes() {
        let (text, dropped) = render(
            "BB",
            &token(&["repository", "api://x/.default"]),
            "0123456789abcdef",
        );
        assert!(dropped.is_empty());
        assert_eq!(
            text,
            "BB=abc.def\nBB_EXPIRES_AT=2027-01-15T09:00:00Z\nBB_SCOPES=repository,api://x/.default\nBB_CLIENT=0123456789abcdef\n"
        );
        let stored = parse(&text, "BB", now()).unwrap();
        assert_eq!(
            (stored.token.len, stored.client.as_str()),
            (7, "0123456789abcdef")
        );
        assert_eq!(stored.token.scopes, ["repository", "api://x/.default"]);
    }

    #[test]
    fn a_providers_outputs_are_written_and_read_back() {
        let mut token = token(&["contents:write"]);
        token.outputs = vec![
            ("installation_id", "31337".to_owned()),
            ("app_slug", "fake-ci-app".to_owned()),
        ];
        let (text, _) = render("GH", &token, "0123456789abcdef");
        assert!(
            text.ends_with(
                "GH_CLIENT=0123456789abcdef\nGH_INSTALLATION_ID=31337\nGH_APP_SLUG=fake-ci-app\n"
            ),
            "{text}"
        );
        assert!(foreign_keys(&text, "GH").is_empty());
        let stored = parse(&text, "GH", now()).unwrap();
        assert_eq!(stored.token.outputs, token.outputs);
        // A value that is not an inert word is never written.
        token.outputs = vec![("app_slug", "a b".to_owned())];
        assert!(
            !render("GH", &token, "0123456789abcdef")
                .0
                .contains("APP_SLUG")
        );
    }

    #[test]
    fn shell_active_scopes_are_never_written() {
        let (text, dropped) = render(
            "BB",
            &token(&["ok", "a$(id)", "b;c", "d`e`"]),
            "0123456789abcdef",
        );
        assert!(text.contains("BB_SCOPES=ok\n"), "{text}");
        assert_eq!(dropped, ["a$(id)", "b;c", "d`e`"]);
    }

    #[test]
    fn a_planted_file_is_refused_field_by_field() {
        let good = "BB=abc\nBB_EXPIRES_AT=2027-01-01T00:00:00Z\nBB_SCOPES=repository\nBB_CLIENT=0123456789abcdef\n";
        assert!(parse(good, "BB", now()).is_ok());
        for (bad, why) in [
            (
                good.replace(
                    "BB_SCOPES=repository",
                    "BB_SCOPES=repository,$(echo${IFS}PWNED>&2)",
                ),
                "_SCOPES",
            ),
            (good.replace("BB=abc", "BB=abc;id"), "token is unusable"),
            (
                good.replace("0123456789abcdef", "0123456789abcdeg"),
                "fingerprint",
            ),
            (good.replace("2027-01-01", "2099-01-01"), "more than a year"),
            (good.replace("2027-01-01T00:00:00Z", "soon"), "RFC 3339"),
            (format!("{good}EXTRA=1\n"), "EXTRA"),
            (format!("{good}BB=xyz\n"), "twice"),
            (
                format!("{good}BB_APP_SLUG=$(id)\n"),
                "_APP_SLUG has a character",
            ),
            (format!("{good}BB_APP_SLUG=a\nBB_APP_SLUG=b\n"), "twice"),
            (
                good.replace("BB_CLIENT=0123456789abcdef\n", ""),
                "no BB_CLIENT",
            ),
        ] {
            let err = parse(&bad, "BB", now()).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn foreign_keys_are_named_without_values() {
        assert_eq!(
            foreign_keys("VERSION=1.2.3\nBB=x\n\nNAME\n", "BB"),
            ["VERSION", "NAME"]
        );
        assert!(foreign_keys("BB=x\nBB_SCOPES=\n", "BB").is_empty());
        assert_eq!(
            foreign_keys("K=\"-----BEGIN\nMIIE\nab==\n-----END\"\n{\"x\": 1}\n", "BB"),
            ["K", "1 other line"]
        );
    }
}
