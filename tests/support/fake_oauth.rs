//! A fake OAuth 2.0 authorization server: real HTTPS on 127.0.0.1:0 with its own CA, keys
//! made at run time, and the strictness of a certified server.
//!
//! It runs on the fakes' shared server ([`crate::support::server`]: its own thread and
//! current-thread runtime, the accept loop, the drop check). It serves, under any path
//! prefix (so one fake is an issuer at `/realms/ci`, or Entra's `/{tenant}/v2.0` with its
//! token endpoint at `/{tenant}/oauth2/v2.0/token`):
//!
//! - discovery: `GET {issuer}/.well-known/openid-configuration` (OIDC) and
//!   `GET /.well-known/oauth-authorization-server{issuer path}` (RFC 8414), as [`Discovery`]
//!   says (both, RFC 8414 only, or a document naming another issuer);
//! - `POST …/token`: the client-credentials grant, checking client authentication as a
//!   strict server does: Basic is base64-decoded and then form-urldecoded (RFC 6749 §2.3.1;
//!   or not decoded, as Keycloak ≤16 and Gluu, with [`BasicDecoding::Raw`]); post fields;
//!   an RFC 7523 client assertion (signature against [`OAuthSetup::assertion_keys`], `aud`
//!   a JSON string equal to the expected audience, `iss` = `sub` = client_id, `exp` at
//!   most 300 s away, a `jti` never seen before); more than one method at once is refused
//!   (§2.3). It issues JWT access tokens signed RS256 (the test-only RSA keys of
//!   tests/corpus/keys, since ring cannot generate RSA) or ES256 (P-256 keys generated here),
//!   with a rotated `kid` on request, or forged ones (`none`, HS256), or opaque ones;
//! - `POST …/introspect` (RFC 7662): `active` true or false, or `unsupported_token_type`
//!   for JWTs; client-authenticated like the token endpoint;
//! - `GET …/keys`: the JWKS;
//! - `GET /api/me`: an API that accepts the tokens it issued.
//!
//! Scripted token-endpoint replies ([`OAuthReply`], e.g. [`entra_error`] or the constants
//! for each profile's exact bodies from providers.md §3) are used first, in order. Every
//! request is recorded. Dropping the fake fails the test when a scripted reply was never
//! used or a handler panicked (xh's `tests/server/mod.rs`).

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Map, Value, json};

use crate::support::server::{self, lock, reply::Reply};

/// `client_assertion_type` for RFC 7523 client authentication.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Which discovery documents the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// `{issuer}/.well-known/openid-configuration` (and RFC 8414's form too).
    Oidc,
    /// Only RFC 8414's form; the OIDC URL answers 404.
    Rfc8414Only,
    /// A document whose `issuer` is someone else's.
    MismatchedIssuer,
    /// No document at all (404 for both).
    Off,
}

/// How the token endpoint reads Basic credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BasicDecoding {
    /// RFC 6749 §2.3.1: base64, then form-urldecode the id and the secret.
    Rfc,
    /// base64 only, as Keycloak before 17 and Gluu (providers.md §2.1).
    Raw,
}

/// The access tokens the fake issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A JWT signed RS256 with the test-only RSA key.
    Rs256,
    /// A JWT signed ES256 with a P-256 key made at start.
    Es256,
    /// A JWT with `alg: none` and no signature.
    AlgNone,
    /// A JWT signed HS256 with a secret of the server's.
    Hs256,
    /// An opaque string: [`OAuthSetup::opaque_token`], or a random one.
    Opaque,
}

/// What introspection answers for a token the fake issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Introspection {
    /// `{"active": true, …}`.
    Active,
    /// `{"active": false}`.
    Inactive,
    /// `unsupported_token_type` for JWTs (as certified servers answer for JWT access
    /// tokens), active for opaque ones.
    UnsupportedForJwt,
    /// No introspection endpoint (not in discovery; 404).
    Off,
}

