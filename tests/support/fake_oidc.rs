//! Fakes for trading a CI's OIDC identity token (providers.md §3–§4): one real HTTPS server
//! on 127.0.0.1:0 with its own CA made at run time, on its own thread and runtime, serving
//!
//! - an identity **issuer** whose JWKS holds an RSA key (a test-only fixture: ring cannot
//!   generate RSA) and an ECDSA P-256 key generated at run time, and which signs identity
//!   tokens with each CI's realistic claims ([`Ci`]);
//! - GitHub's **token-request endpoint** (`…/idtoken?api-version=2.0&audience=…`), which
//!   checks the bearer request token and the audience query and answers `{"value": jwt}`;
//! - an **Entra**-like token endpoint that verifies the client assertion against the
//!   issuer's JWKS, checks its time window, and matches `iss`/`sub`/`aud` exactly against
//!   the federated credentials configured, answering with Entra's error bodies (70021,
//!   700213, 7002138, 700024, with `error_codes`, `trace_id`, `correlation_id`);
//! - an **RFC 8693** token-exchange endpoint (also taking RFC 7523's JWT bearer grant), with
//!   a variant that omits `issued_token_type`;
//! - Google's **STS** (refuses any Authorization header, checks `audience` and
//!   `subject_token_type`) and **IAM Credentials** `generateAccessToken` (403 on request);
//! - an API (`GET /api/me`) that accepts only tokens this fake issued, for VALIDATE_URL.
//!
//! Every request is recorded with its [`Route`]; dropping the fake fails the test when a
//! scripted reply was never used or a handler panicked. The server itself is the fakes'
//! shared one ([`crate::support::server`]).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use oauth_token_pipe::provider::jwt::{Alg, Header, PrivateKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::support::server::{self, lock, reply::Reply};

/// GitHub's issuer.
pub const GITHUB_ISS: &str = "https://token.actions.githubusercontent.com";
/// A GitHub subject for a push to main.
pub const GITHUB_SUB: &str = "repo:acme/widgets:ref:refs/heads/main";
/// Bitbucket's issuer for workspace `acme`.
pub const BITBUCKET_ISS: &str =
    "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc";
/// The workspace's UUID, which Bitbucket's default audience names.
pub const BITBUCKET_WORKSPACE_UUID: &str = "{5d3f1a7e-0c4b-4f8e-9a41-2b6d7c8e9f10}";
/// The repository's UUID, the first part of a Bitbucket subject.
pub const BITBUCKET_REPO_UUID: &str = "{8e2a4c6b-1d3f-4a5b-9c7d-0e1f2a3b4c5d}";
/// GitLab.com's issuer.
pub const GITLAB_ISS: &str = "https://gitlab.com";
/// A GitLab subject for a branch pipeline on main.
pub const GITLAB_SUB: &str = "project_path:acme/widgets:ref_type:branch:ref:main";
/// The audience Entra's federated credentials require.
pub const ENTRA_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The Entra tenant the fake serves.
pub const TENANT: &str = "0f9e8d7c-6b5a-4321-9876-543210fedcba";
/// The Entra application (client) ID.
pub const ENTRA_CLIENT: &str = "11111111-2222-3333-4444-555555555555";
/// The Google workload identity provider.
pub const WIP: &str = "projects/123456789/locations/global/workloadIdentityPools/ci/providers/oidc";
/// The service account to impersonate.
pub const SERVICE_ACCOUNT: &str = "deployer@acme-prod.iam.gserviceaccount.com";
/// The audience Google's workload identity providers allow by default.
pub fn google_default_audience() -> String {
    format!("https://iam.googleapis.com/{WIP}")
}

/// Which CI an identity token imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ci {
    /// GitHub Actions: minted on request by the token-request endpoint.
    GitHub,
    /// Bitbucket Pipelines: `BITBUCKET_STEP_OIDC_TOKEN`, a per-step subject.
    Bitbucket,
    /// GitLab CI: the variable `id_tokens:` names.
    GitLab,
}

