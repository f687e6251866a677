//! A fake GitHub REST API for GitHub App installation tokens: real HTTPS on 127.0.0.1:0
//! with its own CA made at run time, on its own thread and runtime, served under `/api/v3`
//! as GHES serves it (so the git host is the API's host, as on GHES).
//!
//! It checks the app's JWT the way GitHub does (providers.md §1.1): an RS256 signature by
//! the app's key, `iss` a JSON string naming the app, `exp − iat ≤ 600`, `iat` not in its
//! future and `exp` not in its past — by its own clock, which a test can set off from the
//! real one, and which it reports in every `Date` header. It answers with GitHub's exact
//! bodies, mints classic (`ghs_` + 36) or 2026 stateless (~520 characters, two dots) tokens,
//! serves `/installation/repositories`, `DELETE /installation/token`, and git over smart
//! HTTP (`git http-backend`) to `x-access-token:<token>`. It records every request with
//! the connection it came on, and on drop fails the test when a scripted reply was never
//! used or a handler panicked. The server itself is the shared [`crate::support::server`].
//!
//! [`FakeGitHub::start_github_com`] starts it as github.com itself, for the README's examples
//! run word for word (tests/cases/github_app_examples.rs): on port 443 of a loopback address
//! of its own, with a certificate for `github.com`, `api.github.com` and the release-asset
//! host, routed by `Host` as GitHub is: the REST API at the root of `api.github.com` (also
//! `POST /repos/{owner}/{repo}/pulls`), git's smart HTTP at `github.com/OWNER/REPO.git` (the
//! token's repositories and `contents` permission checked), and release downloads at
//! `github.com/OWNER/REPO/releases/download/TAG/NAME`, redirected to the asset host.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::support::server::{self, lock, reply::Fault, reply::Reply};

/// The API's path prefix (GHES: `https://HOST/api/v3`).
pub const API_PREFIX: &str = "/api/v3";
/// The app's client ID and numeric ID; either is a valid `iss`.
pub const CLIENT_ID: &str = "Iv23liFakeApp0001";
/// The numeric app ID.
pub const APP_ID: u64 = 424242;
/// The app's slug.
pub const APP_SLUG: &str = "fake-ci-app";
/// Where github.com redirects a release download to (GitHub's asset host since 2025).
pub const ASSET_HOST: &str = "release-assets.githubusercontent.com";

/// GitHub's 401 for a JWT it cannot verify (CGAT#153).
pub const DECODE_ERROR: &str = r#"{"message":"A JSON web token could not be decoded","documentation_url":"https://docs.github.com/rest"}"#;
/// GitHub's 401 for `exp` too far ahead (rocq-prover/bot#204).
pub const EXP_TOO_FAR: &str = r#"{"message":"'Expiration time' claim ('exp') is too far in the future","documentation_url":"https://docs.github.com/rest"}"#;
/// GitHub's 401 for `iat` in its future (probot/probot#326).
pub const IAT_FUTURE: &str = r#"{"message":"'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued","documentation_url":"https://docs.github.com/rest"}"#;
/// GitHub's 401 for `exp` already past (sigmavirus24/github3.py#1050).
pub const EXP_PAST: &str = r#"{"message":"'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires","documentation_url":"https://docs.github.com/rest"}"#;
/// The 404 for an app not installed (ministryofjustice/operations-engineering#4721).
pub const NOT_INSTALLED: &str = r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app","status":"404"}"#;
/// The 422 for a repository the installation cannot reach (external-secrets fixture).
pub const REPO_NOT_ACCESSIBLE: &str = r#"{"message":"There is at least one repository that does not exist or is not accessible to the parent installation.","documentation_url":"https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app","status":"422"}"#;
/// The 422 for permissions beyond the app's grant (workflow-application-token-action#48).
pub const PERMISSIONS_NOT_GRANTED: &str = r#"{"message":"The permissions requested are not granted to this installation.","documentation_url":"https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app","status":"422"}"#;
/// 401 for an unknown, expired or revoked token (CGAT#72).
pub const BAD_CREDENTIALS: &str = r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}"#;

/// The token formats GitHub issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormat {
    /// `ghs_` and 36 characters.
    Classic,
    /// The 2026 stateless form, `ghs_APPID_<JWT>`, ~520 characters with two dots.
    Stateless,
}

