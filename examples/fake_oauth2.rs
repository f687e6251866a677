//! A fake OAuth 2.0 authorization server for the benchmark (issue 15), started beside the fake
//! Bitbucket by the `fake_bitbucket` example: this file is a module of that example, not an
//! example of its own (Cargo.toml lists the examples; `autoexamples` is off).
//!
//! It is what `PROVIDER=oauth2 ISSUER=…` needs for discovery and JWKS validation, and nothing
//! more, on the fakes' shared HTTPS server (tests/support/server: real TLS on 127.0.0.1:0 with
//! a CA made at start, `TCP_NODELAY`, keep-alive):
//!
//! - `GET /.well-known/openid-configuration`: the metadata (OpenID Connect Discovery 1.0 §3 and
//!   §4, https://openid.net/specs/openid-connect-discovery-1_0.html; the same fields RFC 8414 §2
//!   defines, https://www.rfc-editor.org/rfc/rfc8414#section-2): `issuer`, `token_endpoint`
//!   and `jwks_uri`, all on the issuer's host;
//! - `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4), the client
//!   authenticated by Basic (form-urlencoded, then base64: §2.3.1) or by `client_id` and
//!   `client_secret` in the form, never both (§2.3); the answer is
//!   `{"access_token": JWT, "token_type": "Bearer", "expires_in": 3600}` with
//!   `Cache-Control: no-store` (§5.1), the token a JWT access token (RFC 9068 §2: `typ`
//!   `at+jwt`; `iss`, `exp`, `aud`, `sub`, `client_id`, `iat`, `jti`, `scope`) signed RS256;
//! - `GET /.well-known/jwks.json`: the public key as a JWK Set (RFC 7517 §5; an RSA key's `n`
//!   and `e` as RFC 7518 §6.3.1 spells them), its `kid` the one in the token's header.
//!
//! **The issuer is the name the client used.** Every URL it advertises, and the token's `iss`,
//! are `https://` + the request's `Host` header. So behind bench/relay.py, which forwards bytes
//! unchanged, the metadata names the relay's address (the one the client reached) and every
//! later request goes through the relay too, as with a real issuer; reached directly, it names
//! itself. A real server has one configured issuer; this fake cannot know the relay's port,
//! which exists only after the fake is listening.
//!
//! The signing key is the repository's test-only RSA key (tests/corpus/keys/app-pkcs8.pem,
//! public, protecting nothing): ring, the project's one crypto library, cannot generate RSA
//! keys.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::fake::server::http::{Request, Server};
use crate::fake::server::lock;
use crate::fake::server::reply::Reply;
use crate::fake::server::tls;

/// The client the token endpoint accepts.
pub const CLIENT_ID: &str = "bench-oauth2-client";
/// Its secret (plain characters: Basic's form-urlencoding leaves them as they are).
pub const CLIENT_SECRET: &str = "bench-oauth2-secret";
/// The `aud` of the tokens when the request names no `audience` or `resource`.
pub const AUDIENCE: &str = "https://api.bench.example";
/// The `scope` the tokens carry.
pub const SCOPE: &str = "bench.read";
/// The metadata's path (OpenID Connect Discovery §4: `{issuer}/.well-known/openid-configuration`).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth/token";
/// The JWK Set's path.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
const KID: &str = "bench-rsa-1";
const LIFETIME_SECS: u64 = 3600;
const KEY_PEM: &[u8] = include_bytes!("../tests/corpus/keys/app-pkcs8.pem");

/// What it answered, for the stop line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Discovery documents served.
    pub discovery: usize,
    /// Tokens issued.
    pub token: usize,
    /// JWK Sets served.
    pub jwks: usize,
    /// Requests refused (bad client, grant, path or Host).
    pub refused: usize,
}

struct State {
    key: RsaKeyPair,
    counts: Counts,
}

/// A running fake authorization server; dropping it stops it and removes its CA file.
pub struct FakeOAuth2 {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl FakeOAuth2 {
    /// Starts it on 127.0.0.1:0 with a CA of its own (certificate for `localhost` and
    /// `127.0.0.1`).
    pub fn start() -> FakeOAuth2 {
        let der = PrivatePkcs8KeyDer::from_pem_slice(KEY_PEM).expect("the test key is PKCS#8 PEM");
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("an RSA key");
        let state = Arc::new(Mutex::new(State {
            key,
            counts: Counts::default(),
        }));
        let handler_state = state.clone();
        let server = Server::start(
            "oauth2",
            tls::localhost("oauth-token-pipe bench OAuth 2.0 CA", None),
            Some("fake-oauth2"),
            move |request| handle(&handler_state, request),
        );
        FakeOAuth2 { server, state }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.server.base()
    }

