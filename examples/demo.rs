//! `cargo run --example demo`: the whole job end to end, with no Bitbucket account.
//!
//! Starts the project's own fake Bitbucket (the one the tests use: real HTTPS on 127.0.0.1
//! with a CA made for this run), runs the real `oauth-token-pipe` binary against it the way
//! a pipeline would, and shows the log a pipeline user sees and the file it wrote. Then it
//! runs again (the stored token is reused) and once with a wrong secret, to show a failure.

// The tests (tests/cli.rs) use the rest of the fake's API and the re-exports.
#[allow(dead_code, unused_imports)]
#[path = "../tests/support/fake/mod.rs"]
mod fake;

use std::path::{Path, PathBuf};
use std::process::Command;

use fake::FakeBitbucket;

fn main() {
    let binary = build_binary();
    let server = FakeBitbucket::start_default();
    let setup = server.setup();
    let work = tempfile::tempdir().expect("temp dir");

    println!(
        "== A fake Bitbucket is listening on {} (HTTPS, test CA)",
        server.base()
    );
    println!(
        "== Running {} in {} as a pipeline step would:\n",
        binary.display(),
        work.path().display()
    );
    let pipe = |secret: &str| {
        let mut cmd = Command::new(&binary);
        cmd.env_clear()
            .current_dir(work.path())
            .env("CLIENT_ID", &setup.client_id)
            .env("CLIENT_SECRET", secret)
            .env("BITBUCKET_REPO_FULL_NAME", "acme/widgets")
            .env("BITBUCKET_BUILD_NUMBER", "42")
            .env("REQUIRED_SCOPES", "repository")
            .env("TOKEN_URL", server.token_url())
            .env("API_URL", server.api_url())
            .env("CA_BUNDLE", server.ca_file());
        cmd
    };

    let status = pipe(&setup.client_secret)
        .status()
        .expect("run oauth-token-pipe");
    println!("\n== Exit code: {}", status.code().unwrap_or(-1));
    assert_eq!(status.code(), Some(0), "the first run succeeds");
    let file = work.path().join("oauth-token.env");
    let text = std::fs::read_to_string(&file).expect("the pipe wrote oauth-token.env");
    println!(
        "== {} (the token itself is shortened here; the file holds all of it):",
        file.display()
    );
    for line in text.lines() {
        match line.split_once('=') {
            Some((name, value)) if value == setup.token => {
                println!("{name}={}… ({} characters)", &value[..12], value.len())
            }
            _ => println!("{line}"),
        }
    }
    let sourced = Command::new("sh")
        .arg("-c")
        .arg(". ./oauth-token.env && printf 'a later script line sees a %s-character $BITBUCKET_ACCESS_TOKEN, valid until %s\\n' \"${#BITBUCKET_ACCESS_TOKEN}\" \"$BITBUCKET_ACCESS_TOKEN_EXPIRES_AT\"")
        .current_dir(work.path())
        .output();
    if let Ok(out) = sourced {
        print!(
            "== source ./oauth-token.env: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    println!("\n== The next step runs the pipe again: the stored token is reused, not fetched:\n");
    let status = pipe(&setup.client_secret)
        .status()
        .expect("run oauth-token-pipe");
    println!(
        "\n== Exit code: {}; token requests so far: {}",
        status.code().unwrap_or(-1),
        server.token_requests()
    );
    assert_eq!(
        (status.code(), server.token_requests()),
        (Some(0), 1),
        "the second run reuses the token"
    );

    println!(
        "\n== A step with a wrong CLIENT_SECRET (and REUSE=false, so it must ask Bitbucket):\n"
    );
    let status = pipe("wrong-secret")
        .env("REUSE", "false")
        .status()
        .expect("run oauth-token-pipe");
    println!(
        "\n== Exit code: {} (3: the token endpoint rejected the credentials; the file above is untouched)",
        status.code().unwrap_or(-1)
    );
    assert_eq!(status.code(), Some(3), "a wrong secret exits 3");
}

/// Builds the binary with the same profile as this example and returns its path: Cargo does
/// not build a package's binaries for `cargo run --example`.
fn build_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir: &Path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples/demo");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--bin", "oauth-token-pipe"]);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cargo build failed");
    profile_dir.join("oauth-token-pipe")
}