/// A scripted reply for requests whose `METHOD /path` (after the API prefix) starts with
/// `route`, used once, before the fake's own behaviour.
#[derive(Clone, Debug)]
pub struct Scripted {
    /// E.g. `POST /app/installations`.
    pub route: String,
    /// Status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Socket-level misbehaviour (the fault matrix): `Fault::Huge` and `Fault::Endless`
    /// replace the status and body with their own.
    pub fault: Fault,
}

/// A scripted reply.
pub fn script(route: &str, status: u16, body: &str) -> Scripted {
    Scripted {
        route: route.to_owned(),
        status,
        body: body.to_owned(),
        headers: Vec::new(),
        fault: Fault::None,
    }
}

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Which accounts have the app installed: (owner, installation id, repositories).
    pub installations: Vec<(String, u64, Vec<String>)>,
    /// The permissions the app was granted.
    pub granted: Vec<(String, String)>,
    /// Seconds GitHub's clock is ahead of the real one (negative: behind).
    pub skew: i64,
    /// The format of minted tokens.
    pub format: TokenFormat,
    /// Validation calls answered 401 right after a mint (replication lag).
    pub lag: usize,
    /// Scripted replies.
    pub scripted: Vec<Scripted>,
    /// Serve the bare repositories in this folder at `/git/...` (as github.com:
    /// `OWNER/REPO.git` here is served at `https://github.com/OWNER/REPO.git`).
    pub git_root: Option<PathBuf>,
    /// Files github.com serves at these paths, through a redirect to [`ASSET_HOST`] as
    /// GitHub serves release downloads ([`release`] makes a release's).
    pub downloads: Vec<(String, Vec<u8>)>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            installations: vec![(
                "acme".into(),
                31337,
                vec!["widgets".into(), "gadgets".into(), "mirror".into()],
            )],
            granted: vec![
                ("contents".into(), "write".into()),
                ("metadata".into(), "read".into()),
                ("pull_requests".into(), "write".into()),
            ],
            skew: 0,
            format: TokenFormat::Classic,
            lag: 0,
            scripted: Vec::new(),
            git_root: None,
            downloads: Vec::new(),
        }
    }
}

/// What the fake received.
#[derive(Clone, Debug)]
pub struct Request {
    /// GET, POST...
    pub method: String,
    /// Path and query, without the API prefix.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Which connection it came on (0, 1, ...).
    pub connection: usize,
    /// The `Host` it was sent to, without a port (`api.github.com`, `github.com`, ...).
    pub host: String,
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

/// A pull request the fake's `POST /repos/{owner}/{repo}/pulls` opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    /// `owner/repo`.
    pub repository: String,
    /// Its number, from 1 in each fake.
    pub number: u64,
    /// Its title.
    pub title: String,
    /// The head branch (without an `owner:` prefix).
    pub head: String,
    /// The base branch.
    pub base: String,
    /// The head branch's commit when it was opened.
    pub head_sha: String,
    /// The token that opened it.
    pub token: String,
}

struct Minted {
    token: String,
    installation: u64,
    repositories: Vec<String>,
    revoked: bool,
    /// What the token was granted, as the mint's answer says it.
    permissions: serde_json::Map<String, Value>,
    /// Its `expires_at`, in seconds on the fake's clock.
    expires: i64,
}

struct State {
    setup: Setup,
    scripted: VecDeque<Scripted>,
    requests: Vec<Request>,
    minted: Vec<Minted>,
    jwts: Vec<String>,
    lag_left: usize,
    public_key: Vec<u8>,
    /// The fault of the scripted reply being answered, for [`handle`].
    fault: Fault,
    pulls: Vec<PullRequest>,
}

/// A running fake GitHub. Dropping it stops the server and checks that every scripted reply
/// was used and no handler panicked.
pub struct FakeGitHub {
    server: server::http::Server,
    state: Arc<Mutex<State>>,
}

/// A test-only key fixture (tests/corpus/keys/).
pub fn key(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/corpus/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("key fixture")
}

impl FakeGitHub {
    /// Starts a fake that behaves as `setup` says; the app's key is `app-pkcs1.pem`.
    pub fn start(setup: Setup) -> FakeGitHub {
        let state = new_state(setup);
        let handler_state = state.clone();
        let server = server::http::Server::start(
            "github",
            server::tls::localhost("fake GitHub test CA", Some("fake github")),
            Some("GitHub.com"),
            move |request| handle(&handler_state, request),
        );
        FakeGitHub { server, state }
    }

