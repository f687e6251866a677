//! Turns the environment into a typed, validated [`Config`] before anything touches the network.
//!
//! Bitbucket passes pipe variables as environment variables, and CI runners pass an unset
//! variable as an empty string, so parsing runs in two phases: [`RawConfig`] holds the raw
//! strings exactly as [`envy`] reads them (every field optional, so envy itself never fails
//! and never names a struct field), then [`Config::from_env`] checks every value and reports
//! every problem at once, each naming the variable as the user writes it (`CLIENT_ID`, not
//! `client_id`) and saying how to fix it.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use secrecy::SecretString;
use serde::Deserialize;

use crate::error::Error;
use crate::platform::{GitHubFiles, Platform};
use crate::scope;

/// Bitbucket's token endpoint (https://developer.atlassian.com/cloud/bitbucket/oauth-2/).
pub const DEFAULT_TOKEN_URL: &str = "https://bitbucket.org/site/oauth2/access_token";
/// Bitbucket's REST API base.
pub const DEFAULT_API_URL: &str = "https://api.bitbucket.org/2.0";
/// Where the dotenv file goes unless OUTPUT_FILE says otherwise.
pub const DEFAULT_OUTPUT_FILE: &str = "oauth-token.env";
/// The variable name used in the dotenv file unless TOKEN_VARIABLE says otherwise.
pub const DEFAULT_TOKEN_VARIABLE: &str = "BITBUCKET_ACCESS_TOKEN";
/// Seconds for the whole run, retries included.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Extra attempts after a transient failure.
pub const DEFAULT_RETRIES: u32 = 3;
/// A stored token is reused only with at least this many seconds left.
pub const DEFAULT_MIN_VALIDITY_SECS: u64 = 600;
/// The host `git-credential` answers for.
pub const DEFAULT_GIT_HOST: &str = "bitbucket.org";

const MAX_TIMEOUT_SECS: u64 = 3600;
const MAX_RETRIES: u32 = 10;
/// No variable we read has a legitimate reason to be this long (a PEM path, a URL, a key).
const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The pipe's own variables, in the order the README documents them. pipe.yml, the README
/// and `RawConfig` are checked against this list by the test suite.
pub const VARIABLES: &[&str] = &[
    "CLIENT_ID",
    "CLIENT_SECRET",
    "OUTPUT_FILE",
    "TOKEN_VARIABLE",
    "REPOSITORY",
    "VALIDATE",
    "VALIDATE_URL",
    "REQUIRED_SCOPES",
    "TOKEN_URL",
    "API_URL",
    "TIMEOUT",
    "RETRIES",
    "CA_BUNDLE",
    "REUSE",
    "MIN_VALIDITY",
    "DEBUG",
];

/// Variables only the `git-credential` subcommand reads.
pub const LOCAL_VARIABLES: &[&str] = &["GIT_HOST"];

/// Variables only the GitHub action uses.
pub const GITHUB_VARIABLES: &[&str] = &["EXPORT_ENV"];

/// The GitHub action's inputs and the variables they set. The runner passes an input
/// `client_id` as `INPUT_CLIENT_ID` (upper-cased, hyphens kept); action.yml also maps each
/// one explicitly in `runs.env`, and the README documents each (both checked by tests).
pub const GITHUB_INPUTS: &[(&str, &str)] = &[
    ("client_id", "CLIENT_ID"),
    ("client_secret", "CLIENT_SECRET"),
    ("repository", "REPOSITORY"),
    ("required_scopes", "REQUIRED_SCOPES"),
    ("validate", "VALIDATE"),
    ("validate_url", "VALIDATE_URL"),
    ("token_url", "TOKEN_URL"),
    ("api_url", "API_URL"),
    ("output_file", "OUTPUT_FILE"),
    ("token_variable", "TOKEN_VARIABLE"),
    ("export_env", "EXPORT_ENV"),
    ("timeout", "TIMEOUT"),
    ("retries", "RETRIES"),
    ("ca_bundle", "CA_BUNDLE"),
    ("debug", "DEBUG"),
];

