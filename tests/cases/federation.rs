//! No stored secret (issue 14): the CI's OIDC identity token traded for an access token,
//! against the fakes of tests/support/fake_oidc.rs. Each CI source × sink that can work runs
//! end to end; each missing setup ends in exit 2 with its YAML; each federation refusal in
//! exit 3 quoting the exact `iss` and `sub` the provider must trust; and no identity token,
//! request token or issued token ever reaches the output, mask on or off.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::support::fake_oidc::{
    self, BITBUCKET_ISS, Ci, ENTRA_AUDIENCE, ENTRA_CLIENT, FakeOidc, Federated, GITHUB_ISS,
    GITHUB_SUB, GITLAB_ISS, GITLAB_SUB, Route, SERVICE_ACCOUNT, Setup, TENANT, WIP,
};
use crate::support::{Run, bare, bare_std, run};

mod examples;
mod refusals;

const SCOPE: &str = "api://b0f0c3a1-7d2e-4c55-8a9e-0e6f1d2c3b4a/.default";

/// Where the identity token comes from, as a runner would set it.
#[derive(Clone, Copy, Debug)]
enum From {
    GitHub,
    Bitbucket,
    GitLab,
}

/// The sink: everything but the identity source.
fn sink_env(cmd: &mut assert_cmd::Command, server: &FakeOidc, dir: &Path) {
    cmd.env("CA_BUNDLE", server.ca_file())
        .env("OUTPUT_FILE", dir.join("oauth-token.env"))
        .env("VALIDATE_URL", server.api_url())
        .env("RETRIES", "0")
        .env("TIMEOUT", "20");
}

fn entra(cmd: &mut assert_cmd::Command, server: &FakeOidc) {
    cmd.env("PROVIDER", "entra")
        .env("TENANT_ID", TENANT)
        .env("AUTHORITY_URL", server.authority())
        .env("CLIENT_ID", ENTRA_CLIENT)
        .env("SCOPE", SCOPE);
}

fn google(cmd: &mut assert_cmd::Command, server: &FakeOidc) {
    cmd.env("PROVIDER", "google")
        .env("WORKLOAD_IDENTITY_PROVIDER", WIP)
        .env("STS_URL", server.sts_url())
        .env("IAM_CREDENTIALS_URL", server.iam_url());
}

fn exchange(cmd: &mut assert_cmd::Command, server: &FakeOidc, grant: &str) {
    cmd.env("PROVIDER", "oauth2")
        .env("GRANT", grant)
        .env("TOKEN_URL", server.exchange_url())
        .env("OIDC_AUDIENCE", "https://sts.example.test");
}

/// The identity source: GitHub's runner variables, Bitbucket's or GitLab's token (minted now
/// with `aud`), and the platform's marker.
fn source(cmd: &mut assert_cmd::Command, server: &FakeOidc, dir: &Path, from: From, aud: &[&str]) {
    match from {
        From::GitHub => {
            for file in ["GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY"] {
                let path = dir.join(file.to_ascii_lowercase());
                std::fs::write(&path, "").unwrap();
                cmd.env(file, path);
            }
            cmd.env("GITHUB_ACTIONS", "true")
                .env("GITHUB_REPOSITORY", "acme/widgets")
                .env("ACTIONS_ID_TOKEN_REQUEST_URL", server.github_request_url())
                .env(
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                    server.github_request_token(),
                );
        }
        From::Bitbucket => {
            cmd.env("BITBUCKET_BUILD_NUMBER", "42")
                .env("BITBUCKET_REPO_FULL_NAME", "acme/widgets")
                .env("BITBUCKET_STEP_OIDC_TOKEN", server.mint(Ci::Bitbucket, aud));
        }
        From::GitLab => {
            cmd.env("GITLAB_CI", "true")
                .env("OIDC_TOKEN", server.mint(Ci::GitLab, aud));
        }
    }
}