/// Which endpoint a request went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The issuer's JWKS or discovery.
    Issuer,
    /// GitHub's token-request endpoint.
    GitHubIdToken,
    /// The Entra token endpoint.
    Entra,
    /// Entra's discovery document and keys.
    EntraMeta,
    /// The RFC 8693 / RFC 7523 endpoint.
    Exchange,
    /// Google's STS.
    Sts,
    /// IAM Credentials.
    Iam,
    /// The API that validates tokens.
    Api,
    /// Anything else (answered 404).
    Other,
}

/// A federated identity credential on the Entra app.
#[derive(Clone, Debug)]
pub struct Federated {
    /// `issuer`.
    pub issuer: String,
    /// `subject`.
    pub subject: String,
    /// `audiences` (Entra allows exactly one).
    pub audience: String,
}

impl Federated {
    /// A credential for `issuer` and `subject` with Entra's one audience.
    pub fn new(issuer: &str, subject: &str) -> Federated {
        Federated {
            issuer: issuer.into(),
            subject: subject.into(),
            audience: ENTRA_AUDIENCE.into(),
        }
    }
}

/// A scripted reply for `route`, used once before the fake's own behaviour.
#[derive(Clone, Debug)]
pub struct Scripted {
    /// The endpoint.
    pub route: Route,
    /// Status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct Setup {
    /// GitHub's `ACTIONS_ID_TOKEN_REQUEST_TOKEN` the token-request endpoint accepts.
    pub github_request_token: String,
    /// The audience GitHub must be asked for (`None`: any, or none).
    pub github_expect_audience: Option<String>,
    /// The `iss` GitHub's tokens carry (a GHES or a slash-suffixed variant for tests).
    pub github_iss: String,
    /// The `sub` GitHub's tokens carry.
    pub github_sub: String,
    /// How many of the first GitHub tokens are minted already expired.
    pub github_expired_mints: usize,
    /// Sign identity tokens with ES256 (the run-time key) instead of RS256.
    pub es256: bool,
    /// The Entra app's federated credentials.
    pub federated: Vec<Federated>,
    /// The RFC 8693 / 7523 server's trust: exact (`iss`, `sub`) pairs.
    pub exchange_trust: Vec<(String, String)>,
    /// The audience the exchange server requires in the subject token.
    pub exchange_audience: String,
    /// The exchange server leaves out `issued_token_type`.
    pub exchange_omits_issued_type: bool,
    /// Google's provider: the audiences it allows in the identity token.
    pub sts_allowed_audiences: Vec<String>,
    /// Google's attribute condition: the subjects it admits (empty: any).
    pub sts_subjects: Vec<String>,
    /// generateAccessToken answers 403 Permission denied.
    pub iam_denied: bool,
    /// `expires_in` of the access tokens issued by Entra and the exchange server.
    pub expires_in: u64,
    /// Scripted replies.
    pub scripted: Vec<Scripted>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            github_request_token: "ghrt-2f7c1e9a4b8d3f6e0a5c7b9d1e3f5a7c".into(),
            github_expect_audience: None,
            github_iss: GITHUB_ISS.into(),
            github_sub: GITHUB_SUB.into(),
            github_expired_mints: 0,
            es256: false,
            federated: Vec::new(),
            exchange_trust: Vec::new(),
            exchange_audience: "https://sts.example.test".into(),
            exchange_omits_issued_type: false,
            sts_allowed_audiences: vec![google_default_audience()],
            sts_subjects: Vec::new(),
            iam_denied: false,
            expires_in: 3599,
            scripted: Vec::new(),
        }
    }
}

