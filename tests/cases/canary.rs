//! No secret or token in any output: every scenario, DEBUG on and off, with canary values.

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

/// Every form of the canaries that must never appear: plain, cut, base64 and URL-encoded.
fn forbidden(secret: &str, token: &str) -> Vec<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let url = |s: &str| {
        s.replace('%', "%25")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    };
    vec![
        secret.to_owned(),
        token.to_owned(),
        token[..24].to_owned(),
        token[token.len() - 40..].to_owned(),
        engine.encode(format!("test-client-key:{secret}")),
        engine.encode(secret),
        engine.encode(token),
        url(secret),
        url(token),
    ]
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
            with_token(vec![Reply::text(503, "down"); 3]),
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
            with_api(vec![Reply::text(500, "oops"); 2]),
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

#[test]
fn no_scenario_prints_the_secret_or_the_token() {
    let (secret, token) = canaries();
    let forbidden = forbidden(&secret, &token);
    let results: Vec<(String, String)> = std::thread::scope(|threads| {
        let handles: Vec<_> = scenarios(&secret, &token)
            .into_iter()
            .flat_map(|scenario| {
                [(false, false), (true, false), (true, true)].map(|(debug, github)| {
                    let Scenario {
                        name,
                        setup,
                        env,
                        code,
                    } = &scenario;
                    (*name, setup.clone(), env.clone(), *code, debug, github)
                })
            })
            .map(|(name, setup, env, code, debug, github)| {
                threads.spawn(move || {
                    let server = FakeBitbucket::start(setup);
                    let work = tempfile::tempdir().unwrap();
                    let mut cmd = pipe(&server, work.path());
                    cmd.env("DEBUG", debug.to_string());
                    if github {
                        cmd.env("GITHUB_ACTIONS", "true")
                            .env("GITHUB_OUTPUT", work.path().join("out"))
                            .env("OUTPUT_FILE", "oauth-token.env");
                    }
                    for (k, v) in env {
                        let v = if v == "WORKSPACES" {
                            format!("{}/workspaces", server.api_url())
                        } else {
                            v
                        };
                        cmd.env(k, v);
                    }
                    let out = run(&mut cmd);
                    let label = format!(
                        "{name} (DEBUG={debug}{})",
                        if github { ", GitHub" } else { "" }
                    );
                    assert_eq!(out.code, Some(code), "{label}:\n{}", out.all());
                    // The runner consumes ::add-mask:: lines and never shows them; every
                    // other line must be clean.
                    let shown: String = out
                        .all()
                        .lines()
                        .filter(|l| !(github && l.starts_with("::add-mask::")))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    (label, shown)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("scenario thread"))
            .collect()
    });
    assert_eq!(results.len(), 66);
    for (name, output) in &results {
        for needle in &forbidden {
            assert!(
                !output.contains(needle.as_str()),
                "{name} leaked {needle:?}:\n{output}"
            );
        }
    }
    assert!(
        results
            .iter()
            .any(|(name, out)| name.starts_with("success (DEBUG=true)")
                && out.contains("authorization: Basic <redacted>")),
        "DEBUG really ran"
    );
    assert!(
        results
            .iter()
            .any(|(name, out)| name == "success (DEBUG=true, GitHub)"
                && out.contains("Running on GitHub Actions.")),
        "GitHub mode really ran"
    );
}

#[test]
fn no_fault_matrix_row_prints_the_secret_or_the_token() {
    let (secret, token) = canaries();
    let forbidden = forbidden(&secret, &token);
    let rows = super::faults::rows();
    let total = rows.len() * 2;
    let mut checked = 0;
    // A few rows wait for timers; run them in batches so the machine is not swamped.
    let mut runs: Vec<_> = rows
        .into_iter()
        .flat_map(|(name, _)| [false, true].map(move |debug| (name, debug)))
        .collect();
    while !runs.is_empty() {
        let batch: Vec<_> = runs.drain(..runs.len().min(16)).collect();
        std::thread::scope(|threads| {
            let handles: Vec<_> = batch
                .into_iter()
                .map(|(name, debug)| {
                    let (secret, token, forbidden) = (&secret, &token, &forbidden);
                    threads.spawn(move || {
                        let (_, mut row) = super::faults::rows()
                            .into_iter()
                            .find(|(n, _)| *n == name)
                            .unwrap();
                        row.setup.client_secret = secret.clone();
                        row.setup.token = token.clone();
                        let server = FakeBitbucket::start(row.setup.clone());
                        let work = tempfile::tempdir().unwrap();
                        let out = run(&mut super::faults::command(
                            &row,
                            &server,
                            work.path(),
                            &[("DEBUG", if debug { "true" } else { "false" })],
                        ));
                        assert_eq!(
                            out.code,
                            Some(row.code),
                            "{name} (DEBUG={debug}):\n{}",
                            out.all()
                        );
                        for needle in forbidden {
                            assert!(
                                !out.all().contains(needle.as_str()),
                                "{name} (DEBUG={debug}) leaked {needle:?}:\n{}",
                                out.all()
                            );
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().expect("row thread");
                checked += 1;
            }
        });
    }
    assert_eq!(checked, total);
}

#[test]
fn no_subcommand_prints_the_secret_or_the_token() {
    let (secret, token) = canaries();
    let forbidden = forbidden(&secret, &token);
    let server = FakeBitbucket::start(Setup {
        client_secret: secret.clone(),
        token: token.clone(),
        ..Setup::default()
    });
    for debug in ["false", "true"] {
        let work = tempfile::tempdir().unwrap();
        let runs: Vec<(&str, crate::support::Run)> = vec![
            ("pipe", run(pipe(&server, work.path()).env("DEBUG", debug))),
            (
                "pipe, reused",
                run(pipe(&server, work.path()).env("DEBUG", debug)),
            ),
            (
                "status",
                run(pipe(&server, work.path()).env("DEBUG", debug).arg("status")),
            ),
            (
                "check",
                run(pipe(&server, work.path()).env("DEBUG", debug).arg("check")),
            ),
            (
                "exec",
                run(pipe(&server, work.path())
                    .env("DEBUG", debug)
                    .args(["exec", "--", "true"])),
            ),
            (
                "exec, failing",
                run(pipe(&server, work.path()).env("DEBUG", debug).args([
                    "exec",
                    "--",
                    "no-such-command",
                ])),
            ),
            (
                "wrong secret",
                run(pipe(&server, work.path())
                    .env("DEBUG", debug)
                    .env("REUSE", "false")
                    .env("CLIENT_SECRET", format!("{secret}x"))
                    .arg("check")),
            ),
        ];
        for (name, out) in &runs {
            for needle in &forbidden {
                assert!(
                    !out.all().contains(needle.as_str()),
                    "{name} (DEBUG={debug}) leaked {needle:?}:\n{}",
                    out.all()
                );
            }
        }
        assert_eq!(
            runs.iter()
                .map(|(_, r)| r.code.unwrap())
                .collect::<Vec<_>>(),
            [0, 0, 0, 0, 0, 127, 3]
        );
        // git-credential's answer is the token, on stdout, by design; its log must stay clean.
        let mut cmd = crate::support::pipe_std(&server, work.path());
        cmd.env("DEBUG", debug)
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
            format!("username=x-token-auth\npassword={token}\n\n")
        );
        let log = String::from_utf8_lossy(&out.stderr);
        for needle in &forbidden {
            assert!(
                !log.contains(needle.as_str()),
                "git-credential (DEBUG={debug}) leaked {needle:?} in its log:\n{log}"
            );
        }
    }
}
