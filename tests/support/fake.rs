//! A fake Bitbucket Cloud: a real HTTPS server on 127.0.0.1:0 with a CA made at run time.
//!
//! It runs on its own thread and its own current-thread runtime, so a test can block on the
//! binary while the server answers. Unscripted, it behaves like Bitbucket: the token endpoint
//! checks HTTP Basic credentials, the form body and answers with Bitbucket's exact bodies;
//! `/2.0/repositories/{ws}/{slug}` checks the bearer token and the repository. Scripted
//! replies (per endpoint, consumed in order) override that for error and fault cases. Every
//! request is recorded so tests assert on what the binary actually sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Path of Bitbucket's token endpoint.
pub const TOKEN_PATH: &str = "/site/oauth2/access_token";
/// Bitbucket's answer to wrong credentials (gist ericchiang/6e82e497ec45ea2aedbf).
pub const BAD_CREDENTIALS: &str =
    r#"{"error_description": "Invalid OAuth client credentials", "error": "unauthorized_client"}"#;
/// Bitbucket's answer when no credentials were sent (laravel/socialite#213).
pub const MISSING_CREDENTIALS: &str = r#"{"error_description": "Client credentials missing; this request needs to be authenticated with the OAuth client id and secret.", "error": "unauthorized_client"}"#;
/// Bitbucket's answer to a body without `grant_type` (BCLOUD-16249).
pub const NO_GRANT_TYPE: &str =
    r#"{"error_description": "Unsupported grant type: None", "error": "invalid_grant"}"#;
/// Bitbucket's answer for a consumer without a callback URL (soba#50, composer#5335).
pub const NO_CALLBACK: &str = r#"{"error": "invalid_request", "error_description": "No callback uri defined for the OAuth client."}"#;
/// Bitbucket's message for a public consumer (bitbucket-build-status-notifier-plugin#47); the
/// code is unconfirmed, `unauthorized_client` is the likeliest.
pub const PUBLIC_CONSUMER: &str = r#"{"error": "unauthorized_client", "error_description": "Cannot use client_credentials with a consumer marked as \"public\". Calls for auto generated consumers should use urn:bitbucket:oauth2:jwt instead."}"#;
/// 401 for an expired token (coveralls-public#1541).
pub const EXPIRED: &str = r#"{"type": "error", "error": {"message": "Access token expired."}}"#;
/// 401 for a token the API does not accept (bitbucket-cli#174, 2026).
pub const INVALID_TOKEN: &str = r#"{"type": "error", "error": {"message": "Token is invalid, expired, or not supported for this endpoint."}}"#;
/// 404 for a repository the token cannot see.
pub const NO_REPOSITORY: &str = r#"{"type": "error", "error": {"message": "You may not have access to this repository or it no longer exists in this workspace. If you think this repository exists and you have access, make sure you are authenticated."}}"#;
/// 410 for removed endpoints such as /2.0/workspaces (go-bitbucket#357).
pub const GONE: &str = r#"{"type": "error", "error": {"message": "CHANGE-2770 - Functionality has been deprecated", "detail": "Please read the changelog entry for more details.", "data": {"announcement_url": "https://developer.atlassian.com/cloud/bitbucket/changelog#CHANGE-2770"}}}"#;
/// 403 for a token without the scope the endpoint needs.
pub const FORBIDDEN: &str = r#"{"type": "error", "error": {"message": "Your credentials lack one or more required privilege scopes.", "detail": {"granted": ["pullrequest"], "required": ["repository"]}}}"#;
/// Bitbucket's 429 body: plain text, no Retry-After (SharpBucket#108, bitbucket-branch-source#414).
pub const RATE_LIMITED: &str = "Rate limit for this resource has been exceeded";

/// How a scripted reply misbehaves at the socket level.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Read the request and never answer.
    Hang,
    /// Read the request and close the connection without answering.
    Close,
    /// Send the head and half the body (Content-Length says all of it), then close.
    ResetMidBody,
    /// Send the head, then the body one byte per interval.
    Trickle(Duration),
    /// A chunked body that never ends, sent as fast as the client reads.
    Endless,
    /// A body of this many bytes with its Content-Length, streamed without being held.
    Huge(u64),
}

/// The certificate the fake presents.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Cert {
    /// Valid for localhost and 127.0.0.1, signed by the run's CA.
    #[default]
    Valid,
    /// Signed by the run's CA but only for bitbucket.example.
    WrongName,
    /// Signed by the run's CA, for the right names, but expired in 2021.
    Expired,
}

