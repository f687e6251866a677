//! No secret or token in any output: every scenario, fault-matrix row and subcommand, DEBUG
//! on and off, on every platform, with canary values.
//!
//! Each audit runs twice: as shipped, and with the log's mask off
//! (`OAUTH_TOKEN_PIPE_TEST_NO_MASK=1`, honoured only by builds with debug assertions). The
//! mask is the second line of defence; with it off, any secret the code itself formats
//! shows up, so the second run proves the first line holds on its own (issue 10, finding 16).
//!
//! `PROVIDER=github-app` (issue 13, item 8) is audited the same way against the fake GitHub:
//! acquire, reuse, status, check, exec, git-credential get, revoke, success and failure
//! paths, and every row of tests/cases/github_app_faults.rs, with the key given as PEM,
//! CRLF, `\n`-escaped and base64-wrapped and both token formats; [`github_secrets`] lists
//! what must not show.

use base64::Engine;

use crate::support::fake::{self, FakeBitbucket, Reply, Setup};
use crate::support::fake_github::{self, FakeGitHub};
use crate::support::{pipe, run};

/// A unique secret and a unique JWT-sized token for this test run.
fn canaries() -> (String, String) {
    let nonce = format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // '/', '+' and '=' make the base64 and URL-encoded forms differ from the plain ones.
    let secret = format!("Canary/Secret+{nonce}=Xq9");
    let mut token = format!("CanaryToken{nonce}.+/");
    while token.len() < 1900 {
        token.push_str(&format!("{:x}", token.len() * 7919));
    }
    token.push_str("==");
    (secret, token)
}

/// A run of this many characters of a secret identifies it (the program masks such runs).
const RUN: usize = 24;

/// The first form of `secret` or `token` found in `output`: whole, base64 (alone, and as
/// the HTTP Basic headers of `client_id:secret` and git's `x-token-auth:token` carry
/// them), URL-encoded, or any run of 24 characters of one of those (what a cut would
/// leave).
pub fn leaked(output: &str, client_id: &str, secret: &str, token: &str) -> Option<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let forms = [
        secret.to_owned(),
        token.to_owned(),
        engine.encode(format!("{client_id}:{secret}")),
        engine.encode(format!("x-token-auth:{token}")),
        engine.encode(secret),
        engine.encode(token),
        url(secret),
        url(token),
    ];
    leaked_form(output, &forms)
}

/// `s` URL-encoded the way a form or query would carry it.
fn url(s: &str) -> String {
    s.replace('%', "%25")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// The first of `forms` found in `output`, whole or as any run of [`RUN`] of its characters.
fn leaked_form(output: &str, forms: &[String]) -> Option<String> {
    if let Some(found) = forms.iter().find(|f| output.contains(f.as_str())) {
        return Some(found.clone());
    }
    // Every run of RUN bytes of every form, looked up for each run of the output.
    let runs: std::collections::HashSet<&[u8]> = forms
        .iter()
        .flat_map(|f| f.as_bytes().windows(RUN))
        .collect();
    output
        .as_bytes()
        .windows(RUN)
        .find(|w| runs.contains(w))
        .map(|w| String::from_utf8_lossy(w).into_owned())
}

/// The app keys a github-app run may be given (the fake's app's, and another app's).
const GITHUB_KEYS: [&str; 2] = ["app-pkcs1.pem", "other-pkcs1.pem"];

/// Every secret of a `PROVIDER=github-app` run against `server`, in each form that could
/// reach a log: each token the fake minted or received (and `more`, tokens a scripted
/// answer carried), whole, base64, and as git's Basic `x-access-token:TOKEN`; each app JWT
/// the fake received, from its claims on (the JOSE header before them is the same public
/// text in every JWT); and each key of [`GITHUB_KEYS`] however it can be given: each line
/// of its body, the body on one line, with `\n` escapes, and the base64 of the PEM with LF
/// and CRLF line ends (any line of a wrapped base64 is a run of that).
pub fn github_secrets(server: &FakeGitHub, more: &[String]) -> Vec<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut tokens: Vec<String> = server.tokens();
    tokens.extend(more.iter().cloned());
    let mut forms = Vec::new();
    for request in server.requests() {
        let Some((scheme, credential)) = request
            .header("authorization")
            .and_then(|a| a.split_once(' '))
        else {
            continue;
        };
        let basic = (scheme == "Basic")
            .then(|| engine.decode(credential).ok())
            .flatten()
            .and_then(|d| String::from_utf8(d).ok());
        match basic {
            Some(pair) => tokens.push(pair.split_once(':').map_or(pair.clone(), |(_, t)| t.into())),
            None if credential.starts_with("eyJ") => forms.push(
                credential
                    .split_once('.')
                    .map_or(credential, |(_, c)| c)
                    .to_owned(),
            ),
            None => tokens.push(credential.to_owned()),
        }
    }
    for token in tokens.iter().filter(|t| !t.is_empty()) {
        forms.push(token.clone());
        forms.push(engine.encode(format!("x-access-token:{token}")));
        forms.push(engine.encode(token));
        forms.push(url(token));
    }
    for name in GITHUB_KEYS {
        let pem = fake_github::key(name);
        let body: Vec<&str> = pem
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
            .collect();
        forms.extend(body.iter().map(|l| (*l).to_owned()));
        forms.push(body.concat());
        forms.push(body.join("\\n"));
        forms.push(engine.encode(&pem));
        forms.push(engine.encode(pem.replace('\n', "\r\n")));
    }
    forms
}

