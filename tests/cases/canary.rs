//! No secret or token in any output: every scenario, fault-matrix row and subcommand, DEBUG
//! on and off, on every platform, with canary values.
//!
//! Each audit runs twice: as shipped, and with the log's mask off
//! (`OAUTH_TOKEN_PIPE_TEST_NO_MASK=1`, honoured only by builds with debug assertions). The
//! mask is the second line of defence; with it off, any secret the code itself formats
//! shows up, so the second run proves the first line holds on its own (issue 10, finding 16).

use base64::Engine;

use crate::support::fake::{self, FakeBitbucket, Reply, Setup};
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
    let url = |s: &str| {
        s.replace('%', "%25")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    };
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
        let batch: Vec<_> = jobs.drain(..jobs.len().min(12)).collect();
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
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            b"protocol=https\nhost=bitbucket.org\n\n",
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("username=x-token-auth\npassword={token}\n\n"),
            "{}",
            mode.label()
        );
        let label = format!("git-credential ({})", mode.label());
        let log = mode.shown(&label, &String::from_utf8_lossy(&out.stderr));
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
