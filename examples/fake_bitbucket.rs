//! `cargo run --release --example fake_bitbucket`: the tests' fake Bitbucket as a stand-alone
//! server, so that a script (bench/run.sh) can point any client at it.
//!
//! It prints shell lines to stdout — `TOKEN_URL`, `API_URL`, `CA_BUNDLE`, `CLIENT_ID`,
//! `CLIENT_SECRET`, then the `OAUTH2_*` lines of the fake OAuth 2.0 authorization server it
//! also starts (below), and `REPOSITORY` last — ready for `. ./file` or `eval`, then serves until its
//! standard input reaches end of file or it gets SIGTERM or SIGINT. Stopping on end of input
//! means a fake started with its stdin on a pipe cannot outlive the script that holds the pipe,
//! even when that script is killed outright.
//!
//! The token endpoint is named `localhost` and the API `127.0.0.1`, as they are two hosts on real
//! Bitbucket (`bitbucket.org`, `api.bitbucket.org`): being two origins, a client cannot reuse
//! the token request's TLS connection for the validation call, so every client pays the two
//! handshakes (and the one name lookup) it pays in production, and none gains from a connection
//! pool the others lack. It is one fake behind both names, so the token it issues is the token
//! it accepts, and its one CA (whose certificate names both) is `CA_BUNDLE`. (Two fakes would
//! need two CAs of the same subject name in one bundle, which OpenSSL-based clients cannot tell
//! apart.)
//!
//! The fake sets `TCP_NODELAY` on every connection it accepts (tests/support/server/http.rs):
//! it writes a TLS flight or a response in more than one `write`, and with Nagle's algorithm
//! on, loopback's 40 ms delayed ACK stalled about one benchmark run in ten, of every client.
//!
//! Beside it runs a fake OAuth 2.0 authorization server ([`fake_oauth2`], on its own port with
//! its own CA) for the benchmark's `PROVIDER=oauth2` job: discovery, the client-credentials
//! grant issuing RS256 JWT access tokens, and the JWKS, all on one host. Its lines:
//! `OAUTH2_URL` (its base, `https://127.0.0.1:PORT`; the issuer is whatever host and port the
//! client reaches it by), `OAUTH2_CA_BUNDLE`, `OAUTH2_CLIENT_ID`, `OAUTH2_CLIENT_SECRET`,
//! `OAUTH2_AUDIENCE`, and its paths `OAUTH2_DISCOVERY_PATH`, `OAUTH2_TOKEN_PATH`,
//! `OAUTH2_JWKS_PATH` (for a client that is given every URL instead of discovering them).

// The tests' own fake, so the benchmark measures against exactly what the tests prove. This
// binary only starts it and reads its URLs and counters; the rest of its API (scripted
// replies, faults, recorded requests, the re-exports they import) is used by the integration
// tests (tests/cli.rs), where it is checked for dead code.
#[allow(dead_code, unused_imports)]
#[path = "../tests/support/fake/mod.rs"]
mod fake;
mod fake_oauth2;

use std::io::{Read, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use fake::FakeBitbucket;
use fake_oauth2::FakeOAuth2;

fn main() {
    stop_signal::install();
    let server = FakeBitbucket::start_default();
    let oauth2 = FakeOAuth2::start();
    let setup = server.setup();
    let token_url = server
        .token_url()
        .replacen("https://127.0.0.1:", "https://localhost:", 1);

    let lines = [
        ("TOKEN_URL", token_url),
        ("API_URL", server.api_url()),
        ("CA_BUNDLE", server.ca_file().display().to_string()),
        ("CLIENT_ID", setup.client_id.clone()),
        ("CLIENT_SECRET", setup.client_secret.clone()),
        ("OAUTH2_URL", oauth2.base()),
        ("OAUTH2_CA_BUNDLE", oauth2.ca_file().display().to_string()),
        ("OAUTH2_CLIENT_ID", fake_oauth2::CLIENT_ID.to_owned()),
        (
            "OAUTH2_CLIENT_SECRET",
            fake_oauth2::CLIENT_SECRET.to_owned(),
        ),
        ("OAUTH2_AUDIENCE", fake_oauth2::AUDIENCE.to_owned()),
        (
            "OAUTH2_DISCOVERY_PATH",
            fake_oauth2::DISCOVERY_PATH.to_owned(),
        ),
        ("OAUTH2_TOKEN_PATH", fake_oauth2::TOKEN_PATH.to_owned()),
        ("OAUTH2_JWKS_PATH", fake_oauth2::JWKS_PATH.to_owned()),
        // Last: a reader waits for this line to know that all are there.
        ("REPOSITORY", "acme/widgets".to_owned()),
    ];
    let mut stdout = std::io::stdout().lock();
    for (name, value) in lines {
        writeln!(stdout, "{name}={}", shell_quote(&value)).expect("write stdout");
    }
    // A reader waiting for the last line must see it now, not when the buffer fills.
    stdout.flush().expect("flush stdout");
    drop(stdout);
    eprintln!("fake_bitbucket: serving; close stdin or send SIGTERM to stop.");

    // Reading stdin blocks, so it runs on its own thread; the main thread also polls the
    // signal flag, since a signal handler can do nothing but set it.
    let (closed, stdin_closed) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    loop {
        match stdin_closed.recv_timeout(Duration::from_millis(100)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) if stop_signal::received() => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }

    eprintln!(
        "fake_bitbucket: stopping after {} token request(s) and {} API request(s).",
        server.token_requests(),
        server.api_requests()
    );
    let counts = oauth2.counts();
    eprintln!(
        "fake_oauth2: stopping after {} connection(s): {} discovery, {} token and {} JWKS request(s), {} refused.",
        oauth2.connections(),
        counts.discovery,
        counts.token,
        counts.jwks,
        counts.refused
    );
    // Dropping the fakes stops their threads and removes their CA files.
    drop(oauth2);
    drop(server);
}

/// `value` in single quotes, safe for any POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// SIGTERM and SIGINT set a flag instead of killing the process, so that the fake is dropped
/// and its temporary CA file removed. A plain `signal(2)` handler, because the example's main
/// thread is not async and tokio's signal streams would need a runtime of their own.
#[cfg(unix)]
mod stop_signal {
    use std::sync::atomic::{AtomicBool, Ordering};

    static RECEIVED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_: libc::c_int) {
        // An atomic store is async-signal-safe.
        RECEIVED.store(true, Ordering::SeqCst);
    }

    pub fn install() {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGTERM, handler);
            libc::signal(libc::SIGINT, handler);
        }
    }

    pub fn received() -> bool {
        RECEIVED.load(Ordering::SeqCst)
    }
}

#[cfg(not(unix))]
mod stop_signal {
    pub fn install() {}

    pub fn received() -> bool {
        false
    }
}
