//! The leak audit over PROVIDER=oauth2: no secret, private key, assertion or token in any
//! output, DEBUG on and off, locally and on GitHub, with the log's mask on and off
//! (OAUTH_TOKEN_PIPE_TEST_NO_MASK=1, honoured by test builds only: with the mask off, only
//! the code's own care keeps a secret out).

use super::*;

/// `application/x-www-form-urlencoded`, written out here independently of the program's.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every form of a secret that must never appear: whole, base64, URL-encoded, as the
/// Basic credentials (raw and RFC-encoded), and any run of 24 of its characters.
fn leak(output: &str, client_id: &str, secrets: &[String]) -> Option<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut forms = Vec::new();
    for secret in secrets {
        forms.extend([
            secret.clone(),
            b64(secret),
            form_encode(secret),
            b64(&format!("{client_id}:{secret}")),
            b64(&format!(
                "{}:{}",
                form_encode(client_id),
                form_encode(secret)
            )),
        ]);
    }
    if let Some(found) = forms.into_iter().find(|f| output.contains(f.as_str())) {
        return Some(found);
    }
    secrets
        .iter()
        .flat_map(|s| s.as_bytes().windows(24))
        .filter_map(|w| std::str::from_utf8(w).ok())
        .find(|w| output.contains(w))
        .map(str::to_owned)
}

