//! Phase one of configuration: the variables exactly as read, and the problems found in them.
//!
//! This sits below every module that owns a configuration section (the HTTP settings, each
//! provider, the outputs, reuse), so each parses its own section with
//! `fn parse(&Raw, &mut Problems) -> Option<Section>` without importing `config`, which only
//! reads the environment into a [`Raw`] and composes the sections. CI runners pass an unset
//! variable as an empty string, so an empty value counts as unset everywhere.
//!
//! Values are echoed in messages only through [`shown`], which escapes control characters
//! and nothing else: a value with `"` or `\` stays byte-identical, so the log masks (ours and
//! the runner's) still match it. Credential-bearing variables are never echoed at all, and a
//! URL's userinfo never is.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use url::Url;

use crate::error::Problem;

/// What the run is for; it decides which variables are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The pipe: fetch (or reuse), validate, write OUTPUT_FILE.
    Pipe,
    /// `exec`: a file only when OUTPUT_FILE is set.
    Exec,
    /// `check`: fetch and validate, write nothing, reuse nothing.
    Check,
    /// `git-credential`: the per-user cache; validation only when asked for.
    GitCredential,
    /// `status`: read OUTPUT_FILE; no credentials needed.
    Status,
}

/// The variables of one run, by name (GitHub's `INPUT_*` already folded in).
#[derive(Debug, Default)]
pub struct Raw {
    values: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl Raw {
    /// A `Raw` holding exactly `pairs`.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Raw {
        Raw {
            values: pairs.into_iter().collect(),
            read: RefCell::default(),
        }
    }

    /// The value of `name`, or `None` when it is unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.read.borrow_mut().insert(name.to_owned());
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every name some parser asked for, so a test can hold the variable table to what the
    /// code reads.
    pub fn names_read(&self) -> BTreeSet<String> {
        self.read.borrow().clone()
    }
}

/// The problems found so far; all are reported together, before any network call.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// Records a problem about `variable`; `text` continues the sentence after its name.
    pub fn push(&mut self, variable: &str, text: impl Into<String>) {
        self.0.push(Problem {
            variable: variable.to_owned(),
            input: None,
            text: text.into(),
        });
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in the order found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

/// A value quoted for a message: control characters escaped, nothing else changed, and any
/// `scheme://user:password@` userinfo replaced by `***@`.
pub fn shown(value: &str) -> String {
    let value = hide_userinfo(value);
    let mut out = String::from("\"");
    for c in value.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// `https://key:secret@host/` → `https://***@host/`, also when the rest does not parse.
fn hide_userinfo(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://***{}", &value[..scheme_end], &rest[at..]),
        None => value.to_owned(),
    }
}

/// Leading/trailing whitespace or a line break, described without quoting the value.
pub fn whitespace_slip(value: &str) -> Option<&'static str> {
    if value.contains(['\n', '\r']) {
        Some("contains a line break")
    } else if value.trim() != value {
        Some("starts or ends with whitespace")
    } else {
        None
    }
}

/// A required secret: `missing` says where to find it when unset. Never echoed.
pub fn secret(raw: &Raw, name: &str, missing: &str, problems: &mut Problems) -> Option<String> {
    match raw.get(name) {
        None => {
            problems.push(name, format!("is not set: {missing}"));
            None
        }
        Some(value) => {
            if let Some(slip) = whitespace_slip(value) {
                problems.push(
                    name,
                    format!("{slip}: a copy-paste slip? Set it to the value exactly."),
                );
            }
            Some(value.to_owned())
        }
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, any case), or `default` when unset.
pub fn boolean(raw: &Raw, name: &str, default: bool, problems: &mut Problems) -> bool {
    match raw.get(name).map(str::to_ascii_lowercase).as_deref() {
        None => default,
        Some("true" | "1" | "yes") => true,
        Some("false" | "0" | "no") => false,
        Some(other) => {
            problems.push(
                name,
                format!(
                    "({}) is not a boolean: use true or false (also 1/0, yes/no).",
                    shown(other)
                ),
            );
            default
        }
    }
}

/// A whole number in `min..=max`, or `default` when unset.
pub fn number(
    raw: &Raw,
    name: &str,
    default: u64,
    (min, max): (u64, u64),
    unit: &str,
    problems: &mut Problems,
) -> u64 {
    let Some(text) = raw.get(name) else {
        return default;
    };
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => n,
        _ => {
            problems.push(
                name,
                format!(
                    "({}) must be a whole number of {unit} from {min} to {max}.",
                    shown(text)
                ),
            );
            default
        }
    }
}

/// The endpoint URL in `name`, or `default` when unset; see [`parse_url`].
pub fn url(raw: &Raw, name: &str, default: Option<&str>, problems: &mut Problems) -> Option<Url> {
    let text = raw.get(name).or(default)?;
    parse_url(name, text, problems)
}

