//! The fault matrix: every way the network or the provider can misbehave, one test per row,
//! each asserting the exit code, the messages, that the run ended within its TIMEOUT, the
//! number of requests, that no part of the secret or the token reached the output, and
//! that an existing output file was left exactly as it was (or, when the run recovered,
//! replaced whole). README's "Failure modes" table is checked against the rows. The same
//! [`Row`] and `matrix!` run the github-app rows against the fake GitHub
//! (tests/cases/github_app_faults.rs).
//!
//! The hostile-provider rows (issue 10, finding 17) script a provider that echoes what it
//! was sent: scripted bodies and headers may say `{token}`, `{secret}`, `{basic}` (the
//! base64 of `client_id:secret`, as our Basic header carries it) and `{git_basic}` (the
//! base64 of `x-token-auth:token`, as git's does); [`start`] fills them in from the setup,
//! so the canary audit, which swaps in its own secret and token, gets them echoed too.

use std::fs;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;

use crate::support::fake::{self, Cert, FakeBitbucket, Fault, Reply, Setup};
use crate::support::{bin, pipe, run};

/// What one row sets up and expects. `S` is the fake's setup: Bitbucket's here, the fake
/// GitHub's for the github-app rows (tests/cases/github_app_faults.rs), which share the
/// fields, the builders and [`finish`], and check their own fake.
pub struct Row<S = Setup> {
    /// How the fake behaves.
    pub setup: S,
    /// Extra variables; `{token_url}`, `{api_url}`, `{closed}` are filled in at run time.
    pub(super) env: Vec<(&'static str, String)>,
    /// The exit code the row expects.
    pub code: i32,
    pub(super) message: &'static str,
    /// More text the log must contain.
    pub(super) also: Vec<&'static str>,
    /// The run must take at least this long (a wait that was honoured).
    pub(super) at_least: Option<Duration>,
    /// How many requests the fake must have received, per endpoint it counts (Bitbucket:
    /// the token endpoint, then the API; GitHub: its one API). Empty: not checked.
    pub(super) requests: Vec<usize>,
    pub(super) timeout: u64,
    /// Run in a network namespace with nothing but a down loopback (for DNS failure).
    pub(super) no_network: bool,
}

fn row(code: i32, message: &'static str) -> Row {
    Row::new(code, message)
}

impl<S: Default> Row<S> {
    /// A row expecting exit `code` and `message` in the log, the fake unscripted.
    pub(super) fn new(code: i32, message: &'static str) -> Row<S> {
        Row {
            setup: S::default(),
            env: Vec::new(),
            code,
            message,
            also: Vec::new(),
            at_least: None,
            requests: Vec::new(),
            timeout: 10,
            no_network: false,
        }
    }
}

impl<S> Row<S> {
    pub(super) fn env(mut self, name: &'static str, value: impl Into<String>) -> Row<S> {
        self.env.push((name, value.into()));
        self
    }
    pub(super) fn timeout(mut self, seconds: u64) -> Row<S> {
        self.timeout = seconds;
        self
    }
    pub(super) fn also(mut self, text: &'static str) -> Row<S> {
        self.also.push(text);
        self
    }
    pub(super) fn at_least(mut self, seconds: u64) -> Row<S> {
        self.at_least = Some(Duration::from_secs(seconds));
        self
    }
    pub(super) fn no_network(mut self) -> Row<S> {
        self.no_network = true;
        self
    }
    /// Whether the row sets variable `name` itself.
    pub(super) fn sets(&self, name: &str) -> bool {
        self.env.iter().any(|(n, _)| *n == name)
    }
}

impl Row {
    fn token(mut self, replies: Vec<Reply>) -> Row {
        self.setup.token_replies = replies;
        self
    }
    fn api(mut self, replies: Vec<Reply>) -> Row {
        self.setup.api_replies = replies;
        self
    }
    fn requests(mut self, token: usize, api: usize) -> Row {
        self.requests = vec![token, api];
        self
    }
    fn cert(mut self, cert: Cert) -> Row {
        self.setup.cert = cert;
        self
    }
    /// A consumer secret of Bitbucket's real length (32), long enough that a cut after 28
    /// of its characters would show a 24-character run.
    fn long_secret(mut self) -> Row {
        self.setup.client_secret = "HostileRowSecret0123456789abcdef".into();
        self
    }
}

/// `{token}`, `{secret}`, `{basic}` and `{git_basic}` in `text`, filled in from `setup`.
fn fill(text: &str, setup: &Setup) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    text.replace("{token}", &setup.token)
        .replace("{secret}", &setup.client_secret)
        .replace(
            "{basic}",
            &engine.encode(format!("{}:{}", setup.client_id, setup.client_secret)),
        )
        .replace(
            "{git_basic}",
            &engine.encode(format!("x-token-auth:{}", setup.token)),
        )
}

