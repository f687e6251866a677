//! `cargo run --release --example fake_bitbucket`: the tests' fake Bitbucket as a stand-alone
//! server, so that a script (bench/run.sh) can point any client at it.
//!
//! It prints shell lines to stdout — `TOKEN_URL`, `API_URL`, `CA_BUNDLE`, `CLIENT_ID`,
//! `CLIENT_SECRET`, `REPOSITORY` — ready for `. ./file` or `eval`, then serves until its
//! standard input reaches end of file or it gets SIGTERM or SIGINT. Stopping on end of input
//! means a fake started with its stdin on a pipe cannot outlive the script that holds the pipe,
//! even when that script is killed outright.
//!
//! The token endpoint and the API are two fakes on two ports, as they are two hosts on real
//! Bitbucket (`bitbucket.org`, `api.bitbucket.org`): a client then cannot reuse the token
//! request's TLS connection for the validation call, so every client pays the two handshakes it
//! pays in production, and none gains from a pool the others lack. Both fakes run the default
//! setup, which issues and accepts the same token; `CA_BUNDLE` holds both CAs.

#[allow(dead_code)]
#[path = "../tests/support/fake.rs"]
mod fake;

use std::io::{Read, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use fake::FakeBitbucket;

fn main() {
    stop_signal::install();
    let token_host = FakeBitbucket::start_default();
    let api_host = FakeBitbucket::start_default();
    let setup = token_host.setup();

    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = dir.path().join("ca-bundle.pem");
    let mut pem = std::fs::read_to_string(token_host.ca_file()).expect("read the first CA");
    pem.push_str(&std::fs::read_to_string(api_host.ca_file()).expect("read the second CA"));
    std::fs::write(&bundle, pem).expect("write the CA bundle");

    let lines = [
        ("TOKEN_URL", token_host.token_url()),
        ("API_URL", api_host.api_url()),
        ("CA_BUNDLE", bundle.display().to_string()),
        ("CLIENT_ID", setup.client_id.clone()),
        ("CLIENT_SECRET", setup.client_secret.clone()),
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
        token_host.token_requests(),
        api_host.api_requests()
    );
    // Dropping the fakes stops their threads and removes their CA files; `dir` goes last.
    drop(token_host);
    drop(api_host);
}

/// `value` in single quotes, safe for any POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// SIGTERM and SIGINT set a flag instead of killing the process, so that the fakes are dropped
/// and their temporary CA files removed. Plain libc `signal()` through FFI: tokio's `signal`
/// feature is not among the dev-dependencies, and this is the only place that would need it.
#[cfg(unix)]
mod stop_signal {
    use std::sync::atomic::{AtomicBool, Ordering};

    static RECEIVED: AtomicBool = AtomicBool::new(false);
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;

    unsafe extern "C" {
        /// libc's `signal(2)`; the previous handler it returns is not needed.
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }

    extern "C" fn on_signal(_: i32) {
        // An atomic store is async-signal-safe.
        RECEIVED.store(true, Ordering::SeqCst);
    }

    pub fn install() {
        // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe, and the
        // signal numbers are the same on every Unix this example runs on (Linux, macOS).
        unsafe {
            signal(SIGTERM, on_signal);
            signal(SIGINT, on_signal);
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