/// GitHub Actions → Entra ID with the sinks in `dir`: the most common federation.
fn github_to_entra(server: &FakeOidc, dir: &Path) -> assert_cmd::Command {
    let mut cmd = bare(dir);
    sink_env(&mut cmd, server, dir);
    entra(&mut cmd, server);
    source(&mut cmd, server, dir, From::GitHub, &[]);
    cmd
}

/// `from`'s identity token (minted for `aud`) traded by RFC 8693 token exchange, the sinks
/// in `dir`.
fn exchanging(server: &FakeOidc, dir: &Path, from: From, aud: &[&str]) -> assert_cmd::Command {
    let mut cmd = bare(dir);
    sink_env(&mut cmd, server, dir);
    exchange(&mut cmd, server, "token_exchange");
    source(&mut cmd, server, dir, from, aud);
    cmd
}

fn dotenv(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("oauth-token.env")).unwrap_or_default()
}

/// No identity token, GitHub request token or issued token anywhere in `out`.
/// What a reader of the log sees: on GitHub the runner consumes `::add-mask::` commands.
fn visible(out: &Run) -> String {
    out.all()
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// On GitHub the `::add-mask::` commands are the runner's masking protocol: the runner
/// consumes them and never shows them, so they are the one place a secret may appear.
fn assert_no_leak(server: &FakeOidc, out: &Run, label: &str) {
    let all = visible(out);
    let mut secrets = server.minted();
    secrets.extend(server.issued());
    secrets.push(server.github_request_token());
    for secret in secrets {
        assert!(
            !all.contains(&secret),
            "{label}: a secret reached the output:\n{all}"
        );
        // Its signature (or last part) alone is enough to forge nothing, but a leak of a
        // part still means the mask missed it.
        let tail = secret.rsplit('.').next().unwrap();
        assert!(
            !all.contains(tail),
            "{label}: a secret's tail reached the output"
        );
    }
}

/// Runs the pipe with the mask on, then the same setup again with it off (a debug build's
/// OAUTH_TOKEN_PIPE_TEST_NO_MASK=1), auditing both: nothing may depend on the mask.
fn run_both(
    make: impl Fn(&Path) -> assert_cmd::Command,
    server: &FakeOidc,
) -> (Run, tempfile::TempDir) {
    let off = tempfile::tempdir().unwrap();
    // The most revealing run: no mask, and DEBUG logging every request and response.
    let out_off = run(make(off.path())
        .env("OAUTH_TOKEN_PIPE_TEST_NO_MASK", "1")
        .env("DEBUG", "true"));
    let on = tempfile::tempdir().unwrap();
    let out = run(&mut make(on.path()));
    assert_eq!(out.code, out_off.code, "mask on/off changed the outcome");
    assert_no_leak(server, &out_off, "mask off, DEBUG");
    assert_no_leak(server, &out, "mask on");
    assert_no_identity_in_files(server, off.path());
    assert_no_identity_in_files(server, on.path());
    (out, on)
}

/// The access token goes into the dotenv file and GitHub's step outputs by design; the
/// identity token and GitHub's request token go into no file at all.
fn assert_no_identity_in_files(server: &FakeOidc, dir: &Path) {
    let mut secrets = server.minted();
    secrets.push(server.github_request_token());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{} holds an identity credential",
                path.display()
            );
        }
    }
}

fn claims_logged(out: &Run, iss: &str, sub_prefix: &str, aud: &str) {
    out.expect_log(&format!("iss {iss}, sub {sub_prefix}"))
        .expect_log(&format!("aud {aud}"));
}

