//! private_key_jwt (RFC 7523): the fake verifies the assertion with the client's public key.

use super::*;

fn jwt_client(file: &str) -> OAuthSetup {
    OAuthSetup {
        methods: vec!["private_key_jwt"],
        assertion_keys: Some(fake_oauth::public_jwks_of(file, "client-key-1")),
        token_kind: TokenKind::Opaque,
        ..OAuthSetup::default()
    }
}

#[test]
fn private_key_jwt_sends_an_assertion_the_server_verifies_for_each_algorithm() {
    for (file, alg) in [
        ("app-pkcs8.pem", None),
        ("app-pkcs1.pem", Some("PS256")),
        ("ec-pkcs8.pem", None),
    ] {
        let server = FakeOAuth::start(jwt_client(file));
        let work = tempfile::tempdir().unwrap();
        let mut cmd = oauth(&server, work.path());
        cmd.env_remove("CLIENT_SECRET")
            .env("CLIENT_AUTH", "private_key_jwt")
            .env("PRIVATE_KEY", key_file(file))
            .env("KEY_ID", "client-key-1")
            .env("VALIDATE", "introspect");
        if let Some(alg) = alg {
            cmd.env("SIGNING_ALG", alg);
        }
        run(&mut cmd).expect_code(0);
        let request = &server.token_requests()[0];
        assert_eq!(request.header("authorization"), None, "{file}");
        assert_eq!(request.field("client_secret"), None);
        assert_eq!(request.field("client_id").as_deref(), Some("ci-client"));
        assert_eq!(
            request.field("client_assertion_type").as_deref(),
            Some(fake_oauth::JWT_BEARER)
        );
        // The token request and the introspection each carried a fresh assertion.
        let assertions = server.assertions();
        assert_eq!(assertions.len(), 2, "{file}");
        let expected = alg.unwrap_or(if file.starts_with("ec") {
            "ES256"
        } else {
            "RS256"
        });
        assert_eq!(assertions[0].header["alg"], expected);
        assert_eq!(assertions[0].header["kid"], "client-key-1");
        assert_eq!(assertions[0].claims["aud"], json!(server.token_url()));
        assert_eq!(
            assertions[1].claims["aud"],
            json!(server.introspection_url())
        );
        assert_ne!(assertions[0].claims["jti"], assertions[1].claims["jti"]);
        let introspection = &server.introspection_requests()[0];
        assert_eq!(introspection.field("client_secret"), None);
    }
}

#[test]
fn private_key_jwt_with_assertion_audience_names_the_issuer() {
    // rfc7523bis: the issuer as the sole audience, a JSON string; stricter servers require it.
    let server = FakeOAuth::start(OAuthSetup {
        assertion_audience: AssertionAudience::Issuer,
        ..jwt_client("ec-pkcs8.pem")
    });
    let work = tempfile::tempdir().unwrap();
    let base = || {
        let mut cmd = oauth(&server, work.path());
        cmd.env_remove("CLIENT_SECRET")
            .env("CLIENT_AUTH", "private_key_jwt")
            .env("PRIVATE_KEY", key_file("ec-pkcs8.pem"))
            .env("VALIDATE", "false")
            .env("REUSE", "false");
        cmd
    };
    run(&mut base())
        .expect_code(3)
        .expect_log("client assertion: aud");
    run(base().env("ASSERTION_AUDIENCE", server.issuer())).expect_code(0);
    assert_eq!(server.assertions()[0].claims["aud"], json!(server.issuer()));
}

#[test]
fn an_assertion_signed_with_another_key_exits_3_naming_private_key() {
    let server = FakeOAuth::start(OAuthSetup {
        assertion_keys: Some(fake_oauth::public_jwks_of(
            "other-pkcs1.pem",
            "client-key-1",
        )),
        ..jwt_client("app-pkcs8.pem")
    });
    let work = tempfile::tempdir().unwrap();
    let out = run(oauth(&server, work.path())
        .env_remove("CLIENT_SECRET")
        .env("CLIENT_AUTH", "private_key_jwt")
        .env("PRIVATE_KEY", key_file("app-pkcs8.pem"))
        .env("VALIDATE", "false"));
    out.expect_code(3)
        .expect_log("does not verify with the client's keys");
    assert!(hint(&out).contains("PRIVATE_KEY"), "{}", out.all());
}

#[test]
fn discovery_answering_404_in_both_forms_exits_5_naming_issuer() {
    let server = FakeOAuth::start(OAuthSetup {
        discovery: Discovery::Off,
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(&mut oauth(&server, work.path()))
        .expect_code(5)
        .expect_log("answered HTTP 404")
        .expect_log("Check ISSUER");
    assert_eq!(server.requests().len(), 2);
}