/// The `aud` a client assertion must carry, as a JSON string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertionAudience {
    /// The URL of the endpoint it is sent to (RFC 7523 §3 allows the token endpoint's; Okta
    /// requires each endpoint's own).
    Endpoint,
    /// The issuer identifier (draft-ietf-oauth-rfc7523bis; Keycloak's strict mode).
    Issuer,
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct OAuthReply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl OAuthReply {
    /// A JSON answer.
    pub fn json(status: u16, body: &str) -> OAuthReply {
        OAuthReply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_owned(),
        }
    }
}

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct OAuthSetup {
    /// The client it knows.
    pub client_id: String,
    /// That client's secret.
    pub client_secret: String,
    /// The issuer's path on the fake (no trailing slash), e.g. `/realms/ci`.
    pub issuer_path: String,
    /// The discovery documents served.
    pub discovery: Discovery,
    /// `token_endpoint_auth_methods_supported`, when the document lists it.
    pub auth_methods_supported: Option<Vec<String>>,
    /// The client authentication methods the client is registered for.
    pub methods: Vec<&'static str>,
    /// How Basic credentials are decoded.
    pub basic_decoding: BasicDecoding,
    /// The tokens issued.
    pub token_kind: TokenKind,
    /// Sign with a second key whose `kid` is new; the JWKS lists the old key and the new.
    pub rotated: bool,
    /// Change the claims after signing (a forged token with a real header and signature).
    pub tampered: bool,
    /// The JWKS lists only the old key (a stale key set, or the wrong issuer's).
    pub jwks_without_signing_key: bool,
    /// Claims merged over the defaults (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`,
    /// `client_id`, `scope`); a `null` removes one.
    pub claims: Value,
    /// `aud` of the tokens when the request names no `audience` (which they then carry, as
    /// Auth0's do), unless [`Self::claims`] says otherwise.
    pub token_audience: String,
    /// The scope granted; `None` grants what was requested.
    pub granted: Option<String>,
    /// Whether the token response names the scope (RFC 6749 §5.1 lets it omit it).
    pub response_scope: bool,
    /// Whether the JWT carries a `scope` claim.
    pub scope_claim: bool,
    /// `expires_in`.
    pub expires_in: u64,
    /// What introspection answers.
    pub introspection: Introspection,
    /// The scope introspection reports; `None` reports the granted one.
    pub introspection_scope: Option<String>,
    /// Scripted token-endpoint answers, used first, each exactly once.
    pub token_replies: Vec<OAuthReply>,
    /// The opaque token issued with [`TokenKind::Opaque`] (a canary); `None`: a random one.
    pub opaque_token: Option<String>,
    /// The client's public keys (a JWKS) for checking RFC 7523 client assertions.
    pub assertion_keys: Option<Value>,
    /// The `aud` a client assertion must have.
    pub assertion_audience: AssertionAudience,
    /// How many calls `GET /api/me` answers 401 before it knows the tokens issued
    /// (replication lag).
    pub api_lag: usize,
}

impl Default for OAuthSetup {
    fn default() -> Self {
        OAuthSetup {
            client_id: "ci-client".into(),
            client_secret: "ci-secret".into(),
            issuer_path: "/realms/ci".into(),
            discovery: Discovery::Oidc,
            auth_methods_supported: None,
            methods: vec![
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            basic_decoding: BasicDecoding::Rfc,
            token_kind: TokenKind::Rs256,
            rotated: false,
            tampered: false,
            jwks_without_signing_key: false,
            claims: json!({}),
            token_audience: "https://api.example/".into(),
            granted: None,
            response_scope: true,
            scope_claim: true,
            expires_in: 3600,
            introspection: Introspection::Active,
            introspection_scope: None,
            token_replies: Vec::new(),
            opaque_token: None,
            assertion_keys: None,
            assertion_audience: AssertionAudience::Endpoint,
            api_lag: 0,
        }
    }
}

/// What the fake received.
pub use crate::support::server::http::Request;

/// A client assertion the token endpoint accepted.
#[derive(Clone, Debug)]
pub struct Assertion {
    /// Its JOSE header.
    pub header: Map<String, Value>,
    /// Its claims.
    pub claims: Map<String, Value>,
}

/// A signing key of the fake's.
struct Key {
    kid: String,
    alg: &'static str,
    pair: Pair,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Key {
    fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(pair) => {
                let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "use": "sig", "alg": self.alg, "kid": self.kid,
                       "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e)})
            }
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "use": "sig", "alg": self.alg, "kid": self.kid, "crv": "P-256",
                       "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])})
            }
        }
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .expect("RSA sign");
                sig
            }
            Pair::Ec(pair) => pair.sign(&rng, input).expect("EC sign").as_ref().to_vec(),
        }
    }
}

