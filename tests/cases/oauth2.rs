//! PROVIDER=oauth2 and its profiles (entra, auth0, okta, keycloak) against the fake
//! authorization server of `support::fake_oauth` (issue 12): discovery in both forms, each
//! client-authentication method as a strict server checks it, the three ways to validate,
//! JWKS with RSA and EC keys, every wrong setup of providers.md §3 with its hint, the
//! configuration rules, scopes, reuse, git-credential, and the leak audit.

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::json;

use crate::support::fake_oauth::{
    self, AssertionAudience, BasicDecoding, Discovery, FakeOAuth, Introspection, OAuthReply,
    OAuthSetup, TokenKind,
};
use crate::support::{Run, bare, run};

mod leaks;
mod private_key_jwt;
mod refusals;

/// The binary configured for PROVIDER=oauth2 against `server` by ISSUER (discovery).
fn oauth(server: &FakeOAuth, dir: &Path) -> assert_cmd::Command {
    let setup = server.setup();
    let mut cmd = bare(dir);
    cmd.env("PROVIDER", "oauth2")
        .env("CLIENT_ID", &setup.client_id)
        .env("CLIENT_SECRET", &setup.client_secret)
        .env("ISSUER", server.issuer())
        .env("CA_BUNDLE", server.ca_file());
    cmd
}

/// `profile` against `server`: Entra by AUTHORITY_URL and TENANT_ID (its issuer is then
/// `{base}/{tenant}/v2.0`), the others by ISSUER; validation off, so the token request is
/// the only one a profile-error test makes (Auth0, Okta and Keycloak discover first).
fn profile(profile: &str, server: &FakeOAuth, dir: &Path) -> assert_cmd::Command {
    let mut cmd = oauth(server, dir);
    cmd.env("PROVIDER", profile).env("VALIDATE", "false");
    match profile {
        "entra" => {
            cmd.env_remove("ISSUER")
                .env("AUTHORITY_URL", server.base())
                .env("TENANT_ID", ENTRA_TENANT)
                .env("SCOPE", "https://graph.microsoft.com/.default");
        }
        "auth0" => {
            cmd.env("AUDIENCE", "https://acme.example/api/");
        }
        _ => {}
    }
    cmd
}

const ENTRA_TENANT: &str = "contoso.example";

fn entra_setup() -> OAuthSetup {
    OAuthSetup {
        issuer_path: format!("/{ENTRA_TENANT}/v2.0"),
        ..OAuthSetup::default()
    }
}

fn dotenv(dir: &Path) -> String {
    fs::read_to_string(dir.join("oauth-token.env")).unwrap_or_default()
}

fn dotenv_value(dir: &Path, name: &str) -> Option<String> {
    dotenv(dir)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn key_file(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus/keys")
            .join(name),
    )
    .unwrap()
}

/// What follows the quoted refusal: the hint.
fn hint(out: &Run) -> String {
    let log = out.all();
    let at = log
        .find("refused the token request")
        .unwrap_or_else(|| panic!("no refusal in:\n{log}"));
    let rest = &log[at..];
    rest[rest.find('\n').expect("a hint line")..].to_owned()
}

// ---------------------------------------------------------------------------------------
// Discovery

#[test]
fn discovery_reads_the_openid_configuration_and_uses_its_endpoints() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path()).env("VALIDATE", "jwks")).expect_code(0);
    assert_eq!(
        server.paths(),
        [
            "GET /realms/ci/.well-known/openid-configuration",
            "POST /realms/ci/token",
            "GET /realms/ci/keys"
        ],
        "one discovery request, no RFC 8414 request after a 200"
    );
    assert_eq!(
        server.connections(),
        1,
        "discovery, token and JWKS share the issuer host's one connection"
    );
    let discovery = &server.requests()[0];
    assert_eq!(
        discovery.header("authorization"),
        None,
        "no credentials to discovery"
    );
}

