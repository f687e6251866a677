//! The registry of secrets this process holds, and the one way remote text is quoted.
//!
//! A secret is registered the moment it is parsed (from the environment, from a token
//! response, from a file read back), together with the forms it can take on the wire: each
//! line of a multi-line value, URL-encoded, JSON-escaped, and the base64 of `user:secret`
//! that an HTTP Basic header carries. The registry is process-wide because secrets are: a
//! server can echo any of them in any response, and every piece of remote text goes through
//! [`quote_remote`], which removes them *before* it cuts the text to length (cutting first
//! would leave a prefix the exact-string mask no longer matches), and then also removes any
//! run of [`MIN_FRAGMENT`] or more characters of a secret that survived.

use std::sync::Mutex;

use base64::Engine;

/// Shorter secrets are not masked: replacing every "a" would wreck the log, and no real
/// secret or token is that short.
pub const MIN_SECRET_LEN: usize = 4;

/// A run of this many characters of a secret is masked wherever it appears.
pub const MIN_FRAGMENT: usize = 24;

/// What a removed secret is replaced with.
pub const MASK: &str = "***";

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn secrets() -> std::sync::MutexGuard<'static, Vec<String>> {
    // A panic while holding the lock cannot leave the list half-written: recover it.
    SECRETS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers `secret` and its derived forms; returns the forms that were new (for the
/// runner's `::add-mask::`).
pub fn register(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    if secret.contains(['\n', '\r']) {
        forms.extend(secret.lines().map(|l| l.trim().to_owned()));
    }
    let url_encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    forms.push(url_encoded);
    let percent = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect::<String>();
    forms.push(percent);
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json[1..json.len() - 1].to_owned());
    }
    forms.push(secret.escape_default().to_string());
    add(forms)
}

/// Registers the base64 of `user:secret`, as an HTTP Basic header (or git's) carries it.
pub fn register_basic(user: &str, secret: &str) -> Vec<String> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
    add(vec![encoded])
}

fn add(forms: Vec<String>) -> Vec<String> {
    let mut list = secrets();
    let mut added = Vec::new();
    for form in forms {
        if form.len() >= MIN_SECRET_LEN && !list.contains(&form) {
            list.push(form.clone());
            added.push(form);
        }
    }
    // Longest first, so a secret containing another is masked whole.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    added
}

/// `text` with every registered secret, and every run of [`MIN_FRAGMENT`] characters of
/// one, replaced by [`MASK`].
pub fn redact(text: &str) -> String {
    let list = secrets();
    let mut out = text.to_owned();
    for secret in list.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    for secret in list.iter().filter(|s| s.len() >= MIN_FRAGMENT) {
        out = redact_fragments(&out, secret);
    }
    out
}

/// Replaces every run of at least [`MIN_FRAGMENT`] characters of `secret` in `text`.
fn redact_fragments(text: &str, secret: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let mut end = i + MIN_FRAGMENT;
        if end <= text.len() && text.is_char_boundary(end) && secret.contains(&text[i..end]) {
            while end < text.len() {
                let next = end + text[end..].chars().next().map_or(1, char::len_utf8);
                if !secret.contains(&text[i..next]) {
                    break;
                }
                end = next;
            }
            out.push_str(MASK);
            i = end;
            continue;
        }
        let c = text[i..].chars().next().expect("i is a char boundary");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Quotes text received from the network for the log: secrets removed first, then control
/// characters (which could forge log lines or ANSI colours) escaped, then cut to `max`
/// characters, then any surviving run of a secret removed again.
pub fn quote_remote(text: &str, max: usize) -> String {
    let clean = redact(text);
    let mut out = String::new();
    for (i, c) in clean.chars().enumerate() {
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
    redact(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_text_cannot_forge_lines() {
        assert_eq!(
            quote_remote("a\nINFO: b\x1b[31m", 100),
            "a\\nINFO: b\\u{1b}[31m"
        );
        assert_eq!(quote_remote("abcdef", 3), "abc…");
    }

    #[test]
    fn truncation_cannot_reveal_a_prefix_of_a_secret() {
        let token = "tokA1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0-unit-test";
        register(token);
        let body = format!("{{\"message\":\"Token {token} is not valid\"}}");
        // Cut in the middle of the token: the exact match is gone, the prefix must not show.
        let quoted = quote_remote(&body, 40);
        assert!(!quoted.contains(&token[..MIN_FRAGMENT]), "{quoted}");
        assert!(quoted.contains(MASK), "{quoted}");
        // A 24-character run cut out of the middle is masked too.
        let run = &token[5..5 + MIN_FRAGMENT + 3];
        assert_eq!(redact(&format!("x {run} y")), "x *** y");
        // Fewer characters stay (they identify nothing).
        assert_eq!(redact("tokA1b2c3"), "tokA1b2c3");
    }

    #[test]
    fn derived_forms_are_registered() {
        let secret = "s3cr+t/with=chars-unit";
        register(secret);
        register_basic("id-unit", secret);
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("id-unit:{secret}"));
        for form in [secret, "s3cr%2Bt%2Fwith%3Dchars-unit", b64.as_str()] {
            assert_eq!(redact(&format!("<{form}>")), "<***>", "{form}");
        }
    }
}