/// The DER inside a PEM file of tests/corpus/keys.
fn pem_der(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/keys")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("test key");
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).expect("PEM base64")
}

fn ec_key(kid: &str) -> Key {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate P-256");
    Key {
        kid: kid.into(),
        alg: "ES256",
        pair: Pair::Ec(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("P-256")),
    }
}

fn rsa_key(kid: &str, file: &str) -> Key {
    let der = pem_der(file);
    let pair = RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| RsaKeyPair::from_der(&der))
        .expect("RSA key");
    Key {
        kid: kid.into(),
        alg: "RS256",
        pair: Pair::Rsa(pair),
    }
}

/// The public JWKS of a private key PEM from tests/corpus/keys (PKCS#8 RSA or P-256, or
/// PKCS#1 RSA), with `kid`: what a client registers with the server for private_key_jwt.
pub fn public_jwks_of(file: &str, kid: &str) -> Value {
    let der = pem_der(file);
    let key = if let Ok(pair) = RsaKeyPair::from_pkcs8(&der).or_else(|_| RsaKeyPair::from_der(&der))
    {
        Key {
            kid: kid.into(),
            alg: "RS256",
            pair: Pair::Rsa(pair),
        }
    } else {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                .expect("an RSA or P-256 key");
        Key {
            kid: kid.into(),
            alg: "ES256",
            pair: Pair::Ec(pair),
        }
    };
    let mut jwk = key.jwk();
    jwk.as_object_mut().unwrap().remove("alg");
    json!({"keys": [jwk]})
}

/// The unpadded base64url of `bytes`, as JWS uses.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

struct State {
    setup: OAuthSetup,
    base: String,
    keys: Keys,
    token_replies: VecDeque<OAuthReply>,
    requests: Vec<Request>,
    /// Each token issued, with the scope it was granted.
    issued: Vec<(String, String)>,
    assertions: Vec<Assertion>,
    jtis: HashSet<String>,
}

struct Keys {
    rsa: [Key; 2],
    ec: [Key; 2],
}

impl Keys {
    /// The pair for `kind`: [old, new].
    fn pair(&self, kind: TokenKind) -> &[Key; 2] {
        match kind {
            TokenKind::Es256 => &self.ec,
            _ => &self.rsa,
        }
    }
}

/// A running fake authorization server. Dropping it stops the server and fails the test when
/// a scripted reply was never used or a handler panicked.
pub struct FakeOAuth {
    server: server::http::Server,
    state: Arc<Mutex<State>>,
}

impl FakeOAuth {
    /// Starts a fake with the default setup.
    pub fn start_default() -> FakeOAuth {
        FakeOAuth::start(OAuthSetup::default())
    }

    /// Starts a fake that behaves as `setup` says.
    pub fn start(setup: OAuthSetup) -> FakeOAuth {
        let state = Arc::new(Mutex::new(State {
            token_replies: setup.token_replies.iter().cloned().collect(),
            setup,
            base: String::new(),
            keys: Keys {
                rsa: [
                    rsa_key("rsa-1", "app-pkcs8.pem"),
                    rsa_key("rsa-2", "other-pkcs1.pem"),
                ],
                ec: [ec_key("ec-1"), ec_key("ec-2")],
            },
            requests: Vec::new(),
            issued: Vec::new(),
            assertions: Vec::new(),
            jtis: HashSet::new(),
        }));
        let handler_state = state.clone();
        let server = server::http::Server::start(
            "oauth",
            server::tls::localhost("oauth-token-pipe fake OAuth CA", None),
            Some("fake-oauth"),
            move |request| serve(&handler_state, request),
        );
        // No request comes before the port is known.
        lock(&state).base = server.base();
        FakeOAuth { server, state }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.server.base()
    }