    /// Starts a fake that is github.com: on port 443 of a loopback address that no other
    /// fake holds (`127.77.X.Y`, [`FakeGitHub::ip`]; port 443 needs root), with a
    /// certificate for [`GITHUB_COM_HOSTS`] by a CA of its own. Its clients reach it by
    /// name through an `/etc/hosts` that maps those names to [`FakeGitHub::ip`].
    pub fn start_github_com(setup: Setup) -> FakeGitHub {
        let state = new_state(setup);
        let handler_state = state.clone();
        let server = server::http::Server::start_on(
            bind_unique_loopback_443(),
            "github-com",
            server::tls::certificates(&server::tls::Names {
                ca: "fake github.com test CA",
                leaf: Some("github.com"),
                hosts: GITHUB_COM_HOSTS,
                expired: false,
            }),
            Some("GitHub.com"),
            move |request| handle(&handler_state, request),
        );
        FakeGitHub { server, state }
    }

    /// The loopback address the fake listens on.
    pub fn ip(&self) -> std::net::IpAddr {
        self.server.addr().ip()
    }

    /// Every pull request opened, in order.
    pub fn pulls(&self) -> Vec<PullRequest> {
        lock(&self.state).pulls.clone()
    }

    /// The permissions `token` was granted (`contents` → `write`, ...).
    pub fn permissions(&self, token: &str) -> Vec<(String, String)> {
        lock(&self.state)
            .minted
            .iter()
            .filter(|m| m.token == token)
            .flat_map(|m| &m.permissions)
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    }
}

/// The names a [`FakeGitHub::start_github_com`] fake answers for.
pub const GITHUB_COM_HOSTS: &[&str] = &["github.com", "api.github.com", ASSET_HOST];

/// A listener on port 443 of `127.77.X.Y`, the first such address free: one per fake, so
/// that tests in parallel (and test processes side by side) never share one. The search
/// starts from the process ID, so two processes rarely even try the same addresses.
fn bind_unique_loopback_443() -> std::net::TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(97);
    let mut last = None;
    for _ in 0..256 {
        // X and Y in 1..=254: no network or broadcast-looking address.
        let n = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % (254 * 254);
        let ip = std::net::Ipv4Addr::new(127, 77, (n / 254 + 1) as u8, (n % 254 + 1) as u8);
        match std::net::TcpListener::bind((ip, 443)) {
            Ok(listener) => return listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => panic!("bind {ip}:443 for the fake github.com: {e}"),
        }
    }
    panic!("no free 127.77.X.Y:443 for the fake github.com: {last:?}");
}

/// The fake's state for `setup`; the app's key is `app-pkcs1.pem`.
fn new_state(setup: Setup) -> Arc<Mutex<State>> {
    let pem = key("app-pkcs1.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).expect("fixture base64");
    let public_key = ring::signature::RsaKeyPair::from_der(&der)
        .expect("fixture key")
        .public()
        .as_ref()
        .to_vec();
    Arc::new(Mutex::new(State {
        scripted: setup.scripted.iter().cloned().collect(),
        lag_left: 0,
        setup,
        requests: Vec::new(),
        minted: Vec::new(),
        jwts: Vec::new(),
        public_key,
        fault: Fault::None,
        pulls: Vec::new(),
    }))
}

impl FakeGitHub {
    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.server.base()
    }

    /// GITHUB_API_URL for this fake.
    pub fn api_url(&self) -> String {
        format!("{}{API_PREFIX}", self.base())
    }

    /// The git host (`127.0.0.1:PORT`), which the program derives from the API URL.
    pub fn git_host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// The CA that signed the fake's certificate (for CA_BUNDLE and GIT_SSL_CAINFO).
    pub fn ca_file(&self) -> &Path {
        self.server.ca_file()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// `METHOD path` of every request, in order.
    pub fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// How many TLS connections were accepted.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Every token minted, in order.
    pub fn tokens(&self) -> Vec<String> {
        lock(&self.state)
            .minted
            .iter()
            .map(|m| m.token.clone())
            .collect()
    }

    /// Whether `token` was revoked.
    pub fn revoked(&self, token: &str) -> bool {
        lock(&self.state)
            .minted
            .iter()
            .any(|m| m.token == token && m.revoked)
    }

    /// Every app JWT received.
    pub fn jwts(&self) -> Vec<String> {
        lock(&self.state).jwts.clone()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        let panics = self.server.stop();
        let state = lock(&self.state);
        let unused: Vec<String> = state.scripted.iter().map(|s| s.route.clone()).collect();
        server::check::report(
            "GitHub",
            [server::check::unused("API", &unused)],
            panics,
            state
                .requests
                .iter()
                .map(|r| format!("{} {} (connection {})", r.method, r.path, r.connection)),
        );
    }
}

/// Records `request` (its path without the API prefix, its connection counted from 0) and
/// answers it, with GitHub's `Date` by the fake's own clock.
fn handle(state: &Mutex<State>, request: &server::http::Request) -> Reply {
    let path = &request.path;
    let host = request.header("host").unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let request = Request {
        method: request.method.clone(),
        path: path.strip_prefix(API_PREFIX).unwrap_or(path).to_owned(),
        headers: request.headers.clone(),
        body: request.body.clone(),
        connection: request.connection - 1,
        host: host.to_ascii_lowercase(),
    };
    let mut state = lock(state);
    state.requests.push(request.clone());
    let (status, headers, body) = respond(&mut state, &request);
    let now = server_now(&state.setup);
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now as u64));
    let mut reply = Reply {
        status,
        body,
        ..Reply::default()
    }
    .header("Date", &date);
    reply.headers.extend(headers);
    reply.fault = std::mem::take(&mut state.fault);
    reply
}