/// The GitHub action's outputs.
pub const GITHUB_OUTPUTS: &[&str] = &["token", "expires_at", "scopes"];

/// Variables read from the platform rather than set by the user.
pub const PLATFORM_VARIABLES: &[&str] = &[
    "BITBUCKET_REPO_FULL_NAME",
    "BITBUCKET_BUILD_NUMBER",
    "GITHUB_ACTIONS",
    "GITHUB_OUTPUT",
    "GITHUB_ENV",
    "GITHUB_STEP_SUMMARY",
    "GITLAB_CI",
    "NO_COLOR",
    "XDG_CACHE_HOME",
    "HOME",
];

/// The environment exactly as envy reads it: strings, all optional.
#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    client_id: Option<String>,
    client_secret: Option<String>,
    output_file: Option<String>,
    token_variable: Option<String>,
    repository: Option<String>,
    validate: Option<String>,
    validate_url: Option<String>,
    required_scopes: Option<String>,
    token_url: Option<String>,
    api_url: Option<String>,
    timeout: Option<String>,
    retries: Option<String>,
    ca_bundle: Option<String>,
    debug: Option<String>,
    reuse: Option<String>,
    min_validity: Option<String>,
    git_host: Option<String>,
    export_env: Option<String>,
    bitbucket_repo_full_name: Option<String>,
    bitbucket_build_number: Option<String>,
    github_actions: Option<String>,
    github_output: Option<String>,
    github_env: Option<String>,
    github_step_summary: Option<String>,
    gitlab_ci: Option<String>,
    no_color: Option<String>,
    xdg_cache_home: Option<String>,
    home: Option<String>,
}

impl RawConfig {
    /// The CI platform these variables describe.
    pub fn platform(&self) -> Platform {
        Platform::detect(
            self.github_actions.as_deref(),
            self.bitbucket_build_number.as_deref(),
            self.gitlab_ci.as_deref(),
        )
    }

    /// The raw CLIENT_SECRET, so it can be masked before anything is checked or logged.
    pub fn client_secret(&self) -> Option<&str> {
        non_empty(&self.client_secret)
    }
}

/// What the token is checked against after it is issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// `GET {API_URL}/repositories/{workspace}/{slug}`.
    Repository {
        /// `workspace/slug`.
        full_name: String,
        /// The URL built from API_URL and the name.
        url: Url,
    },
    /// `GET VALIDATE_URL`.
    Url(Url),
}

impl Validation {
    /// The URL the validation call goes to.
    pub fn url(&self) -> &Url {
        match self {
            Validation::Repository { url, .. } | Validation::Url(url) => url,
        }
    }
}

/// What the run is for; it decides which variables are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The pipe: fetch (or reuse), validate, write OUTPUT_FILE.
    Pipe,
    /// `exec`: a file only when OUTPUT_FILE is set.
    Exec,
    /// `check`: fetch and validate, write nothing, reuse nothing.
    Check,
    /// `git-credential`: the per-user cache; validation only with VALIDATE_URL.
    GitCredential,
    /// `status`: read OUTPUT_FILE; no credentials needed.
    Status,
}

/// The validated configuration of one run.
#[derive(Debug)]
pub struct Config {
    /// The OAuth consumer's Key.
    pub client_id: String,
    /// The OAuth consumer's Secret; exposed only to build the Basic auth header.
    pub client_secret: SecretString,
    /// The CI platform.
    pub platform: Platform,
    /// Where the dotenv file is written; on GitHub Actions only when OUTPUT_FILE is set.
    pub output_file: Option<PathBuf>,
    /// The runner's file-command files, on GitHub Actions.
    pub github: Option<GitHubFiles>,
    /// Also export the token to later GitHub steps through `$GITHUB_ENV`.
    pub export_env: bool,
    /// The variable name used in the dotenv file.
    pub token_variable: String,
    /// The validation call, or `None` when VALIDATE=false.
    pub validation: Option<Validation>,
    /// Scopes the token must carry.
    pub required_scopes: Vec<String>,
    /// The token endpoint.
    pub token_url: Url,
    /// The REST API base.
    pub api_url: Url,
    /// Time allowed for the whole run, retries included.
    pub timeout: Duration,
    /// Extra attempts after a transient failure.
    pub retries: u32,
    /// Extra trusted CAs from CA_BUNDLE, added to the built-in roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Log requests and responses (secrets redacted).
    pub debug: bool,
    /// Reuse a stored token for the same consumer when enough validity is left.
    pub reuse: bool,
    /// The validity a stored token must have left to be reused.
    pub min_validity: Duration,
    /// The host `git-credential` answers for (`host` or `host:port`).
    pub git_host: String,
}