    /// The ISSUER: base and issuer path.
    pub fn issuer(&self) -> String {
        format!("{}{}", self.base(), lock(&self.state).setup.issuer_path)
    }

    /// The token endpoint discovery names.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer())
    }

    /// The introspection endpoint discovery names.
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.issuer())
    }

    /// The JWKS discovery names.
    pub fn jwks_url(&self) -> String {
        format!("{}/keys", self.issuer())
    }

    /// An API URL that accepts the issued tokens (for VALIDATE=api).
    pub fn api_url(&self) -> String {
        format!("{}/api/me", self.base())
    }

    /// How many TLS connections were accepted.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// The PEM file of the CA that signed the fake's certificate (for CA_BUNDLE).
    pub fn ca_file(&self) -> &Path {
        self.server.ca_file()
    }

    /// The setup it runs with.
    pub fn setup(&self) -> OAuthSetup {
        lock(&self.state).setup.clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// `METHOD path` of every request, in order.
    pub fn paths(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// The requests to the token endpoint.
    pub fn token_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/token"))
            .collect()
    }

    /// The requests to the introspection endpoint.
    pub fn introspection_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/introspect"))
            .collect()
    }

    /// The access tokens issued, in order.
    pub fn issued(&self) -> Vec<String> {
        lock(&self.state)
            .issued
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The client assertions accepted, in order.
    pub fn assertions(&self) -> Vec<Assertion> {
        lock(&self.state).assertions.clone()
    }
}

impl Drop for FakeOAuth {
    fn drop(&mut self) {
        let panics = self.server.stop();
        let state = lock(&self.state);
        let unused: Vec<String> = state
            .token_replies
            .iter()
            .map(|r| format!("HTTP {}", r.status))
            .collect();
        server::check::report(
            "OAuth server",
            [server::check::unused("token endpoint", &unused)],
            panics,
            state
                .requests
                .iter()
                .map(|r| format!("{} {}", r.method, r.path)),
        );
    }
}

// ---------------------------------------------------------------------------------------
// The profiles' exact error bodies (../shared/research/providers.md §3).

/// An Entra ID error body in its exact shape: `error_description` runs on past the message
/// with `\r\n`-separated trace, correlation and timestamp lines; `error_codes`, `trace_id`,
/// `correlation_id`, `timestamp` and `error_uri` beside it (providers.md §3.1).
pub fn entra_error(error: &str, code: u64, message: &str) -> String {
    let trace = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    let correlation = "aa11bb22-cc33-dd44-ee55-ff6677889900";
    let timestamp = "2026-03-02 10:11:12Z";
    json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    })
    .to_string()
}

/// The trace ID [`entra_error`] sends.
pub const ENTRA_TRACE_ID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
/// The correlation ID [`entra_error`] sends.
pub const ENTRA_CORRELATION_ID: &str = "aa11bb22-cc33-dd44-ee55-ff6677889900";

/// Auth0, 403: the application has no client grant for the API.
pub const AUTH0_NO_CLIENT_GRANT: &str = r#"{"error":"access_denied","error_description":"Client is not authorized to access \"https://acme.example/api/\". You need to create a \"client-grant\" associated to this API. See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants"}"#;
/// Auth0, 403: no API with this identifier (or the Management API on a custom domain).
pub const AUTH0_SERVICE_NOT_ENABLED: &str = r#"{"error":"access_denied","error_description":"Service not enabled within domain: https://acme.example/api/"}"#;
/// Auth0, 403: the client-credentials grant is off for the application.
pub const AUTH0_GRANT_NOT_ALLOWED: &str = r#"{"error":"unauthorized_client","error_description":"Grant type 'client_credentials' not allowed for the client.","error_uri":"https://auth0.com/docs/clients/client-grant-types"}"#;
/// Auth0, 401: a wrong secret, as observed.
pub const AUTH0_UNAUTHORIZED: &str =
    r#"{"error":"access_denied","error_description":"Unauthorized"}"#;