/// The first secret of a github-app run ([`github_secrets`]) found in `output`.
pub fn github_leaked(output: &str, server: &FakeGitHub, more: &[String]) -> Option<String> {
    leaked_form(output, &github_secrets(server, more))
}

/// Where a run happens: the platforms differ in the log's workflow commands and outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum On {
    Local,
    Bitbucket,
    GitLab,
    GitHub,
}

const PLATFORMS: [On; 4] = [On::Local, On::Bitbucket, On::GitLab, On::GitHub];

/// How one audited run is made: DEBUG, platform, and whether the log's mask is on.
#[derive(Clone, Copy, Debug)]
struct Mode {
    debug: bool,
    on: On,
    mask: bool,
}

impl Mode {
    /// Every DEBUG mode on each of `platforms`.
    fn all(platforms: &[On], mask: bool) -> Vec<Mode> {
        platforms
            .iter()
            .flat_map(|&on| [false, true].map(|debug| Mode { debug, on, mask }))
            .collect()
    }

    fn env(self, work: &std::path::Path) -> Vec<(String, String)> {
        let mut env = vec![("DEBUG".to_owned(), self.debug.to_string())];
        let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
        match self.on {
            On::Local => {}
            On::Bitbucket => set("BITBUCKET_BUILD_NUMBER", "7".into()),
            On::GitLab => set("GITLAB_CI", "true".into()),
            On::GitHub => {
                set("GITHUB_ACTIONS", "true".into());
                set(
                    "GITHUB_OUTPUT",
                    work.join("github_output").display().to_string(),
                );
                set("OUTPUT_FILE", "oauth-token.env".into());
            }
        }
        if !self.mask {
            set("OAUTH_TOKEN_PIPE_TEST_NO_MASK", "1".into());
        }
        env
    }

    fn label(self) -> String {
        format!(
            "DEBUG={}, {:?}{}",
            self.debug,
            self.on,
            if self.mask { "" } else { ", mask off" }
        )
    }