/// The base URL in `name` (paths are joined to it), or `default` when unset: as
/// [`parse_url`], and without a query, which joining would leave in the middle (`?x=1`
/// then `/repositories/…` validates the wrong endpoint while the log claims success).
pub fn base_url(
    raw: &Raw,
    name: &str,
    default: Option<&str>,
    problems: &mut Problems,
) -> Option<Url> {
    let text = raw.get(name).or(default)?;
    let url = parse_url(name, text, problems)?;
    if url.query().is_some() {
        problems.push(name, format!("({}) has a query (`?`): it is a base URL that paths are added to; remove the query.", shown(text)));
        return None;
    }
    Some(url)
}

/// An absolute https URL without credentials or fragment (a `#` is never sent, so what is
/// called would differ from what the log shows); plain http only to loopback, for local
/// testing.
pub fn parse_url(name: &str, text: &str, problems: &mut Problems) -> Option<Url> {
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            problems.push(
                name,
                format!(
                    "({}) is not a valid URL ({e}): give an absolute https:// URL.",
                    shown(text)
                ),
            );
            return None;
        }
    };
    let problem = if !url.username().is_empty() || url.password().is_some() {
        // Never echo the URL here: its userinfo may be a credential.
        Some(
            "contains a user name or password: remove them; the pipe sends the credentials itself."
                .to_owned(),
        )
    } else if url.host_str().is_none() {
        Some(format!(
            "({}) has no host: give an absolute https:// URL.",
            shown(text)
        ))
    } else if url.fragment().is_some() {
        Some(format!(
            "({}) has a fragment (`#`), which is never sent: remove it.",
            shown(text)
        ))
    } else if url.scheme() == "https" {
        None
    } else if url.scheme() == "http" {
        (!is_loopback(&url)).then(|| format!("({}) uses plain http to a host that is not loopback: use https:// (http is allowed only for 127.0.0.0/8, ::1 and localhost, for local testing).", shown(text)))
    } else {
        Some(format!(
            "({}) has scheme {}: use https://.",
            shown(text),
            shown(url.scheme())
        ))
    };
    match problem {
        Some(p) => {
            problems.push(name, p);
            None
        }
        None => Some(url),
    }
}

/// A loopback host: 127.0.0.0/8, ::1, or `localhost` (which the HTTP client pins to the
/// loopback addresses, so the name cannot be made to resolve elsewhere).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`, the names POSIX sh, docker --env-file and GitLab accept.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> Raw {
        Raw::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn shown_keeps_quotes_and_backslashes_and_hides_userinfo() {
        assert_eq!(shown(r#"a"b\c"#), r#""a"b\c""#);
        assert_eq!(shown("a\nb"), r#""a\nb""#);
        assert_eq!(
            shown("https://key:App-Passw0rd@host:99999/"),
            r#""https://***@host:99999/""#
        );
        assert_eq!(shown("https://h/p@q"), r#""https://h/p@q""#);
    }

    #[test]
    fn urls_with_query_fragment_or_userinfo_are_refused() {
        let mut problems = Problems::default();
        let raw = Raw::new([("API_URL".to_owned(), "https://h/2.0?x=1".to_owned())]);
        assert!(base_url(&raw, "API_URL", None, &mut problems).is_none());
        assert!(problems.into_vec()[0].text.contains("has a query"));
        for (text, why) in [
            ("https://h/2.0#x", "fragment"),
            ("https://key:App-Passw0rd@host:99999/", "not a valid URL"),
            ("https://key:App-Passw0rd@host:9/", "user name or password"),
            ("ftp://h/", "scheme"),
            ("http://example.com/", "plain http"),
        ] {
            let mut problems = Problems::default();
            assert!(
                parse_url("API_URL", text, &mut problems).is_none(),
                "{text}"
            );
            let all = problems.into_vec();
            assert!(all[0].text.contains(why), "{text}: {all:?}");
            assert!(!all[0].text.contains("App-Passw0rd"));
        }
        let mut problems = Problems::default();
        assert!(parse_url("API_URL", "http://[::1]:9/x", &mut problems).is_some());
    }

    #[test]
    fn empty_counts_as_unset_and_reads_are_recorded() {
        let r = raw(&[("A", ""), ("B", "x")]);
        assert_eq!((r.get("A"), r.get("B")), (None, Some("x")));
        assert_eq!(
            r.names_read().into_iter().collect::<Vec<_>>(),
            ["A".to_string(), "B".to_string()]
        );
    }

    #[test]
    fn booleans_parse_case_insensitively() {
        let mut problems = Problems::default();
        for (text, want) in [
            ("TRUE", true),
            ("Yes", true),
            ("1", true),
            ("False", false),
            ("no", false),
            ("0", false),
        ] {
            assert_eq!(
                boolean(&raw(&[("D", text)]), "D", !want, &mut problems),
                want,
                "{text}"
            );
        }
        assert!(problems.is_empty());
        boolean(&raw(&[("D", "maybe")]), "D", true, &mut problems);
        assert_eq!(
            problems.into_vec()[0].to_string(),
            "D (\"maybe\") is not a boolean: use true or false (also 1/0, yes/no)."
        );
    }

    #[test]
    fn variable_names() {
        assert!(is_variable_name("_A1") && is_variable_name("BITBUCKET_ACCESS_TOKEN"));
        for bad in ["", "A-B", "9A", "A B"] {
            assert!(!is_variable_name(bad), "{bad}");
        }
    }
}
