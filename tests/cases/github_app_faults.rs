//! The fault matrix over `PROVIDER=github-app` (issue 13, item 8): the rows of
//! tests/cases/faults.rs that are not Bitbucket's own, and GitHub's, against the fake GitHub
//! (tests/support/fake_github.rs). Each row asserts what a Bitbucket row does: the exit code,
//! the messages, that the run ended within TIMEOUT, the number of requests, that no token,
//! JWT, line of the key or `x-access-token:TOKEN` base64 reached the output, and that an
//! existing output file was left as it was (or replaced whole on recovery).
//!
//! What tests/cases/github_app.rs already proves is not repeated: the wrong key, another
//! app's ID, not installed (repository and owner), both 422 bodies, an unknown
//! INSTALLATION_ID, the suspended 403, the clock refused even after correcting it (each with
//! its request count, so "4xx is never retried" holds for those), the skewed clock
//! corrected, a 503 on the mint with replication lag.
//!
//! The hostile rows script a GitHub that echoes what it was sent. The fake fills in
//! `{credential}`, `{authorization}`, `{token}` and `{git_basic}` when it answers (see
//! `echo` there); [`start`] fills in `{key_line}` (one line of the key's body),
//! and `{escaped_key}` (the PEM with `\n` escapes, which a JSON body decodes back to the
//! PEM), from the app's key. Not the base64 of the PEM: the program masks that form only
//! when the key was given that way (and GitHub never sees the key to echo it).

use std::fs;
use std::time::Instant;

use super::faults::{self, matrix};
use crate::support::fake_github::{self, FakeGitHub, Scripted, Setup, script};
use crate::support::run;
use crate::support::server::reply::Fault;

type Row = faults::Row<Setup>;

/// A row with TIMEOUT 30 s unless it says otherwise: a debug build signs a JWT for every
/// attempt, and the canary audit runs these rows many at once on 2 cores, so a run that
/// recovers (a 429's wait, a retry) must not meet the deadline by accident. Rows about the
/// deadline set their own.
fn row(code: i32, message: &'static str) -> Row {
    Row::new(code, message).timeout(30)
}

impl faults::Row<Setup> {
    /// A scripted reply, after those already scripted.
    fn script(mut self, reply: Scripted) -> Row {
        self.setup.scripted.push(reply);
        self
    }
    /// The same scripted reply `n` times.
    fn scripts(mut self, n: usize, reply: Scripted) -> Row {
        self.setup.scripted.extend(std::iter::repeat_n(reply, n));
        self
    }
    /// All the requests the fake must have received.
    fn requests(mut self, n: usize) -> Row {
        self.requests = vec![n];
        self
    }
}

const LOOKUP: &str = "GET /repos/acme/widgets/installation";
const MINT: &str = "POST /app/installations/31337/access_tokens";
const VALIDATE: &str = "GET /installation/repositories";

fn header(mut reply: Scripted, name: &str, value: &str) -> Scripted {
    reply.headers.push((name.into(), value.into()));
    reply
}

fn faulty(route: &str, fault: Fault) -> Scripted {
    Scripted {
        fault,
        ..script(route, 201, &" ".repeat(4000))
    }
}

/// A mint answer of GitHub's shape carrying `token`, which the row is about.
fn minted(token: serde_json::Value) -> Scripted {
    let expires = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    script(
        MINT,
        201,
        &serde_json::json!({"token": token, "expires_at": expires.to_string(), "permissions": {"contents": "write"}, "repository_selection": "selected"})
            .to_string(),
    )
}

/// GitHub's primary rate limit on an app installation (KnpLabs/php-github-api#1070).
const RATE_LIMITED: &str = r#"{"message":"API rate limit exceeded for installation ID 31337.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}"#;
/// GitHub's secondary rate limit: a 403 whose `x-ratelimit-remaining` is not 0
/// (KnpLabs/php-github-api#1070 and #1072, with the headers GitHub sent).
const SECONDARY_RATE_LIMIT: &str = r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}"#;