/// A scripted HTTP answer.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers besides Content-Length/Transfer-Encoding.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Send the body chunked, with no Content-Length.
    pub chunked: bool,
    /// Socket-level misbehaviour.
    pub fault: Fault,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.as_bytes().to_vec(),
            ..Reply::default()
        }
    }

    /// A plain-text answer, like Bitbucket's 429.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
            ..Reply::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A reply that never comes.
    pub fn hang() -> Reply {
        Reply {
            fault: Fault::Hang,
            ..Reply::default()
        }
    }
}

/// What the fake received.
#[derive(Clone, Debug)]
pub struct Request {
    /// GET, POST...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased, in order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the fake behaves when a reply is not scripted.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The consumer's Key the token endpoint accepts.
    pub client_id: String,
    /// The consumer's Secret the token endpoint accepts.
    pub client_secret: String,
    /// The token it issues.
    pub token: String,
    /// Granted scopes, space separated.
    pub scopes: String,
    /// `"scope"` (2026) or `"scopes"` (before May 2026).
    pub scope_field: String,
    /// `expires_in` as JSON, or `None` to leave it out.
    pub expires_in: Option<String>,
    /// Repositories (`ws/slug`) the token can read.
    pub repositories: Vec<String>,
    /// Scripted answers for the token endpoint, used first.
    pub token_replies: Vec<Reply>,
    /// Scripted answers for `/2.0/...`, used first.
    pub api_replies: Vec<Reply>,
    /// The certificate presented.
    pub cert: Cert,
    /// Serve the bare repositories under this folder at `/git/...` with `git http-backend`,
    /// to anyone who authenticates as `x-token-auth` with the issued token.
    pub git_root: Option<PathBuf>,
}

/// A token shaped like Bitbucket's 2026 JWTs: ~1,900 characters of base64url.
pub fn jwt_like(seed: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = engine.encode(r#"{"alg":"RS256","typ":"JWT","kid":"bitbucket-oauth"}"#);
    let claims = engine.encode(format!(r#"{{"sub":"{{app-user}}","iss":"https://bitbucket.org","aud":"api.bitbucket.org","seed":"{seed}","pad":"{}"}}"#, "x".repeat(1000)));
    let signature = engine.encode(seed.repeat(512 / seed.len().max(1) + 1).as_bytes());
    format!("{header}.{claims}.{}", &signature[..342])
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            client_id: "test-client-key".into(),
            client_secret: "test-client-secret".into(),
            token: jwt_like("default"),
            scopes: "repository pullrequest".into(),
            scope_field: "scope".into(),
            expires_in: Some("7200".into()),
            repositories: vec!["acme/widgets".into()],
            token_replies: Vec::new(),
            api_replies: Vec::new(),
            cert: Cert::Valid,
            git_root: None,
        }
    }
}

struct State {
    setup: Setup,
    token_replies: VecDeque<Reply>,
    api_replies: VecDeque<Reply>,
    requests: Vec<Request>,
}

/// A running fake Bitbucket. Dropping it stops the server.
pub struct FakeBitbucket {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeBitbucket {
    /// Starts a fake with the default setup.
    pub fn start_default() -> FakeBitbucket {
        FakeBitbucket::start(Setup::default())
    }

    /// Starts a fake that behaves as `setup` says.
    pub fn start(setup: Setup) -> FakeBitbucket {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca_pem, server_config) = certificates(&setup.cert);
        let ca_file = dir.path().join("fake-bitbucket-ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write CA");
        let state = Arc::new(Mutex::new(State {
            token_replies: setup.token_replies.iter().cloned().collect(),
            api_replies: setup.api_replies.iter().cloned().collect(),
            setup,
            requests: Vec::new(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread_state = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(
                listener,
                TlsAcceptor::from(Arc::new(server_config)),
                thread_state,
                stopped,
            ));
        });
        FakeBitbucket {
            addr,
            state,
            ca_file,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The fake under the name `fake.test`, which only the test proxy resolves.
    pub fn base_by_name(&self) -> String {
        format!("https://fake.test:{}", self.addr.port())
    }

    /// The TOKEN_URL for this fake.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base())
    }

    /// The API_URL for this fake.
    pub fn api_url(&self) -> String {
        format!("{}/2.0", self.base())
    }

    /// The PEM file of the CA that signed the fake's certificate (for CA_BUNDLE).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The setup it runs with.
    pub fn setup(&self) -> Setup {
        self.state.lock().unwrap().setup.clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many requests went to the token endpoint.
    pub fn token_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path == TOKEN_PATH)
            .count()
    }

    /// How many requests went to the API.
    pub fn api_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.starts_with("/2.0/"))
            .count()
    }
}