/// What the fake received.
#[derive(Clone, Debug)]
pub struct Request {
    /// The endpoint.
    pub route: Route,
    /// GET, POST...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The form field `name` of a form-encoded body.
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The query parameter `name`.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.path.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

struct Keys {
    rsa: PrivateKey,
    ec: PrivateKey,
    jwks: Value,
    /// Entra's own signing key (another test-only RSA key) and its key set.
    entra: PrivateKey,
    entra_jwks: Value,
}

struct State {
    setup: Setup,
    keys: Keys,
    scripted: VecDeque<Scripted>,
    requests: Vec<Request>,
    /// Identity tokens minted, in order.
    minted: Vec<String>,
    /// Access tokens issued by any sink.
    issued: Vec<String>,
    /// STS tokens (accepted by IAM Credentials).
    sts_tokens: Vec<String>,
    github_mints: usize,
}

/// The running fake. Dropping it stops the server and checks that every scripted reply was
/// used and no handler panicked.
pub struct FakeOidc {
    server: server::http::Server,
    state: Arc<Mutex<State>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    SystemRandom::new().fill(&mut b).unwrap();
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn uuid() -> String {
    let h = random_hex(16);
    format!(
        "{{{}-{}-{}-{}-{}}}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Reads one DER length at `at`, returning (length, bytes it took).
fn der_len(der: &[u8], at: usize) -> (usize, usize) {
    let first = der[at] as usize;
    if first < 0x80 {
        return (first, 1);
    }
    let n = first & 0x7f;
    let len = der[at + 1..at + 1 + n]
        .iter()
        .fold(0usize, |acc, b| acc << 8 | *b as usize);
    (len, 1 + n)
}

/// n and e of a PKCS#1 RSAPublicKey (SEQUENCE { INTEGER n, INTEGER e }).
fn rsa_n_e(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, took) = der_len(der, 1);
    let mut at = 1 + took;
    let mut ints = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[at], 0x02, "an INTEGER");
        let (len, took) = der_len(der, at + 1);
        let start = at + 1 + took;
        let mut int = der[start..start + len].to_vec();
        while int.len() > 1 && int[0] == 0 {
            int.remove(0);
        }
        ints.push(int);
        at = start + len;
    }
    (ints[0].clone(), ints[1].clone())
}

fn keys() -> Keys {
    let rsa = PrivateKey::load(&crate::support::fake_github::key("app-pkcs8.pem")).unwrap();
    let rng = SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let ec = PrivateKey::load(&STANDARD.encode(pkcs8.as_ref())).unwrap();
    let (n, e) = rsa_n_e(&rsa.public_key());
    let point = ec.public_key();
    let jwks = json!({"keys": [
        {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "ci-rsa-1",
         "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)},
        {"kty": "EC", "alg": "ES256", "use": "sig", "kid": "ci-ec-1", "crv": "P-256",
         "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])},
    ]});
    let entra = PrivateKey::load(&crate::support::fake_github::key("other-pkcs1.pem")).unwrap();
    let (n, e) = rsa_n_e(&entra.public_key());
    let entra_jwks = json!({"keys": [{"kty": "RSA", "use": "sig", "kid": "entra-1",
        "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)}]});
    Keys {
        rsa,
        ec,
        jwks,
        entra,
        entra_jwks,
    }
}

/// Verifies a compact JWS against `jwks`, returning its header and claims.
fn verify(jwks: &Value, token: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWS".into());
    }
    let decode = |p: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|_| "not base64url")?;
        serde_json::from_slice(&bytes).map_err(|_| "not JSON".to_owned())
    };
    let (header, claims) = (decode(parts[0])?, decode(parts[1])?);
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|_| "signature not base64url")?;
    let kid = header["kid"].as_str().unwrap_or_default();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or("unknown kid")?;
    let b = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str().unwrap()).unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    let ok = match (header["alg"].as_str(), key["kty"].as_str()) {
        (Some("RS256"), Some("RSA")) => ring::signature::RsaPublicKeyComponents {
            n: b("n"),
            e: b("e"),
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &signature,
        )
        .is_ok(),
        (Some("ES256"), Some("EC")) => {
            let mut point = vec![4u8];
            point.extend(b("x"));
            point.extend(b("y"));
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(input.as_bytes(), &signature)
            .is_ok()
        }
        _ => false,
    };
    if ok {
        Ok((header, claims))
    } else {
        Err("signature".into())
    }
}

impl FakeOidc {
    /// Starts a fake that behaves as `setup` says.
    pub fn start(setup: Setup) -> FakeOidc {
        let state = Arc::new(Mutex::new(State {
            scripted: setup.scripted.iter().cloned().collect(),
            setup,
            keys: keys(),
            requests: Vec::new(),
            minted: Vec::new(),
            issued: Vec::new(),
            sts_tokens: Vec::new(),
            github_mints: 0,
        }));
        let handler_state = state.clone();
        let server = server::http::Server::start(
            "oidc",
            server::tls::localhost("fake OIDC test CA", Some("fake oidc")),
            None,
            move |request| handle(&handler_state, request),
        );
        FakeOidc { server, state }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.server.base()
    }

    /// The CA that signed the fake's certificate (for CA_BUNDLE).
    pub fn ca_file(&self) -> &Path {
        self.server.ca_file()
    }

    /// ACTIONS_ID_TOKEN_REQUEST_URL, shaped like the runner's (it already has a query).
    pub fn github_request_url(&self) -> String {
        format!(
            "{}/_apis/distributedtask/hubs/Actions/plans/7e1c/jobs/9a3f/idtoken?api-version=2.0",
            self.base()
        )
    }

    /// ACTIONS_ID_TOKEN_REQUEST_TOKEN.
    pub fn github_request_token(&self) -> String {
        lock(&self.state).setup.github_request_token.clone()
    }

    /// AUTHORITY_URL for the Entra fake (the tenant is [`TENANT`]).
    pub fn authority(&self) -> String {
        format!("{}/entra", self.base())
    }

    /// The RFC 8693 / 7523 TOKEN_URL.
    pub fn exchange_url(&self) -> String {
        format!("{}/exchange/token", self.base())
    }

    /// STS_URL.
    pub fn sts_url(&self) -> String {
        format!("{}/sts/v1/token", self.base())
    }

    /// IAM_CREDENTIALS_URL.
    pub fn iam_url(&self) -> String {
        format!("{}/iam", self.base())
    }

    /// VALIDATE_URL: answers 200 only to tokens this fake issued.
    pub fn api_url(&self) -> String {
        format!("{}/api/me", self.base())
    }

    /// Signs an identity token as `ci` would mint it, with audience `aud`.
    pub fn mint(&self, ci: Ci, aud: &[&str]) -> String {
        let mut state = lock(&self.state);
        mint(&mut state, ci, aud, false, None)
    }

    /// [`FakeOidc::mint`] with the subject `sub` (another branch, project or step).
    pub fn mint_as(&self, ci: Ci, aud: &[&str], sub: &str) -> String {
        let mut state = lock(&self.state);
        mint(&mut state, ci, aud, false, Some(sub))
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// The requests that went to `route`.
    pub fn requests_to(&self, route: Route) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.route == route)
            .collect()
    }

    /// Every identity token minted, in order.
    pub fn minted(&self) -> Vec<String> {
        lock(&self.state).minted.clone()
    }

    /// Every access token issued (STS tokens included), in order.
    pub fn issued(&self) -> Vec<String> {
        lock(&self.state).issued.clone()
    }
}

impl Drop for FakeOidc {
    fn drop(&mut self) {
        let panics = self.server.stop();
        let state = lock(&self.state);
        let unused: Vec<String> = state
            .scripted
            .iter()
            .map(|s| format!("{:?}", s.route))
            .collect();
        server::check::report(
            "OIDC server",
            [server::check::unused("route", &unused)],
            panics,
            state
                .requests
                .iter()
                .map(|r| format!("{} {}", r.method, r.path)),
        );
    }
}

fn mint(state: &mut State, ci: Ci, aud: &[&str], expired: bool, sub: Option<&str>) -> String {
    let iat = if expired { now() - 900 } else { now() };
    let aud: Value = match aud {
        [one] => json!(one),
        many => json!(many),
    };
    let claims = match ci {
        Ci::GitHub => json!({
            "jti": random_hex(16), "sub": state.setup.github_sub, "aud": aud,
            "ref": "refs/heads/main", "sha": random_hex(20), "repository": "acme/widgets",
            "repository_owner": "acme", "repository_id": "74", "repository_owner_id": "65",
            "run_id": "1077", "run_number": "12", "run_attempt": "1",
            "repository_visibility": "private", "actor": "octocat", "actor_id": "12",
            "workflow": "deploy", "event_name": "push", "ref_type": "branch",
            "job_workflow_ref": "acme/widgets/.github/workflows/deploy.yml@refs/heads/main",
            "runner_environment": "github-hosted", "iss": state.setup.github_iss,
            // GitHub's documented example: nbf 600 s before iat, exp 300 s after.
            "nbf": iat - 600, "iat": iat, "exp": iat + 300,
        }),
        Ci::Bitbucket => {
            let step = uuid();
            json!({
                "sub": format!("{BITBUCKET_REPO_UUID}:{step}"), "aud": aud,
                "stepUuid": step, "iss": BITBUCKET_ISS, "repositoryUuid": BITBUCKET_REPO_UUID,
                "branchName": "main", "workspaceUuid": BITBUCKET_WORKSPACE_UUID,
                "pipelineUuid": uuid(), "accountUuid": uuid(),
                "iat": iat, "exp": iat + 3600,
            })
        }
        Ci::GitLab => json!({
            "namespace_id": "72", "namespace_path": "acme", "project_id": "20",
            "project_path": "acme/widgets", "user_id": "5", "user_login": "ci-bot",
            "pipeline_id": "1212", "pipeline_source": "push", "job_id": "4242",
            "ref": "main", "ref_type": "branch", "ref_protected": "true",
            "runner_id": 1, "runner_environment": "gitlab-hosted", "sha": random_hex(20),
            "jti": random_hex(16), "iss": GITLAB_ISS, "iat": iat, "nbf": iat - 5,
            "exp": iat + 300, "sub": GITLAB_SUB, "aud": aud,
        }),
    };
    let mut claims = claims;
    if let Some(sub) = sub {
        claims["sub"] = json!(sub);
    }
    let (alg, kid, key) = if state.setup.es256 {
        (Alg::Es256, "ci-ec-1", &state.keys.ec)
    } else {
        (Alg::Rs256, "ci-rsa-1", &state.keys.rsa)
    };
    let token = key
        .sign(
            alg,
            Header {
                kid: Some(kid),
                x5t_s256: None,
            },
            &claims,
        )
        .unwrap()
        .expose_secret()
        .to_owned();
    state.minted.push(token.clone());
    token
}

/// Records `request` with its [`Route`] and answers it: a scripted reply for its route if
/// one is left, else the fake's own behaviour, as JSON.
fn handle(state: &Mutex<State>, request: &server::http::Request) -> Reply {
    let request = Request {
        route: route(&request.path),
        method: request.method.clone(),
        path: request.path.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
    };
    let mut state = lock(state);
    state.requests.push(request.clone());
    let scripted = state
        .scripted
        .iter()
        .position(|s| s.route == request.route)
        .and_then(|i| state.scripted.remove(i));
    let (status, body) = match scripted {
        Some(s) => (s.status, s.body),
        None => respond(&mut state, &request),
    };
    Reply {
        status,
        headers: vec![(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        )],
        body: body.into_bytes(),
        ..Reply::default()
    }
}

fn route(path: &str) -> Route {
    let path = path.split('?').next().unwrap_or_default();
    if path.starts_with("/issuer/") {
        Route::Issuer
    } else if path.starts_with("/_apis/") && path.ends_with("/idtoken") {
        Route::GitHubIdToken
    } else if path == format!("/entra/{TENANT}/oauth2/v2.0/token") {
        Route::Entra
    } else if path == format!("/entra/{TENANT}/v2.0/.well-known/openid-configuration")
        || path == format!("/entra/{TENANT}/discovery/v2.0/keys")
    {
        Route::EntraMeta
    } else if path == "/exchange/token" {
        Route::Exchange
    } else if path == "/sts/v1/token" {
        Route::Sts
    } else if path.starts_with("/iam/v1/projects/-/serviceAccounts/") {
        Route::Iam
    } else if path == "/api/me" {
        Route::Api
    } else {
        Route::Other
    }
}

fn respond(state: &mut State, request: &Request) -> (u16, String) {
    match request.route {
        Route::Issuer => (200, state.keys.jwks.to_string()),
        Route::GitHubIdToken => github(state, request),
        Route::Entra => entra(state, request),
        Route::EntraMeta if request.path.ends_with("/keys") => {
            (200, state.keys.entra_jwks.to_string())
        }
        Route::EntraMeta => {
            // Entra's discovery document, as login.microsoftonline.com serves it.
            let base = format!(
                "https://{}/entra/{TENANT}",
                request.header("host").unwrap_or_default()
            );
            (
                200,
                json!({
                    "token_endpoint": format!("{base}/oauth2/v2.0/token"),
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                    "jwks_uri": format!("{base}/discovery/v2.0/keys"),
                    "response_modes_supported": ["query", "fragment", "form_post"],
                    "subject_types_supported": ["pairwise"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "issuer": format!("{base}/v2.0"),
                    "request_uri_parameter_supported": false,
                    "tenant_region_scope": "EU",
                })
                .to_string(),
            )
        }
        Route::Exchange => exchange(state, request),
        Route::Sts => sts(state, request),
        Route::Iam => iam(state, request),
        Route::Api => {
            let token = request
                .header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .unwrap_or_default();
            if state.issued.iter().any(|t| t == token) {
                (200, json!({"id": "ci-workload", "ok": true}).to_string())
            } else {
                (401, json!({"error": "invalid_token"}).to_string())
            }
        }
        Route::Other => (404, json!({"error": "not_found"}).to_string()),
    }
}

/// GitHub's token-request endpoint: the runner's bearer, `api-version`, `audience`.
fn github(state: &mut State, request: &Request) -> (u16, String) {
    let bearer = request.header("authorization").and_then(|h| {
        h.split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.to_owned())
    });
    if bearer.as_deref() != Some(state.setup.github_request_token.as_str()) {
        return (
            401,
            json!({"message": "Unauthorized: the request token is not valid for this job."})
                .to_string(),
        );
    }
    if request.query("api-version").as_deref() != Some("2.0") {
        return (
            400,
            json!({"message": "api-version is required"}).to_string(),
        );
    }
    let audience = request.query("audience");
    if let Some(want) = &state.setup.github_expect_audience {
        assert_eq!(
            audience.as_deref(),
            Some(want.as_str()),
            "GitHub was asked for the wrong audience"
        );
    }
    let aud = audience.unwrap_or_else(|| "https://github.com/acme".to_owned());
    let expired = state.github_mints < state.setup.github_expired_mints;
    state.github_mints += 1;
    let token = mint(state, Ci::GitHub, &[&aud], expired, None);
    (200, json!({"count": 1, "value": token}).to_string())
}

fn access_token(state: &mut State, prefix: &str) -> String {
    let token = format!(
        "{prefix}{}.{}.{}",
        random_hex(18),
        random_hex(40),
        random_hex(24)
    );
    state.issued.push(token.clone());
    token
}

/// An Entra error body (providers.md §3.1), description lines joined by `\r\n`.
pub fn entra_error(error: &str, code: u64, message: &str) -> String {
    let (trace, correlation) = (uuid_plain(), uuid_plain());
    let timestamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stamp = timestamp.replace('T', " ");
    json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    })
    .to_string()
}