#[test]
fn github_to_entra_trades_the_identity_token_with_no_secret() {
    let server = FakeOidc::start(Setup {
        github_expect_audience: Some(ENTRA_AUDIENCE.into()),
        federated: vec![Federated::new(GITHUB_ISS, GITHUB_SUB)],
        ..Setup::default()
    });
    let make = |dir: &Path| {
        let mut cmd = bare(dir);
        sink_env(&mut cmd, &server, dir);
        entra(&mut cmd, &server);
        source(&mut cmd, &server, dir, From::GitHub, &[]);
        cmd
    };
    let (out, dir) = run_both(make, &server);
    out.expect_code(0);
    claims_logged(&out, GITHUB_ISS, GITHUB_SUB, ENTRA_AUDIENCE);
    let issued = server.issued();
    assert!(
        dotenv(dir.path()).contains(&format!("OAUTH_ACCESS_TOKEN={}\n", issued.last().unwrap())),
        "{}",
        dotenv(dir.path())
    );
    let requests = server.requests_to(Route::Entra);
    let last = requests.last().unwrap();
    assert_eq!(
        last.form("client_assertion"),
        server.minted().last().cloned()
    );
    assert_eq!(
        last.form("client_assertion_type").as_deref(),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(last.form("client_secret"), None);
    assert_eq!(last.header("authorization"), None);
    let fetch = server.requests_to(Route::GitHubIdToken);
    assert_eq!(fetch.len(), 2, "one identity token per run");
    assert_eq!(fetch[0].query("audience").as_deref(), Some(ENTRA_AUDIENCE));
}

#[test]
fn gitlab_to_entra_reads_the_variable_id_tokens_names() {
    let server = FakeOidc::start(Setup {
        federated: vec![Federated::new(GITLAB_ISS, GITLAB_SUB)],
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bare(dir.path());
    sink_env(&mut cmd, &server, dir.path());
    entra(&mut cmd, &server);
    cmd.env("GITLAB_CI", "true")
        .env("OIDC_TOKEN_VARIABLE", "AZURE_ID_TOKEN")
        .env("AZURE_ID_TOKEN", server.mint(Ci::GitLab, &[ENTRA_AUDIENCE]));
    let out = run(&mut cmd);
    out.expect_code(0)
        .expect_log("Identity token from $AZURE_ID_TOKEN");
    claims_logged(&out, GITLAB_ISS, GITLAB_SUB, ENTRA_AUDIENCE);
    assert!(dotenv(dir.path()).contains(&server.issued()[0]));
    assert_no_leak(&server, &out, "gitlab → entra");
}

#[test]
fn every_ci_reaches_google_through_sts_with_and_without_impersonation() {
    let bitbucket_aud = format!(
        "ari:cloud:bitbucket::workspace/{}",
        fake_oidc::BITBUCKET_WORKSPACE_UUID
    );
    for from in [From::GitHub, From::Bitbucket, From::GitLab] {
        for impersonate in [false, true] {
            let label = format!("{from:?} → google, impersonation {impersonate}");
            let server = FakeOidc::start(Setup {
                github_expect_audience: Some(fake_oidc::google_default_audience()),
                sts_allowed_audiences: vec![
                    fake_oidc::google_default_audience(),
                    bitbucket_aud.clone(),
                ],
                ..Setup::default()
            });
            let aud = match from {
                From::Bitbucket => bitbucket_aud.clone(),
                _ => fake_oidc::google_default_audience(),
            };
            let make = |dir: &Path| {
                let mut cmd = bare(dir);
                sink_env(&mut cmd, &server, dir);
                google(&mut cmd, &server);
                if !matches!(from, From::Bitbucket) {
                    cmd.env("OIDC_AUDIENCE", fake_oidc::google_default_audience());
                }
                if impersonate {
                    cmd.env("SERVICE_ACCOUNT", SERVICE_ACCOUNT)
                        .env("LIFETIME", "1800");
                }
                source(&mut cmd, &server, dir, from, &[&aud]);
                cmd
            };
            let (out, dir) = run_both(make, &server);
            out.expect_code(0);
            let (iss, sub) = match from {
                From::GitHub => (fake_oidc::GITHUB_ISS, GITHUB_SUB),
                From::Bitbucket => (BITBUCKET_ISS, fake_oidc::BITBUCKET_REPO_UUID),
                From::GitLab => (GITLAB_ISS, GITLAB_SUB),
            };
            claims_logged(&out, iss, sub, &aud);
            let sts = server.requests_to(Route::Sts);
            assert_eq!(sts.len(), 2, "{label}");
            for request in &sts {
                assert_eq!(
                    request.header("authorization"),
                    None,
                    "{label}: STS got an Authorization header"
                );
                assert_eq!(
                    request.form("audience"),
                    Some(format!("//iam.googleapis.com/{WIP}"))
                );
                assert_eq!(
                    request.form("scope").as_deref(),
                    Some("https://www.googleapis.com/auth/cloud-platform")
                );
            }
            let text = dotenv(dir.path());
            let token = server.issued().last().cloned().unwrap();
            assert!(
                text.contains(&format!("OAUTH_ACCESS_TOKEN={token}\n")),
                "{label}: {text}"
            );
            let iam = server.requests_to(Route::Iam);
            if impersonate {
                assert!(
                    token.starts_with("ya29.c."),
                    "{label}: the impersonated token is delivered"
                );
                let body: serde_json::Value = serde_json::from_slice(&iam[0].body).unwrap();
                assert_eq!(body["lifetime"], "1800s");
                assert!(iam[0].path.ends_with(&format!(
                    "/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:generateAccessToken"
                )));
                // The expiry is generateAccessToken's expireTime: 30 minutes, not STS's hour.
                let at = text
                    .lines()
                    .find_map(|l| l.strip_prefix("OAUTH_ACCESS_TOKEN_EXPIRES_AT="))
                    .unwrap();
                let at = humantime::parse_rfc3339(at).unwrap();
                let left = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap()
                    .as_secs();
                assert!((1700..=1800).contains(&left), "{label}: expiry in {left} s");
            } else {
                assert!(iam.is_empty(), "{label}");
                assert!(
                    token.starts_with("ya29.d."),
                    "{label}: the STS token is delivered"
                );
            }
        }
    }
}

#[test]
fn github_and_bitbucket_reach_a_generic_rfc8693_server() {
    for from in [From::GitHub, From::Bitbucket] {
        let server = FakeOidc::start(Setup {
            github_expect_audience: Some("https://sts.example.test".into()),
            exchange_trust: vec![
                (GITHUB_ISS.into(), GITHUB_SUB.into()),
                (
                    BITBUCKET_ISS.into(),
                    format!("{}:*", fake_oidc::BITBUCKET_REPO_UUID),
                ),
            ],
            // The run-time P-256 key: a generic server takes ES256 as well.
            es256: matches!(from, From::Bitbucket),
            ..Setup::default()
        });
        let make = |dir: &Path| {
            let mut cmd = bare(dir);
            sink_env(&mut cmd, &server, dir);
            exchange(&mut cmd, &server, "token_exchange");
            source(&mut cmd, &server, dir, from, &["https://sts.example.test"]);
            cmd
        };
        let (out, dir) = run_both(make, &server);
        out.expect_code(0)
            .expect_log("issued a token of type urn:ietf:params:oauth:token-type:access_token");
        let request = server.requests_to(Route::Exchange).pop().unwrap();
        assert_eq!(
            request.form("subject_token"),
            server.minted().last().cloned()
        );
        assert_eq!(
            request.form("subject_token_type").as_deref(),
            Some("urn:ietf:params:oauth:token-type:jwt")
        );
        assert_eq!(
            request.header("authorization"),
            None,
            "no client configured"
        );
        assert!(dotenv(dir.path()).contains(server.issued().last().unwrap()));
    }
}

#[test]
fn jwt_bearer_grant_sends_the_identity_token_as_the_assertion() {
    let server = FakeOidc::start(Setup {
        exchange_trust: vec![(GITHUB_ISS.into(), GITHUB_SUB.into())],
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bare(dir.path());
    sink_env(&mut cmd, &server, dir.path());
    exchange(&mut cmd, &server, "jwt_bearer");
    source(&mut cmd, &server, dir.path(), From::GitHub, &[]);
    let out = run(&mut cmd);
    out.expect_code(0);
    let request = &server.requests_to(Route::Exchange)[0];
    assert_eq!(
        request.form("grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert_eq!(request.form("assertion"), Some(server.minted()[0].clone()));
    assert!(dotenv(dir.path()).contains(&server.issued()[0]));
    assert_no_leak(&server, &out, "jwt_bearer");
}

#[test]
fn missing_ci_setup_is_a_configuration_error_with_the_yaml_that_fixes_it() {
    let server = FakeOidc::start(Setup::default());
    // (the platform's marker variable, the hint), with no identity variable set.
    let cases = [
        ("GITHUB_ACTIONS", "permissions: id-token: write"),
        ("BITBUCKET_BUILD_NUMBER", "`oidc: true`"),
        (
            "GITLAB_CI",
            "`id_tokens: {OIDC_TOKEN: {aud: \"api://AzureADTokenExchange\"}}`",
        ),
    ];
    for (marker, hint) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = bare(dir.path());
        sink_env(&mut cmd, &server, dir.path());
        entra(&mut cmd, &server);
        cmd.env("OIDC_TOKEN_SOURCE", "auto").env(
            marker,
            if marker == "BITBUCKET_BUILD_NUMBER" {
                "42"
            } else {
                "true"
            },
        );
        if marker == "GITHUB_ACTIONS" {
            let output = dir.path().join("out");
            std::fs::write(&output, "").unwrap();
            cmd.env("GITHUB_OUTPUT", &output);
        }
        run(&mut cmd).expect_code(2).expect_log(hint);
    }
    assert!(
        server.requests().is_empty(),
        "a configuration error sends nothing"
    );
}

#[test]
fn an_audience_missing_from_a_fixed_token_names_the_yaml_that_adds_it() {
    let server = FakeOidc::start(Setup::default());
    for (from, yaml) in [
        (
            From::Bitbucket,
            "`oidc:` then `audiences: [\"https://sts.example.test\"]` on the step",
        ),
        (
            From::GitLab,
            "`id_tokens: {OIDC_TOKEN: {aud: \"https://sts.example.test\"}}`",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = exchanging(&server, dir.path(), from, &["https://other.example.test"]);
        let out = run(&mut cmd);
        out.expect_code(2)
            .expect_log("OIDC_AUDIENCE")
            .expect_log("aud is [https://other.example.test]")
            .expect_log(yaml);
        assert_no_leak(&server, &out, "audience");
    }
    assert!(server.requests().is_empty());
}

#[test]
fn exec_fetches_a_fresh_identity_token_for_each_access_token() {
    let server = FakeOidc::start(Setup {
        federated: vec![Federated::new(GITHUB_ISS, GITHUB_SUB)],
        ..Setup::default()
    });
    let mut seen = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = github_to_entra(&server, dir.path());
        cmd.env_remove("OUTPUT_FILE").args([
            "exec",
            "--",
            "sh",
            "-c",
            "printf '%s' \"$OAUTH_ACCESS_TOKEN\" > child-token",
        ]);
        let out = run(&mut cmd);
        out.expect_code(0);
        assert_no_leak(&server, &out, "exec");
        seen.push(std::fs::read_to_string(dir.path().join("child-token")).unwrap());
    }
    assert_eq!(seen, server.issued());
    let minted = server.minted();
    assert_eq!(minted.len(), 2);
    assert_ne!(minted[0], minted[1]);
    let entra = server.requests_to(Route::Entra);
    assert_eq!(entra[0].form("client_assertion"), Some(minted[0].clone()));
    assert_eq!(entra[1].form("client_assertion"), Some(minted[1].clone()));
}

#[test]
fn git_credential_fetches_a_fresh_identity_token_when_the_cached_token_runs_low() {
    // Access tokens that live 60 s, under MIN_VALIDITY: each `get` needs a new one.
    let server = FakeOidc::start(Setup {
        federated: vec![Federated::new(GITHUB_ISS, GITHUB_SUB)],
        expires_in: 60,
        ..Setup::default()
    });
    let home = tempfile::tempdir().unwrap();
    let host = "dev.azure.com";
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut cmd = bare_std(home.path());
        for (k, v) in [
            ("PROVIDER", "entra"),
            ("TENANT_ID", TENANT),
            ("CLIENT_ID", ENTRA_CLIENT),
            ("SCOPE", SCOPE),
            ("GIT_HOST", host),
            ("GIT_USERNAME", "pipeline"),
            ("OIDC_TOKEN_SOURCE", "github"),
        ] {
            cmd.env(k, v);
        }
        cmd.env("AUTHORITY_URL", server.authority())
            .env("CA_BUNDLE", server.ca_file())
            .env("RETRIES", "0")
            .env("HOME", home.path())
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", server.github_request_url())
            .env(
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                server.github_request_token(),
            )
            .args(["git-credential", "get"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("protocol=https\nhost={host}\n\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let log = Run {
            code: Some(0),
            stdout: String::new(),
            stderr,
        };
        assert_no_leak(&server, &log, "git-credential log");
        answers.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let issued = server.issued();
    assert_eq!(issued.len(), 2);
    for (answer, token) in answers.iter().zip(&issued) {
        assert!(answer.contains(&format!("password={token}\n")), "{answer}");
    }
    let minted = server.minted();
    assert_eq!(server.requests_to(Route::GitHubIdToken).len(), 2);
    assert_ne!(minted[0], minted[1]);
    let entra = server.requests_to(Route::Entra);
    assert_eq!(entra[1].form("client_assertion"), Some(minted[1].clone()));
}

#[test]
fn a_stored_token_is_not_reused_by_another_identity() {
    // Two GitLab jobs sharing the output folder (a cache or artifact): main, then a feature
    // branch the exchange server also trusts. The feature branch must get its own token,
    // not main's (the reuse key includes the identity token's subject).
    let feature = "project_path:acme/widgets:ref_type:branch:ref:feature";
    let server = FakeOidc::start(Setup {
        exchange_trust: vec![
            (GITLAB_ISS.into(), GITLAB_SUB.into()),
            (GITLAB_ISS.into(), feature.into()),
        ],
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    for sub in [GITLAB_SUB, feature, feature] {
        let mut cmd = bare(dir.path());
        sink_env(&mut cmd, &server, dir.path());
        exchange(&mut cmd, &server, "token_exchange");
        cmd.env("GITLAB_CI", "true").env(
            "OIDC_TOKEN",
            server.mint_as(Ci::GitLab, &["https://sts.example.test"], sub),
        );
        run(&mut cmd).expect_code(0);
    }
    let exchanged: Vec<String> = server
        .requests_to(Route::Exchange)
        .iter()
        .map(|r| subject_of(&r.form("subject_token").unwrap()))
        .collect();
    // The third run, the same identity as the second, reuses its token.
    assert_eq!(exchanged, [GITLAB_SUB, feature]);
    let issued = server.issued();
    assert!(dotenv(dir.path()).contains(&issued[1]));
}

fn subject_of(jwt: &str) -> String {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

#[test]
fn a_kubernetes_style_token_file_is_read_when_used() {
    let server = FakeOidc::start(Setup {
        exchange_trust: vec![(GITLAB_ISS.into(), GITLAB_SUB.into())],
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let make = |file: &Path| {
        let mut cmd = bare(dir.path());
        sink_env(&mut cmd, &server, dir.path());
        exchange(&mut cmd, &server, "token_exchange");
        cmd.env("OIDC_TOKEN_FILE", file).env("REUSE", "false");
        cmd
    };
    // The kubelet rewrites the file with a trailing newline.
    std::fs::write(
        &file,
        format!(
            "{}\n",
            server.mint(Ci::GitLab, &["https://sts.example.test"])
        ),
    )
    .unwrap();
    let out = run(&mut make(&file));
    out.expect_code(0)
        .expect_log(&format!("Identity token from {}", file.display()));
    assert_eq!(
        server.requests_to(Route::Exchange)[0].form("subject_token"),
        Some(server.minted()[0].clone())
    );
    assert_no_leak(&server, &out, "file");
    run(&mut make(&dir.path().join("absent")))
        .expect_code(2)
        .expect_log("OIDC_TOKEN_FILE");
}

#[test]
fn identity_faults_end_in_their_exit_code_without_a_leak() {
    use crate::support::fake_oidc::Scripted;
    let script = |route, status, body: &str| Scripted {
        route,
        status,
        body: body.into(),
    };
    // (label, scripted replies, RETRIES, bad request token, exit, log, GitHub fetches)
    let cases = [
        (
            "runner token refused",
            vec![],
            "0",
            true,
            5,
            "answered HTTP 401",
            1,
        ),
        (
            "no value",
            vec![script(Route::GitHubIdToken, 200, r#"{"count":0}"#)],
            "0",
            false,
            5,
            "without a token",
            1,
        ),
        (
            "not a JWT",
            vec![script(
                Route::GitHubIdToken,
                200,
                r#"{"value":"not-a-jwt-at-all"}"#,
            )],
            "0",
            false,
            2,
            "does not hold an identity token (a JWT)",
            1,
        ),
        (
            "503 then fine",
            vec![script(Route::GitHubIdToken, 503, r#"{"message":"busy"}"#)],
            "1",
            false,
            0,
            "Identity token from GitHub Actions",
            2,
        ),
        (
            "Entra 500",
            vec![script(Route::Entra, 500, "{}")],
            "0",
            false,
            5,
            "HTTP 500",
            1,
        ),
    ];
    for (label, scripted, retries, bad_token, code, log, fetches) in cases {
        let server = FakeOidc::start(Setup {
            federated: vec![Federated::new(GITHUB_ISS, GITHUB_SUB)],
            scripted,
            ..Setup::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = github_to_entra(&server, dir.path());
        cmd.env("RETRIES", retries);
        if bad_token {
            cmd.env(
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                "ghrt-expired-runner-token",
            );
        }
        let out = run(&mut cmd);
        assert_eq!(out.code, Some(code), "{label}:\n{}", out.all());
        out.expect_log(log);
        assert_eq!(
            server.requests_to(Route::GitHubIdToken).len(),
            fetches,
            "{label}"
        );
        let seen = visible(&out);
        assert!(
            !seen.contains("not-a-jwt-at-all"),
            "{label}: the value is masked"
        );
        assert!(
            !seen.contains("ghrt-expired-runner-token"),
            "{label}:\n{seen}"
        );
        assert_no_leak(&server, &out, label);
    }
}

#[test]
fn the_fake_fails_a_test_that_left_a_scripted_reply_unused() {
    let unused = std::panic::catch_unwind(|| {
        drop(FakeOidc::start(Setup {
            scripted: vec![crate::support::fake_oidc::Scripted {
                route: Route::Sts,
                status: 500,
                body: "{}".into(),
            }],
            ..Setup::default()
        }));
    });
    assert!(
        unused.is_err(),
        "an unused scripted reply must fail the test"
    );
    // A handler's panic (here: a form the fake's Entra refuses to accept) fails it too.
    let server = FakeOidc::start(Setup::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bare(dir.path());
    sink_env(&mut cmd, &server, dir.path());
    entra(&mut cmd, &server);
    // A scope without /.default never reaches the fake (exit 2); a client secret does, and
    // the fake asserts a federated request has none of that: use the latter.
    cmd.env("CLIENT_SECRET", "a-secret-the-fake-does-not-expect")
        .env("CLIENT_AUTH", "client_secret_basic");
    source(&mut cmd, &server, dir.path(), From::GitHub, &[]);
    let _ = run(&mut cmd);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(server)));
    assert!(panicked.is_err(), "a handler panic must fail the test");
}

/// `--help` (from the variable table) and the README's Variables table name every provider,
/// `google` included.
#[test]
fn provider_docs_name_every_provider() {
    let readme =
        std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| PROVIDER |"))
        .unwrap();
    let doc = oauth_token_pipe::config::table::find("PROVIDER")
        .unwrap()
        .doc;
    for id in oauth_token_pipe::provider::IDS {
        assert!(
            row.contains(&format!("`{id}`")),
            "README PROVIDER row lacks {id}"
        );
        assert!(doc.contains(id), "the table's PROVIDER doc lacks {id}");
    }
}

/// `exec`'s child gets the access token, never the identity material it was traded for:
/// GitHub's request token, Bitbucket's step token, GitLab's token under any name.
#[test]
fn exec_child_never_sees_the_identity_token() {
    let server = FakeOidc::start(Setup {
        exchange_trust: vec![
            (GITHUB_ISS.into(), GITHUB_SUB.into()),
            (GITLAB_ISS.into(), GITLAB_SUB.into()),
            (
                BITBUCKET_ISS.into(),
                format!("{}:*", fake_oidc::BITBUCKET_REPO_UUID),
            ),
        ],
        ..Setup::default()
    });
    for from in [From::GitHub, From::Bitbucket, From::GitLab] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = exchanging(&server, dir.path(), from, &["https://sts.example.test"]);
        if matches!(from, From::GitLab) {
            // The name `id_tokens:` chose, which no table can list.
            cmd.env_remove("OIDC_TOKEN")
                .env("OIDC_TOKEN_VARIABLE", "STS_ID_TOKEN")
                .env(
                    "STS_ID_TOKEN",
                    server.mint(Ci::GitLab, &["https://sts.example.test"]),
                );
        }
        cmd.env_remove("OUTPUT_FILE").args([
            "exec",
            "--",
            "sh",
            "-c",
            "env > child-env; tr '\\000' '\\n' < /proc/$PPID/environ > parent-env",
        ]);
        run(&mut cmd).expect_code(0);
        // What the child can read: its own environment and the pipe's (/proc/$PPID/environ).
        let parent = std::fs::read_to_string(dir.path().join("parent-env")).unwrap();
        assert!(
            parent.contains("TOKEN_URL="),
            "the pipe's environment was read"
        );
        let env = std::fs::read_to_string(dir.path().join("child-env")).unwrap() + &parent;
        let mut secrets = server.minted();
        secrets.push(server.github_request_token());
        for secret in secrets {
            assert!(
                !env.contains(&secret),
                "{from:?}: the exec child got identity material:\n{env}"
            );
        }
        assert!(env.contains(server.issued().last().unwrap()));
    }
}

/// With VALIDATE left at its default, Entra's discovery and keys validate the token; its
/// discovery lists `private_key_jwt`, which a federated assertion is, so there is no
/// warning that CLIENT_AUTH is unsupported.
#[test]
fn entra_federated_validates_through_discovery_without_a_false_warning() {
    let server = FakeOidc::start(Setup {
        federated: vec![Federated::new(GITHUB_ISS, GITHUB_SUB)],
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = github_to_entra(&server, dir.path());
    cmd.env_remove("VALIDATE_URL");
    let out = run(&mut cmd);
    out.expect_code(0).expect_log("/discovery/v2.0/keys");
    assert!(
        !out.all().contains("and not CLIENT_AUTH"),
        "a false warning:\n{}",
        out.all()
    );
    assert_eq!(server.requests_to(Route::EntraMeta).len(), 2);
    assert_no_leak(&server, &out, "entra discovery");
}

#[test]
fn sts_unknown_pool_provider_names_workload_identity_provider() {
    let server = FakeOidc::start(Setup::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bare(dir.path());
    sink_env(&mut cmd, &server, dir.path());
    google(&mut cmd, &server);
    let other = "projects/123456789/locations/global/workloadIdentityPools/ci/providers/gone";
    cmd.env("WORKLOAD_IDENTITY_PROVIDER", other)
        .env("OIDC_AUDIENCE", fake_oidc::google_default_audience());
    source(&mut cmd, &server, dir.path(), From::GitHub, &[]);
    let out = run(&mut cmd);
    out.expect_code(3)
        .expect_log("invalid_target")
        .expect_log("does not know the pool provider WORKLOAD_IDENTITY_PROVIDER names");
    assert!(!out.all().contains("Check RESOURCE"));
    assert_no_leak(&server, &out, "invalid_target");
}