/// The fake for `row`, its scripted replies echoing the setup's secret and token where they
/// say so.
pub fn start(row: &Row) -> FakeBitbucket {
    let mut setup = row.setup.clone();
    let filled = |replies: &[Reply]| -> Vec<Reply> {
        replies
            .iter()
            .map(|reply| {
                let mut reply = reply.clone();
                if let Ok(body) = std::str::from_utf8(&reply.body) {
                    reply.body = fill(body, &row.setup).into_bytes();
                }
                for (_, value) in &mut reply.headers {
                    *value = fill(value, &row.setup);
                }
                reply
            })
            .collect()
    };
    setup.token_replies = filled(&row.setup.token_replies);
    setup.api_replies = filled(&row.setup.api_replies);
    FakeBitbucket::start(setup)
}

/// An OAuth error whose description quotes `{secret}` after 272 characters, so that a cut
/// at the 300-character quoting limit falls 28 characters into it.
fn description_past_the_limit() -> Reply {
    let description = format!("{} {{secret}} was sent", "x".repeat(271));
    Reply::json(
        400,
        &serde_json::json!({"error": "invalid_client", "error_description": description})
            .to_string(),
    )
    .header("X-Echo", "Basic {basic}")
}

fn token_body(fields: serde_json::Value) -> Reply {
    Reply::json(200, &fields.to_string())
}

fn bad_token(token: &str) -> Reply {
    token_body(
        serde_json::json!({"access_token": token, "token_type": "bearer", "expires_in": 7200}),
    )
}

fn faulty(fault: Fault) -> Reply {
    Reply {
        fault,
        ..Reply::json(
            200,
            r#"{"access_token": "abc", "token_type": "bearer", "expires_in": 7200}"#,
        )
    }
}

const OLD: &str = "BITBUCKET_ACCESS_TOKEN=old-token\n";

/// The command for `row` against `server`, in `work`, with `extra` variables on top.
pub fn command(
    row: &Row,
    server: &FakeBitbucket,
    work: &std::path::Path,
    extra: &[(&str, &str)],
) -> assert_cmd::Command {
    let urls = [
        ("{token_url}", server.token_url()),
        ("{api_url}", server.api_url()),
    ];
    finish(row, pipe(server, work), &urls, work, extra)
}

/// `cmd` with `row`'s TIMEOUT and variables (`{closed}`, a port nothing listens on, and
/// each of `urls` filled in), then `extra`; in a fresh network namespace when the row asks.
pub(super) fn finish<S>(
    row: &Row<S>,
    mut cmd: assert_cmd::Command,
    urls: &[(&str, String)],
    work: &std::path::Path,
    extra: &[(&str, &str)],
) -> assert_cmd::Command {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cmd.env("TIMEOUT", row.timeout.to_string());
    for (name, value) in &row.env {
        let mut value = value.replace("{closed}", &closed.to_string());
        for (placeholder, url) in urls {
            value = value.replace(placeholder, url);
        }
        cmd.env(name, value);
    }
    for (name, value) in extra {
        cmd.env(name, value);
    }
    if !row.no_network {
        return cmd;
    }
    // A fresh network namespace: the name cannot be resolved and nothing leaves the box.
    let mut wrapped = assert_cmd::Command::new("unshare");
    wrapped
        .env_clear()
        .current_dir(work)
        .arg("--net")
        .arg("--map-root-user")
        .arg("--")
        .arg(bin());
    for (name, value) in cmd.get_envs() {
        if let Some(value) = value {
            wrapped.env(name, value);
        }
    }
    wrapped
}

/// What every row asserts of the run itself: the exit code, the messages, that it ended
/// within TIMEOUT (and no sooner than a wait it had to honour), and no panic.
pub(super) fn expect_run<S>(row: &Row<S>, out: &crate::support::Run, elapsed: Duration) {
    out.expect_code(row.code).expect_log(row.message);
    for text in &row.also {
        out.expect_log(text);
    }
    assert!(
        elapsed < Duration::from_secs(row.timeout + 3),
        "ran {elapsed:?}, past TIMEOUT={}",
        row.timeout
    );
    if let Some(least) = row.at_least {
        assert!(elapsed >= least, "ran {elapsed:?}, less than {least:?}");
    }
    assert!(
        !out.all().contains("internal error") && !out.all().contains("panicked"),
        "a panic:\n{}",
        out.all()
    );
}