fn server_now(setup: &Setup) -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + setup.skew
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn json_answer(status: u16, body: &str) -> Answer {
    (
        status,
        vec![(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        )],
        body.as_bytes().to_vec(),
    )
}

/// A hostile GitHub (the fault matrix's echo rows): a scripted reply's body and header
/// values may say `{credential}` (what this request's Authorization carried after its
/// scheme: the app's JWT, or a token), `{authorization}` (that header whole), `{token}`
/// (the last token minted) and `{git_basic}` (the base64 of `x-access-token:{token}`, as
/// git's Basic header carries it); they are filled in when the reply is sent.
fn echo(state: &State, request: &Request, mut s: Scripted) -> Scripted {
    let authorization = request.header("authorization").unwrap_or_default();
    let credential = authorization.split_once(' ').map_or("", |(_, c)| c);
    let token = state.minted.last().map_or("", |m| m.token.as_str());
    let git_basic = STANDARD.encode(format!("x-access-token:{token}"));
    let fill = |text: &str| {
        text.replace("{credential}", credential)
            .replace("{authorization}", authorization)
            .replace("{token}", token)
            .replace("{git_basic}", &git_basic)
    };
    s.body = fill(&s.body);
    for (_, value) in &mut s.headers {
        *value = fill(value);
    }
    s
}

fn respond(state: &mut State, request: &Request) -> Answer {
    let line = format!("{} {}", request.method, request.path);
    if let Some(i) = state
        .scripted
        .iter()
        .position(|s| line.starts_with(&s.route))
    {
        let s = state.scripted.remove(i).expect("found");
        let s = echo(state, request, s);
        state.fault = s.fault;
        let (status, mut headers, body) = json_answer(s.status, &s.body);
        headers.extend(s.headers);
        return (status, headers, body);
    }
    let path = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (request.method.as_str(), parts.as_slice()) {
        _ if request.host == "github.com" => web(state, request),
        _ if request.host == ASSET_HOST => asset(state, &path),
        (_, ["git", ..]) => git(state, request),
        ("POST", ["repos", owner, repo, "pulls"]) => create_pull(state, request, owner, repo),
        ("GET", ["repos", owner, repo, "installation"]) => as_app(state, request, |state| {
            installation(state, |o, repos| {
                o.eq_ignore_ascii_case(owner) && repos.iter().any(|r| r.eq_ignore_ascii_case(repo))
            })
        }),
        ("GET", ["users", owner, "installation"]) => as_app(state, request, |state| {
            installation(state, |o, _| o.eq_ignore_ascii_case(owner))
        }),
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let body = request.body.clone();
            as_app(state, request, move |state| mint(state, id, &body))
        }
        ("GET", ["installation", "repositories"]) => match bearer_token(state, request) {
            Some(i) if state.lag_left > 0 => {
                let _ = i;
                state.lag_left -= 1;
                json_answer(401, BAD_CREDENTIALS)
            }
            Some(i) => {
                let repos = &state.minted[i].repositories;
                let list: Vec<Value> = repos
                    .iter()
                    .take(1)
                    .map(|r| json!({"name": r, "full_name": format!("acme/{r}")}))
                    .collect();
                json_answer(200, &json!({"total_count": repos.len(), "repository_selection": "selected", "repositories": list}).to_string())
            }
            None => json_answer(401, BAD_CREDENTIALS),
        },
        ("DELETE", ["installation", "token"]) => match bearer_token(state, request) {
            Some(i) => {
                state.minted[i].revoked = true;
                (204, Vec::new(), Vec::new())
            }
            None => json_answer(401, BAD_CREDENTIALS),
        },
        _ => json_answer(
            404,
            r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest","status":"404"}"#,
        ),
    }
}

