//! Turns the environment into a typed, validated [`Config`] before anything touches the
//! network, in two phases.
//!
//! Phase one, [`read_env`], keeps the variables in [`table::VARIABLES`] (on GitHub Actions
//! an action input `INPUT_<NAME>` takes the place of `<NAME>`), refusing non-UTF-8 and
//! oversized values by name. Phase two, [`Config::parse`], hands that [`Raw`] to each
//! section's own parser — the provider's, the HTTP settings, the outputs, reuse — which
//! report every problem at once, each naming its variable (and on GitHub its input).

pub mod table;

use std::ffi::OsString;

use crate::deliver;
use crate::error::{Error, Problem};
use crate::http;
use crate::platform::Platform;
use crate::provider::{self, Provider};
use crate::report::Reporter;
use crate::store;
use crate::vars::{self, Mode, Problems, Raw};

/// No variable we read has a legitimate reason to be this long (a PEM, a URL, a key).
const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The validated configuration of one run. Only the commands see it whole; every other
/// module gets its own section.
#[derive(Debug)]
pub struct Config {
    /// What the run is for.
    pub mode: Mode,
    /// The CI platform.
    pub platform: Platform,
    /// Log requests and responses (secrets redacted).
    pub debug: bool,
    /// Where tokens come from.
    pub provider: Box<dyn Provider>,
    /// How requests are made.
    pub http: http::Settings,
    /// Where the token goes.
    pub output: deliver::Settings,
    /// Reuse of stored tokens.
    pub store: store::Settings,
    /// The host `git-credential` answers for (`host` or `host:port`), lower case.
    pub git_host: Option<String>,
}

/// Reads the environment into a [`Raw`], keeping only variables of ours whose names and
/// values are UTF-8; a non-UTF-8 or oversized value of ours is reported by name.
pub fn read_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> (Raw, Problems) {
    let mut problems = Problems::default();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let vars: Vec<(OsString, OsString)> = vars.into_iter().collect();
    // GitLab's identity token lives in a variable its `id_tokens:` names: ours by reference.
    let named = vars
        .iter()
        .filter(|(n, _)| n == "OIDC_TOKEN_VARIABLE" || n == "INPUT_OIDC_TOKEN_VARIABLE")
        .find_map(|(_, v)| {
            v.to_str()
                .filter(|v| crate::vars::is_variable_name(v))
                .map(str::to_owned)
        });
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        if !is_ours(name) && named.as_deref() != Some(name) {
            continue;
        }
        match value.into_string() {
            Ok(value) if value.len() > MAX_VALUE_BYTES => problems.push(
                name,
                format!(
                    "is {} bytes long, more than the {MAX_VALUE_BYTES} this pipe accepts: check that the variable holds what its name says.",
                    value.len()
                ),
            ),
            Ok(value) => pairs.push((name.to_owned(), value)),
            Err(_) => problems.push(name, "is not valid UTF-8: set it to plain text."),
        }
    }
    let on_github = pairs
        .iter()
        .any(|(n, v)| n == "GITHUB_ACTIONS" && v == "true");
    let (inputs, mut plain): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(n, _)| n.starts_with("INPUT_"));
    if on_github {
        for (input, value) in inputs.into_iter().filter(|(_, v)| !v.is_empty()) {
            let variable = input.trim_start_matches("INPUT_").to_owned();
            plain.retain(|(n, _)| *n != variable);
            plain.push((variable, value));
        }
    }
    (Raw::new(plain), problems)
}

fn is_ours(name: &str) -> bool {
    match name.strip_prefix("INPUT_") {
        Some(input) => table::find(input).is_some_and(|v| v.input),
        None => table::find(name).is_some(),
    }
}

/// Registers every credential-bearing variable with the log the moment it is read, even
/// when the configuration turns out to be invalid.
pub fn mask_secrets(raw: &Raw, log: &mut Reporter) {
    for name in table::secrets() {
        if let Some(value) = raw.get(name) {
            log.mask(value);
        }
    }
}

/// `NO_COLOR` (https://no-color.org): present and not empty turns colour off.
pub fn color_enabled(raw: &Raw) -> bool {
    raw.get("NO_COLOR").is_none()
}

impl Config {
    /// Validates `raw` for `mode`, reporting every problem at once (exit 2).
    pub fn parse(raw: &Raw, mut problems: Problems, mode: Mode) -> Result<Config, Error> {
        let platform = Platform::detect(raw);
        let provider = provider::parse(raw, mode, &mut problems);
        let default_variable = provider
            .as_ref()
            .map_or("OAUTH_ACCESS_TOKEN", |p| p.default_token_variable());
        let http = http::Settings::parse(raw, &mut problems);
        let output = deliver::Settings::parse(raw, platform, mode, default_variable, &mut problems);
        let mut store = store::Settings::parse(raw, mode == Mode::GitCredential, &mut problems);
        store.reuse &= mode != Mode::Check;
        let debug = vars::boolean(raw, "DEBUG", false, &mut problems);
        let git_host = git_host(raw, provider.as_deref(), mode, &mut problems);
        let (Some(provider), true) = (provider, problems.is_empty()) else {
            return Err(Error::Config(name_inputs(problems.into_vec(), platform)));
        };
        Ok(Config {
            mode,
            platform,
            debug,
            provider,
            http,
            output,
            store,
            git_host,
        })
    }
}

