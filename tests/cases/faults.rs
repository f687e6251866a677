//! The fault matrix: every way the network or the provider can misbehave, one test per row,
//! each asserting the exit code, the message, that the run ended within its TIMEOUT, the
//! number of requests, and that an existing output file was left exactly as it was (or,
//! when the run recovered, replaced whole). README's "Failure modes" table is checked
//! against the rows.

use std::fs;
use std::time::{Duration, Instant, SystemTime};

use crate::support::fake::{self, Cert, FakeBitbucket, Fault, Reply, Setup};
use crate::support::{bin, pipe, run};

/// What one row sets up and expects.
pub struct Row {
    /// How the fake behaves.
    pub setup: Setup,
    /// Extra variables; `{token_url}`, `{api_url}`, `{closed}` are filled in at run time.
    env: Vec<(&'static str, String)>,
    /// The exit code the row expects.
    pub code: i32,
    message: &'static str,
    token_requests: Option<usize>,
    api_requests: Option<usize>,
    timeout: u64,
    /// Run in a network namespace with nothing but a down loopback (for DNS failure).
    no_network: bool,
}

fn row(code: i32, message: &'static str) -> Row {
    Row {
        setup: Setup::default(),
        env: Vec::new(),
        code,
        message,
        token_requests: None,
        api_requests: None,
        timeout: 10,
        no_network: false,
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
    fn env(mut self, name: &'static str, value: impl Into<String>) -> Row {
        self.env.push((name, value.into()));
        self
    }
    fn requests(mut self, token: usize, api: usize) -> Row {
        (self.token_requests, self.api_requests) = (Some(token), Some(api));
        self
    }
    fn timeout(mut self, seconds: u64) -> Row {
        self.timeout = seconds;
        self
    }
    fn cert(mut self, cert: Cert) -> Row {
        self.setup.cert = cert;
        self
    }
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
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = pipe(server, work);
    cmd.env("TIMEOUT", row.timeout.to_string());
    for (name, value) in &row.env {
        let value = value
            .replace("{token_url}", &server.token_url())
            .replace("{api_url}", &server.api_url())
            .replace("{closed}", &closed.to_string());
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

fn check(row: Row) {
    let server = FakeBitbucket::start(row.setup.clone());
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("oauth-token.env");
    fs::write(&file, OLD).unwrap();
    let mut cmd = command(&row, &server, work.path(), &[]);
    let started = Instant::now();
    let out = run(&mut cmd);
    let elapsed = started.elapsed();
    out.expect_code(row.code).expect_log(row.message);
    assert!(
        elapsed < Duration::from_secs(row.timeout + 3),
        "ran {elapsed:?}, past TIMEOUT={}",
        row.timeout
    );
    assert!(
        !out.all().contains("internal error") && !out.all().contains("panicked"),
        "a panic:\n{}",
        out.all()
    );
    if let Some(n) = row.token_requests {
        assert_eq!(server.token_requests(), n, "token requests");
    }
    if let Some(n) = row.api_requests {
        assert_eq!(server.api_requests(), n, "API requests");
    }
    let text = fs::read_to_string(&file).unwrap();
    if row.code == 0 {
        assert!(
            text.starts_with("BITBUCKET_ACCESS_TOKEN=") && text != OLD,
            "not replaced: {text}"
        );
    } else {
        assert_eq!(text, OLD, "an existing file must be left as it was");
    }
    let names: Vec<String> = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["oauth-token.env"],
        "no temporary or partial file is left"
    );
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

fn http_date_in(seconds: u64) -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(seconds))
}

matrix! {
    connection_refused => row(5, "could not connect").env("TOKEN_URL", "https://127.0.0.1:{closed}/site/oauth2/access_token").env("RETRIES", "1").requests(0, 0),
    connection_reset_mid_response => row(0, "retrying in").token(vec![Reply { fault: Fault::ResetMidBody, ..Reply::json(200, &" ".repeat(4000)) }]).requests(2, 1),
    closed_without_answer => row(0, "retrying in").token(vec![Reply { fault: Fault::Close, ..Reply::default() }]).requests(2, 1),
    dns_failure => Row { no_network: true, ..row(5, "dns error").env("TOKEN_URL", "https://bitbucket.invalid/site/oauth2/access_token").env("RETRIES", "1") },
    tls_unknown_ca => row(5, "is not signed by a trusted CA. If a proxy intercepts TLS").env("CA_BUNDLE", "").requests(0, 0),
    tls_wrong_hostname => row(5, "is not valid for the name 127.0.0.1").cert(Cert::WrongName).requests(0, 0),
    tls_expired_certificate => row(5, "expired or not yet valid: check the server's certificate and this machine's clock").cert(Cert::Expired).requests(0, 0),
    server_never_answers => row(5, "within TIMEOUT (2 s)").token(vec![Reply::hang(); 4]).timeout(2).requests(1, 0),
    body_trickles => row(5, "within TIMEOUT (4 s)").token(vec![faulty(Fault::Trickle(Duration::from_millis(400))); 4]).env("RETRIES", "1").timeout(4).requests(2, 0),
    body_never_ends => row(5, "is larger than 1048576 bytes").token(vec![faulty(Fault::Endless)]).requests(1, 0),
    body_of_100_mb => row(5, "is larger than 1048576 bytes (104857600)").token(vec![faulty(Fault::Huge(100 * 1024 * 1024))]).requests(1, 0),
    rate_limited_without_retry_after => row(0, "HTTP 429 Too Many Requests: Rate limit for this resource has been exceeded); retrying in").token(vec![Reply::text(429, fake::RATE_LIMITED)]).requests(2, 1),
    rate_limited_with_retry_after_seconds => row(0, "retrying in 2.0 s").token(vec![Reply::text(429, fake::RATE_LIMITED).header("Retry-After", "2")]).requests(2, 1),
    rate_limited_with_retry_after_date => row(0, "retrying in").token(vec![Reply::text(429, fake::RATE_LIMITED).header("Retry-After", &http_date_in(2))]).requests(2, 1),
    rate_limited_with_absurd_retry_after => row(5, "the server asked to wait 31536000.0 s").token(vec![Reply::text(429, fake::RATE_LIMITED).header("Retry-After", "31536000")]).requests(1, 0),
    service_unavailable_forever => row(5, "failed 3 time(s); the last failure: HTTP 503 Service Unavailable").token(vec![Reply::text(503, "upstream connect error"); 10]).env("RETRIES", "2").requests(3, 0),
    server_error_then_success => row(0, "retrying in").token(vec![Reply::text(500, "Internal Server Error")]).requests(2, 1),
    html_page_instead_of_json => row(5, "it is HTML, not JSON").token(vec![Reply { headers: vec![("Content-Type".into(), "text/html".into())], ..Reply::text(200, "<!DOCTYPE html><html><title>OpenID transaction in progress</title></html>") }]).requests(1, 0),
    invalid_json => row(5, "it is not JSON").token(vec![Reply::json(200, r#"{"access_token": "abc", "#)]).requests(1, 0),
    access_token_of_the_wrong_type => row(5, "access_token is not a string").token(vec![token_body(serde_json::json!({"access_token": ["a"], "token_type": "bearer"}))]),
    access_token_missing => row(5, "it has no access_token").token(vec![token_body(serde_json::json!({"token_type": "bearer", "expires_in": 7200}))]),
    token_type_not_bearer => row(5, "token_type is \"mac\", not bearer").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "mac"}))]),
    expires_in_negative => row(5, "expires_in is -1, not a positive").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "bearer", "expires_in": -1}))]),
    expires_in_zero => row(5, "expires_in is 0").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "bearer", "expires_in": 0}))]),
    expires_in_huge => row(5, "more than a year").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "bearer", "expires_in": 1_000_000_000_000u64}))]),
    expires_in_a_word => row(5, "expires_in is \"two hours\"").token(vec![token_body(serde_json::json!({"access_token": "abc", "token_type": "bearer", "expires_in": "two hours"}))]),
    token_with_a_newline => row(5, "access_token has a character that RFC 6750 does not allow").token(vec![bad_token("abc\nEVIL=1")]).requests(1, 0),
    token_with_a_quote => row(5, "access_token has a character").token(vec![bad_token("abc\"def")]),
    token_with_a_dollar => row(5, "access_token has a character").token(vec![bad_token("abc$(id)")]),
    token_with_a_space => row(5, "access_token has a character").token(vec![bad_token("abc def")]),
    token_with_a_nul => row(5, "access_token has a character").token(vec![bad_token("abc\u{0}def")]),
    token_with_a_heredoc_marker => row(5, "access_token has a character").token(vec![bad_token("abc<<EOF")]),
    validation_401_then_200 => row(0, "may not have propagated it yet").api(vec![Reply::json(401, fake::INVALID_TOKEN); 2]).requests(1, 3),
    validation_401_always => row(4, "HTTP 401 Unauthorized: Token is invalid, expired, or not supported for this endpoint.").api(vec![Reply::json(401, fake::INVALID_TOKEN); 5]).requests(1, 3),
    validation_403_with_accepted_scopes => row(4, "The endpoint accepts scope(s): repository.").api(vec![Reply::json(403, fake::FORBIDDEN).header("X-Accepted-OAuth-Scopes", "repository")]).requests(1, 1),
    validation_404 => row(4, "The repository does not exist, or the consumer's workspace cannot see it").env("REPOSITORY", "acme/nowhere").requests(1, 1),
    validation_410 => row(4, "CHANGE-2770 - Functionality has been deprecated").env("VALIDATE_URL", "{api_url}/workspaces").requests(1, 1),
    validation_429_then_200 => row(0, "The validation call failed (HTTP 429").api(vec![Reply::text(429, fake::RATE_LIMITED)]).requests(1, 2),
    validation_5xx_forever => row(5, "The validation call to 127.0.0.1").api(vec![Reply::text(502, "Bad Gateway"); 5]).env("RETRIES", "1").requests(1, 2),
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