/// Runs `then` if the request carries a valid app JWT, else answers as GitHub does.
fn as_app(state: &mut State, request: &Request, then: impl FnOnce(&mut State) -> Answer) -> Answer {
    let Some(jwt) = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    else {
        return json_answer(
            401,
            r#"{"message":"A JSON web token could not be decoded","documentation_url":"https://docs.github.com/rest"}"#,
        );
    };
    state.jwts.push(jwt.to_owned());
    match verify_jwt(jwt, &state.public_key, server_now(&state.setup)) {
        Ok(()) => then(state),
        Err(body) => json_answer(401, body),
    }
}

/// GitHub's checks of an app JWT, each failure with GitHub's own body.
fn verify_jwt(jwt: &str, public_key: &[u8], now: i64) -> Result<(), &'static str> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(DECODE_ERROR);
    };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).ok();
    let header: Value = decode(header)
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(DECODE_ERROR)?;
    let claims: Value = decode(claims)
        .and_then(|c| serde_json::from_slice(&c).ok())
        .ok_or(DECODE_ERROR)?;
    let signature = decode(signature).ok_or(DECODE_ERROR)?;
    if header["alg"] != "RS256" {
        return Err(DECODE_ERROR);
    }
    let input = &jwt[..jwt.rfind('.').expect("three parts")];
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    )
    .verify(input.as_bytes(), &signature)
    .map_err(|_| DECODE_ERROR)?;
    // iss must be a string naming this app (RFC 7519 StringOrURI).
    match claims["iss"].as_str() {
        Some(iss) if iss == CLIENT_ID || iss == APP_ID.to_string() => {}
        _ => return Err(DECODE_ERROR),
    }
    let iat = claims["iat"].as_i64().ok_or(IAT_FUTURE)?;
    let exp = claims["exp"].as_i64().ok_or(EXP_PAST)?;
    if iat > now {
        return Err(IAT_FUTURE);
    }
    if exp <= now {
        return Err(EXP_PAST);
    }
    if exp - iat > 600 || exp > now + 600 {
        return Err(EXP_TOO_FAR);
    }
    Ok(())
}

fn installation(state: &mut State, matches: impl Fn(&str, &[String]) -> bool) -> Answer {
    match state.setup.installations.iter().find(|(o, _, repos)| matches(o, repos)) {
        Some((owner, id, _)) => json_answer(
            200,
            &json!({"id": id, "app_id": APP_ID, "app_slug": APP_SLUG, "account": {"login": owner, "type": "Organization"}, "repository_selection": "selected", "permissions": {}}).to_string(),
        ),
        None => json_answer(404, NOT_INSTALLED),
    }
}

