//! Shared test support: the fake Bitbucket and the one command factory every test starts from.

pub mod fake;
pub mod fake_github;
pub mod fake_oauth;
pub mod fake_oidc;
pub mod proxy;

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

pub use fake::FakeBitbucket;
pub use fake::server;

/// The reuse fingerprint the program records for `key`: the first 16 hex digits of its
/// SHA-256, computed here independently of the program's own code.
pub fn fingerprint(key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of a Bitbucket consumer `client_id` at `server`'s token endpoint: the
/// reuse key is the provider, the token endpoint and the client, one per line.
pub fn bitbucket_fingerprint(server: &FakeBitbucket, client_id: &str) -> String {
    fingerprint(&format!("bitbucket\n{}\n{client_id}", server.token_url()))
}

/// Writes `text` to `path` with mode 0600, as the program writes its files (a file with a
/// wider mode is never trusted for reuse).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The binary under test, as Cargo built it for this test run.
pub fn bin() -> &'static Path {
    assert_cmd::cargo::cargo_bin!("oauth-token-pipe")
}

/// The binary with a cleared environment and nothing else: the CI runner's own variables
/// (this machine exports SSL_CERT_FILE and friends) can never leak into a test.
pub fn bare(dir: &Path) -> Command {
    Command::from_std(bare_std(dir))
}

/// [`bare`] as a plain `std::process::Command`, for tests that spawn and signal the child.
pub fn bare_std(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.env_clear().current_dir(dir).env("NO_COLOR", "1");
    cmd
}

/// The binary configured against `server`, as a pipeline would run it, in `dir`.
pub fn pipe(server: &FakeBitbucket, dir: &Path) -> Command {
    Command::from_std(pipe_std(server, dir))
}

/// [`pipe`] as a plain `std::process::Command`.
pub fn pipe_std(server: &FakeBitbucket, dir: &Path) -> std::process::Command {
    let setup = server.setup();
    let mut cmd = bare_std(dir);
    cmd.env("CLIENT_ID", &setup.client_id)
        .env("CLIENT_SECRET", &setup.client_secret)
        .env("TOKEN_URL", server.token_url())
        .env("API_URL", server.api_url())
        .env("CA_BUNDLE", server.ca_file())
        .env("REPOSITORY", "acme/widgets");
    cmd
}

/// What one run produced.
pub struct Run {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the log).
    pub stderr: String,
}

impl Run {
    /// Both streams, for "never appears anywhere" checks.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Asserts the exit code, showing the log on failure.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code; log:\n{}{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts the log contains `text`.
    pub fn expect_log(&self, text: &str) -> &Self {
        assert!(
            self.all().contains(text),
            "log lacks {text:?}; log:\n{}",
            self.all()
        );
        self
    }
}

/// Runs `cmd` with `input` on its stdin (git's side of the credential protocol), capturing
/// both output streams.
pub fn run_with_input(cmd: &mut std::process::Command, input: &[u8]) -> Run {
    use std::process::Stdio;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the binary");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input).expect("write stdin");
    let out = child.wait_with_output().expect("wait for the binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `git` in a clean environment whose only credential helper is this program's
/// `git-credential` (HOME `home`, the fake's CA trusted), with a fixed identity; the caller
/// adds the provider's variables. [`git_output`] runs it.
pub fn git_through_helper(
    home: &Path,
    ca: &Path,
    dir: &Path,
    args: &[&str],
) -> std::process::Command {
    let mut git = std::process::Command::new("git");
    git.args(["-c", "credential.helper=", "-c"])
        .arg(format!(
            "credential.helper=!{} git-credential",
            bin().display()
        ))
        .args([
            "-c",
            "user.name=CI",
            "-c",
            "user.email=ci@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSL_CAINFO", ca)
        .env("NO_COLOR", "1");
    git
}

/// Runs `git` and returns its stdout and stderr, failing the test when it fails.
pub fn git_output(git: &mut std::process::Command) -> String {
    let out = git.output().expect("git runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{git:?} failed:\n{text}");
    text
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("spawn the binary");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Reads a dotenv file back through POSIX sh (`set -a; . ./file`), returning `NAME=value`
/// for each requested name, exactly as a later script line would see it.
pub fn read_back_with_sh(file: &Path, names: &[&str]) -> Vec<String> {
    let script = names
        .iter()
        .map(|n| format!("printf '%s=%s\\n' {n} \"${n}\";"))
        .collect::<String>();
    let out = std::process::Command::new("sh")
        .env_clear()
        .arg("-c")
        .arg(format!("set -a; . \"$1\"; {script}"))
        .arg("sh")
        .arg(file)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Parses a file-command file exactly as the runner does (actions/runner
/// FileCommandManager.cs): per line, whichever of `=` or `<<` comes first decides the form;
/// a heredoc runs until a line equal to its delimiter.
pub fn parse_file_commands(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    // .NET's ReadLine ends a line at "\r\n", "\n" or a bare "\r".
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = normalized.split('\n');
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                pairs.push((line[..e].to_owned(), line[e + 1..].to_owned()))
            }
            (_, Some(h)) => {
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                let mut value = Vec::new();
                loop {
                    let next = lines
                        .next()
                        .unwrap_or_else(|| panic!("Matching delimiter not found '{delimiter}'"));
                    if next == delimiter {
                        break;
                    }
                    value.push(next);
                }
                pairs.push((name.to_owned(), value.join("\n")));
            }
            _ => panic!("Invalid format '{line}'"),
        }
    }
    pairs
}

/// The names in `dir`, sorted: for "nothing else was left behind" checks.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The rows of the first Markdown table after `heading` in `text`, as (first cell, second cell).
pub fn table_after(text: &str, heading: &str) -> Vec<(String, String)> {
    let section = &text[text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading} section"))..];
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_owned(), cells[2].to_owned())
        })
        .collect()
}