fn uuid_plain() -> String {
    uuid().trim_matches(['{', '}']).to_owned()
}

fn aud_list(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn entra(state: &mut State, request: &Request) -> (u16, String) {
    let form = |n: &str| request.form(n).unwrap_or_default();
    assert!(
        request.header("authorization").is_none(),
        "a federated request carries no Authorization header"
    );
    assert_eq!(form("grant_type"), "client_credentials");
    assert!(form("scope").ends_with("/.default"), "Entra's scope form");
    if form("client_id") != ENTRA_CLIENT {
        return (
            400,
            entra_error(
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{}' was not found in the directory '{TENANT}'.",
                    form("client_id")
                ),
            ),
        );
    }
    if form("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return (
            400,
            entra_error(
                "invalid_request",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ),
        );
    }
    let assertion = form("client_assertion");
    let (header, claims) = match verify(&state.keys.jwks, &assertion) {
        Ok(v) => v,
        Err(_) => {
            return (
                401,
                entra_error(
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation.",
                ),
            );
        }
    };
    // Entra's federated credentials take RS256 tokens only (providers.md §3.1).
    if header["alg"] != "RS256" {
        return (
            401,
            entra_error(
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            ),
        );
    }
    let (nbf, exp) = (
        claims["nbf"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    let t = now();
    if t < nbf || t >= exp {
        let fmt = |s: u64| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(s))
                .to_string()
        };
        return (
            400,
            entra_error(
                "invalid_client",
                700024,
                &format!(
                    "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                    fmt(t),
                    fmt(nbf),
                    fmt(exp)
                ),
            ),
        );
    }
    let iss = claims["iss"].as_str().unwrap_or_default();
    let sub = claims["sub"].as_str().unwrap_or_default();
    let auds = aud_list(&claims);
    let aud = auds.first().cloned().unwrap_or_default();
    let exact = state
        .setup
        .federated
        .iter()
        .any(|f| f.issuer == iss && f.subject == sub && auds.contains(&f.audience));
    if !exact {
        let same_issuer = state.setup.federated.iter().any(|f| f.issuer == iss);
        let folded = state
            .setup
            .federated
            .iter()
            .any(|f| f.issuer.eq_ignore_ascii_case(iss) && f.subject.eq_ignore_ascii_case(sub));
        let body = if folded {
            entra_error(
                "invalid_client",
                7002138,
                &format!(
                    "No matching federated identity record found for presented assertion subject '{sub}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
                ),
            )
        } else if same_issuer {
            entra_error(
                "invalid_client",
                700213,
                &format!(
                    "No matching federated identity record found for presented assertion subject '{sub}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
                ),
            )
        } else {
            entra_error(
                "invalid_request",
                70021,
                &format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{aud}'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation"
                ),
            )
        };
        return (400, body);
    }
    let expires_in = state.setup.expires_in;
    // A v1.0 access token for the API the scope names, signed with Entra's key.
    let t = now();
    let resource = form("scope").trim_end_matches("/.default").to_owned();
    let token = state
        .keys
        .entra
        .sign(
            Alg::Rs256,
            Header {
                kid: Some("entra-1"),
                x5t_s256: None,
            },
            &json!({
                "aud": resource, "iss": format!("https://sts.windows.net/{TENANT}/"),
                "iat": t, "nbf": t, "exp": t + expires_in, "appid": ENTRA_CLIENT,
                "idtyp": "app", "oid": uuid_plain(), "roles": ["Deploy.All"],
                "sub": uuid_plain(), "tid": TENANT, "ver": "1.0",
                "xms_ficiss": iss, "xms_ficsub": sub,
            }),
        )
        .unwrap()
        .expose_secret()
        .to_owned();
    state.issued.push(token.clone());
    (
        200,
        json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}).to_string(),
    )
}