/// Reads the environment into [`RawConfig`], keeping only variables whose names and values
/// are UTF-8; a non-UTF-8 or oversized value of a variable we read is reported by name. On
/// GitHub Actions a non-empty `INPUT_<NAME>` (an action input) takes the place of `<NAME>`.
pub fn read_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> (RawConfig, Vec<String>) {
    let mut problems = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        if !is_ours(name) {
            continue;
        }
        match value.into_string() {
            Ok(value) if value.len() > MAX_VALUE_BYTES => problems.push(format!(
                "{name} is {} bytes long, more than the {MAX_VALUE_BYTES} this pipe accepts: check that the variable holds what its name says.",
                value.len()
            )),
            Ok(value) => pairs.push((name.to_owned(), value)),
            Err(_) => problems.push(format!("{name} is not valid UTF-8: set it to plain text.")),
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
    // Every field is an optional string, so envy cannot fail on any input.
    let raw = envy::from_iter(plain).unwrap_or_default();
    (raw, problems)
}

fn is_ours(name: &str) -> bool {
    let plain = name.strip_prefix("INPUT_").unwrap_or(name);
    VARIABLES.contains(&plain)
        || GITHUB_VARIABLES.contains(&plain)
        || (plain == name
            && (PLATFORM_VARIABLES.contains(&name) || LOCAL_VARIABLES.contains(&name)))
}

/// `NO_COLOR` (https://no-color.org): present and not empty turns colour off.
pub fn color_enabled(raw: &RawConfig) -> bool {
    non_empty(&raw.no_color).is_none()
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl Config {
    /// Validates `raw` for the pipe, reporting every problem at once (exit 2).
    pub fn from_raw(raw: &RawConfig, problems: Vec<String>) -> Result<Config, Error> {
        Config::for_mode(raw, problems, Mode::Pipe)
    }

    /// Validates `raw` for `mode`, reporting every problem at once (exit 2).
    pub fn for_mode(
        raw: &RawConfig,
        mut problems: Vec<String>,
        mode: Mode,
    ) -> Result<Config, Error> {
        let needs_credentials = mode != Mode::Status;
        let client_id = match non_empty(&raw.client_id) {
            None if !needs_credentials => String::new(),
            None => {
                problems.push("CLIENT_ID is not set: set it to the Key of your OAuth consumer (Workspace settings > OAuth consumers).".into());
                String::new()
            }
            Some(id) => {
                if let Some(slip) = whitespace_slip(id) {
                    problems.push(format!(
                        "CLIENT_ID {slip}: a copy-paste slip? Set it to the consumer's Key exactly."
                    ));
                } else if id.contains(':') {
                    problems.push("CLIENT_ID contains ':', which HTTP Basic authentication cannot carry: set it to the consumer's Key.".into());
                }
                id.to_owned()
            }
        };
        let client_secret = match non_empty(&raw.client_secret) {
            None if !needs_credentials => String::new(),
            None => {
                problems.push("CLIENT_SECRET is not set: set it to the Secret of your OAuth consumer, as a secured variable.".into());
                String::new()
            }
            Some(secret) => {
                if let Some(slip) = whitespace_slip(secret) {
                    problems.push(format!("CLIENT_SECRET {slip}: a copy-paste slip? Set it to the consumer's Secret exactly."));
                }
                secret.to_owned()
            }
        };

        let platform = raw.platform();
        // On GitHub the token goes to step outputs; a file only when asked for.
        let cache_file;
        let output_file = match (non_empty(&raw.output_file), platform, mode) {
            (_, _, Mode::Check) => None,
            (_, _, Mode::GitCredential) => {
                cache_file = cache_path(raw, &client_id, &mut problems);
                cache_file.as_deref()
            }
            (Some(file), _, _) => Some(file),
            (None, Platform::GitHubActions, _) | (None, _, Mode::Exec) => None,
            (None, _, _) => Some(DEFAULT_OUTPUT_FILE),
        };
        if let Some(file) = output_file.filter(|f| f.ends_with('/')) {
            problems.push(format!("OUTPUT_FILE ({file:?}) names a folder: give a file name, e.g. {file}{DEFAULT_OUTPUT_FILE}."));
        }
        let export_env = parse_bool("EXPORT_ENV", &raw.export_env, false, &mut problems);
        let github = match platform {
            Platform::GitHubActions => match non_empty(&raw.github_output) {
                Some(output) => Some(GitHubFiles {
                    output: PathBuf::from(output),
                    env: non_empty(&raw.github_env).map(PathBuf::from),
                    summary: non_empty(&raw.github_step_summary).map(PathBuf::from),
                }),
                None => {
                    problems.push("GITHUB_ACTIONS is true but GITHUB_OUTPUT is not set: run the action on a GitHub runner (version 2.297 or later), or unset GITHUB_ACTIONS.".into());
                    None
                }
            },
            _ => None,
        };
        if export_env && github.as_ref().is_some_and(|g| g.env.is_none()) {
            problems.push("EXPORT_ENV is true but GITHUB_ENV is not set: the runner sets it for every step; check the job's environment.".into());
        }
        if export_env && platform != Platform::GitHubActions {
            problems.push(format!("EXPORT_ENV is a GitHub Actions option, but this is {}: source OUTPUT_FILE instead.", platform.name()));
        }

        let token_variable = non_empty(&raw.token_variable).unwrap_or(DEFAULT_TOKEN_VARIABLE);
        if !is_variable_name(token_variable) {
            problems.push(format!("TOKEN_VARIABLE ({token_variable:?}) is not a valid variable name: use letters, digits and '_', not starting with a digit (^[A-Za-z_][A-Za-z0-9_]*$)."));
        }

        let token_url = parse_url(
            "TOKEN_URL",
            non_empty(&raw.token_url).unwrap_or(DEFAULT_TOKEN_URL),
            &mut problems,
        );
        let api_url = parse_url(
            "API_URL",
            non_empty(&raw.api_url).unwrap_or(DEFAULT_API_URL),
            &mut problems,
        );
        let validate_url =
            non_empty(&raw.validate_url).and_then(|u| parse_url("VALIDATE_URL", u, &mut problems));

        let validate = parse_bool("VALIDATE", &raw.validate, true, &mut problems);
        let debug = parse_bool("DEBUG", &raw.debug, false, &mut problems);

        let repository = non_empty(&raw.repository)
            .map(|r| ("REPOSITORY", r))
            .or_else(|| {
                non_empty(&raw.bitbucket_repo_full_name).map(|r| ("BITBUCKET_REPO_FULL_NAME", r))
            });
        if let Some((name, value)) = repository {
            if !is_repository(value) {
                problems.push(format!("{name} ({value:?}) is not of the form workspace/repo-slug: use the names from the repository's URL, e.g. myteam/my-repo."));
            }
        }

        let validate = validate && mode != Mode::Status;
        let validation = match (validate, validate_url, repository) {
            (false, _, _) => None,
            // git's own request validates the token; call the API only when asked to.
            (true, url, _) if mode == Mode::GitCredential => url.map(Validation::Url),
            (true, Some(url), _) => Some(Validation::Url(url)),
            (true, None, Some((_, full_name))) => api_url.as_ref().and_then(|api| {
                let base = api.as_str().trim_end_matches('/');
                Url::parse(&format!("{base}/repositories/{full_name}"))
                    .ok()
                    .map(|url| Validation::Repository {
                        full_name: full_name.to_owned(),
                        url,
                    })
            }),
            (true, None, None) => {
                problems.push("VALIDATE is true but there is nothing to validate against: set REPOSITORY to workspace/repo-slug (Bitbucket sets BITBUCKET_REPO_FULL_NAME for you in a pipeline), or VALIDATE_URL to an API URL the token can read, or VALIDATE to false.".into());
                None
            }
        };

        let required_scopes = match non_empty(&raw.required_scopes) {
            None => Vec::new(),
            Some(list) => {
                let scopes = scope::parse_list(list);
                for bad in scopes.iter().filter(|s| !scope::is_well_formed(s)) {
                    problems.push(format!("REQUIRED_SCOPES has {bad:?}, which is not a scope name: list scopes such as repository, repository:write, pullrequest, separated by commas or spaces."));
                }
                scopes
            }
        };

        let timeout = parse_number(
            "TIMEOUT",
            &raw.timeout,
            DEFAULT_TIMEOUT_SECS,
            1,
            MAX_TIMEOUT_SECS,
            "seconds",
            &mut problems,
        );
        let retries = parse_number(
            "RETRIES",
            &raw.retries,
            DEFAULT_RETRIES.into(),
            0,
            MAX_RETRIES.into(),
            "extra attempts",
            &mut problems,
        );

        let reuse = parse_bool("REUSE", &raw.reuse, true, &mut problems) && mode != Mode::Check;
        let min_validity = parse_number(
            "MIN_VALIDITY",
            &raw.min_validity,
            DEFAULT_MIN_VALIDITY_SECS,
            0,
            86_400,
            "seconds",
            &mut problems,
        );
        let git_host = non_empty(&raw.git_host)
            .unwrap_or(DEFAULT_GIT_HOST)
            .to_ascii_lowercase();

        let extra_roots = match non_empty(&raw.ca_bundle) {
            None => Vec::new(),
            Some(path) => read_ca_bundle(path).unwrap_or_else(|problem| {
                problems.push(problem);
                Vec::new()
            }),
        };

        if !problems.is_empty() {
            if platform == Platform::GitHubActions {
                problems = problems.into_iter().map(name_github_input).collect();
            }
            return Err(Error::Config(problems));
        }
        Ok(Config {
            client_id,
            client_secret: SecretString::from(client_secret),
            platform,
            output_file: output_file.map(PathBuf::from),
            github,
            export_env,
            token_variable: token_variable.to_owned(),
            validation,
            required_scopes,
            token_url: token_url.expect("a bad URL is a reported problem"),
            api_url: api_url.expect("a bad URL is a reported problem"),
            timeout: Duration::from_secs(timeout),
            retries: u32::try_from(retries).expect("bounded by MAX_RETRIES"),
            extra_roots,
            debug,
            reuse,
            min_validity: Duration::from_secs(min_validity),
            git_host,
        })
    }
}

/// `$XDG_CACHE_HOME/oauth-token-pipe/<fingerprint>.env`, else under `$HOME/.cache`: per
/// user, never the current folder (git runs helpers from whatever folder it is in).
fn cache_path(raw: &RawConfig, client_id: &str, problems: &mut Vec<String>) -> Option<String> {
    let base = match (non_empty(&raw.xdg_cache_home), non_empty(&raw.home)) {
        (Some(xdg), _) if xdg.starts_with('/') => PathBuf::from(xdg),
        (_, Some(home)) => PathBuf::from(home).join(".cache"),
        _ => {
            problems.push("Neither XDG_CACHE_HOME nor HOME is set, so git-credential has nowhere to cache the token: set HOME.".into());
            return None;
        }
    };
    let file = base
        .join("oauth-token-pipe")
        .join(format!("{}.env", crate::store::fingerprint(client_id)));
    Some(file.to_string_lossy().into_owned())
}

/// On GitHub the user sets inputs, not variables: name the input beside the variable.
fn name_github_input(problem: String) -> String {
    let variable = problem.split([' ', '(']).next().unwrap_or_default();
    match GITHUB_INPUTS.iter().find(|(_, v)| *v == variable) {
        Some((input, _)) => format!(
            "{variable} (the `{input}` input){}",
            &problem[variable.len()..]
        ),
        None => problem,
    }
}

/// Describes leading/trailing whitespace or a line break, without quoting the value.
fn whitespace_slip(value: &str) -> Option<&'static str> {
    if value.contains(['\n', '\r']) {
        Some("contains a line break")
    } else if value.trim() != value {
        Some("starts or ends with whitespace")
    } else {
        None
    }
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`, the names POSIX sh, docker --env-file and GitLab accept.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `workspace/slug`: Bitbucket slugs use letters, digits, `-`, `_` and `.`.
fn is_repository(value: &str) -> bool {
    let mut parts = value.split('/');
    let ok = |part: Option<&str>| {
        part.is_some_and(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn parse_bool(
    name: &str,
    value: &Option<String>,
    default: bool,
    problems: &mut Vec<String>,
) -> bool {
    match non_empty(value).map(str::to_ascii_lowercase).as_deref() {
        None => default,
        Some("true" | "1" | "yes") => true,
        Some("false" | "0" | "no") => false,
        Some(other) => {
            problems.push(format!(
                "{name} ({other:?}) is not a boolean: use true or false (also 1/0, yes/no)."
            ));
            default
        }
    }
}

fn parse_number(
    name: &str,
    value: &Option<String>,
    default: u64,
    min: u64,
    max: u64,
    unit: &str,
    problems: &mut Vec<String>,
) -> u64 {
    let Some(text) = non_empty(value) else {
        return default;
    };
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => n,
        _ => {
            problems.push(format!(
                "{name} ({text:?}) must be a whole number of {unit} from {min} to {max}."
            ));
            default
        }
    }
}

/// An absolute http(s) URL without credentials; plain http only to loopback, for local testing.
fn parse_url(name: &str, text: &str, problems: &mut Vec<String>) -> Option<Url> {
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            problems.push(format!(
                "{name} ({text:?}) is not a valid URL ({e}): give an absolute https:// URL."
            ));
            return None;
        }
    };
    let problem = if !url.username().is_empty() || url.password().is_some() {
        // Never echo the URL here: its userinfo may be a credential.
        Some(format!(
            "{name} contains a user name or password: remove them; the pipe sends CLIENT_ID and CLIENT_SECRET itself."
        ))
    } else if url.host_str().is_none() {
        Some(format!(
            "{name} ({text:?}) has no host: give an absolute https:// URL."
        ))
    } else if url.scheme() == "https" {
        None
    } else if url.scheme() == "http" {
        (!is_loopback(&url)).then(|| format!("{name} ({text:?}) uses plain http to a host that is not loopback: use https:// (http is allowed only for 127.0.0.0/8, ::1 and localhost, for local testing)."))
    } else {
        Some(format!(
            "{name} ({text:?}) has scheme {:?}: use https://.",
            url.scheme()
        ))
    };
    match problem {
        Some(p) => {
            problems.push(p);
            None
        }
        None => Some(url),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn read_ca_bundle(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let fix = "set CA_BUNDLE to a PEM file of CA certificates, or leave it empty to trust only the built-in roots";
    let bytes = std::fs::read(path)
        .map_err(|e| format!("CA_BUNDLE ({path:?}) cannot be read ({e}): {fix}."))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match certs {
        Err(e) => Err(format!(
            "CA_BUNDLE ({path:?}) is not valid PEM ({e}): {fix}."
        )),
        Ok(certs) if certs.is_empty() => Err(format!(
            "CA_BUNDLE ({path:?}) holds no PEM certificate: {fix}."
        )),
        Ok(certs) => Ok(certs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let (raw, problems) = read_env(env(pairs));
        Config::from_raw(&raw, problems).map_err(|e| match e {
            Error::Config(p) => p,
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
        assert_eq!(c.output_file, Some(PathBuf::from("oauth-token.env")));
        assert_eq!(c.platform, Platform::Local);
        assert_eq!(c.token_variable, "BITBUCKET_ACCESS_TOKEN");
        assert_eq!(c.token_url.as_str(), DEFAULT_TOKEN_URL);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.retries, 3);
        assert!(!c.debug);
        assert_eq!(
            c.validation.unwrap().url().as_str(),
            "https://api.bitbucket.org/2.0/repositories/ws/repo"
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
    fn booleans_parse_case_insensitively() {
        for (text, want) in [
            ("TRUE", true),
            ("Yes", true),
            ("1", true),
            ("False", false),
            ("no", false),
            ("0", false),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push(("DEBUG", text));
            assert_eq!(config(&pairs).unwrap().debug, want, "{text}");
        }
        let mut pairs = BASE.to_vec();
        pairs.push(("VALIDATE", "maybe"));
        let problems = config(&pairs).unwrap_err();
        assert!(
            problems[0].starts_with("VALIDATE (\"maybe\") is not a boolean"),
            "{problems:?}"
        );
    }

    #[test]
    fn repository_falls_back_to_bitbucket_variable() {
        let c = config(&[
            ("CLIENT_ID", "k"),
            ("CLIENT_SECRET", "s"),
            ("BITBUCKET_REPO_FULL_NAME", "team/app"),
        ])
        .unwrap();
        assert_eq!(
            c.validation,
            Some(Validation::Repository {
                full_name: "team/app".into(),
                url: Url::parse("https://api.bitbucket.org/2.0/repositories/team/app").unwrap()
            })
        );
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
    fn url_credentials_are_refused_without_echoing_them() {
        let mut pairs = BASE.to_vec();
        pairs.push(("API_URL", "https://user:hunter2@example.com/2.0"));
        let problems = config(&pairs).unwrap_err();
        assert!(problems[0].starts_with("API_URL contains a user name or password"));
        assert!(!problems[0].contains("hunter2"));
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
        let names: Vec<_> = problems
            .iter()
            .map(|p| p.split([' ', '(']).next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "CLIENT_ID",
                "CLIENT_SECRET",
                "TOKEN_VARIABLE",
                "TOKEN_URL",
                "VALIDATE",
                "TIMEOUT",
                "RETRIES",
                "CA_BUNDLE"
            ]
        );
    }

    #[test]
    fn secret_slips_are_named_not_quoted() {
        let problems = config(&[
            ("CLIENT_ID", "k"),
            ("CLIENT_SECRET", "s3cr3t\n"),
            ("VALIDATE", "no"),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("line break") && !problems[0].contains("s3cr3t"));
    }

    #[test]
    fn variable_names_and_repositories() {
        assert!(is_variable_name("_A1") && is_variable_name("BITBUCKET_ACCESS_TOKEN"));
        assert!(
            !is_variable_name("")
                && !is_variable_name("A-B")
                && !is_variable_name("9A")
                && !is_variable_name("A B")
        );
        assert!(is_repository("my-team/my.repo_1"));
        for bad in [
            "ws", "ws/", "/r", "a/b/c", "ws/..", "ws/r?x", "ws/r#", "w s/r",
        ] {
            assert!(!is_repository(bad), "{bad}");
        }
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
            (c.client_id.as_str(), c.platform, c.output_file),
            ("from-input", Platform::GitHubActions, None)
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
    fn export_env_needs_github() {
        let problems = config(&[
            ("CLIENT_ID", "k"),
            ("CLIENT_SECRET", "s"),
            ("VALIDATE", "no"),
            ("EXPORT_ENV", "true"),
        ])
        .unwrap_err();
        assert!(
            problems[0].starts_with("EXPORT_ENV is a GitHub Actions option"),
            "{problems:?}"
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
        assert_eq!(
            problems,
            ["CLIENT_SECRET is not valid UTF-8: set it to plain text."]
        );
    }
}