#[test]
fn discovery_falls_back_to_rfc_8414_on_404() {
    let server = FakeOAuth::start(OAuthSetup {
        discovery: Discovery::Rfc8414Only,
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path()).env("VALIDATE", "jwks"))
        .expect_code(0)
        .expect_log("No OpenID configuration there (HTTP 404); trying RFC 8414");
    assert_eq!(
        server.paths()[..3],
        [
            "GET /realms/ci/.well-known/openid-configuration",
            // RFC 8414 §3 inserts the well-known segment between host and path.
            "GET /.well-known/oauth-authorization-server/realms/ci",
            "POST /realms/ci/token",
        ]
    );
}

#[test]
fn an_issuer_trailing_slash_is_removed_before_the_well_known_segment() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env("ISSUER", format!("{}/", server.issuer()))
        .env("VALIDATE", "jwks"))
    .expect_code(0);
    assert_eq!(
        server.paths()[0],
        "GET /realms/ci/.well-known/openid-configuration"
    );
}

#[test]
fn a_discovery_document_naming_another_issuer_exits_5_naming_both() {
    let server = FakeOAuth::start(OAuthSetup {
        discovery: Discovery::MismatchedIssuer,
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(&mut oauth(&server, work.path()))
        .expect_code(5)
        .expect_log("https://someone-else.example/realms/ci")
        .expect_log(&format!("not ISSUER ({})", server.issuer()));
    assert!(
        server.token_requests().is_empty(),
        "someone else's endpoints are never used"
    );
}

#[test]
fn explicit_endpoints_skip_discovery() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env("TOKEN_URL", server.token_url())
        .env("JWKS_URL", server.jwks_url())
        .env("VALIDATE", "jwks"))
    .expect_code(0);
    assert_eq!(
        server.paths(),
        ["POST /realms/ci/token", "GET /realms/ci/keys"]
    );
}

// ---------------------------------------------------------------------------------------
// Client authentication

/// A client ID and a secret with every character RFC 6749 §2.3.1's form encoding changes.
const AWKWARD_ID: &str = "ci:client 1";
const AWKWARD_SECRET: &str = "a+b/c=d%e";

#[test]
fn client_secret_basic_form_encodes_id_and_secret_as_rfc_6749_says() {
    let server = FakeOAuth::start(OAuthSetup {
        client_id: AWKWARD_ID.into(),
        client_secret: AWKWARD_SECRET.into(),
        methods: vec!["client_secret_basic"],
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path()).env("VALIDATE", "false")).expect_code(0);
    let request = &server.token_requests()[0];
    // Written out by hand: ':' %3A, ' ' '+', '+' %2B, '/' %2F, '=' %3D, '%' %25.
    let expected =
        base64::engine::general_purpose::STANDARD.encode("ci%3Aclient+1:a%2Bb%2Fc%3Dd%25e");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    assert_eq!(request.field("client_secret"), None);
    assert_eq!(request.field("client_id"), None);
    assert_eq!(
        request.field("grant_type").as_deref(),
        Some("client_credentials")
    );
}

#[test]
fn client_secret_post_sends_id_and_secret_in_the_form_and_no_header() {
    let server = FakeOAuth::start(OAuthSetup {
        client_id: AWKWARD_ID.into(),
        client_secret: AWKWARD_SECRET.into(),
        methods: vec!["client_secret_post"],
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env("CLIENT_AUTH", "client_secret_post")
        .env("VALIDATE", "false"))
    .expect_code(0);
    let request = &server.token_requests()[0];
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.field("client_id").as_deref(), Some(AWKWARD_ID));
    assert_eq!(
        request.field("client_secret").as_deref(),
        Some(AWKWARD_SECRET)
    );
}

#[test]
fn a_server_that_does_not_decode_basic_gets_the_encoding_hint_and_post_works() {
    // Keycloak before 17, Gluu: the raw base64 content is compared (providers.md §2.1).
    let server = FakeOAuth::start(OAuthSetup {
        client_secret: AWKWARD_SECRET.into(),
        basic_decoding: BasicDecoding::Raw,
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path()).env("VALIDATE", "false"))
        .expect_code(3)
        .expect_log("servers disagree on how Basic credentials encode them")
        .expect_log("try CLIENT_AUTH=client_secret_post");
    run(oauth(&server, work.path())
        .env("VALIDATE", "false")
        .env("CLIENT_AUTH", "client_secret_post"))
    .expect_code(0);
}