impl Drop for FakeBitbucket {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn certificates(kind: &Cert) -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "oauth-token-pipe test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("leaf key");
    let names = match kind {
        Cert::WrongName => vec!["bitbucket.example".to_string()],
        // fake.test: a name that is not loopback, for the proxy tests (the test proxy
        // resolves it to 127.0.0.1; the client never resolves it itself).
        _ => vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "fake.test".to_string(),
        ],
    };
    let mut leaf_params = CertificateParams::new(names).expect("leaf params");
    if *kind == Cert::Expired {
        leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "fake bitbucket");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(leaf.der().to_vec()),
                CertificateDer::from(ca_cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server config");
    (ca_cert.pem(), config)
}

async fn serve(
    listener: std::net::TcpListener,
    tls: TlsAcceptor,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                // Bitbucket's servers answer without Nagle delays; without this a TLS flight
                // written in two parts can stall 40 ms on loopback's delayed ACK.
                let _ = socket.set_nodelay(true);
                let tls = tls.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = tls.accept(socket).await {
                        connection(stream, state).await;
                    }
                });
            }
        }
    }
}

/// Serves HTTP/1.1 requests on one connection until the client closes it.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let (reply, git_root) = {
            let mut state = state.lock().unwrap();
            state.requests.push(request.clone());
            (respond(&mut state, &request), state.setup.git_root.clone())
        };
        let reply = match git_root {
            Some(root) if request.path.starts_with("/git/") => {
                let token = state.lock().unwrap().setup.token.clone();
                git_http_backend(&root, &token, &request)
            }
            _ => reply,
        };
        match reply.fault {
            Fault::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Fault::Close => return,
            Fault::ResetMidBody => {
                let bytes = encode(&reply);
                let cut = bytes.len() - reply.body.len() / 2;
                let _ = stream.write_all(&bytes[..cut]).await;
                let _ = stream.flush().await;
                return;
            }
            Fault::Trickle(interval) => {
                let bytes = encode(&reply);
                let head = bytes.len() - reply.body.len();
                if stream.write_all(&bytes[..head]).await.is_err() {
                    return;
                }
                for byte in &bytes[head..] {
                    let _ = stream.flush().await;
                    tokio::time::sleep(interval).await;
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                }
                let _ = stream.flush().await;
                return;
            }
            Fault::Endless => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
                while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                return;
            }
            Fault::Huge(size) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
                );
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let block = vec![b' '; 0x10000];
                let mut sent = 0u64;
                while sent < size {
                    let n = block.len().min((size - sent) as usize);
                    if stream.write_all(&block[..n]).await.is_err() {
                        return;
                    }
                    sent += n as u64;
                }
                let _ = stream.flush().await;
                return;
            }
            Fault::None => {}
        }
        if stream.write_all(&encode(&reply)).await.is_err() {
            return;
        }
        let _ = stream.flush().await;
        if request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
) -> Option<Request> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = parsed.parse(buffer) {
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let method = parsed.method.unwrap_or("").to_owned();
            let path = parsed.path.unwrap_or("").to_owned();
            let chunked = headers
                .iter()
                .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
            if chunked {
                // git sends large pushes chunked: decode chunk by chunk.
                buffer.drain(..head_len);
                let mut body = Vec::new();
                loop {
                    let line_end = loop {
                        if let Some(i) = buffer.windows(2).position(|w| w == b"\r\n") {
                            break i;
                        }
                        if !fill(stream, buffer).await {
                            return None;
                        }
                    };
                    let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
                    let size =
                        usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                            .ok()?;
                    while buffer.len() < line_end + 2 + size + 2 {
                        if !fill(stream, buffer).await {
                            return None;
                        }
                    }
                    body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
                    buffer.drain(..line_end + 2 + size + 2);
                    if size == 0 {
                        return Some(Request {
                            method,
                            path,
                            headers,
                            body,
                        });
                    }
                }
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buffer.len() < head_len + length {
                if !fill(stream, buffer).await {
                    return None;
                }
            }
            let body = buffer[head_len..head_len + length].to_vec();
            buffer.drain(..head_len + length);
            return Some(Request {
                method,
                path,
                headers,
                body,
            });
        }
        if !fill(stream, buffer).await {
            return None;
        }
    }
}

