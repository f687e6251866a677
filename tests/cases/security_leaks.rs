//! Regression tests for the security review's leaks, hangs and protocol breaks (issue 10,
//! findings 1–4 and 12–15; 5 is `hardening::loopback_never_goes_through_a_proxy`, 16 and 17
//! are the canary audit and the fault matrix's hostile rows). Each test's setup is the
//! attacker's or the careless provider's move: a server that quotes the token back, a URL
//! with a password in it, a resolver that never answers, a child that reads its parent's
//! environment; the assertion is on what the victim sees.
//!
//! Leak checks run twice, as shipped and with the log's mask off
//! (`OAUTH_TOKEN_PIPE_TEST_NO_MASK=1`): quoting remote text must remove the secrets itself,
//! not rely on the mask.

use std::fs;
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::canary::leaked;
use crate::support::fake::{FakeBitbucket, Fault, Reply, Setup};
use crate::support::{Run, bare, bin, pipe, pipe_std, run, run_with_input};

/// The test build's switch that turns the log's mask off.
const NO_MASK: &str = "OAUTH_TOKEN_PIPE_TEST_NO_MASK";

/// Runs the pipe against a fresh fake for `setup`, configured by `configure`, once as shipped
/// and once with the mask off; fails on any trace of the secret or the token; returns both
/// runs.
fn audited(setup: &Setup, configure: impl Fn(&mut assert_cmd::Command)) -> Vec<Run> {
    [false, true]
        .into_iter()
        .map(|no_mask| {
            let server = FakeBitbucket::start(setup.clone());
            let work = tempfile::tempdir().unwrap();
            let mut cmd = pipe(&server, work.path());
            configure(&mut cmd);
            if no_mask {
                cmd.env(NO_MASK, "1");
            }
            let out = run(&mut cmd);
            if let Some(leak) = leaked(
                &out.all(),
                &setup.client_id,
                &setup.client_secret,
                &setup.token,
            ) {
                panic!(
                    "leaked {leak:?} (mask {}):\n{}",
                    if no_mask { "off" } else { "on" },
                    out.all()
                );
            }
            out
        })
        .collect()
}

/// A successful token response for `setup`.
fn token_response(setup: &Setup) -> String {
    serde_json::json!({"access_token": setup.token, "token_type": "bearer", "expires_in": 7200, "scope": setup.scopes}).to_string()
}

/// The environment of a GitHub Actions step (outside a Docker action's INPUT_ mapping).
fn on_github(cmd: &mut std::process::Command, dir: &std::path::Path) {
    fs::write(dir.join("github_output"), "").unwrap();
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", dir.join("github_output"))
        .env("DEBUG", "true");
}

// Finding 1: truncation defeated masking.

#[test]
fn a_401_body_quoting_the_token_shows_no_part_of_it() {
    let setup = Setup::default();
    let body = format!(
        r#"{{"type":"error","error":{{"message":"Token {} is not valid"}}}}"#,
        setup.token
    );
    let setup = Setup {
        api_replies: vec![Reply::json(401, &body); 3],
        ..setup
    };
    for out in audited(&setup, |_| {}) {
        out.expect_code(4)
            .expect_log("HTTP 401 Unauthorized: Token *** is not valid");
    }
}

#[test]
fn an_error_description_past_the_quoting_limit_shows_no_part_of_the_secret() {
    // Bitbucket's secrets are 32 characters; the quoting limit (300) falls 28 into it.
    let secret = "Err0rDescr1pt10nSecret0123456789";
    let description = format!("{} {secret} was sent", "x".repeat(271));
    let body = serde_json::json!({"error": "invalid_client", "error_description": description});
    let setup = Setup {
        client_secret: secret.into(),
        token_replies: vec![Reply::json(400, &body.to_string())],
        ..Setup::default()
    };
    for out in audited(&setup, |_| {}) {
        out.expect_code(3).expect_log(
            "Bitbucket refused the token request (HTTP 400 Bad Request, invalid_client: xxx",
        );
    }
}