fn mint(state: &mut State, id: u64, body: &[u8]) -> Answer {
    let Some((_, _, repos)) = state
        .setup
        .installations
        .iter()
        .find(|(_, i, _)| *i == id)
        .cloned()
    else {
        return json_answer(
            404,
            r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app","status":"404"}"#,
        );
    };
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    };
    let asked: Vec<String> = body["repositories"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if asked
        .iter()
        .any(|a| !repos.iter().any(|r| r.eq_ignore_ascii_case(a)))
    {
        return json_answer(422, REPO_NOT_ACCESSIBLE);
    }
    let rank = |l: &str| ["read", "write", "admin"].iter().position(|x| *x == l);
    let mut permissions = serde_json::Map::new();
    match body["permissions"].as_object() {
        Some(asked) => {
            for (name, level) in asked {
                let granted = state.setup.granted.iter().find(|(n, _)| n == name);
                match (granted, level.as_str()) {
                    (Some((_, g)), Some(l)) if rank(l).is_some() && rank(l) <= rank(g) => {
                        permissions.insert(name.clone(), Value::from(l));
                    }
                    _ => return json_answer(422, PERMISSIONS_NOT_GRANTED),
                }
            }
            permissions.insert("metadata".into(), "read".into());
        }
        None => {
            for (name, level) in &state.setup.granted {
                permissions.insert(name.clone(), Value::from(level.as_str()));
            }
        }
    }
    let covered = if asked.is_empty() { repos } else { asked };
    let n = state.minted.len();
    let token = match state.setup.format {
        TokenFormat::Classic => {
            let mut t = format!("ghs_{n:02}{:016x}", fastrand::u64(..));
            while t.len() < 40 {
                t.push(char::from(b'A' + fastrand::u8(..26)));
            }
            t
        }
        TokenFormat::Stateless => {
            let claims = URL_SAFE_NO_PAD.encode(
                json!({"iid": id, "n": n, "pad": "p".repeat(180), "nonce": fastrand::u64(..)})
                    .to_string(),
            );
            let signature =
                URL_SAFE_NO_PAD.encode((0..160).map(|_| fastrand::u8(..)).collect::<Vec<u8>>());
            format!("ghs_{APP_ID}_eyJhbGciOiJSUzI1NiJ9.{claims}.{signature}")
        }
    };
    let expires_at = server_now(&state.setup) + 3600;
    let expires = UNIX_EPOCH + Duration::from_secs(expires_at as u64);
    state.minted.push(Minted {
        token: token.clone(),
        installation: id,
        repositories: covered.clone(),
        revoked: false,
        permissions: permissions.clone(),
        expires: expires_at,
    });
    state.lag_left = state.setup.lag;
    let repositories: Vec<Value> = covered
        .iter()
        .map(|r| json!({"name": r, "full_name": format!("acme/{r}")}))
        .collect();
    json_answer(
        201,
        &json!({
            "token": token,
            "expires_at": humantime::format_rfc3339_seconds(expires).to_string(),
            "permissions": permissions,
            "repository_selection": "selected",
            "repositories": repositories,
        })
        .to_string(),
    )
}

/// The index of the live token a request carries (Bearer, `token` or git's Basic).
fn bearer_token(state: &State, request: &Request) -> Option<usize> {
    let auth = request.header("authorization")?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
        .map(str::to_owned)
        .or_else(|| {
            let decoded = STANDARD.decode(auth.strip_prefix("Basic ")?).ok()?;
            String::from_utf8(decoded)
                .ok()?
                .strip_prefix("x-access-token:")
                .map(str::to_owned)
        })?;
    let now = server_now(&state.setup);
    state
        .minted
        .iter()
        .position(|m| m.token == token && !m.revoked && m.installation > 0 && m.expires > now)
}

/// Git's smart HTTP as GitHub serves it to `x-access-token:<token>`: anything else gets a
/// 401 with a Basic challenge, which makes git ask its credential helper.
fn git(state: &State, request: &Request) -> Answer {
    let Some(root) = state.setup.git_root.clone() else {
        return json_answer(404, "{}");
    };
    if bearer_token(state, request).is_none() {
        return (
            401,
            vec![("WWW-Authenticate".into(), "Basic realm=\"GitHub\"".into())],
            b"Unauthorized".to_vec(),
        );
    }
    let reply = server::git::http_backend(
        &root,
        "x-access-token",
        &request.method,
        request.path.strip_prefix("/git").unwrap_or_default(),
        &request.headers,
        &request.body,
    );
    (reply.status, reply.headers, reply.body)
}