    /// The PEM file of its CA (the clients' CA bundle).
    pub fn ca_file(&self) -> &Path {
        self.server.ca_file()
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Requests answered so far, by endpoint.
    pub fn counts(&self) -> Counts {
        lock(&self.state).counts
    }
}

impl Drop for FakeOAuth2 {
    fn drop(&mut self) {
        for problem in self.server.stop() {
            eprintln!("fake_oauth2: {problem}");
        }
    }
}

fn handle(state: &Mutex<State>, request: &Request) -> Reply {
    let Some(issuer) = issuer(request) else {
        return error(400, "invalid_request", "no usable Host header");
    };
    let path = request.path.split('?').next().unwrap_or("");
    let mut s = lock(state);
    match (request.method.as_str(), path) {
        ("GET", DISCOVERY_PATH) => {
            s.counts.discovery += 1;
            // Only what a client-credentials server has: no authorization_endpoint (RFC 8414
            // §2 requires it only when a grant type that uses it is supported).
            let metadata = json!({
                "issuer": issuer,
                "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
                "jwks_uri": format!("{issuer}{JWKS_PATH}"),
                "grant_types_supported": ["client_credentials"],
                "response_types_supported": ["token"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            });
            Reply::json(200, &metadata.to_string()).header("Cache-Control", "max-age=300")
        }
        ("GET", JWKS_PATH) => {
            s.counts.jwks += 1;
            let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(s.key.public());
            let jwks = json!({"keys": [{
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID,
                "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
            }]});
            Reply::json(200, &jwks.to_string()).header("Cache-Control", "max-age=300")
        }
        ("POST", TOKEN_PATH) => match token(&s.key, &issuer, request) {
            Ok(reply) => {
                s.counts.token += 1;
                reply
            }
            Err(reply) => {
                s.counts.refused += 1;
                reply
            }
        },
        _ => {
            s.counts.refused += 1;
            error(404, "not_found", "no such endpoint")
        }
    }
}

/// `https://` + the Host header, when it is a plain host and port.
fn issuer(request: &Request) -> Option<String> {
    let host = request.header("host")?;
    let plain = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    plain.then(|| format!("https://{host}"))
}

fn token(key: &RsaKeyPair, issuer: &str, request: &Request) -> Result<Reply, Reply> {
    if request.field("grant_type").as_deref() != Some("client_credentials") {
        return Err(error(
            400,
            "unsupported_grant_type",
            "only client_credentials",
        ));
    }
    let basic = request
        .header("authorization")
        .and_then(|h| h.strip_prefix("Basic "))
        .map(|b64| {
            let decoded = STANDARD.decode(b64.trim()).unwrap_or_default();
            let text = String::from_utf8_lossy(&decoded).into_owned();
            let (id, secret) = text.split_once(':').unwrap_or((&text, ""));
            (form_decode(id), form_decode(secret))
        });
    let post = request
        .field("client_secret")
        .map(|secret| (request.field("client_id").unwrap_or_default(), secret));
    let client = match (basic, post) {
        (Some(_), Some(_)) => {
            return Err(error(
                400,
                "invalid_request",
                "more than one client authentication method",
            ));
        }
        (Some(pair), None) | (None, Some(pair)) => pair,
        (None, None) => {
            return Err(invalid_client("no client authentication"));
        }
    };
    if client != (CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned()) {
        return Err(invalid_client("unknown client or wrong secret"));
    }
    let audience = request
        .field("audience")
        .or_else(|| request.field("resource"))
        .unwrap_or_else(|| AUDIENCE.to_owned());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let jti: String = (0..16)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect();
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": KID});
    let claims = json!({
        "iss": issuer, "sub": CLIENT_ID, "aud": audience, "client_id": CLIENT_ID,
        "iat": now, "exp": now + LIFETIME_SECS, "jti": jti, "scope": SCOPE,
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .expect("RSA signing");
    let body = json!({
        "access_token": format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&sig)),
        "token_type": "Bearer",
        "expires_in": LIFETIME_SECS,
        "scope": SCOPE,
    });
    Ok(Reply::json(200, &body.to_string())
        .header("Cache-Control", "no-store")
        .header("Pragma", "no-cache"))
}

/// One form-urlencoded component, decoded (RFC 6749 §2.3.1 encodes Basic's id and secret so).
fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(text.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

fn error(status: u16, code: &str, description: &str) -> Reply {
    let body: Value = json!({"error": code, "error_description": description});
    Reply::json(status, &body.to_string()).header("Cache-Control", "no-store")
}

/// RFC 6749 §5.2: 401 with a challenge for the scheme the client may use.
fn invalid_client(description: &str) -> Reply {
    error(401, "invalid_client", description)
        .header("WWW-Authenticate", "Basic realm=\"fake-oauth2\"")
}
