//! Property-based fuzzing of every parser and writer that faces untrusted input.
//!
//! cargo-fuzz needs a nightly toolchain, which this project's machines do not have, so the
//! targets run on stable with proptest, each for a time budget: `FUZZ_SECONDS` (default 2;
//! `.ci/run` gives each 30). Round trips are checked against the real consumers: what the
//! dotenv writer accepts, POSIX `sh` and GitLab's parser read back identically; what the
//! GitHub writer accepts, the runner's parser reads back identically; what either refuses is
//! refused with an error, never written. Seed inputs live in `tests/corpus/` and run every
//! time; proptest records any failure it finds in `tests/cases/fuzz.proptest-regressions`.

use std::time::{Duration, Instant, SystemTime};

use oauth_token_pipe::deliver::dotenv;
use oauth_token_pipe::deliver::github::file_commands;
use oauth_token_pipe::http;
use oauth_token_pipe::provider::bitbucket::{
    parse_token_response as parse_success, scope, validate,
};
use oauth_token_pipe::provider::oauth;
use oauth_token_pipe::token;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::{parse_file_commands, read_back_with_sh};

/// Runs `property` on values from `strategy` in rounds of `cases` until the time budget is
/// spent. The property says whether the input was accepted; at least `min_accepted` of all
/// cases (a fraction) must be, so a parser that refuses everything cannot pass.
fn fuzz<S: Strategy>(
    name: &str,
    cases: u32,
    min_accepted: f64,
    strategy: S,
    property: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let started = Instant::now();
    let (mut total, accepted, tried) = (0, std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    while total == 0 || started.elapsed() < Duration::from_secs(seconds) {
        let mut runner = TestRunner::new(Config {
            cases,
            ..Config::default()
        });
        let counted = |value| {
            tried.set(tried.get() + 1);
            let ok = property(value)?;
            accepted.set(accepted.get() + u64::from(ok));
            Ok(())
        };
        if let Err(failure) = runner.run(&strategy, counted) {
            panic!("{name}: {failure}");
        }
        total += cases;
    }
    let (accepted, tried) = (accepted.get(), tried.get());
    eprintln!(
        "fuzz {name}: {tried} cases ({accepted} accepted) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        accepted as f64 >= min_accepted * tried as f64,
        "{name}: only {accepted} of {tried} inputs were accepted; the strategy or the parser is broken"
    );
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Tokens that are mostly valid RFC 6750 `b64token`s, sometimes with a hostile character.
fn token_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9._~+/-]{1,80}={0,3}",
        1 => "[A-Za-z0-9._~+/\\-=\"'$`\\\\ \\n\\r\\t<>#;&|(){}*?!\\x00]{0,40}",
        1 => any::<String>(),
    ]
}

fn scopes_strategy() -> impl Strategy<Value = String> {
    prop_oneof![4 => "([a-z]{1,12}(:[a-z]{1,8})?)( [a-z]{1,12}(:[a-z]{1,8})?){0,5}", 1 => any::<String>()]
}

/// Token responses shaped like Bitbucket's, with every field sometimes wrong.
fn response_strategy() -> impl Strategy<Value = Vec<u8>> {
    let expires = prop_oneof![
        Just(serde_json::json!(7200)),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        "[0-9 ]{0,12}".prop_map(|s| serde_json::json!(s)),
        Just(serde_json::Value::Null),
    ];
    let kind = prop_oneof![
        Just("bearer".to_owned()),
        Just("Bearer".to_owned()),
        "[a-zA-Z]{0,8}"
    ];
    let field = prop_oneof![Just("scope"), Just("scopes")];
    (token_strategy(), kind, expires, scopes_strategy(), field, any::<bool>()).prop_map(|(token, kind, expires, scopes, field, raw)| {
        if raw {
            // Arbitrary bytes around a JSON-ish start.
            let mut bytes = format!("{{\"access_token\": \"{token}").into_bytes();
            bytes.extend(scopes.bytes());
            bytes
        } else {
            serde_json::json!({"access_token": token, "token_type": kind, "expires_in": expires, field: scopes}).to_string().into_bytes()
        }
    })
}

#[test]
fn corpus_token_responses_parse_or_fail_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/token-responses");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let parsed = parse_success(&body, now());
        let want_ok = name.starts_with("bitbucket-")
            || name.starts_with("expires-in-string")
            || name.starts_with("nulls");
        assert_eq!(
            parsed.is_ok(),
            want_ok,
            "{name}: {:?}",
            parsed.as_ref().err()
        );
        if let Err(problem) = parsed {
            assert!(
                !problem.contains('\n') && !problem.contains('\u{1b}'),
                "{name}: {problem:?}"
            );
        }
        seen += 1;
    }
    assert!(seen >= 10);
}