#[test]
fn headers_quoting_the_token_show_no_part_of_it() {
    let setup = Setup::default();
    let setup = Setup {
        // The token response names the token in a header too; the validation endpoint
        // quotes it in a 1,900-character WWW-Authenticate that DEBUG cuts at 500.
        token_replies: vec![
            Reply::json(200, &token_response(&setup)).header("X-Issued-Token", &setup.token),
        ],
        api_replies: vec![
            Reply::json(401, crate::support::fake::INVALID_TOKEN).header(
                "WWW-Authenticate",
                &format!(
                    r#"Bearer error="invalid_token", error_description="{}""#,
                    setup.token
                ),
            );
            3
        ],
        ..setup
    };
    for out in audited(&setup, |cmd| {
        cmd.env("DEBUG", "true");
    }) {
        out.expect_code(4)
            .expect_log("DEBUG: < x-issued-token: ***")
            .expect_log(r#"error_description="***""#);
    }
}

// Finding 2: on GitHub, standard output is not the runner's.

#[test]
fn on_github_git_credential_answers_git_on_stdout_and_nothing_else() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let mut cmd = pipe_std(&server, work.path());
    on_github(&mut cmd, work.path());
    cmd.env("HOME", work.path()).args(["git-credential", "get"]);
    let out = run_with_input(&mut cmd, b"protocol=https\nhost=bitbucket.org\n\n");
    assert_eq!(
        out.stdout,
        format!(
            "username=x-token-auth\npassword={}\n\n",
            server.setup().token
        ),
        "git reads every stdout line as part of the credential"
    );
    let log = &out.stderr;
    assert!(
        log.contains(&format!("::add-mask::{}", server.setup().token)),
        "the runner is still told to mask the token, on stderr:\n{log}"
    );
}

#[test]
fn on_github_exec_stdout_is_the_childs_alone() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let mut cmd = pipe_std(&server, work.path());
    on_github(&mut cmd, work.path());
    let out = cmd
        .args(["exec", "--", "/bin/sh", "-c", "echo child"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "child\n",
        "`exec -- CMD | ...` and `$(...)` must get CMD's output only"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("::add-mask::") && log.contains("INFO: Running /bin/sh"),
        "workflow commands and the log went to stderr:\n{log}"
    );
}

// Finding 3: a line before the mask.

#[test]
fn on_github_the_token_is_masked_before_debug_shows_a_response_echoing_it() {
    let setup = Setup::default();
    let mut body: serde_json::Value = serde_json::from_str(&token_response(&setup)).unwrap();
    body["message"] = format!("issued {} for you", setup.token).into();
    let setup = Setup {
        token_replies: vec![Reply::json(200, &body.to_string()).header("X-Token", &setup.token)],
        ..setup
    };
    let server = FakeBitbucket::start(setup.clone());
    let work = tempfile::tempdir().unwrap();
    let mut cmd = pipe_std(&server, work.path());
    on_github(&mut cmd, work.path());
    let out = run(&mut assert_cmd::Command::from_std(cmd));
    out.expect_code(0);
    // One ordered stream for the runner; whichever it is, the mask must come first.
    let lines: Vec<&str> = out.stdout.lines().chain(out.stderr.lines()).collect();
    let mask = lines
        .iter()
        .position(|l| *l == format!("::add-mask::{}", setup.token))
        .expect("the token is masked");
    let response = lines
        .iter()
        .position(|l| l.starts_with("DEBUG: < HTTP 200"))
        .expect("DEBUG shows the token response");
    assert!(
        mask < response,
        "mask at line {mask}, the response echoing the token at line {response}:\n{}",
        out.all()
    );
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("::add-mask::") {
            let leak = leaked(line, &setup.client_id, &setup.client_secret, &setup.token);
            assert!(leak.is_none(), "line {i} leaks {leak:?}: {line}");
        }
    }
}

// Finding 4: configuration errors that echo a value.

#[test]
fn a_token_url_that_fails_to_parse_never_echoes_its_password() {
    for no_mask in [false, true] {
        let work = tempfile::tempdir().unwrap();
        let mut cmd = bare(work.path());
        cmd.env("CLIENT_ID", "key")
            .env("CLIENT_SECRET", "test-client-secret")
            .env("REPOSITORY", "acme/widgets")
            .env("TOKEN_URL", "https://key:App-Passw0rd@host:99999/");
        if no_mask {
            cmd.env(NO_MASK, "1");
        }
        let out = run(&mut cmd);
        out.expect_code(2).expect_log("TOKEN_URL");
        assert!(!out.all().contains("App-Passw0rd"), "{}", out.all());
    }
}