fn git_host(
    raw: &Raw,
    provider: Option<&dyn Provider>,
    mode: Mode,
    problems: &mut Problems,
) -> Option<String> {
    let default = provider.and_then(|p| p.git().default_host);
    let host = raw.get("GIT_HOST").map(str::to_owned).or(default);
    if host.is_none() && mode == Mode::GitCredential && provider.is_some() {
        problems.push("GIT_HOST", "is not set, and this provider has no default host: set it to the host git talks to, e.g. dev.azure.com.");
    }
    host.map(|h| h.to_ascii_lowercase())
}

/// On GitHub the user sets inputs, not variables: name the input beside the variable.
fn name_inputs(mut problems: Vec<Problem>, platform: Platform) -> Vec<Problem> {
    if platform == Platform::GitHubActions {
        for problem in &mut problems {
            problem.input = table::find(&problem.variable).and_then(|v| v.input_name());
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let (raw, problems) = read_env(env(pairs));
        Config::parse(&raw, problems, Mode::Pipe).map_err(|e| match e {
            Error::Config(p) => p.iter().map(ToString::to_string).collect(),
            other => panic!("unexpected {other:?}"),
        })
    }

    const BASE: &[(&str, &str)] = &[
        ("CLIENT_ID", "key"),
        ("CLIENT_SECRET", "secret"),
        ("REPOSITORY", "ws/repo"),
    ];

    #[test]
    fn defaults_apply() {
        let c = config(BASE).unwrap();
        assert_eq!(c.output.output_file, Some("oauth-token.env".into()));
        assert_eq!(c.platform, Platform::Local);
        assert_eq!(c.output.token_variable, "BITBUCKET_ACCESS_TOKEN");
        assert_eq!(c.http.timeout, std::time::Duration::from_secs(30));
        assert_eq!(c.http.retries, 3);
        assert_eq!(
            c.provider.validation().as_deref(),
            Some("GET https://api.bitbucket.org/2.0/repositories/ws/repo")
        );
        assert!(!c.debug);
    }

    #[test]
    fn table_defaults_are_the_code_defaults() {
        let default = |name| table::find(name).unwrap().default;
        assert_eq!(default("OUTPUT_FILE"), deliver::DEFAULT_OUTPUT_FILE);
        assert_eq!(
            default("TOKEN_VARIABLE"),
            provider::bitbucket::DEFAULT_TOKEN_VARIABLE
        );
        assert_eq!(default("TOKEN_URL"), provider::bitbucket::DEFAULT_TOKEN_URL);
        assert_eq!(default("API_URL"), provider::bitbucket::DEFAULT_API_URL);
        assert_eq!(
            default("TIMEOUT"),
            http::client::DEFAULT_TIMEOUT_SECS.to_string()
        );
        assert_eq!(
            default("RETRIES"),
            http::client::DEFAULT_RETRIES.to_string()
        );
        assert_eq!(
            default("MIN_VALIDITY"),
            store::DEFAULT_MIN_VALIDITY_SECS.to_string()
        );
        assert_eq!(default("GIT_HOST"), provider::bitbucket::DEFAULT_GIT_HOST);
        assert_eq!(default("PROVIDER"), provider::IDS[0]);
    }

    #[test]
    fn the_table_lists_exactly_what_the_parsers_read() {
        // Every provider and mode, on GitHub and off, so every branch that reads one runs.
        let mut all = BTreeSet::new();
        let modes = [
            Mode::Pipe,
            Mode::Exec,
            Mode::Check,
            Mode::GitCredential,
            Mode::Status,
        ];
        // Values that open the branches reading more variables: a real key (so the signing
        // options are read), each identity-token source, impersonation.
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let key =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pkcs8.as_ref());
        let extras: Vec<Vec<(&str, String)>> = vec![
            vec![],
            vec![
                ("CLIENT_AUTH", "private_key_jwt".into()),
                ("PRIVATE_KEY", key),
            ],
            vec![
                ("GRANT", "token_exchange".into()),
                ("OIDC_TOKEN_SOURCE", "github".into()),
            ],
            vec![
                ("CLIENT_AUTH", "federated".into()),
                ("OIDC_TOKEN_SOURCE", "bitbucket".into()),
            ],
            vec![
                ("CLIENT_AUTH", "federated".into()),
                ("OIDC_TOKEN_SOURCE", "gitlab".into()),
            ],
            vec![
                ("CLIENT_AUTH", "federated".into()),
                ("OIDC_TOKEN_SOURCE", "file".into()),
            ],
            vec![("SERVICE_ACCOUNT", "sa@p.iam.gserviceaccount.com".into())],
        ];
        for (provider, mode) in provider::IDS.iter().flat_map(|p| modes.map(|m| (*p, m))) {
            for (github, extra) in [false, true]
                .into_iter()
                .flat_map(|g| extras.iter().map(move |e| (g, e)))
            {
                let mut pairs = vec![("PROVIDER".to_owned(), provider.to_owned())];
                pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
                if github {
                    pairs.push(("GITHUB_ACTIONS".to_owned(), "true".to_owned()));
                    pairs.push(("GITHUB_OUTPUT".to_owned(), "/o".to_owned()));
                }
                let raw = Raw::new(pairs);
                let _ = Config::parse(&raw, Problems::default(), mode);
                all.extend(raw.names_read());
            }
        }
        all.insert("NO_COLOR".to_owned()); // read by color_enabled, before the config
        let table: BTreeSet<String> = table::VARIABLES.iter().map(|v| v.name.to_owned()).collect();
        assert_eq!(
            all, table,
            "the parsers read (left) vs the table lists (right)"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = config(&[
            ("TOKEN_VARIABLE", "1BAD"),
            ("TIMEOUT", "0"),
            ("RETRIES", "x"),
            ("TOKEN_URL", "ftp://x/y"),
            ("CA_BUNDLE", "/nonexistent.pem"),
        ])
        .unwrap_err();
        let names: BTreeSet<_> = problems
            .iter()
            .map(|p| p.split([' ', '(']).next().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from([
                "CLIENT_ID",
                "CLIENT_SECRET",
                "TOKEN_VARIABLE",
                "TOKEN_URL",
                "VALIDATE",
                "TIMEOUT",
                "RETRIES",
                "CA_BUNDLE"
            ])
        );
    }

    #[test]
    fn empty_counts_as_unset() {
        let problems = config(&[
            ("CLIENT_ID", ""),
            ("CLIENT_SECRET", ""),
            ("VALIDATE", "false"),
            ("TIMEOUT", ""),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("CLIENT_ID is not set"));
        assert!(problems[1].starts_with("CLIENT_SECRET is not set"));
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8080/t",
            "http://127.8.9.1/t",
            "http://[::1]:1/t",
            "http://LOCALHOST/t",
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push(("TOKEN_URL", ok));
            assert!(config(&pairs).is_ok(), "{ok}");
        }
        let mut pairs = BASE.to_vec();
        pairs.push(("TOKEN_URL", "http://bitbucket.org/t"));
        assert!(config(&pairs).unwrap_err()[0].contains("plain http"));
    }

    #[test]
    fn github_inputs_replace_plain_variables_and_are_named_in_problems() {
        let c = config(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_OUTPUT", "/tmp/out"),
            ("INPUT_CLIENT_ID", "from-input"),
            ("CLIENT_ID", "plain"),
            ("CLIENT_SECRET", "s"),
            ("INPUT_CLIENT_SECRET", ""),
            ("INPUT_VALIDATE", "false"),
        ])
        .unwrap();
        assert_eq!(
            (
                c.provider.reuse_key().unwrap().ends_with("\nfrom-input"),
                c.platform,
                c.output.output_file
            ),
            (true, Platform::GitHubActions, None)
        );
        let problems = config(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_OUTPUT", "/tmp/out"),
            ("INPUT_VALIDATE", "false"),
        ])
        .unwrap_err();
        assert!(
            problems[0].starts_with("CLIENT_ID (the `client_id` input) is not set"),
            "{problems:?}"
        );
        // Off GitHub, INPUT_ variables mean nothing.
        let problems = config(&[
            ("INPUT_CLIENT_ID", "x"),
            ("CLIENT_SECRET", "s"),
            ("VALIDATE", "no"),
        ])
        .unwrap_err();
        assert!(problems[0].starts_with("CLIENT_ID is not set"));
    }

    #[test]
    fn control_characters_in_output_file_are_refused() {
        let mut pairs = BASE.to_vec();
        pairs.push(("OUTPUT_FILE", "a\nb.env"));
        assert!(
            config(&pairs).unwrap_err()[0]
                .starts_with("OUTPUT_FILE (\"a\\nb.env\") has a control character")
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_values_are_named() {
        use std::os::unix::ffi::OsStringExt;
        let vars = vec![
            (
                OsString::from("CLIENT_SECRET"),
                OsString::from_vec(vec![0x66, 0xff]),
            ),
            (OsString::from("UNRELATED"), OsString::from_vec(vec![0xff])),
        ];
        let (_, problems) = read_env(vars);
        let problems: Vec<String> = problems
            .into_vec()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            ["CLIENT_SECRET is not valid UTF-8: set it to plain text."]
        );
    }
}