/// The downloads of release `tag` of oauth-token-pipe/oauth-token-pipe on github.com (for
/// [`Setup::downloads`]): each asset, and `SHA256SUMS` naming them all in `sha256sum`'s
/// format, as scripts/release.sh writes it.
pub fn release(tag: &str, assets: &[(&str, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let sums: String = assets
        .iter()
        .map(|(name, bytes)| {
            let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}  {name}\n")
        })
        .collect();
    let path =
        |name: &str| format!("/oauth-token-pipe/oauth-token-pipe/releases/download/{tag}/{name}");
    assets
        .iter()
        .map(|(name, bytes)| (path(name), bytes.clone()))
        .chain([(path("SHA256SUMS"), sums.into_bytes())])
        .collect()
}

fn text_answer(status: u16, text: &str) -> Answer {
    (
        status,
        vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        text.as_bytes().to_vec(),
    )
}

/// github.com itself: a release download is a 302 to [`ASSET_HOST`] (so a client that does
/// not follow redirects gets no file, as from GitHub); `/OWNER/REPO.git/...` is git.
fn web(state: &State, request: &Request) -> Answer {
    let path = request.path.split('?').next().unwrap_or_default();
    if let Some(i) = state.setup.downloads.iter().position(|(p, _)| p == path) {
        let name = path.rsplit('/').next().unwrap_or_default();
        let location = format!(
            "https://{ASSET_HOST}/github-production-release-asset/{i}/{name}?response-content-disposition=attachment%3B%20filename%3D{name}&response-content-type=application%2Foctet-stream"
        );
        return (302, vec![("Location".into(), location)], Vec::new());
    }
    match path
        .trim_start_matches('/')
        .splitn(3, '/')
        .collect::<Vec<_>>()[..]
    {
        [owner, repo, _] if repo.ends_with(".git") => {
            git_at(state, request, owner, repo.trim_end_matches(".git"))
        }
        _ => text_answer(404, "Not Found"),
    }
}

/// The asset host: the file a [`web`] redirect named.
fn asset(state: &State, path: &str) -> Answer {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let found = match parts[..] {
        ["github-production-release-asset", i, name] => i
            .parse::<usize>()
            .ok()
            .and_then(|i| state.setup.downloads.get(i))
            .filter(|(p, _)| p.rsplit('/').next() == Some(name)),
        _ => None,
    };
    match found {
        Some((_, bytes)) => (
            200,
            vec![("Content-Type".into(), "application/octet-stream".into())],
            bytes.clone(),
        ),
        None => text_answer(404, "The specified blob does not exist."),
    }
}

/// The installation's account of `minted`.
fn owner_of(state: &State, minted: &Minted) -> Option<String> {
    state
        .setup
        .installations
        .iter()
        .find(|(_, id, _)| *id == minted.installation)
        .map(|(owner, _, _)| owner.clone())
}

/// Whether token `i` may see `owner/repo`: its installation's account and one of the
/// repositories it was minted for.
fn covers(state: &State, i: usize, owner: &str, repo: &str) -> bool {
    let minted = &state.minted[i];
    owner_of(state, minted).is_some_and(|o| o.eq_ignore_ascii_case(owner))
        && minted
            .repositories
            .iter()
            .any(|r| r.eq_ignore_ascii_case(repo))
}

fn granted<'a>(minted: &'a Minted, permission: &str) -> Option<&'a str> {
    minted.permissions.get(permission).and_then(Value::as_str)
}

/// `https://github.com/OWNER/REPO.git` as GitHub serves it to an installation token: no or
/// an unknown credential gets a 401 Basic challenge (git then asks its credential helper); a
/// repository outside the token's gets GitHub's "Repository not found."; a push needs
/// `contents: write`. The bare repository is `git_root/OWNER/REPO.git`.
fn git_at(state: &State, request: &Request, owner: &str, repo: &str) -> Answer {
    let Some(root) = state.setup.git_root.clone() else {
        return text_answer(404, "Repository not found.\n");
    };
    let Some(i) = bearer_token(state, request) else {
        return (
            401,
            vec![("WWW-Authenticate".into(), "Basic realm=\"GitHub\"".into())],
            b"Unauthorized".to_vec(),
        );
    };
    if !covers(state, i, owner, repo) {
        return text_answer(404, "Repository not found.\n");
    }
    let pushing = request.path.contains("git-receive-pack");
    if pushing && granted(&state.minted[i], "contents") != Some("write") {
        return text_answer(
            403,
            &format!("Permission to {owner}/{repo}.git denied to {APP_SLUG}[bot].\n"),
        );
    }
    let reply = server::git::http_backend(
        &root,
        "x-access-token",
        &request.method,
        &request.path,
        &request.headers,
        &request.body,
    );
    (reply.status, reply.headers, reply.body)
}