/// The secret forms of the app's key a hostile reply may quote.
fn key_placeholders() -> [(&'static str, String); 2] {
    let pem = fake_github::key("app-pkcs1.pem");
    let line = pem.lines().nth(3).expect("a body line").to_owned();
    [
        ("{key_line}", line),
        ("{escaped_key}", pem.trim().replace('\n', "\\n")),
    ]
}

/// The fake for `row`, its scripted replies quoting the app's key where they say so.
pub fn start(row: &Row) -> FakeGitHub {
    let mut setup = row.setup.clone();
    let fill = |text: &str| {
        key_placeholders()
            .iter()
            .fold(text.to_owned(), |t, (p, v)| t.replace(p, v))
    };
    for s in &mut setup.scripted {
        s.body = fill(&s.body);
        for (_, value) in &mut s.headers {
            *value = fill(value);
        }
    }
    FakeGitHub::start(setup)
}

/// The command for `row` against `server`, in `work`, with `extra` variables on top: the
/// fake's app, OWNER=acme, REPOSITORIES=widgets, the key as the PEM GitHub issues.
pub fn command(
    row: &Row,
    server: &FakeGitHub,
    work: &std::path::Path,
    extra: &[(&str, &str)],
) -> assert_cmd::Command {
    let cmd = super::github_app::app(server, work);
    faults::finish(row, cmd, &[("{api_url}", server.api_url())], work, extra)
}

/// The tokens `row`'s scripted mint answers carry (those the fake did not mint itself):
/// secrets like any other, even when malformed.
pub fn scripted_tokens(row: &Row) -> Vec<String> {
    row.setup
        .scripted
        .iter()
        .filter_map(|s| serde_json::from_str::<serde_json::Value>(&s.body).ok())
        .filter_map(|body| {
            body.get("token")
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
        })
        .collect()
}

const OLD: &str = "GITHUB_APP_TOKEN=old-token\n";

fn check(row: Row) {
    let server = start(&row);
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("oauth-token.env"), OLD).unwrap();
    let mut cmd = command(&row, &server, work.path(), &[]);
    let started = Instant::now();
    let out = run(&mut cmd);
    faults::expect_run(&row, &out, started.elapsed());
    if let Some(leak) = super::canary::github_leaked(&out.all(), &server, &scripted_tokens(&row)) {
        panic!("leaked {leak:?}:\n{}", out.all());
    }
    if !row.requests.is_empty() {
        assert_eq!(
            [server.requests().len()],
            row.requests[..],
            "requests: {:?}",
            server.calls()
        );
    }
    faults::expect_file(row.code, work.path(), OLD, "GITHUB_APP_TOKEN");
}

