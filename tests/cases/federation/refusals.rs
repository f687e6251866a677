//! Refusals of a traded identity: Entra's, Google STS's and a generic RFC 8693 server's, each
//! quoting the exact issuer and subject to trust, and the retries that are worth one more try.

use super::*;

/// GitHub → Entra against `federated`, returning the run.
fn entra_refusal(setup: Setup) -> (Run, FakeOidc) {
    let server = FakeOidc::start(setup);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = github_to_entra(&server, dir.path());
    let out = run(&mut cmd);
    assert_no_leak(&server, &out, "refusal");
    (out, server)
}

#[test]
fn entra_refusals_quote_the_exact_issuer_and_subject_to_trust() {
    let trust =
        format!("issuer `{GITHUB_ISS}`, subject `{GITHUB_SUB}`, audience `{ENTRA_AUDIENCE}`");
    let cases = [
        (
            "AADSTS70021",
            vec![Federated::new("https://gitlab.com", GITLAB_SUB)],
        ),
        (
            "AADSTS700213",
            vec![Federated::new(
                GITHUB_ISS,
                "repo:acme/widgets:environment:prod",
            )],
        ),
        (
            "AADSTS7002138",
            vec![Federated::new(
                GITHUB_ISS,
                "repo:Acme/Widgets:ref:refs/heads/main",
            )],
        ),
    ];
    for (code, federated) in cases {
        let (out, server) = entra_refusal(Setup {
            federated,
            ..Setup::default()
        });
        out.expect_code(3)
            .expect_log(code)
            .expect_log(&trust)
            .expect_log("Matching is exact")
            .expect_log("Trace ID: ")
            .expect_log("Correlation ID: ");
        assert!(
            !out.all().contains("\\r\\n"),
            "{code}: Entra's description is cut at its first line"
        );
        assert_eq!(
            server.requests_to(Route::Entra).len(),
            1,
            "{code}: no retry"
        );
    }
}

#[test]
fn a_trailing_slash_on_the_issuer_is_flagged() {
    let (out, _server) = entra_refusal(Setup {
        github_iss: format!("{GITHUB_ISS}/"),
        federated: vec![Federated::new(GITHUB_ISS, GITHUB_SUB)],
        ..Setup::default()
    });
    out.expect_code(3)
        .expect_log("AADSTS70021")
        .expect_log(&format!("issuer `{GITHUB_ISS}/`"))
        .expect_log("The issuer ends with '/'");
}

#[test]
fn bitbucket_to_entra_says_it_cannot_work() {
    let server = FakeOidc::start(Setup {
        federated: vec![Federated::new(
            BITBUCKET_ISS,
            fake_oidc::BITBUCKET_REPO_UUID,
        )],
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bare(dir.path());
    sink_env(&mut cmd, &server, dir.path());
    entra(&mut cmd, &server);
    source(
        &mut cmd,
        &server,
        dir.path(),
        From::Bitbucket,
        &[ENTRA_AUDIENCE],
    );
    let out = run(&mut cmd);
    let sub = format!("{}:", fake_oidc::BITBUCKET_REPO_UUID);
    out.expect_code(3)
        .expect_log("Entra ID cannot trust Bitbucket Pipelines identity tokens")
        .expect_log(&sub)
        .expect_log("per-step UUID");
    assert_no_leak(&server, &out, "bitbucket → entra");
}

#[test]
fn aadsts700024_fetches_a_fresh_identity_token_and_retries_once() {
    let server = FakeOidc::start(Setup {
        federated: vec![Federated::new(GITHUB_ISS, GITHUB_SUB)],
        github_expired_mints: 1,
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = github_to_entra(&server, dir.path());
    let out = run(&mut cmd);
    out.expect_code(0)
        .expect_log("AADSTS700024")
        .expect_log("requesting a fresh one and trying once more");
    assert_eq!(server.requests_to(Route::GitHubIdToken).len(), 2);
    let entra = server.requests_to(Route::Entra);
    assert_eq!(entra.len(), 2);
    let minted = server.minted();
    assert_eq!(entra[0].form("client_assertion"), Some(minted[0].clone()));
    assert_eq!(entra[1].form("client_assertion"), Some(minted[1].clone()));
    assert_no_leak(&server, &out, "700024");
}

#[test]
fn aadsts700024_twice_stops_after_one_retry_and_blames_the_clock() {
    let server = FakeOidc::start(Setup {
        federated: vec![Federated::new(GITHUB_ISS, GITHUB_SUB)],
        github_expired_mints: 2,
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = github_to_entra(&server, dir.path());
    run(&mut cmd)
        .expect_code(3)
        .expect_log("check this runner's clock");
    assert_eq!(server.requests_to(Route::GitHubIdToken).len(), 2);
    assert_eq!(server.requests_to(Route::Entra).len(), 2);
}

#[test]
fn sts_and_generic_refusals_quote_the_issuer_and_subject() {
    // Google's attribute condition admits another branch only.
    let server = FakeOidc::start(Setup {
        sts_subjects: vec!["repo:acme/widgets:ref:refs/heads/release".into()],
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bare(dir.path());
    sink_env(&mut cmd, &server, dir.path());
    google(&mut cmd, &server);
    cmd.env("OIDC_AUDIENCE", fake_oidc::google_default_audience());
    source(
        &mut cmd,
        &server,
        dir.path(),
        From::GitLab,
        &[&fake_oidc::google_default_audience()],
    );
    let out = run(&mut cmd);
    out.expect_code(3)
        .expect_log("rejected by the attribute condition")
        .expect_log(&format!("issuer `{GITLAB_ISS}`"))
        .expect_log(&format!("subject `{GITLAB_SUB}`"));
    assert_no_leak(&server, &out, "sts");

    let server = FakeOidc::start(Setup::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = exchanging(&server, dir.path(), From::GitHub, &[]);
    let out = run(&mut cmd);
    out.expect_code(3)
        .expect_log("invalid_grant")
        .expect_log(&format!("issuer `{GITHUB_ISS}`, subject `{GITHUB_SUB}`"));
    assert_no_leak(&server, &out, "8693");
}

#[test]
fn impersonation_denied_names_the_role_to_grant() {
    let server = FakeOidc::start(Setup {
        iam_denied: true,
        ..Setup::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bare(dir.path());
    sink_env(&mut cmd, &server, dir.path());
    google(&mut cmd, &server);
    cmd.env("SERVICE_ACCOUNT", SERVICE_ACCOUNT)
        .env("OIDC_AUDIENCE", fake_oidc::google_default_audience());
    source(&mut cmd, &server, dir.path(), From::GitHub, &[]);
    let out = run(&mut cmd);
    out.expect_code(3)
        .expect_log("Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).")
        .expect_log("roles/iam.workloadIdentityUser");
    assert_no_leak(&server, &out, "iam");
}

#[test]
fn token_exchange_without_issued_token_type_is_a_malformed_response() {
    let server = FakeOidc::start(Setup {
        exchange_trust: vec![(GITHUB_ISS.into(), GITHUB_SUB.into())],
        exchange_omits_issued_type: true,
        ..Setup::default()
    });
    let make = |dir: &Path| {
        let mut cmd = bare(dir);
        sink_env(&mut cmd, &server, dir);
        exchange(&mut cmd, &server, "token_exchange");
        source(&mut cmd, &server, dir, From::GitHub, &[]);
        cmd
    };
    let (out, dir) = run_both(make, &server);
    out.expect_code(5).expect_log("issued_token_type");
    assert!(!dir.path().join("oauth-token.env").exists());
}
