//! Git's smart HTTP protocol, for the credential-helper tests: `git http-backend` run as a
//! CGI program over bare repositories, for a fake that has checked the credentials itself.

use std::path::Path;

use super::reply::Reply;

/// Runs `git http-backend` for a request to `target` (the path under the fake's `/git`, with
/// its query) made by `user`, serving the bare repositories in `root`.
pub fn http_backend(
    root: &Path,
    user: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut cgi = std::process::Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", root)
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (header, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some((_, value)) = headers.iter().find(|(n, _)| n == header) {
            cgi.env(variable, value);
        }
    }
    let mut child = cgi.spawn().expect("git http-backend");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(body);
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