#[test]
fn fuzz_token_response_parser() {
    fuzz("token response", 512, 0.02, response_strategy(), |body| {
        let Ok(token) = parse_success(&body, now()) else {
            return Ok(false);
        };
        let secret = secrecy::ExposeSecret::expose_secret(&token.secret).to_owned();
        prop_assert!(token::check_token(&secret).is_ok());
        prop_assert!(!secret.starts_with('~'));
        prop_assert!(token.scopes.iter().all(|s| scope::is_well_formed(s)));
        prop_assert!(token.expiry.at().is_none_or(|at| at > now()));
        Ok(true)
    });
    fuzz(
        "token response bytes",
        512,
        0.0,
        proptest::collection::vec(any::<u8>(), 0..300),
        |body| Ok(parse_success(&body, now()).is_ok()),
    );
}

#[test]
fn fuzz_error_parsers() {
    let bodies = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (any::<String>(), any::<String>()).prop_map(|(e, d)| {
            serde_json::json!({"error": e, "error_description": d})
                .to_string()
                .into_bytes()
        }),
        (any::<String>(), any::<String>()).prop_map(|(m, d)| {
            serde_json::json!({"type": "error", "error": {"message": m, "detail": d}})
                .to_string()
                .into_bytes()
        }),
    ];
    fuzz("OAuth and API error bodies", 512, 0.3, bodies, |body| {
        let texts: Vec<String> = oauth::parse_error(&body)
            .into_iter()
            .flat_map(|e| [Some(e.code), e.description])
            .flatten()
            .chain(validate::api_message(&body))
            .collect();
        for text in &texts {
            prop_assert!(
                !text.chars().any(char::is_control),
                "a control character reaches the log: {text:?}"
            );
        }
        Ok(!texts.is_empty())
    });
}

#[test]
fn fuzz_retry_after_parser() {
    let values = prop_oneof![
        any::<String>(),
        "[0-9]{1,25}",
        "(Mon|Sun), [0-9]{2} (Jan|Nov) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
    ];
    fuzz("Retry-After", 1024, 0.2, values, |value| {
        let parsed = http::parse_retry_after(&value, now());
        if let Ok(seconds) = value.trim().parse::<u64>() {
            prop_assert_eq!(parsed, Some(Duration::from_secs(seconds)));
        }
        Ok(parsed.is_some())
    });
}

#[test]
fn fuzz_dotenv_writer_round_trips_through_sh_and_gitlab() {
    let inputs = ("[A-Za-z_][A-Za-z0-9_]{0,20}", response_strategy());
    fuzz("dotenv writer", 32, 0.01, inputs, |(variable, body)| {
        let Ok(token) = parse_success(&body, now()) else {
            return Ok(false);
        };
        let (text, _) = dotenv::render(&variable, &token, "0123456789abcdef");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.env");
        std::fs::write(&file, &text).unwrap();
        let names: Vec<String> = text
            .lines()
            .map(|l| l.split_once('=').unwrap().0.to_owned())
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        prop_assert_eq!(
            read_back_with_sh(&file, &refs),
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        );
        for line in text.lines() {
            let (key, value) = line.split_once('=').unwrap();
            prop_assert!(oauth_token_pipe::vars::is_variable_name(key));
            prop_assert_eq!(value.trim(), value, "GitLab trims values");
            prop_assert!(
                !value.starts_with(['"', '\'']),
                "GitLab would keep the quotes"
            );
        }
        Ok(true)
    });
}

#[test]
fn fuzz_github_output_writer_round_trips_through_the_runner_parser() {
    let value = prop_oneof![any::<String>(), "[a-z\r\n]{0,6}", "[A-Za-z0-9._~+/-]{1,40}"];
    let pairs = proptest::collection::vec(("[a-z_]{1,12}|.{0,12}", value), 1..4);
    fuzz("GitHub file commands", 512, 0.2, pairs, |pairs| {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        match file_commands(&refs) {
            Err(_) => Ok(false),
            Ok(text) => {
                let parsed = parse_file_commands(&text);
                prop_assert_eq!(parsed.len(), pairs.len());
                for ((name, value), (n, v)) in parsed.iter().zip(&pairs) {
                    prop_assert_eq!(name, n);
                    prop_assert_eq!(value, v);
                }
                Ok(true)
            }
        }
    });
}
