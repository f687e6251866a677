//! Git's smart HTTP protocol, for the credential-helper tests: the fake serves bare
//! repositories with `git http-backend` ([`super::server::git`]) to whoever authenticates as
//! Bitbucket expects.

use std::path::Path;

use base64::Engine;

use super::Request;
use super::reply::Reply;
use super::server;

/// Git's smart HTTP protocol, as Bitbucket serves it to `x-token-auth:<token>`: anything
/// else gets a 401 with a Basic challenge (which makes git ask its credential helper); the
/// rest is `git http-backend` run as a CGI program.
pub(super) fn http_backend(root: &Path, token: &str, request: &Request) -> Reply {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-token-auth:{token}"))
    );
    if request.header("authorization") != Some(expected.as_str()) {
        return Reply::text(401, "Unauthorized")
            .header("WWW-Authenticate", "Basic realm=\"Bitbucket.org HTTP\"");
    }
    server::git::http_backend(
        root,
        "x-token-auth",
        &request.method,
        request.path.strip_prefix("/git").unwrap_or_default(),
        &request.headers,
        &request.body,
    )
}