async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn encode(reply: &Reply) -> Vec<u8> {
    let reason = match reply.status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nServer: fake-bitbucket\r\n",
        reply.status
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut out;
    if reply.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        out = head.into_bytes();
        for chunk in reply.body.chunks(64 * 1024) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
        out = head.into_bytes();
        out.extend_from_slice(&reply.body);
    }
    out
}

fn respond(state: &mut State, request: &Request) -> Reply {
    if request.path == TOKEN_PATH {
        if let Some(reply) = state.token_replies.pop_front() {
            return reply;
        }
        return token_endpoint(&state.setup, request);
    }
    if request.path.starts_with("/2.0/") {
        if let Some(reply) = state.api_replies.pop_front() {
            return reply;
        }
        return api(&state.setup, request);
    }
    Reply::json(
        404,
        r#"{"type": "error", "error": {"message": "Resource not found", "detail": "There is no API hosted at this URL."}}"#,
    )
}

fn token_endpoint(setup: &Setup, request: &Request) -> Reply {
    if request.method != "POST" {
        return Reply::json(
            405,
            r#"{"error": "invalid_request", "error_description": "Method not allowed"}"#,
        );
    }
    let Some(basic) = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
    else {
        return Reply::json(400, MISSING_CREDENTIALS);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic)
        .ok()
        .and_then(|d| String::from_utf8(d).ok());
    if decoded.as_deref() != Some(&format!("{}:{}", setup.client_id, setup.client_secret)) {
        return Reply::json(400, BAD_CREDENTIALS);
    }
    let form = request
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form || request.body != b"grant_type=client_credentials" {
        return Reply::json(400, NO_GRANT_TYPE);
    }
    let expires = setup
        .expires_in
        .as_ref()
        .map(|e| format!(", \"expires_in\": {e}"))
        .unwrap_or_default();
    Reply::json(
        200,
        &format!(
            r#"{{"access_token": "{}", "{}": "{}"{expires}, "token_type": "bearer", "state": "client_credentials"}}"#,
            setup.token, setup.scope_field, setup.scopes
        ),
    )
}

fn api(setup: &Setup, request: &Request) -> Reply {
    let bearer = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "));
    if bearer != Some(setup.token.as_str()) {
        return Reply::json(401, INVALID_TOKEN);
    }
    if request.path.split('?').next() == Some("/2.0/workspaces") {
        return Reply::json(410, GONE);
    }
    let path = request.path.split('?').next().unwrap_or_default();
    let Some(name) = path.strip_prefix("/2.0/repositories/") else {
        return Reply::json(
            404,
            r#"{"type": "error", "error": {"message": "Resource not found"}}"#,
        );
    };
    if !setup.repositories.iter().any(|r| r == name) {
        return Reply::json(404, NO_REPOSITORY);
    }
    Reply::json(
        200,
        &format!(
            r#"{{"type": "repository", "full_name": "{name}", "is_private": true, "scm": "git"}}"#
        ),
    )
    .header("X-OAuth-Scopes", &setup.scopes.replace(' ', ", "))
    .header("X-Accepted-OAuth-Scopes", "repository")
}

/// Git's smart HTTP protocol, as Bitbucket serves it to `x-token-auth:<token>`: anything
/// else gets a 401 with a Basic challenge (which makes git ask its credential helper); the
/// rest is `git http-backend` run as a CGI program.
fn git_http_backend(root: &Path, token: &str, request: &Request) -> Reply {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-token-auth:{token}"))
    );
    if request.header("authorization") != Some(expected.as_str()) {
        return Reply::text(401, "Unauthorized")
            .header("WWW-Authenticate", "Basic realm=\"Bitbucket.org HTTP\"");
    }
    let target = request.path.strip_prefix("/git").unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut cgi = std::process::Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", root)
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_USER", "x-token-auth")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (header, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = request.header(header) {
            cgi.env(variable, value);
        }
    }
    let mut child = cgi.spawn().expect("git http-backend");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&request.body);
    }
    let output = child.wait_with_output().expect("git http-backend output");
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            output
                .stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        });
    let Some((end, gap)) = split else {
        return Reply::text(500, "git http-backend gave no headers");
    };
    let mut reply = Reply {
        status: 200,
        body: output.stdout[end + gap..].to_vec(),
        ..Reply::default()
    };
    for line in String::from_utf8_lossy(&output.stdout[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("status") {
            reply.status = value
                .trim()
                .split(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
        } else {
            reply
                .headers
                .push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    reply
}