/// RFC 8693 token exchange and RFC 7523 §2.1 JWT bearer, one server.
fn exchange(state: &mut State, request: &Request) -> (u16, String) {
    let form = |n: &str| request.form(n).unwrap_or_default();
    let grant = form("grant_type");
    let subject = match grant.as_str() {
        "urn:ietf:params:oauth:grant-type:token-exchange" => {
            if form("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" {
                return (
                    400,
                    json!({"error": "invalid_request", "error_description": "unsupported subject_token_type"}).to_string(),
                );
            }
            form("subject_token")
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => form("assertion"),
        _ => {
            return (400, json!({"error": "unsupported_grant_type"}).to_string());
        }
    };
    let claims = match verify(&state.keys.jwks, &subject) {
        Ok((_, c)) if c["exp"].as_u64().unwrap_or(0) > now() => c,
        _ => {
            return (
                400,
                json!({"error": "invalid_grant", "error_description": "The subject token is invalid or expired."}).to_string(),
            );
        }
    };
    let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
    let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
    let trusted = state.setup.exchange_trust.iter().any(|(i, s)| {
        *i == iss && (*s == sub || (s.ends_with('*') && sub.starts_with(s.trim_end_matches('*'))))
    });
    if !trusted || !aud_list(&claims).contains(&state.setup.exchange_audience) {
        return (
            400,
            json!({"error": "invalid_grant", "error_description": "No trust policy matches the subject token."}).to_string(),
        );
    }
    let expires_in = state.setup.expires_in;
    let token = access_token(state, "xt_");
    let mut body = json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in});
    if grant.ends_with("token-exchange") && !state.setup.exchange_omits_issued_type {
        body["issued_token_type"] = json!("urn:ietf:params:oauth:token-type:access_token");
    }
    (200, body.to_string())
}