    /// What the reader of the log sees: the runner consumes `::add-mask::` lines and never
    /// shows them. With the mask off there must be none (they would carry the secrets).
    fn shown(self, label: &str, output: &str) -> String {
        if !self.mask {
            assert!(
                !output.contains("::add-mask::"),
                "{label}: the mask is off, yet:\n{output}"
            );
        }
        output
            .lines()
            .filter(|l| !(self.on == On::GitHub && l.starts_with("::add-mask::")))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

/// Runs `jobs` a few at a time (2 cores are shared; some jobs wait for timers).
fn in_batches<T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + '_>>) -> Vec<T> {
    let mut jobs = jobs;
    let mut results = Vec::new();
    while !jobs.is_empty() {
        // Three runs a core: the rows that wait (stalls, Retry-After) overlap, and the rows
        // whose exit depends on a deadline still get the CPU they need on a 2-core runner.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let batch: Vec<_> = jobs.drain(..jobs.len().min(3 * cores)).collect();
        std::thread::scope(|threads| {
            let handles: Vec<_> = batch.into_iter().map(|job| threads.spawn(job)).collect();
            results.extend(handles.into_iter().map(|h| h.join().expect("audit thread")));
        });
    }
    results
}

struct Scenario {
    name: &'static str,
    setup: Setup,
    env: Vec<(&'static str, String)>,
    code: i32,
}

fn scenarios(secret: &str, token: &str) -> Vec<Scenario> {
    let base = Setup {
        client_secret: secret.to_owned(),
        token: token.to_owned(),
        ..Setup::default()
    };
    let with_token = |replies: Vec<Reply>| Setup {
        token_replies: replies,
        ..base.clone()
    };
    let with_api = |replies: Vec<Reply>| Setup {
        api_replies: replies,
        ..base.clone()
    };
    let token_json = |t: &str| {
        Reply::json(200, &serde_json::json!({"access_token": t, "token_type": "bearer", "expires_in": 7200, "refresh_token": format!("{t}R")}).to_string())
    };
    let s = |name, setup, env: Vec<(&'static str, String)>, code| Scenario {
        name,
        setup,
        env,
        code,
    };
    vec![
        s("success", base.clone(), vec![], 0),
        s(
            "success with refresh token",
            with_token(vec![token_json(token)]),
            vec![],
            0,
        ),
        s(
            "validate false",
            base.clone(),
            vec![("VALIDATE", "false".into())],
            0,
        ),
        s(
            "config error",
            base.clone(),
            vec![
                ("CLIENT_SECRET", format!("{secret}\n")),
                ("TOKEN_VARIABLE", "1".into()),
            ],
            2,
        ),
        s(
            "wrong secret",
            base.clone(),
            vec![("CLIENT_SECRET", format!("{secret}-wrong"))],
            3,
        ),
        s(
            "no callback",
            with_token(vec![Reply::json(400, fake::NO_CALLBACK)]),
            vec![],
            3,
        ),
        s(
            "public consumer",
            with_token(vec![Reply::json(400, fake::PUBLIC_CONSUMER)]),
            vec![],
            3,
        ),
        s(
            "malformed token",
            with_token(vec![token_json(&format!("{token}\nX=1"))]),
            vec![],
            5,
        ),
        s(
            "token type mac",
            with_token(vec![Reply::json(
                200,
                &serde_json::json!({"access_token": token, "token_type": "mac"}).to_string(),
            )]),
            vec![],
            5,
        ),
        s(
            "html",
            with_token(vec![Reply::text(
                200,
                "<html>OpenID transaction in progress</html>",
            )]),
            vec![],
            5,
        ),
        s(
            "rate limited then ok",
            with_token(vec![Reply::text(429, fake::RATE_LIMITED)]),
            vec![],
            0,
        ),
        s(
            "server errors",
            with_token(vec![Reply::text(503, "down")]),
            vec![("RETRIES", "0".into())],
            5,
        ),
        s(
            "redirect",
            with_token(vec![
                Reply::text(302, "").header("Location", "https://127.0.0.1:1/elsewhere"),
            ]),
            vec![],
            5,
        ),
        s(
            "body too large",
            with_token(vec![Reply::json(200, &" ".repeat(1_100_000))]),
            vec![],
            5,
        ),
        s(
            "hang",
            with_token(vec![Reply::hang()]),
            vec![("TIMEOUT", "1".into())],
            5,
        ),
        s(
            "missing scopes",
            base.clone(),
            vec![("REQUIRED_SCOPES", "webhook".into())],
            4,
        ),
        s(
            "401 always",
            with_api(vec![Reply::json(401, fake::EXPIRED); 3]),
            vec![],
            4,
        ),
        s(
            "403",
            with_api(vec![
                Reply::json(403, fake::FORBIDDEN).header("X-Accepted-OAuth-Scopes", "repository"),
            ]),
            vec![],
            4,
        ),
        s(
            "404",
            base.clone(),
            vec![("REPOSITORY", "acme/nope".into())],
            4,
        ),
        s(
            "410",
            base.clone(),
            vec![("VALIDATE_URL", "WORKSPACES".into())],
            4,
        ),
        s(
            "api 500",
            with_api(vec![Reply::text(500, "oops")]),
            vec![("RETRIES", "0".into())],
            5,
        ),
        s(
            "unwritable output",
            base,
            vec![("OUTPUT_FILE", "/proc/oauth-token.env".into())],
            6,
        ),
    ]
}

fn audit_scenarios(mask: bool) {
    let (secret, token) = canaries();
    let modes = Mode::all(&PLATFORMS, mask);
    let jobs: Vec<Box<dyn FnOnce() -> (String, String) + Send>> = scenarios(&secret, &token)
        .into_iter()
        .flat_map(|scenario| {
            modes.iter().map(move |&mode| {
                let Scenario {
                    name,
                    setup,
                    env,
                    code,
                } = &scenario;
                let (name, setup, env, code) = (*name, setup.clone(), env.clone(), *code);
                Box::new(move || {
                    let server = FakeBitbucket::start(setup);
                    let work = tempfile::tempdir().unwrap();
                    let mut cmd = pipe(&server, work.path());
                    cmd.envs(mode.env(work.path()));
                    for (k, v) in env {
                        let v = if v == "WORKSPACES" {
                            format!("{}/workspaces", server.api_url())
                        } else {
                            v
                        };
                        cmd.env(k, v);
                    }
                    let out = run(&mut cmd);
                    let label = format!("{name} ({})", mode.label());
                    assert_eq!(out.code, Some(code), "{label}:\n{}", out.all());
                    let shown = mode.shown(&label, &out.all());
                    (label, shown)
                }) as Box<dyn FnOnce() -> (String, String) + Send>
            })
        })
        .collect();
    let results = in_batches(jobs);
    assert_eq!(results.len(), 22 * 8);
    for (name, output) in &results {
        if let Some(leak) = leaked(output, "test-client-key", &secret, &token) {
            panic!("{name} leaked {leak:?}:\n{output}");
        }
    }
    assert!(
        results
            .iter()
            .any(|(name, out)| name.starts_with("success (DEBUG=true")
                && out.contains("authorization: Basic <redacted>")),
        "DEBUG really ran"
    );
    assert!(
        results.iter().any(
            |(name, out)| name.starts_with("success (DEBUG=true, GitHub")
                && out.contains("Running on GitHub Actions.")
        ),
        "GitHub mode really ran"
    );
}

#[test]
fn no_scenario_prints_the_secret_or_the_token() {
    audit_scenarios(true);
}

#[test]
fn no_scenario_formats_the_secret_or_the_token_with_the_mask_off() {
    audit_scenarios(false);
}

fn audit_fault_rows(mask: bool) {
    let (secret, token) = canaries();
    let modes = Mode::all(&[On::Local, On::GitHub], mask);
    let names: Vec<&'static str> = super::faults::rows().into_iter().map(|(n, _)| n).collect();
    let total = names.len() * modes.len();
    let (secret, token) = (&secret, &token);
    let jobs: Vec<Box<dyn FnOnce() + Send + '_>> = names
        .into_iter()
        .flat_map(|name| {
            modes.iter().map(move |&mode| {
                Box::new(move || {
                    let (_, mut row) = super::faults::rows()
                        .into_iter()
                        .find(|(n, _)| *n == name)
                        .unwrap();
                    row.setup.client_secret = secret.clone();
                    row.setup.token = token.clone();
                    let server = super::faults::start(&row);
                    let work = tempfile::tempdir().unwrap();
                    let env = mode.env(work.path());
                    let extra: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let out = run(&mut super::faults::command(
                        &row,
                        &server,
                        work.path(),
                        &extra,
                    ));
                    let label = format!("{name} ({})", mode.label());
                    assert_eq!(out.code, Some(row.code), "{label}:\n{}", out.all());
                    let shown = mode.shown(&label, &out.all());
                    if let Some(leak) = leaked(&shown, "test-client-key", secret, token) {
                        panic!("{label} leaked {leak:?}:\n{shown}");
                    }
                }) as Box<dyn FnOnce() + Send>
            })
        })
        .collect();
    assert_eq!(in_batches(jobs).len(), total);
}

#[test]
fn no_fault_matrix_row_prints_the_secret_or_the_token() {
    audit_fault_rows(true);
}

#[test]
fn no_fault_matrix_row_formats_the_secret_or_the_token_with_the_mask_off() {
    audit_fault_rows(false);
}

fn audit_subcommands(mask: bool) {
    let (secret, token) = canaries();
    let server = FakeBitbucket::start(Setup {
        client_secret: secret.clone(),
        token: token.clone(),
        ..Setup::default()
    });
    for mode in Mode::all(&PLATFORMS, mask) {
        let work = tempfile::tempdir().unwrap();
        let env = mode.env(work.path());
        let base = || {
            let mut cmd = pipe(&server, work.path());
            cmd.envs(env.clone());
            cmd
        };
        let runs: Vec<(&str, crate::support::Run)> = vec![
            ("pipe", run(&mut base())),
            ("pipe, reused", run(&mut base())),
            ("status", run(base().arg("status"))),
            ("check", run(base().arg("check"))),
            ("exec", run(base().args(["exec", "--", "true"]))),
            (
                "exec, failing",
                run(base().args(["exec", "--", "no-such-command"])),
            ),
            (
                "wrong secret",
                run(base()
                    .env("REUSE", "false")
                    .env("CLIENT_SECRET", format!("{secret}x"))
                    .arg("check")),
            ),
        ];
        for (name, out) in &runs {
            let label = format!("{name} ({})", mode.label());
            let shown = mode.shown(&label, &out.all());
            if let Some(leak) = leaked(&shown, "test-client-key", &secret, &token) {
                panic!("{label} leaked {leak:?}:\n{shown}");
            }
        }
        assert_eq!(
            runs.iter()
                .map(|(_, r)| r.code.unwrap())
                .collect::<Vec<_>>(),
            [0, 0, 0, 0, 0, 127, 3],
            "{}",
            mode.label()
        );
        // git-credential's answer is the token, on stdout, by design (and on GitHub nothing
        // else: no workflow command); its log must stay clean.
        let mut cmd = crate::support::pipe_std(&server, work.path());
        cmd.envs(env.clone())
            .env("HOME", work.path())
            .args(["git-credential", "get"]);
        let out =
            crate::support::run_with_input(&mut cmd, b"protocol=https\nhost=bitbucket.org\n\n");
        assert_eq!(
            out.stdout,
            format!("username=x-token-auth\npassword={token}\n\n"),
            "{}",
            mode.label()
        );
        let label = format!("git-credential ({})", mode.label());
        let log = mode.shown(&label, &out.stderr);
        if let Some(leak) = leaked(&log, "test-client-key", &secret, &token) {
            panic!("{label} leaked {leak:?} in its log:\n{log}");
        }
    }
}

#[test]
fn no_subcommand_prints_the_secret_or_the_token() {
    audit_subcommands(true);
}

#[test]
fn no_subcommand_formats_the_secret_or_the_token_with_the_mask_off() {
    audit_subcommands(false);
}

// PROVIDER=github-app (issue 13, item 8). The canaries are not chosen here: the fake GitHub
// verifies the JWT with the app's real key, mints a fresh token per request and receives a
// fresh JWT per call, so [`github_secrets`] reads them back from the fake after each run.

/// How a run gives the app's key: the PEM GitHub issues, with CRLF line ends, with `\n`
/// escapes, or base64-wrapped (`base64 -w 76`, so over several lines).
fn github_key(form: usize) -> String {
    let pem = fake_github::key("app-pkcs1.pem");
    let engine = base64::engine::general_purpose::STANDARD;
    match form % 4 {
        0 => pem,
        1 => pem.replace('\n', "\r\n"),
        2 => pem.trim().replace('\n', "\\n"),
        _ => engine
            .encode(&pem)
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect(),
    }
}

/// The `n`th run's token format: both, across modes and rows.
fn github_format(n: usize) -> fake_github::TokenFormat {
    if n % 2 == 0 {
        fake_github::TokenFormat::Classic
    } else {
        fake_github::TokenFormat::Stateless
    }
}

/// One command of a github-app scenario.
struct GitHubStep {
    args: Vec<&'static str>,
    env: Vec<(&'static str, String)>,
    /// `git-credential get` for the fake's host, its answer on stdout.
    git: bool,
    code: i32,
}

fn step(args: &[&'static str], code: i32) -> GitHubStep {
    GitHubStep {
        args: args.to_vec(),
        env: Vec::new(),
        git: false,
        code,
    }
}

fn git_get(code: i32) -> GitHubStep {
    GitHubStep {
        git: true,
        ..step(&["git-credential", "get"], code)
    }
}

/// Commands run one after the other in one folder, against one fake.
struct GitHubScenario {
    name: &'static str,
    setup: fake_github::Setup,
    env: Vec<(&'static str, String)>,
    steps: Vec<GitHubStep>,
}

fn github_scenarios() -> Vec<GitHubScenario> {
    use fake_github::{Setup, script};
    let s = |name, setup, env: Vec<(&'static str, String)>, steps| GitHubScenario {
        name,
        setup,
        env,
        steps,
    };
    let scripted = |replies: Vec<fake_github::Scripted>| Setup {
        scripted: replies,
        ..Setup::default()
    };
    let pem = fake_github::key("app-pkcs1.pem");
    let damaged: String = pem.lines().take(8).map(|l| format!("{l}\n")).collect();
    let pipe = || step(&[], 0);
    vec![
        s("acquire", Setup::default(), vec![], vec![pipe()]),
        s(
            "acquire, reused",
            Setup::default(),
            vec![],
            vec![pipe(), pipe()],
        ),
        s(
            "acquire, then status",
            Setup::default(),
            vec![],
            vec![pipe(), step(&["status"], 0)],
        ),
        s("check", Setup::default(), vec![], vec![step(&["check"], 0)]),
        s(
            "exec",
            Setup::default(),
            vec![],
            vec![step(&["exec", "--", "true"], 0)],
        ),
        s(
            "exec, the command fails",
            Setup::default(),
            vec![],
            vec![
                step(&["exec", "--", "sh", "-c", "exit 3"], 3),
                step(&["exec", "--", "no-such-command"], 127),
            ],
        ),
        s(
            "git-credential get",
            Setup::default(),
            vec![],
            vec![git_get(0)],
        ),
        s(
            "git-credential get, not installed",
            Setup::default(),
            vec![("OWNER", "nobody".into())],
            vec![git_get(3)],
        ),
        s(
            "revoke",
            Setup::default(),
            vec![],
            vec![pipe(), step(&["revoke"], 0), step(&["revoke"], 0)],
        ),
        s(
            "revoke git-credential's cached token",
            Setup::default(),
            vec![],
            vec![git_get(0), step(&["revoke"], 0)],
        ),
        s(
            "revoke, GitHub says already revoked and echoes the token",
            scripted(vec![script(
                "DELETE /installation/token",
                401,
                r#"{"message":"Bad credentials: {credential} ({git_basic})","documentation_url":"https://docs.github.com/rest"}"#,
            )]),
            vec![],
            vec![pipe(), step(&["revoke"], 0)],
        ),
        s(
            "revoke fails and echoes the token",
            scripted(vec![script(
                "DELETE /installation/token",
                500,
                "revocation of {authorization} failed",
            )]),
            vec![],
            vec![pipe(), step(&["revoke"], 5)],
        ),
        s(
            "wrong key",
            Setup::default(),
            vec![("PRIVATE_KEY", fake_github::key("other-pkcs1.pem"))],
            vec![step(&[], 3)],
        ),
        s(
            "damaged key",
            Setup::default(),
            vec![("PRIVATE_KEY", damaged)],
            vec![step(&[], 2)],
        ),
        s(
            "public key",
            Setup::default(),
            vec![("PRIVATE_KEY", fake_github::key("app-public.pem"))],
            vec![step(&[], 2)],
        ),
        s(
            "config error beside the key",
            Setup::default(),
            vec![("APP_ID", String::new()), ("TIMEOUT", "soon".into())],
            vec![step(&[], 2)],
        ),
        s(
            "not installed",
            Setup::default(),
            vec![("OWNER", "nobody".into())],
            vec![step(&[], 3)],
        ),
        s(
            "permissions not granted",
            Setup::default(),
            vec![("PERMISSIONS", "administration:write".into())],
            vec![step(&[], 3)],
        ),
        s(
            "clock skew",
            Setup {
                skew: -200,
                ..Setup::default()
            },
            vec![],
            vec![pipe()],
        ),
        s(
            "replication lag",
            Setup {
                lag: 2,
                ..Setup::default()
            },
            vec![],
            vec![pipe()],
        ),
        s(
            "mint 503, then success",
            scripted(vec![script(
                "POST /app/installations",
                503,
                r#"{"message":"Service Unavailable for {credential}"}"#,
            )]),
            vec![],
            vec![pipe()],
        ),
        s(
            "required permission missing",
            Setup::default(),
            vec![("REQUIRED_SCOPES", "administration".into())],
            vec![step(&[], 4)],
        ),
        s(
            "validation 403 echoes the token",
            scripted(vec![script(
                "GET /installation/repositories",
                403,
                r#"{"message":"Resource not accessible by integration: {token}"}"#,
            )]),
            vec![],
            vec![step(&[], 4)],
        ),
        s(
            "unwritable output",
            Setup::default(),
            vec![("OUTPUT_FILE", "/proc/oauth-token.env".into())],
            vec![step(&[], 6)],
        ),
    ]
}

/// The binary for the fake's app (OWNER=acme, REPOSITORIES=widgets), the key given as `key`.
fn github_command(server: &FakeGitHub, work: &std::path::Path, key: &str) -> std::process::Command {
    let mut cmd = crate::support::bare_std(work);
    cmd.env("PROVIDER", "github-app")
        .env("APP_ID", fake_github::CLIENT_ID)
        .env("PRIVATE_KEY", key)
        .env("GITHUB_API_URL", server.api_url())
        .env("CA_BUNDLE", server.ca_file())
        .env("OWNER", "acme")
        .env("REPOSITORIES", "widgets")
        .env("HOME", work);
    cmd
}

/// Runs `cmd` to completion; for `git-credential get`, asking for `server`'s host.
fn github_run(mut cmd: std::process::Command, git: Option<&FakeGitHub>) -> crate::support::Run {
    let ask = git
        .map(|s| format!("protocol=https\nhost={}\n\n", s.git_host()))
        .unwrap_or_default();
    crate::support::run_with_input(&mut cmd, ask.as_bytes())
}

/// What one audited run shows and holds: its label, what the reader sees, the fake it ran
/// against (whose requests and tokens are the canaries), and tokens scripted answers carried.
type Audited = (String, String, FakeGitHub, Vec<String>);

fn check_github(results: &[Audited]) {
    for (label, shown, server, more) in results {
        if let Some(leak) = github_leaked(shown, server, more) {
            panic!("{label} leaked {leak:?}:\n{shown}");
        }
    }
}

fn audit_github_scenarios(mask: bool) {
    let modes = Mode::all(&PLATFORMS, mask);
    let scenarios = github_scenarios();
    let total = scenarios.len() * modes.len();
    let jobs: Vec<Box<dyn FnOnce() -> Vec<Audited> + Send>> = scenarios
        .into_iter()
        .enumerate()
        .flat_map(|(i, scenario)| {
            let scenario = std::sync::Arc::new(scenario);
            modes.iter().enumerate().map(move |(m, &mode)| {
                let scenario = scenario.clone();
                Box::new(move || {
                    let mut setup = scenario.setup.clone();
                    setup.format = github_format(i + m / 2);
                    let server = FakeGitHub::start(setup);
                    let work = tempfile::tempdir().unwrap();
                    let key = github_key(i + m);
                    let label = format!(
                        "{} ({}, {:?}, key form {})",
                        scenario.name,
                        mode.label(),
                        github_format(i + m / 2),
                        (i + m) % 4
                    );
                    // Every step's output, audited at the end against every secret of the
                    // scenario (a later step's token must not show in an earlier one either).
                    let mut shown = String::new();
                    for (n, step) in scenario.steps.iter().enumerate() {
                        let mut cmd = github_command(&server, work.path(), &key);
                        cmd.envs(mode.env(work.path()));
                        cmd.envs(scenario.env.iter().cloned());
                        cmd.envs(step.env.iter().cloned());
                        cmd.args(&step.args);
                        let out = github_run(cmd, step.git.then_some(&server));
                        let label = format!("{label}, step {} {:?}", n + 1, step.args);
                        assert_eq!(out.code, Some(step.code), "{label}:\n{}", out.all());
                        // git-credential's answer is the token, on stdout, by design (and
                        // nothing else); its log must stay clean.
                        let log = if step.git {
                            let want = match server.tokens().last() {
                                Some(t) if step.code == 0 => {
                                    format!("username=x-access-token\npassword={t}\n\n")
                                }
                                _ => String::new(),
                            };
                            assert_eq!(out.stdout, want, "{label}");
                            out.stderr.clone()
                        } else {
                            out.all()
                        };
                        shown.push_str(&format!("--- {label}\n{}", mode.shown(&label, &log)));
                    }
                    vec![(label, shown, server, Vec::new())]
                }) as Box<dyn FnOnce() -> Vec<Audited> + Send>
            })
        })
        .collect();
    let results: Vec<Audited> = in_batches(jobs).into_iter().flatten().collect();
    assert_eq!(results.len(), total);
    check_github(&results);
    let ran = |name: &str, text: &str| {
        results
            .iter()
            .any(|(label, shown, _, _)| label.starts_with(name) && shown.contains(text))
    };
    assert!(
        ran("acquire (DEBUG=true", "> POST https://127.0.0.1"),
        "DEBUG really ran"
    );
    assert!(
        ran("acquire (DEBUG=true, GitHub", "Running on GitHub Actions."),
        "GitHub mode really ran"
    );
    assert!(
        results
            .iter()
            .all(|(_, _, server, _)| !github_secrets(server, &[]).is_empty()),
        "every run has canaries"
    );
    assert!(
        results
            .iter()
            .filter(|(_, _, s, _)| s.tokens().iter().any(|t| t.len() > 500))
            .count()
            > 0
            && results
                .iter()
                .filter(|(_, _, s, _)| s.tokens().iter().any(|t| t.len() == 40))
                .count()
                > 0,
        "both token formats were minted"
    );
}

#[test]
fn no_github_app_scenario_prints_the_key_the_jwt_or_the_token() {
    audit_github_scenarios(true);
}

#[test]
fn no_github_app_scenario_formats_the_key_the_jwt_or_the_token_with_the_mask_off() {
    audit_github_scenarios(false);
}

fn audit_github_fault_rows(mask: bool) {
    use super::github_app_faults as faults;
    let modes = Mode::all(&[On::Local, On::GitHub], mask);
    let names: Vec<&'static str> = faults::rows().into_iter().map(|(n, _)| n).collect();
    let total = names.len() * modes.len();
    // A row that ends with the wrong exit code is reported after every row's output was
    // audited: it must not stop the leak audit of the rows after it.
    type Job<'a> = Box<dyn FnOnce() -> (Audited, Option<String>) + Send + 'a>;
    let jobs: Vec<Job> = names
        .into_iter()
        .enumerate()
        .flat_map(|(r, name)| {
            modes.iter().enumerate().map(move |(m, &mode)| {
                Box::new(move || {
                    let (_, mut row) = faults::rows()
                        .into_iter()
                        .find(|(n, _)| *n == name)
                        .unwrap();
                    row.setup.format = github_format(r + m / 2);
                    let server = faults::start(&row);
                    let work = tempfile::tempdir().unwrap();
                    let mut env = mode.env(work.path());
                    if !row.sets("PRIVATE_KEY") {
                        env.push(("PRIVATE_KEY".into(), github_key(r + m)));
                    }
                    let extra: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let out = crate::support::run(&mut faults::command(
                        &row,
                        &server,
                        work.path(),
                        &extra,
                    ));
                    let label = format!(
                        "{name} ({}, {:?}, key form {})",
                        mode.label(),
                        row.setup.format,
                        (r + m) % 4
                    );
                    let wrong = (out.code != Some(row.code)).then(|| {
                        format!(
                            "{label}: exit {:?}, not {}:\n{}",
                            out.code,
                            row.code,
                            out.all()
                        )
                    });
                    let shown = mode.shown(&label, &out.all());
                    let tokens = faults::scripted_tokens(&row);
                    ((label, shown, server, tokens), wrong)
                }) as Job
            })
        })
        .collect();
    let (results, wrong): (Vec<Audited>, Vec<Option<String>>) =
        in_batches(jobs).into_iter().unzip();
    assert_eq!(results.len(), total);
    check_github(&results);
    let wrong: Vec<String> = wrong.into_iter().flatten().collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_github_app_fault_row_prints_the_key_the_jwt_or_the_token() {
    audit_github_fault_rows(true);
}

#[test]
fn no_github_app_fault_row_formats_the_key_the_jwt_or_the_token_with_the_mask_off() {
    audit_github_fault_rows(false);
}

/// The github-app audit can fail: each form of each secret, planted in a clean run's
/// output, is found — whole, or as a 24-character run of it.
#[test]
fn the_github_app_audit_finds_each_form_of_each_secret() {
    let engine = base64::engine::general_purpose::STANDARD;
    let server = FakeGitHub::start(fake_github::Setup::default());
    let work = tempfile::tempdir().unwrap();
    let mut cmd = github_command(&server, work.path(), &github_key(0));
    cmd.env("DEBUG", "true");
    let out = github_run(cmd, None);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let clean = out.all();
    assert_eq!(github_leaked(&clean, &server, &[]), None);
    let token = server.tokens()[0].clone();
    let jwt = server.jwts()[1].clone();
    let signature = jwt.rsplit('.').next().unwrap().to_owned();
    let pem = fake_github::key("app-pkcs1.pem");
    let line = pem.lines().nth(5).unwrap().to_owned();
    let other = fake_github::key("other-pkcs1.pem");
    let wrapped = github_key(3);
    let planted = [
        token.clone(),
        token[10..34].to_owned(),
        engine.encode(format!("x-access-token:{token}")),
        jwt.clone(),
        signature[20..44].to_owned(),
        line[30..54].to_owned(),
        github_key(2)[300..340].to_owned(),
        github_key(1)[100..140].replace('\r', ""),
        wrapped.lines().nth(4).unwrap().to_owned(),
        other.lines().nth(9).unwrap()[..24].to_owned(),
        "ghs_scripted_token_0123456789abcdef".into(),
    ];
    for plant in planted {
        let output = format!("{clean}INFO: {plant}\n");
        assert!(
            github_leaked(
                &output,
                &server,
                &["ghs_scripted_token_0123456789abcdef".into()]
            )
            .is_some(),
            "not found: {plant:?}"
        );
    }
}
