//! Git's smart HTTP protocol, for the credential-helper tests: the fake serves bare
//! repositories with `git http-backend` to whoever authenticates as Bitbucket expects.

use std::path::Path;

use base64::Engine;

use super::Request;
use super::reply::Reply;

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