matrix! {
    connection_refused => row(5, "could not connect").also("failed 2 time(s)").env("GITHUB_API_URL", "https://127.0.0.1:{closed}/api/v3").env("RETRIES", "1").requests(0),
    dns_failure => row(5, "dns error").env("GITHUB_API_URL", "https://github.invalid/api/v3").env("RETRIES", "1").no_network(),
    tls_unknown_ca => row(5, "is not signed by a trusted CA. If a proxy intercepts TLS").also("add that CA to CA_BUNDLE").env("CA_BUNDLE", "").requests(0),
    lookup_never_answers => row(5, "within TIMEOUT (2 s)").also("No complete answer from 127.0.0.1:").script(faulty(LOOKUP, Fault::Hang)).timeout(2).requests(1),
    // A 2 s share of TIMEOUT per attempt (12 s over 6 attempts), and 9.5 s left for the
    // retry and the validation call when the audit runs many rows at once on 2 cores.
    mint_stalls_once => row(0, "The token request failed (no complete answer within 2.0 s); retrying in").script(faulty(MINT, Fault::Hang)).env("RETRIES", "5").timeout(12).requests(4),
    mint_reset_mid_response => row(0, "retrying in").script(faulty(MINT, Fault::ResetMidBody)).requests(4),
    lookup_500_then_success => row(0, "The installation lookup failed (HTTP 500 Internal Server Error").script(script(LOOKUP, 500, r#"{"message":"Server Error"}"#)).requests(4),
    mint_503_forever => row(5, "failed 3 time(s); the last failure: HTTP 503 Service Unavailable").scripts(3, script(MINT, 503, r#"{"message":"Service Unavailable"}"#)).env("RETRIES", "2").requests(4),
    mint_429_with_retry_after => row(0, "retrying in 2.0 s (attempt 2 of 4)").at_least(2).script(header(script(MINT, 429, SECONDARY_RATE_LIMIT), "Retry-After", "2")).requests(4),
    mint_400_is_not_retried => row(5, "HTTP 400 Bad Request: Problems parsing JSON").script(script(MINT, 400, r#"{"message":"Problems parsing JSON","documentation_url":"https://docs.github.com/rest"}"#)).requests(2),
    mint_rate_limited_403 => row(5, "GitHub's rate limit for this app is used up").also("API rate limit exceeded for installation ID 31337.").script(header(script(MINT, 403, RATE_LIMITED), "x-ratelimit-remaining", "0")).requests(2),
    mint_secondary_rate_limit_403 => row(5, "You have exceeded a secondary rate limit").script(header(header(script(MINT, 403, SECONDARY_RATE_LIMIT), "x-ratelimit-remaining", "14"), "retry-after", "60")).requests(2),
    validation_rate_limited_403 => row(5, "API rate limit exceeded for installation ID 31337.").script(header(script(VALIDATE, 403, RATE_LIMITED), "x-ratelimit-remaining", "0")).requests(3),
    mint_answer_not_json => row(5, "but its body is not JSON").script(script(MINT, 201, r#"{"token": "ghs_"#)).requests(2),
    mint_token_with_a_newline => row(5, "has a character that RFC 6750 does not allow").script(minted("ghs_16C7e42F292c6912E7710c838\nEVIL=1".into())).requests(2),
    mint_token_with_a_command => row(5, "has a character").script(minted("ghs_16C7e42F292c6912E7$(id)".into())).requests(2),
    mint_token_not_a_string => row(5, "its token is not a string").script(minted(serde_json::json!(["ghs_16C7e42F292c6912E7710c838347Ae178B4a"]))).requests(2),
    mint_body_of_100_mb => row(5, "is larger than 1048576 bytes (104857600)").script(faulty(MINT, Fault::Huge(100 * 1024 * 1024))).requests(2),
    lookup_body_never_ends => row(5, "is larger than 1048576 bytes").script(faulty(LOOKUP, Fault::Endless)).requests(1),
    lookup_redirected_elsewhere => row(5, "was redirected (HTTP 302 Found) to https://evil.example/steal").script(header(script(LOOKUP, 302, ""), "Location", "https://evil.example/steal")).requests(1),
    exp_too_far_once_is_corrected => row(0, "'Expiration time' claim ('exp') is too far in the future").also("Signing a new JWT on GitHub's time").script(script(LOOKUP, 401, fake_github::EXP_TOO_FAR)).requests(4),
    mint_422_of_another_kind => row(3, "GitHub refused the request's repositories or permissions").script(script(MINT, 422, r#"{"message":"Validation Failed","documentation_url":"https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app","status":"422"}"#)).requests(2),
    lookup_200_echoes_the_jwt => row(0, "Found installation 31337.").env("DEBUG", "true").script(header(script(LOOKUP, 200, r#"{"id":31337,"app_slug":"{credential}","account":{"login":"{credential}"},"echo":"{authorization}"}"#), "X-Echo", "{authorization}")).requests(3),
    lookup_404_echoes_the_jwt => row(3, "The app is not installed on acme/widgets").env("DEBUG", "true").script(header(script(LOOKUP, 404, r#"{"message":"Not Found for {credential}","documentation_url":"https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app","status":"404"}"#), "X-Echo", "{authorization}")).requests(1),
    lookup_error_page_echoes_the_jwt => row(3, "GitHub could not verify the app's JWT").env("DEBUG", "true").script(header(script(LOOKUP, 401, "<html><body>Unauthorized: {authorization}</body></html>"), "Content-Type", "text/html")).requests(1),
    clock_401_echoes_the_jwt => row(0, "too far in the future: ***").env("DEBUG", "true").script(script(LOOKUP, 401, r#"{"message":"'Expiration time' claim ('exp') is too far in the future: {credential}"}"#)).requests(4),
    mint_401_echoes_the_jwt_and_the_key => row(3, "GitHub could not verify the app's JWT").env("DEBUG", "true").script(header(script(MINT, 401, r#"{"message":"A JSON web token could not be decoded: {credential} is not signed by {escaped_key}"}"#), "WWW-Authenticate", "Bearer {credential}")).requests(2),
    mint_422_quotes_the_key => row(3, "asks for more than this installation grants").env("DEBUG", "true").env("PERMISSIONS", "contents:write").script(header(script(MINT, 422, r#"{"message":"The permissions requested are not granted to this installation. ({key_line} {escaped_key})"}"#), "X-Echo", "{key_line}")).requests(2),
    mint_5xx_echoes_the_jwt_and_the_key => row(5, "failed 2 time(s)").env("DEBUG", "true").env("RETRIES", "1").scripts(2, script(MINT, 502, "upstream refused {authorization} signed by {key_line} ({escaped_key})")).requests(3),
    validation_200_echoes_the_token => row(0, "list the installation's repositories, 1 visible").env("DEBUG", "true").script(header(header(script(VALIDATE, 200, r#"{"total_count":1,"repository_selection":"selected","repositories":[],"echo":"{credential}","git":"Basic {git_basic}"}"#), "X-Echo-Authorization", "{authorization}"), "X-Echo-Git", "Basic {git_basic}")).requests(3),
    // TIMEOUT well past the ~6 s of lag waits, so a slow machine still makes all five calls.
    validation_401_echoes_the_token => row(4, "GitHub kept refusing the token it had just minted").env("DEBUG", "true").timeout(20).scripts(5, header(script(VALIDATE, 401, r#"{"message":"Bad credentials: {credential}","documentation_url":"https://docs.github.com/rest"}"#), "WWW-Authenticate", r#"Bearer error="invalid_token", error_description="{token}""#)).requests(7),
    validation_403_echoes_the_token_and_git_basic => row(4, "The token may not make this call").script(script(VALIDATE, 403, r#"{"message":"Resource not accessible by integration: {token} (git: {git_basic})","documentation_url":"https://docs.github.com/rest"}"#)).requests(3),
    validation_5xx_echoes_the_token => row(5, "The validation call to 127.0.0.1").env("DEBUG", "true").env("RETRIES", "1").scripts(2, script(VALIDATE, 502, "Bad Gateway: {authorization} (git: Basic {git_basic})")).requests(4),
}

/// README's "Failure modes" table lists the Bitbucket rows (tests/cases/faults.rs checks
/// it); these rows must at least end in exit codes README's "Exit codes" table documents.
#[test]
fn every_row_ends_in_an_exit_code_the_readme_documents() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let documented: Vec<i32> = crate::support::table_after(&readme, "## Exit codes")
        .into_iter()
        .map(|(code, _)| code.parse().unwrap())
        .collect();
    let rows = codes();
    assert!(rows.len() >= 30, "{} rows", rows.len());
    for (name, code) in rows {
        assert!(documented.contains(&code), "{name}: exit {code}");
    }
}