#[test]
fn a_value_with_quotes_and_backslashes_is_echoed_byte_identical() {
    let work = tempfile::tempdir().unwrap();
    let value = r#"my"var\x"#;
    let out = run(bare(work.path())
        .env("CLIENT_ID", "key")
        .env("CLIENT_SECRET", "test-client-secret")
        .env("REPOSITORY", "acme/widgets")
        .env("TOKEN_VARIABLE", value));
    out.expect_code(2).expect_log(&format!(
        "TOKEN_VARIABLE (\"{value}\") is not a valid variable name"
    ));
    assert!(
        !out.all().contains(r#"my\"var\\x"#),
        "escaped Debug-style, so no mask would match it:\n{}",
        out.all()
    );
}

// Finding 12: TIMEOUT was not enforced for DNS.

/// Runs the binary in a fresh network and mount namespace whose only name server is a UDP
/// socket on loopback that reads every query and never answers (perl, since no test tool
/// here can own a socket inside the namespace), so getaddrinfo blocks for real (the
/// resolver's own timeout is set to 30 s × 5 attempts). Returns the binary's exit code,
/// how long it ran, and its log.
fn in_a_namespace_with_a_silent_resolver(env: &[(&str, &str)]) -> (i32, Duration, String) {
    let work = tempfile::tempdir().unwrap();
    let resolv = work.path().join("resolv.conf");
    fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:30 attempts:5\n",
    )
    .unwrap();
    let script = r#"
        ip link set lo up || exit 90
        mount --bind "$1" /etc/resolv.conf || exit 91
        perl -MIO::Socket::INET -e '
            my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:53", Proto => "udp") or exit 92;
            open(my $f, ">", $ARGV[0]) or exit 93; close $f;
            1 while defined $s->recv(my $query, 4096);
        ' "$2" &
        listener=$!
        while [ ! -e "$2" ]; do kill -0 $listener 2>/dev/null || exit 94; sleep 0.05; done
        start=$(date +%s%N)
        timeout -s KILL 30 "$3"; code=$?
        end=$(date +%s%N)
        kill $listener
        echo "$code $(( (end - start) / 1000000 ))" > "$4"
    "#;
    let mut cmd = std::process::Command::new("unshare");
    cmd.env_clear()
        .current_dir(work.path())
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .args([
            "--net",
            "--mount",
            "--map-root-user",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&resolv)
        .arg(work.path().join("ready"))
        .arg(bin())
        .arg(work.path().join("result"));
    let out = cmd.output().expect("unshare");
    let result = fs::read_to_string(work.path().join("result")).unwrap_or_else(|_| {
        panic!(
            "the namespace was not set up ({:?}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let (code, ms) = result.trim().split_once(' ').unwrap();
    (
        code.parse().unwrap(),
        Duration::from_millis(ms.parse().unwrap()),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_resolver_that_never_answers_cannot_hold_the_run_past_timeout() {
    let (code, ran, log) = in_a_namespace_with_a_silent_resolver(&[
        ("CLIENT_ID", "key"),
        ("CLIENT_SECRET", "test-client-secret"),
        ("REPOSITORY", "acme/widgets"),
        (
            "TOKEN_URL",
            "https://bitbucket.example/site/oauth2/access_token",
        ),
        ("TIMEOUT", "2"),
        ("RETRIES", "0"),
    ]);
    assert!(
        ran < Duration::from_secs(3),
        "ran {ran:?} with TIMEOUT=2 (exit {code}):\n{log}"
    );
    assert_eq!(code, 5, "{log}");
    assert!(log.contains("within TIMEOUT (2 s)"), "{log}");
}

// Finding 13: a query in API_URL validated the wrong endpoint.

#[test]
fn an_api_url_with_a_query_is_refused_before_any_request() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(pipe(&server, work.path()).env("API_URL", format!("{}?x=1", server.api_url())))
        .expect_code(2)
        .expect_log("API_URL")
        .expect_log("has a query");
    assert_eq!(server.requests().len(), 0, "nothing is sent");
}

// Finding 14: git's fields raw in DEBUG, the child's view of our environment, Ctrl-C twice.

#[test]
fn debug_quotes_the_git_request_it_does_not_serve() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let mut cmd = pipe_std(&server, work.path());
    cmd.env("DEBUG", "true")
        .env("HOME", work.path())
        .args(["git-credential", "get"]);
    let out = run_with_input(
        &mut cmd,
        b"protocol=https\nhost=evil\x1b]0;pwned\x07\x1b[2J\rINFO: forged line\n\n",
    );
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.is_empty(), "no answer for another host");
    let log = &out.stderr;
    assert!(
        log.contains(r"host evil\u{1b}]0;pwned\u{7}\u{1b}[2J\rINFO: forged line"),
        "quoted like all remote text:\n{log}"
    );
    assert!(
        !log.contains(['\x1b', '\x07', '\r']),
        "a raw escape sequence or carriage return reached the log:\n{log:?}"
    );
}

#[test]
fn the_exec_child_cannot_read_the_secret_from_our_environ() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let out = pipe_std(&server, work.path())
        .env("PATH", "/usr/bin:/bin")
        .args([
            "exec",
            "--",
            "/bin/sh",
            "-c",
            r#"tr "\0" "\n" < /proc/$PPID/environ"#,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let environ = String::from_utf8_lossy(&out.stdout);
    assert!(
        environ.contains("CLIENT_ID=test-client-key"),
        "the child read our environment block:\n{environ}"
    );
    assert!(
        !environ.contains(&server.setup().client_secret),
        "CLIENT_SECRET is readable in /proc/$PPID/environ:\n{environ}"
    );
}

/// Runs `exec` with a child that appends a line to `int.log` for each SIGINT it gets (perl:
/// its handler runs as soon as `sleep` is interrupted, so two signals a moment apart are
/// two lines; a shell's trap waits for its foreground command and can merge them). Standard
/// input is a pseudo-terminal when `terminal`, else /dev/null; the process runs in its own
/// process group. `signal` sends SIGINT once the child is ready; returns the lines counted
/// and the exit code.
fn sigints_seen_by_the_child(terminal: bool, signal: impl Fn(libc::pid_t)) -> (usize, Option<i32>) {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let mut cmd = pipe_std(&server, work.path());
    cmd.env("PATH", "/usr/bin:/bin")
        .args([
            "exec",
            "--",
            "perl",
            "-e",
            r#"$SIG{INT} = sub { open(my $f, ">>", "int.log"); print $f "INT\n"; close $f };
               open(my $r, ">", "ready"); close $r;
               for (1 .. 30) { select(undef, undef, undef, 0.1) }"#,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let _pty = if terminal {
        let (mut leader, mut follower) = (0, 0);
        // SAFETY: openpty writes two descriptors it opened; the null pointers are allowed.
        let rc = unsafe {
            libc::openpty(
                &mut leader,
                &mut follower,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors were just opened and are owned here alone.
        let (leader, follower) = unsafe {
            (
                std::fs::File::from_raw_fd(leader),
                std::fs::File::from_raw_fd(follower),
            )
        };
        cmd.stdin(Stdio::from(follower));
        Some(leader)
    } else {
        cmd.stdin(Stdio::null());
        None
    };
    let mut child = cmd.spawn().unwrap();
    let ready = Instant::now();
    while !work.path().join("ready").exists() {
        assert!(
            ready.elapsed() < Duration::from_secs(15),
            "the child never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(child.id() as libc::pid_t);
    std::thread::sleep(Duration::from_millis(800));
    let lines = fs::read_to_string(work.path().join("int.log"))
        .unwrap_or_default()
        .lines()
        .count();
    let status = child.wait().unwrap();
    (lines, status.code())
}

#[test]
fn a_ctrl_c_reaches_the_exec_child_once() {
    // A terminal's Ctrl-C goes to the whole foreground process group: the child has it
    // already, and forwarding it would make two.
    let (lines, code) = sigints_seen_by_the_child(true, |pid| {
        // SAFETY: kill(2) on the process group the test just created.
        unsafe { libc::kill(-pid, libc::SIGINT) };
    });
    assert_eq!(
        (lines, code),
        (1, Some(0)),
        "SIGINT to the group, on a terminal"
    );
    // Without a terminal a SIGINT was sent to us alone (kill, a CI runner): pass it on.
    let (lines, code) = sigints_seen_by_the_child(false, |pid| {
        // SAFETY: kill(2) on the test's own child.
        unsafe { libc::kill(pid, libc::SIGINT) };
    });
    assert_eq!(
        (lines, code),
        (1, Some(0)),
        "SIGINT to us alone, no terminal"
    );
}

// Finding 15: what is retried, decided and documented.

#[test]
fn a_408_and_a_reset_token_post_are_retried_and_the_readme_says_so() {
    let server = FakeBitbucket::start(Setup {
        token_replies: vec![Reply::json(408, r#"{"error": "timeout"}"#)],
        ..Setup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(&mut pipe(&server, work.path()))
        .expect_code(0)
        .expect_log("The token request failed (HTTP 408");
    assert_eq!(server.token_requests(), 2, "408 is transient");

    // The first answer carried a token, but the connection broke mid-body: the retry mints
    // a second token, and that one is handed on.
    let setup = Setup::default();
    let first = Setup {
        token: format!("{}-cut", setup.token),
        ..setup.clone()
    };
    let server = FakeBitbucket::start(Setup {
        token_replies: vec![Reply {
            fault: Fault::ResetMidBody,
            ..Reply::json(200, &token_response(&first))
        }],
        ..setup.clone()
    });
    let work = tempfile::tempdir().unwrap();
    run(&mut pipe(&server, work.path()))
        .expect_code(0)
        .expect_log("retrying in");
    assert_eq!(server.token_requests(), 2);
    let file = fs::read_to_string(work.path().join("oauth-token.env")).unwrap();
    assert!(
        file.contains(&format!("BITBUCKET_ACCESS_TOKEN={}\n", setup.token)),
        "{file}"
    );

    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let retries = readme
        .split("\n\n")
        .find(|p| p.starts_with("**Retries and time.**"))
        .expect("README's retry paragraph");
    for said in ["408", "second token"] {
        assert!(
            retries.contains(said),
            "README's retry paragraph lacks {said:?}:\n{retries}"
        );
    }
}