/// Okta, 401: a wrong secret, or the basic-vs-post style not the one registered.
pub const OKTA_BAD_SECRET: &str = r#"{"error":"invalid_client","error_description":"The client secret supplied for a confidential client is invalid."}"#;
/// Okta, 400: a custom scope at the org authorization server.
pub const OKTA_CUSTOM_SCOPES: &str = r#"{"error":"invalid_scope","error_description":"Custom scopes are not allowed for this request."}"#;
/// Okta, 400: no scope asked for and none configured as default.
pub const OKTA_NO_DEFAULT_SCOPES: &str = r#"{"error":"invalid_scope","error_description":"The authorization server resource does not have any configured default scopes, 'scope' must be provided."}"#;
/// Keycloak, 401: the client has no service account.
pub const KEYCLOAK_NO_SERVICE_ACCOUNT: &str = r#"{"error":"unauthorized_client","error_description":"Client not enabled to retrieve service account"}"#;
/// Keycloak, 401: wrong id or secret (current versions).
pub const KEYCLOAK_BAD_CREDENTIALS: &str = r#"{"error":"unauthorized_client","error_description":"Invalid client or Invalid client credentials"}"#;
/// Keycloak, 400: the same with `invalid_client` (some versions).
pub const KEYCLOAK_BAD_CREDENTIALS_INVALID_CLIENT: &str = r#"{"error":"invalid_client","error_description":"Invalid client or Invalid client credentials"}"#;
/// Keycloak, 400: the client authenticates with a signed JWT but was sent a secret.
pub const KEYCLOAK_ASSERTION_MISSING: &str = r#"{"error":"invalid_client","error_description":"Parameter client_assertion_type is missing"}"#;

// ---------------------------------------------------------------------------------------
// The endpoints.

fn error(status: u16, code: &str, description: &str) -> OAuthReply {
    OAuthReply::json(
        status,
        &json!({"error": code, "error_description": description}).to_string(),
    )
}