struct Scenario {
    name: &'static str,
    setup: OAuthSetup,
    env: Vec<(&'static str, String)>,
    args: Vec<&'static str>,
    code: i32,
}

#[test]
fn no_secret_key_assertion_or_token_in_any_output_for_oauth2() {
    let nonce = format!(
        "{:x}{:x}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // '/', '+', '=' and '%' make every encoded form differ from the plain one.
    let id = "ci:canary client".to_owned();
    let secret = format!("Canary/Secret+{nonce}=Xq9%");
    let mut token = format!("CanaryToken{nonce}.+/");
    while token.len() < 1200 {
        token.push_str(&format!("{:x}", token.len() * 7919));
    }
    token.push_str("==");
    let base = OAuthSetup {
        client_id: id.clone(),
        client_secret: secret.clone(),
        token_kind: TokenKind::Opaque,
        opaque_token: Some(token.clone()),
        ..OAuthSetup::default()
    };
    // What a careless server echoes: the secret and the Basic credentials it was sent (a
    // token it never issued to this run is no secret the program could know).
    let echo = format!(
        "bad credentials {secret} {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form_encode(&id),
            form_encode(&secret)
        ))
    );
    let s = |name, setup, env: Vec<(&'static str, String)>, code| Scenario {
        name,
        setup,
        env,
        args: Vec::new(),
        code,
    };
    let mut scenarios = vec![
        s("basic, introspection", base.clone(), vec![], 0),
        s(
            "post, api",
            base.clone(),
            vec![
                ("CLIENT_AUTH", "client_secret_post".into()),
                ("VALIDATE", "api".into()),
                ("VALIDATE_URL", "https://127.0.0.1:{port}/api/me".into()),
            ],
            0,
        ),
        s(
            "wrong secret",
            OAuthSetup {
                client_secret: "another".into(),
                ..base.clone()
            },
            vec![("CLIENT_SECRET", secret.clone())],
            3,
        ),
        s(
            "server echoes the credentials in its error",
            OAuthSetup {
                token_replies: vec![OAuthReply::json(
                    401,
                    &json!({"error": "invalid_client", "error_description": echo}).to_string(),
                )],
                ..base.clone()
            },
            vec![],
            3,
        ),
        s(
            "server echoes the credentials beside the token",
            OAuthSetup {
                token_replies: vec![OAuthReply::json(
                    200,
                    &json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "debug": format!("{echo} {token}"), "refresh_token": format!("{token}R")}).to_string(),
                )],
                ..base.clone()
            },
            vec![("VALIDATE", "false".into())],
            0,
        ),
        s(
            "inactive",
            OAuthSetup {
                introspection: Introspection::Inactive,
                ..base.clone()
            },
            vec![],
            4,
        ),
        s(
            "jwt, jwks",
            OAuthSetup {
                token_kind: TokenKind::Es256,
                ..base.clone()
            },
            vec![("VALIDATE", "jwks".into())],
            0,
        ),
        s(
            "private_key_jwt, introspection",
            OAuthSetup {
                methods: vec!["private_key_jwt"],
                assertion_keys: Some(fake_oauth::public_jwks_of("app-pkcs8.pem", "k")),
                ..base.clone()
            },
            vec![
                ("CLIENT_AUTH", "private_key_jwt".into()),
                ("PRIVATE_KEY", key_file("app-pkcs8.pem")),
            ],
            0,
        ),
        s(
            "mismatched issuer",
            OAuthSetup {
                discovery: Discovery::MismatchedIssuer,
                ..base.clone()
            },
            vec![],
            5,
        ),
    ];
    scenarios.push(Scenario {
        name: "exec",
        setup: base.clone(),
        env: vec![],
        args: vec!["exec", "--", "true"],
        code: 0,
    });
    // The private key's base64 lines, each a secret of its own.
    let key_lines: Vec<String> = key_file("app-pkcs8.pem")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    // The check itself finds each form, so "nothing found" means something.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        form_encode(&id),
        form_encode(&secret)
    ));
    for planted in [basic, form_encode(&secret), secret[3..30].to_owned()] {
        assert!(
            leak(
                &format!("log {planted} end"),
                &id,
                std::slice::from_ref(&secret)
            )
            .is_some()
        );
    }
    let mut jobs = Vec::new();
    for scenario in &scenarios {
        for github in [false, true] {
            for debug in [false, true] {
                for mask in [true, false] {
                    jobs.push((scenario, github, debug, mask));
                }
            }
        }
    }
    let mut audited = 0;
    for batch in jobs.chunks(8) {
        std::thread::scope(|threads| {
            let handles: Vec<_> = batch
                .iter()
                .map(|&(scenario, github, debug, mask)| {
                    let (secret, token, id, key_lines) = (&secret, &token, &id, &key_lines);
                    threads.spawn(move || {
                        let label = format!(
                            "{}: DEBUG={debug}, {}{}",
                            scenario.name,
                            if github { "GitHub" } else { "local" },
                            if mask { "" } else { ", mask off" }
                        );
                        let server = FakeOAuth::start(scenario.setup.clone());
                        let work = tempfile::tempdir().unwrap();
                        let mut cmd = oauth(&server, work.path());
                        cmd.env("DEBUG", debug.to_string());
                        if github {
                            cmd.env("GITHUB_ACTIONS", "true")
                                .env("GITHUB_OUTPUT", work.path().join("github_output"));
                        }
                        if !mask {
                            cmd.env("OAUTH_TOKEN_PIPE_TEST_NO_MASK", "1");
                        }
                        let port = server.base().rsplit(':').next().unwrap().to_owned();
                        for (k, v) in &scenario.env {
                            cmd.env(k, v.replace("{port}", &port));
                        }
                        cmd.args(&scenario.args);
                        let out = run(&mut cmd);
                        assert_eq!(out.code, Some(scenario.code), "{label}:\n{}", out.all());
                        let all = out.all();
                        if !mask {
                            assert!(
                                !all.contains("::add-mask::"),
                                "{label}: mask off, yet:\n{all}"
                            );
                        }
                        // The runner consumes ::add-mask:: lines; nobody sees them.
                        let shown: String = all
                            .lines()
                            .filter(|l| !l.starts_with("::add-mask::"))
                            .map(|l| format!("{l}\n"))
                            .collect();
                        let mut secrets = vec![secret.clone(), token.clone()];
                        secrets.extend(server.issued());
                        secrets.extend(key_lines.iter().cloned());
                        secrets.extend(
                            server
                                .token_requests()
                                .iter()
                                .chain(&server.introspection_requests())
                                .filter_map(|r| r.field("client_assertion")),
                        );
                        if let Some(found) = leak(&shown, id, &secrets) {
                            panic!("{label}: {found:?} leaked in:\n{shown}");
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().expect("audit run");
                audited += 1;
            }
        });
    }
    assert_eq!(audited, scenarios.len() * 8);
}

#[test]
fn hostile_scope_strings_cannot_forge_log_lines_or_workflow_commands() {
    let server = FakeOAuth::start(OAuthSetup {
        granted: Some("read \u{1b}[2Jwipe ::add-mask::x\r::error::forged".into()),
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    let out = run(oauth(&server, work.path())
        .env("VALIDATE", "false")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", work.path().join("github_output")));
    out.expect_code(0);
    let all = out.all();
    assert!(!all.contains('\u{1b}'), "{all:?}");
    for line in all.split(['\n', '\r']) {
        assert!(!line.starts_with("::error::forged"), "{all:?}");
    }
}

#[test]
fn status_reads_an_oauth2_token_without_credentials() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env("VALIDATE", "false")
        .env("SCOPE", "read"))
    .expect_code(0);
    let out = run(oauth(&server, work.path())
        .env_remove("CLIENT_SECRET")
        .env("SCOPE", "read")
        .arg("status"));
    out.expect_code(0).expect_log("scopes: read");
    assert!(!out.all().contains(&server.issued()[0]));
    assert_eq!(server.token_requests().len(), 1);
}