#[test]
fn a_method_discovery_does_not_list_is_warned_about() {
    let server = FakeOAuth::start(OAuthSetup {
        auth_methods_supported: Some(vec!["client_secret_post".into()]),
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path()).env("VALIDATE", "jwks"))
        .expect_code(0)
        .expect_log("lists client authentication methods client_secret_post and not CLIENT_AUTH (client_secret_basic)");
}

#[test]
fn an_unknown_client_auth_exits_2() {
    let work = tempfile::tempdir().unwrap();
    let server = FakeOAuth::start_default();
    run(oauth(&server, work.path()).env("CLIENT_AUTH", "client_secret_jwt"))
        .expect_code(2)
        .expect_log("CLIENT_AUTH");
    assert!(server.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// Validation

#[test]
fn validate_api_calls_validate_url_with_the_token() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env_remove("ISSUER")
        .env("TOKEN_URL", server.token_url())
        .env("VALIDATE", "api")
        .env("VALIDATE_URL", server.api_url()))
    .expect_code(0)
    .expect_log(&format!("The token works: GET {}", server.api_url()));
    let api = server.requests().pop().unwrap();
    assert_eq!(api.path, "/api/me");
    assert_eq!(
        api.header("authorization"),
        Some(format!("Bearer {}", server.issued()[0]).as_str())
    );
}

/// An API that does not know a new token yet (replication lag): a fresh token's 401 is
/// retried after a second, twice, then final.
#[test]
fn validate_api_retries_a_fresh_tokens_401_twice() {
    for (lag, code, calls) in [(2, 0, 3), (3, 4, 3)] {
        let server = FakeOAuth::start(OAuthSetup {
            api_lag: lag,
            ..OAuthSetup::default()
        });
        let work = tempfile::tempdir().unwrap();
        let mut cmd = oauth(&server, work.path());
        cmd.env_remove("ISSUER")
            .env("TOKEN_URL", server.token_url())
            .env("VALIDATE", "api")
            .env("VALIDATE_URL", server.api_url())
            .env("REUSE", "false");
        let out = run(&mut cmd);
        out.expect_code(code)
            .expect_log("the API may not have propagated it yet. Retrying in 1.0 s (2 of 2)");
        let api = server
            .requests()
            .iter()
            .filter(|r| r.path == "/api/me")
            .count();
        assert_eq!(api, calls, "lag {lag}");
    }
}

#[test]
fn validate_api_without_validate_url_exits_2() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path()).env("VALIDATE", "api"))
        .expect_code(2)
        .expect_log("VALIDATE_URL");
    assert!(server.requests().is_empty());
}