/// That the output file `old` was in `work` is left exactly as it was after a failure, or
/// replaced whole (its first line `variable=…`) after a success, and that nothing else
/// (no temporary or partial file) is left beside it.
pub(super) fn expect_file(code: i32, work: &std::path::Path, old: &str, variable: &str) {
    let text = fs::read_to_string(work.join("oauth-token.env")).unwrap();
    if code == 0 {
        assert!(
            text.starts_with(&format!("{variable}=")) && text != old,
            "not replaced: {text}"
        );
    } else {
        assert_eq!(text, old, "an existing file must be left as it was");
    }
    assert_eq!(
        crate::support::listing(work),
        ["oauth-token.env"],
        "no temporary or partial file is left"
    );
}

fn check(row: Row) {
    let server = start(&row);
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("oauth-token.env"), OLD).unwrap();
    let mut cmd = command(&row, &server, work.path(), &[]);
    let started = Instant::now();
    let out = run(&mut cmd);
    expect_run(&row, &out, started.elapsed());
    let setup = server.setup();
    if let Some(leak) = super::canary::leaked(
        &out.all(),
        &setup.client_id,
        &setup.client_secret,
        &setup.token,
    ) {
        panic!("leaked {leak:?}:\n{}", out.all());
    }
    if !row.requests.is_empty() {
        assert_eq!(
            [server.token_requests(), server.api_requests()],
            row.requests[..],
            "token and API requests"
        );
    }
    expect_file(row.code, work.path(), OLD, "BITBUCKET_ACCESS_TOKEN");
}

macro_rules! matrix {
    ($($name:ident => $row:expr,)*) => {
        $(
            #[test]
            fn $name() {
                check($row);
            }
        )*
        /// Every row, for the leak audit.
        pub fn rows() -> Vec<(&'static str, Row)> {
            vec![$((stringify!($name), $row)),*]
        }

        /// Every row's name and expected exit code, for the README check.
        pub fn codes() -> Vec<(&'static str, i32)> {
            vec![$((stringify!($name), ($row).code)),*]
        }
    };
}
/// The table macro, for the github-app rows: each `name => row` becomes a test calling the
/// invoking module's `check`, and `rows()`/`codes()` list them.
pub(super) use matrix;

fn http_date_in(seconds: u64) -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(seconds))
}