/// The commit branch `name` of `repository` (a bare repository) points at, if it exists.
fn branch_sha(repository: &Path, name: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{name}^{{commit}}"))
        .current_dir(repository)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `POST /repos/{owner}/{repo}/pulls` as GitHub answers an installation token: it must be
/// live, cover the repository and hold `pull_requests: write`; `title`, `head` and `base`
/// are required, both branches must exist and `head` must have commits `base` lacks. The
/// 201 body has the fields of GitHub's pull-request object that a client reads.
fn create_pull(state: &mut State, request: &Request, owner: &str, repo: &str) -> Answer {
    const DOCS: &str = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";
    let invalid = |errors: Value| {
        json_answer(
            422,
            &json!({"message": "Validation Failed", "errors": errors, "documentation_url": DOCS, "status": "422"}).to_string(),
        )
    };
    let Some(i) = bearer_token(state, request) else {
        return json_answer(401, BAD_CREDENTIALS);
    };
    if !covers(state, i, owner, repo) {
        return json_answer(
            404,
            &json!({"message": "Not Found", "documentation_url": DOCS, "status": "404"})
                .to_string(),
        );
    }
    if granted(&state.minted[i], "pull_requests") != Some("write") {
        return json_answer(
            403,
            &json!({"message": "Resource not accessible by integration", "documentation_url": DOCS, "status": "403"}).to_string(),
        );
    }
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let field = |name: &str| body[name].as_str().map(str::to_owned);
    let (Some(title), Some(head), Some(base)) = (field("title"), field("head"), field("base"))
    else {
        return json_answer(
            422,
            &json!({"message": "Invalid request.\n\n\"title\", \"head\" and \"base\" are required.", "documentation_url": DOCS, "status": "422"}).to_string(),
        );
    };
    // `head` may name the owner too (`acme:branch`).
    let head = head
        .split_once(':')
        .map_or(head.as_str(), |(_, b)| b)
        .to_owned();
    let repository = state
        .setup
        .git_root
        .clone()
        .unwrap_or_default()
        .join(owner)
        .join(format!("{repo}.git"));
    let Some(head_sha) = branch_sha(&repository, &head) else {
        return invalid(json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]));
    };
    let Some(base_sha) = branch_sha(&repository, &base) else {
        return invalid(json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]));
    };
    let ahead = std::process::Command::new("git")
        .args(["rev-list", "--count", &format!("{base_sha}..{head_sha}")])
        .current_dir(&repository)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if ahead == "0" || ahead.is_empty() {
        return invalid(
            json!([{"resource": "PullRequest", "code": "custom", "message": format!("No commits between {base} and {head}")}]),
        );
    }
    let number = state.pulls.len() as u64 + 1;
    let full = format!("{owner}/{repo}");
    state.pulls.push(PullRequest {
        repository: full.clone(),
        number,
        title: title.clone(),
        head: head.clone(),
        base: base.clone(),
        head_sha: head_sha.clone(),
        token: state.minted[i].token.clone(),
    });
    let api = format!("https://api.github.com/repos/{full}");
    let html = format!("https://github.com/{full}/pull/{number}");
    let now = humantime::format_rfc3339_seconds(
        UNIX_EPOCH + Duration::from_secs(server_now(&state.setup) as u64),
    )
    .to_string();
    let side = |name: &str, sha: &str| json!({"label": format!("{owner}:{name}"), "ref": name, "sha": sha, "repo": {"name": repo, "full_name": full, "private": true}});
    let (status, mut headers, body) = json_answer(
        201,
        &json!({
            "url": format!("{api}/pulls/{number}"),
            "id": 1_000_000 + number,
            "node_id": format!("PR_kwDOFake{number:04}"),
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "issue_url": format!("{api}/issues/{number}"),
            "number": number,
            "state": "open",
            "locked": false,
            "title": title,
            "user": {"login": format!("{APP_SLUG}[bot]"), "type": "Bot", "html_url": format!("https://github.com/apps/{APP_SLUG}")},
            "body": body["body"],
            "created_at": now,
            "updated_at": now,
            "closed_at": null,
            "merged_at": null,
            "merge_commit_sha": null,
            "draft": body["draft"].as_bool().unwrap_or(false),
            "head": side(&head, &head_sha),
            "base": side(&base, &base_sha),
            "author_association": "NONE",
            "merged": false,
            "mergeable": null,
            "commits": ahead.parse::<u64>().unwrap_or(0),
        })
        .to_string(),
    );
    headers.push(("Location".into(), format!("{api}/pulls/{number}")));
    (status, headers, body)
}
