//! Every wrong setup of providers.md §3: exit 3, the provider's words quoted, and a hint
//! outside them that names the variable to change.

use super::*;

/// Runs `profile_id` against a token endpoint that answers `status` and `body`.
fn refused(profile_id: &str, status: u16, body: &str) -> Run {
    let setup = if profile_id == "entra" {
        entra_setup()
    } else {
        OAuthSetup::default()
    };
    let server = FakeOAuth::start(OAuthSetup {
        token_replies: vec![OAuthReply::json(status, body)],
        ..setup
    });
    let work = tempfile::tempdir().unwrap();
    let out = run(&mut profile(profile_id, &server, work.path()));
    out.expect_code(3);
    assert!(!work.path().join("oauth-token.env").exists());
    out
}

/// Asserts the refusal quotes `said` and the hint names each of `variables`.
fn expect_refusal(out: &Run, said: &str, variables: &[&str]) {
    out.expect_log(said);
    let hint = hint(out);
    for variable in variables {
        assert!(
            hint.contains(variable),
            "the hint does not name {variable}: {hint}\nlog:\n{}",
            out.all()
        );
    }
    assert!(
        !hint.contains(said),
        "the hint stands outside the quote: {hint}"
    );
}

const APP: &str = "00000000-aaaa-bbbb-cccc-000000000001";

fn entra_refused(status: u16, error: &str, code: u64, message: &str) -> Run {
    let out = refused(
        "entra",
        status,
        &fake_oauth::entra_error(error, code, message),
    );
    // Its first line, then the IDs its support asks for; never the rest of the description.
    out.expect_log(&format!(
        "Entra ID refused the token request (HTTP {status} {}, {error}: AADSTS{code}: ",
        if status == 401 {
            "Unauthorized"
        } else {
            "Bad Request"
        }
    ))
    .expect_log(&format!("Trace ID: {}.", fake_oauth::ENTRA_TRACE_ID))
    .expect_log(&format!(
        "Correlation ID: {}.",
        fake_oauth::ENTRA_CORRELATION_ID
    ));
    assert!(
        !out.all().contains("Timestamp") && !out.all().contains("\\r\\n"),
        "{}",
        out.all()
    );
    out
}

#[test]
fn entra_7000215_secret_id_instead_of_its_value() {
    let out = entra_refused(
        401,
        "invalid_client",
        7000215,
        &format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{APP}'."
        ),
    );
    expect_refusal(
        &out,
        "AADSTS7000215: Invalid client secret provided.",
        &["CLIENT_SECRET"],
    );
    assert!(hint(&out).contains("the secret's ID, not its value"));
}

#[test]
fn entra_7000222_expired_secret() {
    let out = entra_refused(
        401,
        "invalid_client",
        7000222,
        &format!(
            "The provided client secret keys for app '{APP}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
        ),
    );
    expect_refusal(&out, "are expired.", &["CLIENT_SECRET"]);
}

