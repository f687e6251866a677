//! A fake Bitbucket Cloud: a real HTTPS server on 127.0.0.1:0 with a CA made at run time.
//!
//! It runs on its own thread and its own current-thread runtime, so a test can block on the
//! binary while the server answers. Unscripted, it behaves like Bitbucket ([`bitbucket`]).
//! Scripted replies (per endpoint, consumed in order, [`reply`]) override that for error and
//! fault cases. Every request is recorded so tests assert on what the binary actually sent.
//!
//! Dropping the fake fails the test (as xh's `tests/server/mod.rs` does) when a scripted
//! reply was never used, since the test then proved less than it says, or when a handler
//! panicked, since the client may have survived that by retrying.
//!
//! - `mod.rs`: [`FakeBitbucket`] (start, URLs, recorded requests, the drop check), [`Setup`].
//! - `tls.rs`: the run's CA and the certificates the fake presents ([`Cert`]).
//! - `reply.rs`: the scripted queue of [`Reply`]s.
//! - `../server/`: what the four fakes share: the CA, the accept loop on its own thread,
//!   request parsing ([`Request`]), writing a [`Reply`] (with its [`Fault`]), the drop check.
//! - `bitbucket.rs`: the token endpoint and the API, with Bitbucket's exact bodies.
//! - `git.rs`: git's smart HTTP through `git http-backend`, for the credential helper.
//! - `tests.rs`: the drop check, proved.

mod bitbucket;
mod git;
mod reply;
#[path = "../server/mod.rs"]
pub mod server;
#[cfg(test)]
mod tests;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

// Bitbucket's exact bodies, TOKEN_PATH and jwt_like, as `fake::EXPIRED` etc.: a glob, so
// that a body no test names yet stays reachable without an unused-import warning.
pub use bitbucket::*;
pub use reply::{Fault, Reply};
pub use server::http::Request;
use server::lock;
pub use tls::Cert;

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
    /// Scripted answers for the token endpoint, used first; a fake dropped with one unused
    /// fails the test.
    pub token_replies: Vec<Reply>,
    /// Scripted answers for `/2.0/...`, used first; a fake dropped with one unused fails
    /// the test.
    pub api_replies: Vec<Reply>,
    /// The certificate presented.
    pub cert: Cert,
    /// Serve the bare repositories under this folder at `/git/...` with `git http-backend`,
    /// to anyone who authenticates as `x-token-auth` with the issued token.
    pub git_root: Option<PathBuf>,
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

/// What the server thread and the test share.
struct State {
    setup: Setup,
    token_replies: reply::Script,
    api_replies: reply::Script,
    requests: Vec<Request>,
}

/// A running fake Bitbucket. Dropping it stops the server and checks that every scripted
/// reply was used and no handler panicked.
pub struct FakeBitbucket {
    server: server::http::Server,
    state: Arc<Mutex<State>>,
}

impl FakeBitbucket {
    /// Starts a fake with the default setup.
    pub fn start_default() -> FakeBitbucket {
        FakeBitbucket::start(Setup::default())
    }

    /// Starts a fake that behaves as `setup` says.
    pub fn start(setup: Setup) -> FakeBitbucket {
        let tls = tls::certificates(&setup.cert);
        let state = Arc::new(Mutex::new(State {
            token_replies: reply::Script::new(&setup.token_replies),
            api_replies: reply::Script::new(&setup.api_replies),
            setup,
            requests: Vec::new(),
        }));
        let handler_state = state.clone();
        let server =
            server::http::Server::start("bitbucket", tls, Some("fake-bitbucket"), move |request| {
                bitbucket::handle(&handler_state, request)
            });
        FakeBitbucket { server, state }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.server.base()
    }

    /// The fake under the name `fake.test`, which only the test proxy resolves.
    pub fn base_by_name(&self) -> String {
        format!("https://fake.test:{}", self.server.port())
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
        self.server.ca_file()
    }

    /// The setup it runs with.
    pub fn setup(&self) -> Setup {
        lock(&self.state).setup.clone()
    }

    /// How many TLS connections it accepted.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
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
        let panics = self.server.stop();
        let state = lock(&self.state);
        server::check::report(
            "Bitbucket",
            [
                server::check::unused("token endpoint", &state.token_replies.unused()),
                server::check::unused("API", &state.api_replies.unused()),
            ],
            panics,
            state
                .requests
                .iter()
                .map(|r| format!("{} {}", r.method, r.path)),
        );
    }
}