fn not_found() -> OAuthReply {
    OAuthReply::json(404, r#"{"error":"not_found"}"#)
}

fn handle(state: &Mutex<State>, request: &Request) -> OAuthReply {
    let mut s = lock(state);
    s.requests.push(request.clone());
    let path = request.path.split('?').next().unwrap_or("").to_owned();
    let issuer_path = s.setup.issuer_path.clone();
    let oidc = format!("{issuer_path}/.well-known/openid-configuration");
    let rfc = format!("/.well-known/oauth-authorization-server{issuer_path}");
    match (request.method.as_str(), path.as_str()) {
        ("GET", p) if p == oidc => match s.setup.discovery {
            Discovery::Oidc | Discovery::MismatchedIssuer => metadata(&s),
            Discovery::Rfc8414Only | Discovery::Off => not_found(),
        },
        ("GET", p) if p == rfc => match s.setup.discovery {
            Discovery::Off => not_found(),
            _ => metadata(&s),
        },
        ("GET", p) if p.ends_with("/.well-known/openid-configuration") => {
            // Entra's tenant-relative discovery, under another prefix (AUTHORITY_URL/TENANT_ID).
            metadata_at(&s, p.trim_end_matches("/.well-known/openid-configuration"))
        }
        ("POST", p) if p.ends_with("/token") => {
            let url = format!("{}{p}", s.base);
            token(&mut s, request, &url)
        }
        ("POST", p) if p.ends_with("/introspect") => {
            if s.setup.introspection == Introspection::Off {
                return not_found();
            }
            let url = format!("{}{p}", s.base);
            introspect(&mut s, request, &url)
        }
        ("GET", p) if p.ends_with("/keys") => {
            // [old, new]: the token is signed with the new key when rotated (or when the
            // key set is stale); a stale set lists only the old one.
            let pair = s.keys.pair(s.setup.token_kind);
            let mut keys = vec![pair[0].jwk()];
            if s.setup.rotated && !s.setup.jwks_without_signing_key {
                keys.push(pair[1].jwk());
            }
            OAuthReply::json(200, &json!({"keys": keys}).to_string())
        }
        ("GET", "/api/me") => {
            let bearer = request
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "));
            let calls = s.requests.iter().filter(|r| r.path == "/api/me").count();
            match bearer {
                Some(t) if calls > s.setup.api_lag && s.issued.iter().any(|(i, _)| i == t) => {
                    OAuthReply::json(200, r#"{"sub":"ci-client"}"#)
                }
                _ => OAuthReply::json(401, r#"{"error":"invalid_token"}"#)
                    .with_header("WWW-Authenticate", "Bearer error=\"invalid_token\""),
            }
        }
        _ => not_found(),
    }
}

impl OAuthReply {
    fn with_header(mut self, name: &str, value: &str) -> OAuthReply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn metadata(s: &State) -> OAuthReply {
    metadata_at(s, &s.setup.issuer_path.clone())
}

fn metadata_at(s: &State, prefix: &str) -> OAuthReply {
    let issuer = format!("{}{prefix}", s.base);
    let named = if s.setup.discovery == Discovery::MismatchedIssuer {
        "https://someone-else.example/realms/ci".to_owned()
    } else {
        issuer.clone()
    };
    let mut doc = json!({
        "issuer": named,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/keys"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "grant_types_supported": ["client_credentials"],
    });
    if s.setup.introspection != Introspection::Off {
        doc["introspection_endpoint"] = json!(format!("{issuer}/introspect"));
    }
    if let Some(methods) = &s.setup.auth_methods_supported {
        doc["token_endpoint_auth_methods_supported"] = json!(methods);
    }
    OAuthReply::json(200, &doc.to_string())
}

/// Client authentication as a strict server checks it: exactly one method, and the one the
/// client is registered for.
fn authenticate(s: &mut State, request: &Request, endpoint: &str) -> Result<(), OAuthReply> {
    let basic = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Basic "));
    let secret_field = request.field("client_secret");
    let assertion = request.field("client_assertion");
    let used = [basic.is_some(), secret_field.is_some(), assertion.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if used > 1 {
        // RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in
        // each request."
        return Err(error(
            400,
            "invalid_request",
            "more than one client authentication method",
        ));
    }
    let refuse = |why: &str| error(401, "invalid_client", why);
    let allowed = |s: &State, method: &str| s.setup.methods.contains(&method);
    if let Some(basic) = basic {
        if !allowed(s, "client_secret_basic") {
            return Err(refuse("client_secret_basic is not this client's method"));
        }
        let decoded = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| error(400, "invalid_request", "malformed Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| error(400, "invalid_request", "Basic credentials without ':'"))?;
        let decode = |text: &str| -> String {
            match s.setup.basic_decoding {
                // application/x-www-form-urlencoded: '+' is a space, %XX a byte.
                BasicDecoding::Rfc => url::form_urlencoded::parse(format!("x={text}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default(),
                BasicDecoding::Raw => text.to_owned(),
            }
        };
        if decode(id) != s.setup.client_id || decode(secret) != s.setup.client_secret {
            return Err(refuse("Invalid client credentials")
                .with_header("WWW-Authenticate", "Basic realm=\"fake\""));
        }
        return Ok(());
    }
    if let Some(secret) = secret_field {
        if !allowed(s, "client_secret_post") {
            return Err(refuse("client_secret_post is not this client's method"));
        }
        if request.field("client_id").as_deref() != Some(&s.setup.client_id)
            || secret != s.setup.client_secret
        {
            return Err(refuse("Invalid client credentials"));
        }
        return Ok(());
    }
    if let Some(assertion) = assertion {
        if !allowed(s, "private_key_jwt") {
            return Err(refuse("private_key_jwt is not this client's method"));
        }
        if request.field("client_assertion_type").as_deref() != Some(JWT_BEARER) {
            return Err(refuse("client_assertion_type is not jwt-bearer"));
        }
        let expected_aud = match s.setup.assertion_audience {
            AssertionAudience::Endpoint => endpoint.to_owned(),
            AssertionAudience::Issuer => format!("{}{}", s.base, s.setup.issuer_path),
        };
        let checked = check_assertion(s, &assertion, &expected_aud)
            .map_err(|why| refuse(&format!("client assertion: {why}")))?;
        s.assertions.push(checked);
        return Ok(());
    }
    Err(refuse("no client authentication"))
}

/// RFC 7523 §3 and OIDC Core §9, strictly (with rfc7523bis's `aud` as a JSON string).
fn check_assertion(s: &mut State, jwt: &str, expected_aud: &str) -> Result<Assertion, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [head, body, sig] = parts[..] else {
        return Err("not a compact JWS".into());
    };
    let object = |part: &str| -> Result<Map<String, Value>, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "not base64url")?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err("not a JSON object".into()),
        }
    };
    let header = object(head)?;
    let claims = object(body)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| "signature not base64url")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let keys = s
        .setup
        .assertion_keys
        .clone()
        .ok_or("the server holds no key for this client")?;
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates: Vec<&Value> = keys["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| kid.is_none_or(|kid| k["kid"].as_str() == Some(kid)))
        .collect();
    let signed = format!("{head}.{body}");
    let verified = candidates.iter().any(|k| {
        let b = |name: &str| {
            URL_SAFE_NO_PAD
                .decode(k[name].as_str().unwrap_or(""))
                .unwrap_or_default()
        };
        match (alg, k["kty"].as_str()) {
            ("RS256" | "PS256", Some("RSA")) => {
                let params = if alg == "PS256" {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                signature::RsaPublicKeyComponents {
                    n: b("n"),
                    e: b("e"),
                }
                .verify(params, signed.as_bytes(), &sig)
                .is_ok()
            }
            ("ES256", Some("EC")) => {
                let mut point = vec![4u8];
                point.extend(b("x"));
                point.extend(b("y"));
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signed.as_bytes(), &sig)
                    .is_ok()
            }
            _ => false,
        }
    });
    if !verified {
        return Err(format!(
            "signature ({alg}) does not verify with the client's keys"
        ));
    }
    let id = s.setup.client_id.clone();
    for claim in ["iss", "sub"] {
        if claims.get(claim).and_then(Value::as_str) != Some(id.as_str()) {
            return Err(format!("{claim} is not the client_id"));
        }
    }
    match claims.get("aud") {
        Some(Value::String(aud)) if aud == expected_aud => {}
        Some(Value::String(aud)) => return Err(format!("aud {aud} is not {expected_aud}")),
        _ => return Err("aud is not a JSON string".into()),
    }
    let t = now();
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or("no exp")?;
    // A few seconds of slack for the time between signing and this check.
    if exp <= t || exp > t + 300 + 5 {
        return Err(format!(
            "exp is {} s from now, not within (0, 300]",
            exp as i64 - t as i64
        ));
    }
    if let Some(iat) = claims.get("iat").and_then(Value::as_u64) {
        if exp.saturating_sub(iat) > 300 || iat > t + 5 {
            return Err("iat is in the future or more than 300 s before exp".into());
        }
    }
    if claims
        .get("nbf")
        .and_then(Value::as_u64)
        .is_some_and(|nbf| nbf > t + 5)
    {
        return Err("nbf is in the future".into());
    }
    let jti = claims.get("jti").and_then(Value::as_str).ok_or("no jti")?;
    if jti.len() < 16 {
        return Err("jti is too short to be unique".into());
    }
    if !s.jtis.insert(jti.to_owned()) {
        return Err("jti was already used (a replayed assertion)".into());
    }
    Ok(Assertion { header, claims })
}

fn token(s: &mut State, request: &Request, url: &str) -> OAuthReply {
    if let Some(reply) = s.token_replies.pop_front() {
        return reply;
    }
    if let Err(reply) = authenticate(s, request, url) {
        return reply;
    }
    if request.field("grant_type").as_deref() != Some("client_credentials") {
        return error(400, "unsupported_grant_type", "only client_credentials");
    }
    let requested = request.field("scope").unwrap_or_default();
    let granted = s.setup.granted.clone().unwrap_or(requested);
    let audience = request.field("audience");
    let token = mint(s, &granted, audience);
    s.issued.push((token.clone(), granted.clone()));
    let mut body =
        json!({"access_token": token, "token_type": "Bearer", "expires_in": s.setup.expires_in});
    if s.setup.response_scope && !granted.is_empty() {
        body["scope"] = json!(granted);
    }
    OAuthReply::json(200, &body.to_string())
        .with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache")
}

fn mint(s: &State, scope: &str, audience: Option<String>) -> String {
    if s.setup.token_kind == TokenKind::Opaque {
        return (s.setup.opaque_token.clone())
            .unwrap_or_else(|| format!("opaque-{}", random_hex(24)));
    }
    let t = now();
    let mut claims = json!({
        "iss": format!("{}{}", s.base, s.setup.issuer_path),
        "sub": s.setup.client_id,
        "aud": audience.unwrap_or_else(|| s.setup.token_audience.clone()),
        "exp": t + s.setup.expires_in,
        "iat": t,
        "nbf": t,
        "jti": random_hex(16),
        "client_id": s.setup.client_id,
    });
    if s.setup.scope_claim && !scope.is_empty() {
        claims["scope"] = json!(scope);
    }
    for (k, v) in s.setup.claims.as_object().into_iter().flatten() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    let claims = b64url(claims.to_string().as_bytes());
    match s.setup.token_kind {
        TokenKind::AlgNone => {
            let head = b64url(br#"{"alg":"none","typ":"JWT"}"#);
            format!("{head}.{claims}.")
        }
        TokenKind::Hs256 => {
            let head = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"the server's own secret");
            let tag = ring::hmac::sign(&key, format!("{head}.{claims}").as_bytes());
            format!("{head}.{claims}.{}", b64url(tag.as_ref()))
        }
        kind => {
            let pair = s.keys.pair(kind);
            let key = if s.setup.rotated || s.setup.jwks_without_signing_key {
                &pair[1]
            } else {
                &pair[0]
            };
            let head = b64url(
                json!({"alg": key.alg, "typ": "at+jwt", "kid": key.kid})
                    .to_string()
                    .as_bytes(),
            );
            let input = format!("{head}.{claims}");
            let sig = b64url(&key.sign(input.as_bytes()));
            if s.setup.tampered {
                let forged = b64url(json!({"iss": format!("{}{}", s.base, s.setup.issuer_path), "exp": now() + 600, "scope": "admin"}).to_string().as_bytes());
                return format!("{head}.{forged}.{sig}");
            }
            format!("{input}.{sig}")
        }
    }
}

fn introspect(s: &mut State, request: &Request, url: &str) -> OAuthReply {
    if let Err(reply) = authenticate(s, request, url) {
        return reply;
    }
    let Some(token) = request.field("token") else {
        return error(400, "invalid_request", "no token");
    };
    let is_jwt = token.split('.').count() == 3;
    if s.setup.introspection == Introspection::UnsupportedForJwt && is_jwt {
        return error(
            400,
            "unsupported_token_type",
            "The authorization server does not support the introspection of JWT access tokens",
        );
    }
    let Some((_, granted)) = s.issued.iter().find(|(t, _)| *t == token) else {
        return OAuthReply::json(200, r#"{"active":false}"#);
    };
    if s.setup.introspection == Introspection::Inactive {
        return OAuthReply::json(200, r#"{"active":false}"#);
    }
    let scope = (s.setup.introspection_scope.clone())
        .or_else(|| Some(granted.clone()).filter(|g| !g.is_empty()));
    let mut body = json!({"active": true, "client_id": s.setup.client_id, "token_type": "Bearer", "exp": now() + s.setup.expires_in});
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    OAuthReply::json(200, &body.to_string())
}

// ---------------------------------------------------------------------------------------
// TLS and HTTP/1.1.

/// Answers one request on the shared server, its [`OAuthReply`] written as a [`Reply`].
fn serve(state: &Mutex<State>, request: &Request) -> Reply {
    let reply = handle(state, request);
    Reply {
        status: reply.status,
        headers: reply.headers,
        body: reply.body.into_bytes(),
        ..Reply::default()
    }
}