#[test]
fn entra_700016_application_not_in_the_tenant() {
    let out = entra_refused(
        400,
        "unauthorized_client",
        700016,
        &format!(
            "Application with identifier '{APP}' was not found in the directory '{ENTRA_TENANT}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    );
    expect_refusal(
        &out,
        "was not found in the directory",
        &["CLIENT_ID", "TENANT_ID"],
    );
}

#[test]
fn entra_90002_unknown_tenant() {
    let out = entra_refused(
        400,
        "invalid_request",
        90002,
        &format!(
            "Tenant '{ENTRA_TENANT}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    );
    expect_refusal(&out, "not found. Check to make sure", &["TENANT_ID"]);
}

#[test]
fn entra_1002012_scope_without_default_suffix() {
    let out = entra_refused(
        400,
        "invalid_scope",
        1002012,
        "The provided value for scope User.Read is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
    );
    expect_refusal(
        &out,
        "Client credential flows must have a scope value",
        &["SCOPE"],
    );
}

#[test]
fn entra_901002_resource_parameter() {
    let out = entra_refused(
        400,
        "invalid_request",
        901002,
        "The 'resource' request parameter isn't supported.",
    );
    expect_refusal(
        &out,
        "request parameter isn't supported",
        &["RESOURCE", "SCOPE"],
    );
}

#[test]
fn entra_9001023_common_endpoint() {
    let out = entra_refused(
        400,
        "invalid_request",
        9001023,
        "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
    );
    expect_refusal(&out, "isn't supported over the /common", &["TENANT_ID"]);
}

#[test]
fn entra_hints_follow_error_codes_not_wording() {
    // Microsoft rewords descriptions; the code decides the hint.
    let out = entra_refused(
        401,
        "invalid_client",
        7000222,
        "Something entirely reworded.",
    );
    assert!(hint(&out).contains("has expired"), "{}", out.all());
}

#[test]
fn auth0_403_no_client_grant_for_the_api() {
    let out = refused("auth0", 403, fake_oauth::AUTH0_NO_CLIENT_GRANT);
    expect_refusal(
        &out,
        "Auth0 refused the token request (HTTP 403 Forbidden, access_denied: Client is not authorized to access",
        &["AUDIENCE"],
    );
}

#[test]
fn auth0_403_service_not_enabled_within_domain() {
    let out = refused("auth0", 403, fake_oauth::AUTH0_SERVICE_NOT_ENABLED);
    expect_refusal(
        &out,
        "Service not enabled within domain: https://acme.example/api/",
        &["AUDIENCE"],
    );
}

#[test]
fn auth0_403_grant_type_not_allowed() {
    let out = refused("auth0", 403, fake_oauth::AUTH0_GRANT_NOT_ALLOWED);
    expect_refusal(
        &out,
        "Grant type 'client_credentials' not allowed for the client.",
        &["CLIENT_ID", "Grant Types"],
    );
}

#[test]
fn auth0_401_unauthorized_wrong_secret() {
    let out = refused("auth0", 401, fake_oauth::AUTH0_UNAUTHORIZED);
    expect_refusal(
        &out,
        "(HTTP 401 Unauthorized, access_denied: Unauthorized)",
        &["CLIENT_ID", "CLIENT_SECRET"],
    );
}

#[test]
fn okta_401_invalid_client_secret() {
    let out = refused("okta", 401, fake_oauth::OKTA_BAD_SECRET);
    expect_refusal(
        &out,
        "The client secret supplied for a confidential client is invalid.",
        &["CLIENT_SECRET", "CLIENT_AUTH=client_secret_post"],
    );
}

#[test]
fn okta_400_custom_scopes_at_the_org_authorization_server() {
    let out = refused("okta", 400, fake_oauth::OKTA_CUSTOM_SCOPES);
    expect_refusal(
        &out,
        "Custom scopes are not allowed for this request.",
        &["ISSUER", "SCOPE"],
    );
}

#[test]
fn okta_400_no_default_scopes() {
    let out = refused("okta", 400, fake_oauth::OKTA_NO_DEFAULT_SCOPES);
    expect_refusal(
        &out,
        "does not have any configured default scopes, 'scope' must be provided.",
        &["SCOPE"],
    );
}

#[test]
fn keycloak_401_service_accounts_not_enabled() {
    let out = refused("keycloak", 401, fake_oauth::KEYCLOAK_NO_SERVICE_ACCOUNT);
    expect_refusal(
        &out,
        "Client not enabled to retrieve service account",
        &["CLIENT_ID", "Service accounts roles"],
    );
}

#[test]
fn keycloak_401_invalid_client_credentials() {
    let out = refused("keycloak", 401, fake_oauth::KEYCLOAK_BAD_CREDENTIALS);
    expect_refusal(
        &out,
        "unauthorized_client: Invalid client or Invalid client credentials",
        &["CLIENT_ID", "CLIENT_SECRET", "ISSUER"],
    );
}

#[test]
fn keycloak_400_invalid_client_credentials_as_invalid_client() {
    let out = refused(
        "keycloak",
        400,
        fake_oauth::KEYCLOAK_BAD_CREDENTIALS_INVALID_CLIENT,
    );
    expect_refusal(
        &out,
        "invalid_client: Invalid client or Invalid client credentials",
        &["CLIENT_SECRET"],
    );
}

#[test]
fn keycloak_400_client_expects_a_signed_jwt() {
    let out = refused("keycloak", 400, fake_oauth::KEYCLOAK_ASSERTION_MISSING);
    expect_refusal(
        &out,
        "Parameter client_assertion_type is missing",
        &["CLIENT_AUTH=private_key_jwt", "PRIVATE_KEY"],
    );
}

#[test]
fn a_refusal_with_another_status_or_no_oauth_error_exits_5() {
    let out = {
        let server = FakeOAuth::start(OAuthSetup {
            token_replies: vec![OAuthReply::json(404, "<html>not here</html>")],
            ..OAuthSetup::default()
        });
        let work = tempfile::tempdir().unwrap();
        run(oauth(&server, work.path())
            .env("TOKEN_URL", server.token_url())
            .env("VALIDATE", "false"))
    };
    out.expect_code(5).expect_log("without an OAuth error");
}