matrix! {
    connection_refused => row(5, "could not connect").also("failed 2 time(s)").env("TOKEN_URL", "https://127.0.0.1:{closed}/site/oauth2/access_token").env("RETRIES", "1").requests(0, 0),
    connection_reset_mid_response => row(0, "retrying in").token(vec![Reply { fault: Fault::ResetMidBody, ..Reply::json(200, &" ".repeat(4000)) }]).requests(2, 1),
    closed_without_answer => row(0, "retrying in").token(vec![Reply { fault: Fault::Close, ..Reply::default() }]).requests(2, 1),
    dns_failure => Row { no_network: true, ..row(5, "dns error").env("TOKEN_URL", "https://bitbucket.invalid/site/oauth2/access_token").env("RETRIES", "1") },
    tls_unknown_ca => row(5, "is not signed by a trusted CA. If a proxy intercepts TLS").also("add that CA to CA_BUNDLE").env("CA_BUNDLE", "").requests(0, 0),
    tls_wrong_hostname => row(5, "is not valid for the name 127.0.0.1").cert(Cert::WrongName).requests(0, 0),
    tls_expired_certificate => row(5, "expired or not yet valid: check the server's certificate and this machine's clock").cert(Cert::Expired).requests(0, 0),
    server_never_answers => row(5, "within TIMEOUT (2 s)").also("No complete answer from 127.0.0.1:").token(vec![Reply::hang()]).timeout(2).requests(1, 0),
    server_stalls_once => row(0, "The token request failed (no complete answer within 2.0 s); retrying in").token(vec![Reply::hang()]).env("RETRIES", "2").timeout(6).requests(2, 1),
    body_trickles => row(5, "within TIMEOUT (4 s)").token(vec![faulty(Fault::Trickle(Duration::from_millis(400))); 2]).env("RETRIES", "1").timeout(4).requests(2, 0),
    body_never_ends => row(5, "is larger than 1048576 bytes").token(vec![faulty(Fault::Endless)]).requests(1, 0),
    body_of_100_mb => row(5, "is larger than 1048576 bytes (104857600)").token(vec![faulty(Fault::Huge(100 * 1024 * 1024))]).requests(1, 0),
    rate_limited_without_retry_after => row(0, "WARNING: The token request failed (HTTP 429 Too Many Requests: Rate limit for this resource has been exceeded); retrying in").token(vec![Reply::text(429, fake::RATE_LIMITED)]).requests(2, 1),
    rate_limited_with_retry_after_seconds => row(0, "retrying in 2.0 s (attempt 2 of 4)").at_least(2).token(vec![Reply::text(429, fake::RATE_LIMITED).header("Retry-After", "2")]).requests(2, 1),
    rate_limited_with_retry_after_date => row(0, "retrying in").token(vec![Reply::text(429, fake::RATE_LIMITED).header("Retry-After", &http_date_in(2))]).requests(2, 1),
    rate_limited_with_absurd_retry_after => row(5, "the server asked to wait 31536000.0 s, more than the").also("left of TIMEOUT (10 s)").token(vec![Reply::text(429, fake::RATE_LIMITED).header("Retry-After", "31536000")]).requests(1, 0),
    service_unavailable_forever => row(5, "failed 3 time(s); the last failure: HTTP 503 Service Unavailable").token(vec![Reply::text(503, "upstream connect error"); 3]).env("RETRIES", "2").requests(3, 0),
    server_error_then_success => row(0, "retrying in").token(vec![Reply::text(500, "Internal Server Error")]).requests(2, 1),
    request_timeout_then_success => row(0, "The token request failed (HTTP 408").token(vec![Reply::json(408, r#"{"error": "timeout"}"#)]).requests(2, 1),
    redirected_elsewhere => row(5, "was redirected (HTTP 302 Found) to https://evil.example/steal").token(vec![Reply::text(302, "").header("Location", "https://evil.example/steal")]).requests(1, 0),
    html_page_instead_of_json => row(5, "malformed token response: it is HTML, not JSON").token(vec![Reply { headers: vec![("Content-Type".into(), "text/html".into())], ..Reply::text(200, "<!DOCTYPE html><html><title>OpenID transaction in progress</title></html>") }]).requests(1, 0),
    invalid_json => row(5, "it is not JSON").token(vec![Reply::json(200, r#"{"access_token": "abc", "#)]).requests(1, 0),
    access_token_of_the_wrong_type => row(5, "access_token is not a string").token(vec![token_body(serde_json::json!({"access_token": ["a"], "token_type": "bearer"}))]),
    access_token_missing => row(5, "it has no access_token").token(vec![token_body(serde_json::json!({"token_type": "bearer", "expires_in": 7200}))]),
    token_type_not_bearer => row(5, "token_type is \"mac\", not bearer").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "mac"}))]),
    expires_in_negative => row(5, "expires_in is -1, not a positive").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "bearer", "expires_in": -1}))]),
    expires_in_zero => row(5, "expires_in is 0").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "bearer", "expires_in": 0}))]),
    expires_in_huge => row(5, "more than a year").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "bearer", "expires_in": 1_000_000_000_000u64}))]),
    expires_in_a_word => row(5, "expires_in is \"two hours\"").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "bearer", "expires_in": "two hours"}))]),
    token_with_a_newline => row(5, "access_token has a character that RFC 6750 does not allow").token(vec![bad_token("abc\nEVIL=1")]).requests(1, 0),
    token_with_a_quote => row(5, "access_token has a character").token(vec![bad_token("abc\"def")]).requests(1, 0),
    token_with_a_dollar => row(5, "access_token has a character").token(vec![bad_token("abc$(id)")]).requests(1, 0),
    token_with_a_space => row(5, "access_token has a character").token(vec![bad_token("abc def")]).requests(1, 0),
    token_with_a_nul => row(5, "access_token has a character").token(vec![bad_token("abc\u{0}def")]).requests(1, 0),
    token_with_a_heredoc_marker => row(5, "access_token has a character").token(vec![bad_token("abc<<EOF")]).requests(1, 0),
    token_starting_with_a_tilde => row(5, "access_token starts with '~'").token(vec![bad_token("~root")]).requests(1, 0),
    validation_401_then_200 => row(0, "may not have propagated it yet").api(vec![Reply::json(401, fake::INVALID_TOKEN); 2]).requests(1, 3),
    validation_401_always => row(4, "HTTP 401 Unauthorized: Token is invalid, expired, or not supported for this endpoint.").also("Bitbucket rejected the token").api(vec![Reply::json(401, fake::INVALID_TOKEN); 3]).requests(1, 3),
    validation_403_with_accepted_scopes => row(4, "The endpoint accepts scope(s): repository.").also("HTTP 403 Forbidden: Your credentials lack one or more required privilege scopes.").api(vec![Reply::json(403, fake::FORBIDDEN).header("X-Accepted-OAuth-Scopes", "repository")]).requests(1, 1),
    validation_404 => row(4, "The repository does not exist, or the consumer's workspace cannot see it").also("for repository acme/nowhere answered HTTP 404 Not Found: You may not have access to this repository").env("REPOSITORY", "acme/nowhere").requests(1, 1),
    validation_410 => row(4, "HTTP 410 Gone: CHANGE-2770 - Functionality has been deprecated").also("Bitbucket has removed this endpoint").env("VALIDATE_URL", "{api_url}/workspaces").requests(1, 1),
    validation_429_then_200 => row(0, "The validation call failed (HTTP 429").api(vec![Reply::text(429, fake::RATE_LIMITED)]).requests(1, 2),
    validation_5xx_forever => row(5, "The validation call to 127.0.0.1").api(vec![Reply::text(502, "Bad Gateway"); 2]).env("RETRIES", "1").requests(1, 2),
    token_echoed_in_other_fields_and_headers => row(0, "Received a bearer token").env("DEBUG", "true").token(vec![Reply::json(200, r#"{"access_token": "{token}", "token_type": "bearer", "expires_in": 7200, "scope": "repository", "message": "issued {token} to {secret}", "echo": {"authorization": "Basic {basic}", "git": "{git_basic}"}}"#).header("X-Issued-Token", "{token}").header("X-Echo-Authorization", "Basic {basic}")]).requests(1, 1),
    token_type_echoes_the_token => row(5, "token_type is \"***\", not bearer").token(vec![Reply::json(200, r#"{"access_token": "{token}", "token_type": "{token}"}"#)]).requests(1, 0),
    oauth_error_quotes_the_secret_past_the_limit => row(3, "Bitbucket refused the token request (HTTP 400 Bad Request, invalid_client: xxx").env("DEBUG", "true").long_secret().token(vec![description_past_the_limit()]).requests(1, 0),
    error_page_quotes_the_basic_header => row(5, "without an OAuth error").env("DEBUG", "true").token(vec![Reply::text(401, "<html><body>Unauthorized: Authorization: Basic {basic} (client secret {secret})</body></html>").header("X-Echo", "{secret}")]).requests(1, 0),
    validation_401_quotes_the_token => row(4, "HTTP 401 Unauthorized: Token *** is not valid").env("DEBUG", "true").api(vec![Reply::json(401, r#"{"type": "error", "error": {"message": "Token {token} is not valid"}}"#).header("WWW-Authenticate", r#"Bearer error="invalid_token", error_description="{token}""#); 3]).requests(1, 3),
    validation_403_quotes_the_token => row(4, "HTTP 403 Forbidden: Your credentials lack one or more required privilege scopes.").api(vec![Reply::json(403, r#"{"type": "error", "error": {"message": "Your credentials lack one or more required privilege scopes.", "detail": "Bearer {token} (git: {git_basic}) has: pullrequest"}}"#)]).requests(1, 1),
    validation_404_quotes_the_token => row(4, "HTTP 404 Not Found: No repository for ***").api(vec![Reply::json(404, r#"{"type": "error", "error": {"message": "No repository for {token}"}}"#)]).requests(1, 1),
    validation_5xx_quotes_the_token_and_the_secret => row(5, "The validation call to 127.0.0.1").api(vec![Reply::text(502, "upstream refused Bearer {token} for client secret {secret} (Basic {basic})"); 2]).env("RETRIES", "1").requests(1, 2),
}

#[test]
fn the_readme_failure_modes_table_lists_every_row() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table: Vec<(String, i32)> = crate::support::table_after(&readme, "## Failure modes")
        .into_iter()
        .map(|(fault, exit)| {
            let id = fault
                .rsplit('`')
                .nth(1)
                .unwrap_or_else(|| panic!("no `id` in {fault}"))
                .to_owned();
            (
                id,
                exit.parse()
                    .unwrap_or_else(|_| panic!("no exit code for {fault}")),
            )
        })
        .collect();
    let rows: Vec<(String, i32)> = codes()
        .into_iter()
        .map(|(n, c)| (n.to_owned(), c))
        .collect();
    assert_eq!(
        table, rows,
        "README Failure modes table vs the fault matrix"
    );
}