#[test]
fn validate_introspect_passes_an_active_token_and_authenticates_like_the_token_request() {
    let server = FakeOAuth::start(OAuthSetup {
        token_kind: TokenKind::Opaque,
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env("VALIDATE", "introspect")
        .env("SCOPE", "read write"))
    .expect_code(0)
    .expect_log("Introspection: active, client_id ci-client, scope read write, exp ");
    let introspection = &server.introspection_requests()[0];
    assert_eq!(
        introspection.field("token").as_deref(),
        Some(server.issued()[0].as_str())
    );
    assert_eq!(
        introspection.field("token_type_hint").as_deref(),
        Some("access_token")
    );
    assert_eq!(
        introspection.header("authorization"),
        server.token_requests()[0].header("authorization")
    );
    assert_eq!(
        (server.requests().len(), server.connections()),
        (3, 1),
        "discovery, token and introspection share the issuer host's one connection"
    );
}

#[test]
fn an_inactive_token_exits_4() {
    let server = FakeOAuth::start(OAuthSetup {
        introspection: Introspection::Inactive,
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path()).env("VALIDATE", "introspect"))
        .expect_code(4)
        .expect_log("says the token is not active (\"active\": false)");
    assert!(!work.path().join("oauth-token.env").exists());
}

#[test]
fn validate_true_prefers_introspection_then_falls_back_to_jwks_for_a_jwt() {
    let server = FakeOAuth::start(OAuthSetup {
        introspection: Introspection::UnsupportedForJwt,
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(&mut oauth(&server, work.path()))
        .expect_code(0)
        .expect_log("does not introspect this token (unsupported_token_type")
        .expect_log("checking it against the issuer's keys instead")
        .expect_log("signature and claims checked against");
    assert_eq!(
        server.paths()[2..],
        ["POST /realms/ci/introspect", "GET /realms/ci/keys"]
    );
}

#[test]
fn validate_introspect_does_not_fall_back_and_exits_4_quoting_the_answer() {
    let server = FakeOAuth::start(OAuthSetup {
        introspection: Introspection::UnsupportedForJwt,
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path()).env("VALIDATE", "introspect"))
        .expect_code(4)
        .expect_log("unsupported_token_type: The authorization server does not support the introspection of JWT access tokens")
        .expect_log("Set VALIDATE=jwks");
    assert!(!server.paths().iter().any(|p| p.ends_with("/keys")));
}

#[test]
fn validate_true_with_nothing_to_validate_against_exits_2_saying_how_to_choose() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env_remove("ISSUER")
        .env("TOKEN_URL", server.token_url()))
    .expect_code(2)
    .expect_log("VALIDATE")
    .expect_log("VALIDATE_URL")
    .expect_log("VALIDATE=false");
    assert!(server.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// JWKS

fn jwks_run(setup: OAuthSetup, extra: &[(&str, &str)]) -> (FakeOAuth, Run) {
    let server = FakeOAuth::start(setup);
    let work = tempfile::tempdir().unwrap();
    let mut cmd = oauth(&server, work.path());
    cmd.env("VALIDATE", "jwks");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    (server, out)
}

#[test]
fn jwks_verifies_rs256_and_es256_tokens() {
    for kind in [TokenKind::Rs256, TokenKind::Es256] {
        let (server, out) = jwks_run(
            OAuthSetup {
                token_kind: kind,
                ..OAuthSetup::default()
            },
            &[],
        );
        out.expect_code(0).expect_log(&format!(
            "signature and claims checked against {}",
            server.jwks_url()
        ));
    }
}

#[test]
fn jwks_picks_the_rotated_key_by_kid() {
    for kind in [TokenKind::Rs256, TokenKind::Es256] {
        let (server, out) = jwks_run(
            OAuthSetup {
                token_kind: kind,
                rotated: true,
                ..OAuthSetup::default()
            },
            &[],
        );
        out.expect_code(0);
        let header = server.issued()[0].split('.').next().unwrap().to_owned();
        let header = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap();
        assert!(header.contains("-2\""), "signed with the new key: {header}");
    }
}

#[test]
fn a_token_signed_by_a_key_the_jwks_lacks_exits_4_naming_the_key() {
    let (_server, out) = jwks_run(
        OAuthSetup {
            jwks_without_signing_key: true,
            ..OAuthSetup::default()
        },
        &[],
    );
    out.expect_code(4)
        .expect_log("key: the JWKS has no RSA key with kid rsa-2");
}

#[test]
fn alg_none_and_hs256_tokens_are_refused() {
    for (kind, alg) in [(TokenKind::AlgNone, "none"), (TokenKind::Hs256, "HS256")] {
        let (_server, out) = jwks_run(
            OAuthSetup {
                token_kind: kind,
                ..OAuthSetup::default()
            },
            &[],
        );
        out.expect_code(4)
            .expect_log(&format!("signature: alg {alg} is not accepted"));
    }
}

#[test]
fn an_expired_token_exits_4_naming_exp() {
    let (_server, out) = jwks_run(
        OAuthSetup {
            claims: json!({"exp": now() - 3600}),
            ..OAuthSetup::default()
        },
        &[],
    );
    out.expect_code(4).expect_log("exp: the token expired 3");
}

#[test]
fn a_token_not_valid_yet_exits_4_naming_nbf() {
    let (_server, out) = jwks_run(
        OAuthSetup {
            claims: json!({"nbf": now() + 3600}),
            ..OAuthSetup::default()
        },
        &[],
    );
    out.expect_code(4)
        .expect_log("nbf: the token is not valid for another");
}

#[test]
fn a_token_for_another_audience_exits_4_naming_aud() {
    let (_server, out) = jwks_run(
        OAuthSetup {
            claims: json!({"aud": "https://other.example/"}),
            ..OAuthSetup::default()
        },
        &[("AUDIENCE", "https://api.example/")],
    );
    out.expect_code(4)
        .expect_log("aud: the token is for [https://other.example/], not https://api.example/");
    let (server, out) = jwks_run(
        OAuthSetup::default(),
        &[("AUDIENCE", "https://api.example/")],
    );
    out.expect_code(0);
    assert_eq!(
        server.token_requests()[0].field("audience").as_deref(),
        Some("https://api.example/")
    );
}

#[test]
fn a_token_from_another_issuer_exits_4_naming_iss() {
    let (_server, out) = jwks_run(
        OAuthSetup {
            claims: json!({"iss": "https://evil.example/"}),
            ..OAuthSetup::default()
        },
        &[],
    );
    out.expect_code(4)
        .expect_log("iss: the token's issuer https://evil.example/ is not");
}

#[test]
fn a_token_whose_claims_were_changed_after_signing_exits_4_naming_the_signature() {
    for kind in [TokenKind::Rs256, TokenKind::Es256] {
        let (_server, out) = jwks_run(
            OAuthSetup {
                token_kind: kind,
                tampered: true,
                ..OAuthSetup::default()
            },
            &[],
        );
        out.expect_code(4)
            .expect_log("signature: the ")
            .expect_log("signature does not verify with the issuer's key");
    }
}

// ---------------------------------------------------------------------------------------
// Configuration rules: exit 2 before any request.

fn config_error(profile_id: &str, env: &[(&str, &str)], variable: &str) -> Run {
    let server = FakeOAuth::start(entra_setup());
    let work = tempfile::tempdir().unwrap();
    let mut cmd = profile(profile_id, &server, work.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    out.expect_code(2).expect_log(variable);
    assert!(server.requests().is_empty(), "nothing was sent");
    out
}

#[test]
fn entra_refuses_the_common_organizations_and_consumers_tenants() {
    for tenant in ["common", "organizations", "Consumers"] {
        config_error("entra", &[("TENANT_ID", tenant)], "TENANT_ID")
            .expect_log("client-credentials grant needs one tenant (Entra answers AADSTS9001023)");
    }
}

#[test]
fn entra_needs_exactly_one_default_scope() {
    for scope in [
        "https://graph.microsoft.com/User.Read",
        "https://graph.microsoft.com/.default api://other/.default",
    ] {
        config_error("entra", &[("SCOPE", scope)], "SCOPE").expect_log("<resource>/.default");
    }
    config_error("entra", &[("SCOPE", "")], "SCOPE").expect_log("is not set");
}

#[test]
fn entra_refuses_resource() {
    config_error(
        "entra",
        &[("RESOURCE", "https://graph.microsoft.com")],
        "RESOURCE",
    )
    .expect_log("AADSTS901002");
}

#[test]
fn auth0_needs_audience() {
    config_error("auth0", &[("AUDIENCE", "")], "AUDIENCE")
        .expect_log("Default Audience does not apply");
}

#[test]
fn oauth2_needs_issuer_or_token_url() {
    config_error("oauth2", &[("ISSUER", "")], "ISSUER").expect_log("TOKEN_URL");
}

#[test]
fn okta_and_keycloak_need_issuer() {
    config_error("okta", &[("ISSUER", "")], "ISSUER")
        .expect_log("https://ORG.okta.com/oauth2/default");
    config_error("keycloak", &[("ISSUER", "")], "ISSUER").expect_log("https://HOST/realms/REALM");
}

// ---------------------------------------------------------------------------------------
// Entra: the derived endpoints, and success.

#[test]
fn entra_posts_the_secret_to_the_tenant_token_endpoint_and_validates_by_its_keys() {
    let server = FakeOAuth::start(OAuthSetup {
        methods: vec!["client_secret_post"],
        token_audience: "https://graph.microsoft.com".into(),
        ..entra_setup()
    });
    let work = tempfile::tempdir().unwrap();
    run(profile("entra", &server, work.path()).env("VALIDATE", "jwks")).expect_code(0);
    assert_eq!(
        server.paths(),
        [
            format!("POST /{ENTRA_TENANT}/oauth2/v2.0/token"),
            format!("GET /{ENTRA_TENANT}/v2.0/.well-known/openid-configuration"),
            format!("GET /{ENTRA_TENANT}/v2.0/keys"),
        ]
    );
    let request = &server.token_requests()[0];
    assert_eq!(
        request.field("scope").as_deref(),
        Some("https://graph.microsoft.com/.default")
    );
    assert_eq!(request.fields("resource"), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// The request's scope, audience and resources; the granted scopes.

#[test]
fn scope_audience_and_resources_are_sent_as_rfc_6749_and_8707_say() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env("VALIDATE", "false")
        .env("SCOPE", "read,write  admin")
        .env("AUDIENCE", "https://api.example/")
        .env("RESOURCE", "https://a.example/ https://b.example/x"))
    .expect_code(0);
    let request = &server.token_requests()[0];
    assert_eq!(request.fields("scope"), ["read write admin"]);
    assert_eq!(request.fields("audience"), ["https://api.example/"]);
    assert_eq!(
        request.fields("resource"),
        ["https://a.example/", "https://b.example/x"]
    );
}

#[test]
fn an_absent_scope_means_the_requested_scope_was_granted() {
    let server = FakeOAuth::start(OAuthSetup {
        response_scope: false,
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env("VALIDATE", "false")
        .env("SCOPE", "read,write"))
    .expect_code(0)
    .expect_log("scopes: read, write");
    assert_eq!(
        dotenv_value(work.path(), "OAUTH_ACCESS_TOKEN_SCOPES").as_deref(),
        Some("read,write")
    );
}

#[test]
fn introspection_scope_wins_over_the_assumed_one_and_required_scopes_use_it() {
    let setup = OAuthSetup {
        response_scope: false,
        token_kind: TokenKind::Opaque,
        // The server narrowed the grant without saying so in the token response.
        introspection_scope: Some("read".into()),
        ..OAuthSetup::default()
    };
    let server = FakeOAuth::start(setup.clone());
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path()).env("SCOPE", "read write"))
        .expect_code(0)
        .expect_log("Validation shows the granted scopes: read.");
    assert_eq!(
        dotenv_value(work.path(), "OAUTH_ACCESS_TOKEN_SCOPES").as_deref(),
        Some("read")
    );
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env("SCOPE", "read write")
        .env("REQUIRED_SCOPES", "write"))
    .expect_code(4)
    .expect_log("The token lacks required scope(s): write. Granted: read.");
}

#[test]
fn a_jwt_scope_claim_wins_over_the_assumed_scope() {
    let server = FakeOAuth::start(OAuthSetup {
        response_scope: false,
        granted: Some("read".into()),
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(oauth(&server, work.path())
        .env("VALIDATE", "jwks")
        .env("SCOPE", "read write"))
    .expect_code(0)
    .expect_log("Validation shows the granted scopes: read.");
}

#[test]
fn required_scopes_are_exact_strings() {
    let server = FakeOAuth::start(OAuthSetup {
        granted: Some("read:all repo".into()),
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    // No implications outside Bitbucket: read:all is not read, repo is not repo:write.
    for required in ["read", "repo:write"] {
        run(oauth(&server, work.path())
            .env("VALIDATE", "false")
            .env("REQUIRED_SCOPES", required))
        .expect_code(4)
        .expect_log(&format!("The token lacks required scope(s): {required}."));
    }
    run(oauth(&server, work.path())
        .env("VALIDATE", "false")
        .env("REQUIRED_SCOPES", "read:all,repo"))
    .expect_code(0)
    .expect_log("The token carries every required scope (read:all, repo).");
}

#[test]
fn a_scope_that_is_not_shell_inert_is_left_out_of_the_dotenv_file_with_a_warning() {
    let server = FakeOAuth::start(OAuthSetup {
        // `x:~root` is no injection, but a shell would read it back as `x:/root`.
        granted: Some("read $(touch${IFS}pwned) a;b `id` it's x:~root".into()),
        ..OAuthSetup::default()
    });
    let work = tempfile::tempdir().unwrap();
    let out = run(oauth(&server, work.path()).env("VALIDATE", "false"));
    out.expect_code(0).expect_log("WARN");
    let text = dotenv(work.path());
    for bad in ["$", ";", "`", "'", "~"] {
        assert!(!text.contains(bad), "{bad} in the file:\n{text}");
    }
    assert_eq!(
        dotenv_value(work.path(), "OAUTH_ACCESS_TOKEN_SCOPES").as_deref(),
        Some("read")
    );
    let read = crate::support::read_back_with_sh(
        &work.path().join("oauth-token.env"),
        &["OAUTH_ACCESS_TOKEN_SCOPES"],
    );
    assert_eq!(read, ["OAUTH_ACCESS_TOKEN_SCOPES=read"]);
    assert!(!work.path().join("pwned").exists());
}

// ---------------------------------------------------------------------------------------
// Reuse, git-credential, exec

#[test]
fn reuse_is_keyed_by_scope_and_audience() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    let go = |scope: &str, audience: &str| {
        run(oauth(&server, work.path())
            .env("VALIDATE", "jwks")
            .env("SCOPE", scope)
            .env("AUDIENCE", audience))
        .expect_code(0)
        .all()
    };
    go("read", "https://api.example/");
    assert!(go("read", "https://api.example/").contains("Reusing the token in oauth-token.env"));
    assert_eq!(
        server.token_requests().len(),
        1,
        "same configuration: reused"
    );
    assert!(go("read write", "https://api.example/").contains("issued for another configuration"));
    assert_eq!(
        server.token_requests().len(),
        2,
        "a changed SCOPE fetches anew"
    );
    go("read write", "https://api.example/v2");
    assert_eq!(
        server.token_requests().len(),
        3,
        "a changed AUDIENCE fetches anew"
    );
    assert_eq!(
        dotenv_value(work.path(), "OAUTH_ACCESS_TOKEN").as_deref(),
        Some(server.issued()[2].as_str())
    );
}

fn credential(cmd: &mut assert_cmd::Command, home: &Path) -> Run {
    cmd.env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .args(["git-credential", "get"])
        .write_stdin("protocol=https\nhost=dev.azure.com\npath=org/project/_git/repo\n\n");
    run(cmd)
}

#[test]
fn git_credential_needs_git_host_and_git_username() {
    let server = FakeOAuth::start_default();
    let home = tempfile::tempdir().unwrap();
    credential(&mut oauth(&server, home.path()), home.path())
        .expect_code(2)
        .expect_log("GIT_HOST")
        .expect_log("GIT_USERNAME");
    assert!(server.requests().is_empty());
    let out = credential(
        oauth(&server, home.path())
            .env("GIT_HOST", "dev.azure.com")
            .env("GIT_USERNAME", "pipeline"),
        home.path(),
    );
    out.expect_code(0);
    assert_eq!(
        out.stdout,
        format!("username=pipeline\npassword={}\n\n", server.issued()[0])
    );
}

#[test]
fn exec_gives_the_child_the_token_but_not_the_secret() {
    let server = FakeOAuth::start_default();
    let work = tempfile::tempdir().unwrap();
    let out = run(oauth(&server, work.path()).env("VALIDATE", "jwks").args([
        "exec",
        "--",
        "sh",
        "-c",
        r#"printf '%s|%s' "${#OAUTH_ACCESS_TOKEN}" "${CLIENT_SECRET-unset}""#,
    ]));
    out.expect_code(0);
    assert_eq!(out.stdout, format!("{}|unset", server.issued()[0].len()));
}