fn sts(state: &mut State, request: &Request) -> (u16, String) {
    // "do not send the Authorization HTTP header … can cause the request to fail".
    if request.header("authorization").is_some() {
        return (
            401,
            json!({"error": "invalid_request", "error_description": "The request must not include an Authorization header."}).to_string(),
        );
    }
    let form = |n: &str| request.form(n).unwrap_or_default();
    if form("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        return (
            400,
            json!({"error": "unsupported_grant_type", "error_description": "Invalid value for \"grant_type\"."}).to_string(),
        );
    }
    if !matches!(
        form("subject_token_type").as_str(),
        "urn:ietf:params:oauth:token-type:jwt" | "urn:ietf:params:oauth:token-type:id_token"
    ) {
        return (
            400,
            json!({"error": "invalid_request", "error_description": "Invalid value for \"subject_token_type\"."}).to_string(),
        );
    }
    if form("audience") != format!("//iam.googleapis.com/{WIP}") {
        return (
            400,
            json!({"error": "invalid_target", "error_description": "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist."}).to_string(),
        );
    }
    if form("scope").is_empty() {
        return (
            400,
            json!({"error": "invalid_request", "error_description": "Scope(s) must be provided."})
                .to_string(),
        );
    }
    assert_eq!(
        form("requested_token_type"),
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let claims = match verify(&state.keys.jwks, &form("subject_token")) {
        Ok((_, c)) if c["exp"].as_u64().unwrap_or(0) > now() => c,
        _ => {
            return (
                400,
                json!({"error": "invalid_grant", "error_description": "ID Token issued at 0 is stale to sign-in."}).to_string(),
            );
        }
    };
    let auds = aud_list(&claims);
    if !auds
        .iter()
        .any(|a| state.setup.sts_allowed_audiences.contains(a))
    {
        return (
            400,
            json!({"error": "invalid_grant", "error_description": format!("The audience in ID Token [{}] does not match the expected audience.", auds.join(", "))}).to_string(),
        );
    }
    let sub = claims["sub"].as_str().unwrap_or_default();
    if !state.setup.sts_subjects.is_empty() && !state.setup.sts_subjects.iter().any(|s| s == sub) {
        return (
            400,
            json!({"error": "unauthorized_client", "error_description": "The given credential is rejected by the attribute condition."}).to_string(),
        );
    }
    let token = format!("ya29.d.{}", random_hex(48));
    state.sts_tokens.push(token.clone());
    state.issued.push(token.clone());
    (
        200,
        json!({"access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3599}).to_string(),
    )
}

fn iam(state: &mut State, request: &Request) -> (u16, String) {
    assert_eq!(request.method, "POST");
    let bearer = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !state.sts_tokens.iter().any(|t| t == bearer) {
        return (
            401,
            json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}).to_string(),
        );
    }
    let path = request.path.split('?').next().unwrap_or_default();
    let account = path
        .trim_start_matches("/iam/v1/projects/-/serviceAccounts/")
        .trim_end_matches(":generateAccessToken");
    if state.setup.iam_denied || account != SERVICE_ACCOUNT {
        return (
            403,
            json!({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", "status": "PERMISSION_DENIED", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED", "domain": "iam.googleapis.com", "metadata": {"permission": "iam.serviceAccounts.getAccessToken"}}]}}).to_string(),
        );
    }
    let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    assert!(body["scope"].is_array(), "scope is a list");
    let lifetime = body["lifetime"]
        .as_str()
        .map(|l| {
            l.strip_suffix('s')
                .expect("lifetime as \"Ns\"")
                .parse::<u64>()
                .expect("lifetime seconds")
        })
        .unwrap_or(3600);
    let token = access_token(state, "ya29.c.");
    let expire = humantime::format_rfc3339_seconds(
        SystemTime::now() + std::time::Duration::from_secs(lifetime),
    )
    .to_string();
    (
        200,
        json!({"accessToken": token, "expireTime": expire}).to_string(),
    )
}
