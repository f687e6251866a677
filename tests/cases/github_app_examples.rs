//! The README's two GitHub App examples (issue 13: "work against the fake exactly as
//! written"), run word for word: each file is parsed as its CI would parse it and its shell
//! lines are run unmodified, in order, by a small emulation of that CI's runner, against the
//! fake GitHub started as github.com itself ([`FakeGitHub::start_github_com`]).
//!
//! Each process of a run starts in a mount namespace of its own (`unshare --mount`, as root)
//! where `/etc/hosts` maps `github.com`, `api.github.com` and the release-asset host to the
//! fake's loopback address (checked with `getent` before anything runs: a name that does not
//! resolve there fails the test instead of reaching the real GitHub), the system CA bundle is
//! the fake's CA (so curl, git and the Go-built `gh` trust it as a runner trusts GitHub), and
//! `/usr/local/bin` is an overlay whose changes land in the test's own folder (so
//! `mv oauth-token-pipe /usr/local/bin/` works without touching this machine). The one
//! variable the runs get that a real runner would not hold is `CA_BUNDLE`: the program trusts
//! its built-in roots and CA_BUNDLE, never the system bundle.
//!
//! The release the Bitbucket pipeline downloads is this test's binary under the release's
//! asset name, with a SHA256SUMS the fake computes, so `sha256sum -c` checks it for real.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_yaml_ng::Value;

use crate::support::fake_github::{self, FakeGitHub, Request, Setup};
use crate::support::{bin, parse_file_commands};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const BITBUCKET_EXAMPLE: &str = "examples/bitbucket-pipelines/mirror-to-github.yml";
const GITHUB_EXAMPLE: &str = "examples/github-actions/open-pull-request-in-another-repo.yml";
/// A runner's PATH (Ubuntu's default); git is in /usr/local/bin on this machine.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The installation the examples' app has on acme.
const INSTALLATION: u64 = 31337;

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The README's section on GitHub App tokens, up to the next `## ` heading.
fn readme_section() -> String {
    let readme = read("README.md");
    let start = readme
        .find("## GitHub App installation tokens\n")
        .expect("README has a GitHub App section");
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    rest[..end].to_owned()
}

/// The bodies of the section's ```yaml blocks, in order.
fn yaml_blocks(section: &str) -> Vec<String> {
    section
        .split("```yaml\n")
        .skip(1)
        .map(|block| block[..block.find("```").expect("a closed block")].to_owned())
        .collect()
}

#[test]
fn the_readmes_github_app_examples_are_the_example_files_byte_for_byte() {
    let section = readme_section();
    let blocks = yaml_blocks(&section);
    assert_eq!(
        blocks,
        [read(BITBUCKET_EXAMPLE), read(GITHUB_EXAMPLE)],
        "README \"## GitHub App installation tokens\": its two yaml blocks must be {BITBUCKET_EXAMPLE} and {GITHUB_EXAMPLE}, byte for byte (the tests run the files)"
    );
    for file in [BITBUCKET_EXAMPLE, GITHUB_EXAMPLE] {
        assert!(
            section.contains(&format!("[`{file}`]({file})")),
            "the section links {file}"
        );
    }
}

/// What this machine must have for the examples to run; `None` (after saying so, or failing
/// under CI=true, as tests/cases/packaging.rs does) when it lacks something.
fn can_run(test: &str, tools: &[&str]) -> Option<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        not_run(
            test,
            "needs root (port 443 on loopback, mount namespaces)",
            "the tests as root",
        );
        return None;
    }
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .env("PATH", PATH)
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            not_run(test, &format!("{tool} is not installed"), ".ci/run");
            return None;
        }
    }
    Some(())
}

/// A test that cannot run here: a failure under CI=true (CI must provide what it needs),
/// else a line on the process's stderr that libtest does not capture.
fn not_run(test: &str, problem: &str, remedy: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {problem}. CI must provide it: run {remedy} before the tests.");
    }
    let line = format!("\n!!! NOT RUN: {test}: {problem} (run {remedy}) !!!\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Where a run's processes see github.com as the fake (see the module doc).
struct Namespace {
    _dir: tempfile::TempDir,
    /// The shell each process starts in: the mounts, the resolution check, then `exec "$@"`.
    setup: String,
}

impl Namespace {
    fn new(fake: &FakeGitHub) -> Namespace {
        let dir = tempfile::tempdir().unwrap();
        let ip = fake.ip().to_string();
        let names = fake_github::GITHUB_COM_HOSTS.join(" ");
        let hosts = dir.path().join("hosts");
        fs::write(
            &hosts,
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{names}\n"
            ),
        )
        .unwrap();
        let ca = dir.path().join("ca-certificates.crt");
        fs::copy(fake.ca_file(), &ca).unwrap();
        let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
        fs::create_dir(&upper).unwrap();
        fs::create_dir(&work).unwrap();
        let setup = format!(
            r#"set -e
mount --bind '{hosts}' /etc/hosts
mount --bind '{ca}' /etc/ssl/certs/ca-certificates.crt
mount -t overlay overlay -o 'lowerdir=/usr/local/bin,upperdir={upper},workdir={work}' /usr/local/bin
for name in {names}; do
  found=$(getent ahosts "$name" | awk '{{print $1}}' | sort -u | tr '\n' ' ')
  if [ "$found" != "{ip} " ]; then
    echo "namespace: $name resolves to '$found', not {ip}: not running anything" >&2
    exit 97
  fi
done
exec "$@""#,
            hosts = hosts.display(),
            ca = ca.display(),
            upper = upper.display(),
            work = work.display(),
        );
        Namespace { _dir: dir, setup }
    }

    /// `program` run in the namespace with exactly `env`, in `dir`.
    fn command(&self, program: &Path, env: &BTreeMap<String, String>, dir: &Path) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--"])
            .args(["/bin/bash", "-c", &self.setup, "namespace"])
            .arg(program)
            .env_clear()
            .envs(env)
            .current_dir(dir);
        cmd
    }
}

/// What one step (or script) produced.
struct Ran {
    name: String,
    code: i32,
    output: String,
}

fn run_captured(mut cmd: Command, name: &str) -> Ran {
    let out = cmd.output().expect("spawn unshare");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(
        code, 97,
        "{name}: the namespace did not map github.com to the fake:\n{output}"
    );
    Ran {
        name: name.to_owned(),
        code,
        output,
    }
}

/// git, outside any namespace, with no configuration but `-c` (for fixtures and checks).
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.invalid")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `refname objectname` of every ref under `prefixes` (all refs when empty), sorted.
fn refs(repository: &Path, prefixes: &[&str]) -> Vec<String> {
    let mut args = vec!["for-each-ref", "--format=%(refname) %(objectname)"];
    args.extend(prefixes);
    git(repository, &args).lines().map(str::to_owned).collect()
}

/// Every form in which a secret of these runs could show: each minted token (whole, its
/// tail, git's Basic `x-access-token:TOKEN` base64), each app JWT (whole and its
/// signature), and the app key (each line of its body, with `\n` escapes, base64).
fn secrets(fake: &FakeGitHub) -> Vec<String> {
    let mut forms = Vec::new();
    for token in fake.tokens() {
        forms.push(STANDARD.encode(format!("x-access-token:{token}")));
        forms.push(token[token.len() - 24..].to_owned());
        forms.push(token);
    }
    for jwt in fake.jwts() {
        forms.push(jwt.rsplit('.').next().unwrap().to_owned());
        forms.push(jwt);
    }
    let key = fake_github::key("app-pkcs1.pem");
    forms.extend(
        key.lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .map(str::to_owned),
    );
    forms.push(key.trim().replace('\n', "\\n"));
    forms.push(STANDARD.encode(&key));
    forms
}

fn assert_nothing_leaked(fake: &FakeGitHub, runs: &[&Ran], files: &[PathBuf]) {
    let forms = secrets(fake);
    assert!(forms.len() > 10, "{forms:?}");
    for run in runs {
        // A runner consumes `::add-mask::` itself; it never reaches the log.
        let shown: String = run
            .output
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .map(|l| format!("{l}\n"))
            .collect();
        for form in &forms {
            assert!(
                !shown.contains(form.as_str()),
                "{} showed a secret ({form:?}):\n{shown}",
                run.name
            );
        }
    }
    for file in files {
        let text = fs::read_to_string(file).unwrap_or_default();
        for form in &forms {
            assert!(
                !text.contains(form.as_str()),
                "{} holds a secret ({form:?})",
                file.display()
            );
        }
    }
}

/// `METHOD host path` of each request, and the `x-access-token` token it authenticated
/// with, if any.
fn described(requests: &[Request]) -> Vec<(String, Option<String>)> {
    requests
        .iter()
        .map(|r| {
            let basic = r
                .header("authorization")
                .and_then(|a| a.strip_prefix("Basic "))
                .and_then(|b| STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|p| p.strip_prefix("x-access-token:").map(str::to_owned));
            (format!("{} {} {}", r.method, r.host, r.path), basic)
        })
        .collect()
}

/// The strings of a Bitbucket `script:` list, nested lists (the `*app` alias) flattened as
/// Bitbucket flattens them.
fn script_lines(value: &Value) -> Vec<String> {
    match value {
        Value::String(line) => vec![line.clone()],
        Value::Sequence(items) => items.iter().flat_map(script_lines).collect(),
        other => panic!("a script item that is not a command: {other:?}"),
    }
}

/// Bitbucket's shell for a `script` (or `after-script`): the lines in one bash, each
/// echoed as `+ line` and run as written, the script stopping at the first that exits
/// non-zero with that code.
fn bitbucket_shell(lines: &[String]) -> String {
    let mut shell = String::new();
    for line in lines {
        let shown = line.replace('\'', r"'\''");
        shell.push_str(&format!("printf '+ %s\\n' '{shown}'\n"));
        shell.push_str(line);
        shell.push_str("\n__status=$?; [ \"$__status\" -eq 0 ] || exit \"$__status\"\n");
    }
    shell
}

/// acme/widgets as Bitbucket holds it: main, two other branches, an annotated and a
/// lightweight tag.
fn bitbucket_repository(root: &Path) -> PathBuf {
    let work = root.join("work");
    fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    for (file, message) in [("README", "widgets"), ("src.txt", "the first widget")] {
        fs::write(work.join(file), format!("{message}\n")).unwrap();
        git(&work, &["add", file]);
        git(&work, &["commit", "-q", "-m", message]);
    }
    git(&work, &["tag", "-a", "v1.0", "-m", "Widgets 1.0"]);
    git(&work, &["switch", "-q", "-c", "feature/login"]);
    fs::write(work.join("login.txt"), "log in\n").unwrap();
    git(&work, &["add", "login.txt"]);
    git(&work, &["commit", "-q", "-m", "Log in"]);
    git(&work, &["tag", "wip-login"]);
    git(&work, &["switch", "-q", "-c", "release/1.x", "v1.0"]);
    fs::write(work.join("src.txt"), "the first widget, fixed\n").unwrap();
    git(&work, &["commit", "-q", "-am", "Fix the widget"]);
    git(&work, &["switch", "-q", "main"]);
    fs::write(work.join("README"), "widgets, mirrored\n").unwrap();
    git(&work, &["commit", "-q", "-am", "Say where it is mirrored"]);
    bare_copy(&work, &root.join("acme/widgets.git"))
}

/// The clone a Bitbucket step with `clone: depth: full` starts in: `git clone --branch`
/// of the built branch (every branch fetched, only it checked out), origin then pointed at
/// Bitbucket's own URL and the runner's git settings, as Bitbucket's build setup does.
fn bitbucket_clone(origin: &Path, dir: &Path) {
    git(
        dir.parent().unwrap(),
        &[
            "clone",
            "-q",
            "--branch=main",
            origin.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    git(
        dir,
        &[
            "remote",
            "set-url",
            "origin",
            "http://bitbucket.org/acme/widgets",
        ],
    );
    git(dir, &["config", "user.name", "bitbucket-pipelines"]);
    git(
        dir,
        &["config", "user.email", "commits-noreply@bitbucket.org"],
    );
    git(dir, &["config", "push.default", "current"]);
}

/// The environment of a Bitbucket step in the fake's namespace: the runner's own variables,
/// the repository's secured variables, and CA_BUNDLE (see the module doc).
fn bitbucket_env(
    fake: &FakeGitHub,
    clone: &Path,
    home: &Path,
    commit: &str,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("PATH", PATH),
        ("CI", "true"),
        ("BITBUCKET_BUILD_NUMBER", "118"),
        ("BITBUCKET_BRANCH", "main"),
        ("BITBUCKET_REPO_FULL_NAME", "acme/widgets"),
        ("BITBUCKET_REPO_SLUG", "widgets"),
        ("BITBUCKET_REPO_OWNER", "acme"),
        ("BITBUCKET_WORKSPACE", "acme"),
        ("BITBUCKET_REPO_IS_PRIVATE", "true"),
        (
            "BITBUCKET_REPO_UUID",
            "{5f0c4e5e-1c2b-4a57-9b1e-3c9d2b8e7a11}",
        ),
        (
            "BITBUCKET_REPO_OWNER_UUID",
            "{0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}",
        ),
        (
            "BITBUCKET_PIPELINE_UUID",
            "{9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d}",
        ),
        (
            "BITBUCKET_STEP_UUID",
            "{1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d}",
        ),
        (
            "BITBUCKET_STEP_TRIGGERER_UUID",
            "{2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e}",
        ),
        ("BITBUCKET_STEP_RUN_NUMBER", "1"),
        ("BITBUCKET_PROJECT_KEY", "ACME"),
        (
            "BITBUCKET_GIT_HTTP_ORIGIN",
            "http://bitbucket.org/acme/widgets",
        ),
        (
            "BITBUCKET_GIT_SSH_ORIGIN",
            "git@bitbucket.org:acme/widgets.git",
        ),
        ("GITHUB_APP_ID", fake_github::CLIENT_ID),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut set = |k: &str, v: String| env.insert(k.to_owned(), v);
    set("BITBUCKET_COMMIT", commit.to_owned());
    set("BITBUCKET_CLONE_DIR", clone.display().to_string());
    set("HOME", home.display().to_string());
    set("GITHUB_APP_PRIVATE_KEY", fake_github::key("app-pkcs1.pem"));
    set("CA_BUNDLE", fake.ca_file().display().to_string());
    env
}

/// Example (a): bitbucket-pipelines.yml mirroring acme/widgets to GitHub through the
/// credential helper, the token revoked in `after-script`.
#[test]
fn bitbucket_mirror_to_github_example_works_as_written() {
    let test = "bitbucket_mirror_to_github_example_works_as_written";
    if can_run(
        test,
        &["unshare", "mount", "getent", "curl", "sha256sum", "git"],
    )
    .is_none()
    {
        return;
    }
    let mut pipeline: Value = serde_yaml_ng::from_str(&read(BITBUCKET_EXAMPLE)).unwrap();
    pipeline.apply_merge().unwrap();
    let steps = pipeline["pipelines"]["branches"]["main"]
        .as_sequence()
        .expect("a pipeline for main");
    assert_eq!(steps.len(), 1, "one step");
    let step = &steps[0]["step"];
    assert_eq!(
        step["clone"]["depth"].as_str(),
        Some("full"),
        "the emulated clone is a full one"
    );
    let script = script_lines(&step["script"]);
    let after = script_lines(&step["after-script"]);

    let sandbox = tempfile::tempdir().unwrap();
    let root = sandbox.path();
    // Bitbucket's repository, and GitHub's mirror holding a branch from an earlier mirror
    // that has since been deleted on Bitbucket.
    let origin = bitbucket_repository(&root.join("bitbucket"));
    let github = root.join("github");
    let mirror = github.join("acme/widgets-mirror.git");
    fs::create_dir_all(&mirror).unwrap();
    git(&mirror, &["init", "-q", "--bare"]);
    git(
        &origin,
        &[
            "push",
            "-q",
            mirror.to_str().unwrap(),
            "v1.0^{commit}:refs/heads/old-feature",
        ],
    );

    let release = fake_github::release(
        &format!("v{VERSION}"),
        &[
            (
                &format!("oauth-token-pipe-{VERSION}-x86_64-unknown-linux-musl"),
                fs::read(bin()).unwrap(),
            ),
            (
                &format!("oauth-token-pipe-{VERSION}-aarch64-unknown-linux-musl"),
                b"not downloaded here".to_vec(),
            ),
        ],
    );
    let fake = FakeGitHub::start_github_com(Setup {
        installations: vec![(
            "acme".into(),
            INSTALLATION,
            vec!["widgets-mirror".into(), "deploy-config".into()],
        )],
        git_root: Some(github.clone()),
        downloads: release,
        ..Setup::default()
    });
    let namespace = Namespace::new(&fake);
    let clone = root.join("build");
    bitbucket_clone(&origin, &clone);
    let commit = git(&clone, &["rev-parse", "HEAD"]).trim().to_owned();
    let home = root.join("root-home");
    fs::create_dir(&home).unwrap();
    let env = bitbucket_env(&fake, &clone, &home, &commit);

    let bash = Path::new("/bin/bash");
    let mut cmd = namespace.command(bash, &env, &clone);
    cmd.args(["-c", &bitbucket_shell(&script)]);
    let ran = run_captured(cmd, "script");
    let mut env_after = env.clone();
    env_after.insert("BITBUCKET_EXIT_CODE".into(), ran.code.to_string());
    let mut cmd = namespace.command(bash, &env_after, &clone);
    cmd.args(["-c", &bitbucket_shell(&after)]);
    let ran_after = run_captured(cmd, "after-script");
    let log = format!("{}\n--- after-script\n{}", ran.output, ran_after.output);
    assert_eq!(
        ran.code,
        0,
        "the script failed:\n{log}\n{:#?}",
        fake.calls()
    );
    assert_eq!(ran_after.code, 0, "the after-script failed:\n{log}");

    // The mirror has Bitbucket's branches and tags, as branches and tags, and nothing else.
    let want = refs(&origin, &[]);
    assert!(want.len() >= 5, "{want:?}");
    assert_eq!(
        refs(&mirror, &[]),
        want,
        "GitHub's mirror vs Bitbucket's repository\n{log}"
    );

    // git's configuration holds the helper, never a token (the helper's own cache, 0600,
    // does until the after-script removes it: checked below).
    let files = [home.join(".gitconfig"), clone.join(".git/config")];
    assert_nothing_leaked(&fake, &[&ran, &ran_after], &files);

    // One token, minted when git first asked the helper, pushed with, and revoked by the
    // after-script; the helper's two calls on one connection, with no validation call
    // (README: "No validation call unless VALIDATE_URL is set").
    let tokens = fake.tokens();
    assert_eq!(tokens.len(), 1, "one token for the whole step\n{log}");
    let token = tokens[0].clone();
    assert!(
        fake.revoked(&token),
        "the after-script's `oauth-token-pipe revoke` did not revoke the token git-credential cached:\n{log}"
    );
    // No PERMISSIONS: the token has the app's whole grant, contents:write among it, which
    // the push needed; the mirror opened no pull request.
    assert!(
        fake.permissions(&token)
            .contains(&("contents".to_owned(), "write".to_owned()))
    );
    assert!(fake.pulls().is_empty());
    let requests = fake.requests();
    let download = |name: &str| {
        format!(
            "GET github.com /oauth-token-pipe/oauth-token-pipe/releases/download/v{VERSION}/{name}"
        )
    };
    let asset = |i: usize, name: &str| {
        format!(
            "GET {} /github-production-release-asset/{i}/{name}",
            fake_github::ASSET_HOST
        )
    };
    let musl = format!("oauth-token-pipe-{VERSION}-x86_64-unknown-linux-musl");
    let receive = "github.com /acme/widgets-mirror.git";
    let seen: Vec<(String, Option<String>)> = described(&requests)
        .into_iter()
        .map(|(r, t)| {
            (
                r.split('?').next().unwrap().to_owned()
                    + if r.contains("?service=") {
                        "?service="
                    } else {
                        ""
                    },
                t,
            )
        })
        .collect();
    let with = |r: String| (r, Some(token.clone()));
    let without = |r: String| (r, None);
    assert_eq!(
        seen,
        [
            without(download(&musl)),
            without(asset(0, &musl)),
            without(download("SHA256SUMS")),
            without(asset(2, "SHA256SUMS")),
            // git tries without a credential, gets GitHub's Basic challenge, asks the helper.
            without(format!("GET {receive}/info/refs?service=")),
            without("GET api.github.com /repos/acme/widgets-mirror/installation".into()),
            without(format!(
                "POST api.github.com /app/installations/{INSTALLATION}/access_tokens"
            )),
            with(format!("GET {receive}/info/refs?service=")),
            with(format!("POST {receive}/git-receive-pack")),
            without("DELETE api.github.com /installation/token".into()),
        ],
        "{log}"
    );
    let api: Vec<&Request> = requests
        .iter()
        .filter(|r| r.host == "api.github.com")
        .collect();
    assert_eq!(
        api[0].connection, api[1].connection,
        "the helper's lookup and mint share one connection"
    );
    assert_eq!(
        api[2].header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "the after-script revoked the token git pushed with"
    );
    assert!(
        walk(&home.join(".cache")).is_empty(),
        "revoke removed the helper's cache file"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// `text` with each `${{ expression }}` replaced by `value(expression)`, as the runner
/// evaluates them before a step runs.
fn substitute(text: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let end = rest[start..].find("}}").expect("a closed expression") + start;
        out.push_str(&rest[..start]);
        out.push_str(&value(rest[start + 3..end].trim()));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The `with:`/`env:` mapping of a step as strings, expressions evaluated.
fn evaluated(map: &Value, value: &dyn Fn(&str) -> String) -> Vec<(String, String)> {
    map.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        other => panic!("a value the runner would not pass: {other:?}"),
                    };
                    (k.as_str().unwrap().to_owned(), substitute(&v, value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A GitHub-hosted runner, as far as this job needs one: the runner's variables, the
/// `secrets` and `steps.*.outputs` contexts, one GITHUB_OUTPUT file per step, GITHUB_ENV
/// carried to later steps, `run:` as `bash -e {0}` (the default shell), a Docker container
/// action (`uses: OWNER/REPO@TAG` with a `runs.using: docker` action.yml) and a
/// `docker://` step started as their image would be: the program, with `INPUT_*` for every
/// input of action.yml and `runs.env` evaluated, in the workspace.
struct Runner<'a> {
    namespace: &'a Namespace,
    root: PathBuf,
    workspace: PathBuf,
    base_env: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    github: BTreeMap<String, String>,
    /// The fake's CA, for the program (module doc).
    ca_bundle: String,
    outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// GITHUB_ENV additions so far.
    env: BTreeMap<String, String>,
    ran: Vec<Ran>,
}

impl Runner<'_> {
    fn expression(&self, expression: &str) -> String {
        let parts: Vec<&str> = expression.split('.').collect();
        match parts[..] {
            ["secrets", name] => self.secrets.get(name).cloned().unwrap_or_default(),
            ["steps", id, "outputs", name] => self
                .outputs
                .get(id)
                .and_then(|o| o.get(name))
                .cloned()
                .unwrap_or_default(),
            ["github", name] => self
                .github
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("the test's runner has no github.{name}")),
            _ => panic!("the test's runner does not evaluate `${{{{ {expression} }}}}`"),
        }
    }

    /// Runs `step` (the `index`th), unless an earlier one failed and it has no `if: always()`.
    fn step(&mut self, index: usize, step: &Value) {
        let failed = self.ran.iter().any(|r| r.code != 0);
        match step["if"].as_str() {
            None if failed => return,
            None => {}
            Some("always()") => {}
            Some(other) => panic!("the test's runner does not evaluate `if: {other}`"),
        }
        let name = step["name"]
            .as_str()
            .or(step["id"].as_str())
            .unwrap_or("a step")
            .to_owned();
        let output_file = self.root.join(format!("set_output_{index}"));
        let env_file = self.root.join(format!("set_env_{index}"));
        fs::write(&output_file, "").unwrap();
        fs::write(&env_file, "").unwrap();
        let mut env = self.base_env.clone();
        env.extend(self.env.clone());
        env.insert("GITHUB_OUTPUT".into(), output_file.display().to_string());
        env.insert("GITHUB_ENV".into(), env_file.display().to_string());
        env.insert(
            "GITHUB_ACTION".into(),
            step["id"]
                .as_str()
                .map_or(format!("__run_{index}"), str::to_owned),
        );
        let value = |e: &str| self.expression(e);
        env.extend(evaluated(&step["env"], &value));
        let cmd = if let Some(script) = step["run"].as_str() {
            let file = self.root.join(format!("step_{index}.sh"));
            fs::write(&file, substitute(script, &value)).unwrap();
            let mut cmd = self
                .namespace
                .command(Path::new("/bin/bash"), &env, &self.workspace);
            cmd.arg("-e").arg(&file);
            cmd
        } else {
            let uses = step["uses"].as_str().expect("run: or uses:");
            let with = evaluated(&step["with"], &value);
            let image = match uses.strip_prefix("docker://") {
                Some(image) => image.to_owned(),
                None => {
                    // The action at that tag is this repository's action.yml.
                    assert_eq!(
                        uses,
                        format!("oauth-token-pipe/oauth-token-pipe@v{VERSION}")
                    );
                    let action: Value = serde_yaml_ng::from_str(&read("action.yml")).unwrap();
                    assert_eq!(action["runs"]["using"].as_str(), Some("docker"));
                    let inputs = action["inputs"].as_mapping().expect("inputs");
                    for (key, _) in &with {
                        assert!(
                            inputs.contains_key(key.as_str()),
                            "{name}: action.yml has no input {key}"
                        );
                    }
                    let mut given = BTreeMap::new();
                    for (input, spec) in inputs {
                        let input = input.as_str().unwrap();
                        let default = spec["default"].as_str().unwrap_or_default();
                        let v = with
                            .iter()
                            .find(|(k, _)| k == input)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_else(|| substitute(default, &value));
                        env.insert(format!("INPUT_{}", input.to_uppercase()), v.clone());
                        given.insert(input.to_owned(), v);
                    }
                    let from_inputs = |e: &str| match e.strip_prefix("inputs.") {
                        Some(input) => given.get(input).cloned().unwrap_or_default(),
                        None => value(e),
                    };
                    env.extend(evaluated(&action["runs"]["env"], &from_inputs));
                    action["runs"]["image"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("docker://")
                        .to_owned()
                }
            };
            // The image is the released program: this test's binary.
            assert_eq!(
                image,
                format!("oauthtokenpipe/oauth-token-pipe:{VERSION}"),
                "{name}"
            );
            // The test's one addition (module doc), last: action.yml's `CA_BUNDLE:
            // ${{ inputs.ca_bundle }}` set it empty.
            env.insert("CA_BUNDLE".into(), self.ca_bundle.clone());
            // The container's HOME is the runner's _github_home, the same for every step.
            env.insert(
                "HOME".into(),
                self.root.join("_github_home").display().to_string(),
            );
            let mut cmd = self.namespace.command(bin(), &env, &self.workspace);
            for (key, v) in &with {
                if key == "args" {
                    cmd.args(v.split_whitespace());
                }
            }
            cmd
        };
        let ran = run_captured(cmd, &name);
        let outputs = parse_file_commands(&fs::read_to_string(&output_file).unwrap());
        if let Some(id) = step["id"].as_str() {
            self.outputs
                .insert(id.to_owned(), outputs.into_iter().collect());
        }
        self.env
            .extend(parse_file_commands(&fs::read_to_string(&env_file).unwrap()));
        self.ran.push(ran);
    }
}

/// acme/deploy-config on the fake: main with a README (no deployed-version yet: the first
/// run's case).
fn deploy_config(github: &Path) -> PathBuf {
    let work = github.join("work-deploy-config");
    fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    fs::write(work.join("README"), "Which version runs where.\n").unwrap();
    git(&work, &["add", "README"]);
    git(&work, &["commit", "-q", "-m", "Start"]);
    bare_copy(&work, &github.join("acme/deploy-config.git"))
}

/// Example (b): the workflow that opens a pull request in acme/deploy-config with an
/// installation token, revoked by the last step whatever happened.
#[test]
fn github_workflow_opening_a_pull_request_in_another_repo_works_as_written() {
    let test = "github_workflow_opening_a_pull_request_in_another_repo_works_as_written";
    if can_run(test, &["unshare", "mount", "getent", "git", "gh"]).is_none() {
        return;
    }
    let workflow: Value = serde_yaml_ng::from_str(&read(GITHUB_EXAMPLE)).unwrap();
    let steps = workflow["jobs"]["bump"]["steps"]
        .as_sequence()
        .expect("steps");
    assert_eq!(
        workflow["jobs"]["bump"]["runs-on"].as_str(),
        Some("ubuntu-latest")
    );

    let sandbox = tempfile::tempdir().unwrap();
    let root = sandbox.path().to_path_buf();
    let github = root.join("github");
    let repository = deploy_config(&github);
    let main_before = git(&repository, &["rev-parse", "main"]).trim().to_owned();
    let fake = FakeGitHub::start_github_com(Setup {
        installations: vec![(
            "acme".into(),
            INSTALLATION,
            vec!["widgets".into(), "deploy-config".into()],
        )],
        git_root: Some(github.clone()),
        ..Setup::default()
    });
    let namespace = Namespace::new(&fake);
    let runner_root = root.join("runner");
    let workspace = runner_root.join("work/widgets/widgets");
    let home = runner_root.join("home");
    for dir in [
        &workspace,
        &home,
        &runner_root.join("_temp"),
        &runner_root.join("_github_home"),
    ] {
        fs::create_dir_all(dir).unwrap();
    }
    let sha = "4b825dc642cb6eb9a060e54bf8d69288fbee4904e0d1c2b3a4f5e6d7c8b9a0f1"[..40].to_owned();
    let short = &sha[..7];
    let strings = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let mut base_env = strings(&[
        ("PATH", PATH),
        ("CI", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_ACTOR", "ada"),
        ("GITHUB_API_URL", "https://api.github.com"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_GRAPHQL_URL", "https://api.github.com/graphql"),
        ("GITHUB_JOB", "bump"),
        ("GITHUB_REF", "refs/heads/main"),
        ("GITHUB_REF_NAME", "main"),
        ("GITHUB_REF_TYPE", "branch"),
        ("GITHUB_REPOSITORY", "acme/widgets"),
        ("GITHUB_REPOSITORY_OWNER", "acme"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        ("GITHUB_RUN_ID", "9876543210"),
        ("GITHUB_RUN_NUMBER", "118"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_WORKFLOW", "Bump the deployment"),
        ("RUNNER_ARCH", "X64"),
        ("RUNNER_ENVIRONMENT", "github-hosted"),
        ("RUNNER_OS", "Linux"),
    ]);
    let mut set = |k: &str, v: String| base_env.insert(k.to_owned(), v);
    set("GITHUB_SHA", sha.clone());
    set("GITHUB_WORKSPACE", workspace.display().to_string());
    set("HOME", home.display().to_string());
    set(
        "RUNNER_TEMP",
        runner_root.join("_temp").display().to_string(),
    );
    set("CA_BUNDLE", fake.ca_file().display().to_string());
    let mut runner = Runner {
        namespace: &namespace,
        root: runner_root.clone(),
        workspace: workspace.clone(),
        base_env,
        secrets: [
            (
                "APP_CLIENT_ID".to_owned(),
                fake_github::CLIENT_ID.to_owned(),
            ),
            (
                "APP_PRIVATE_KEY".to_owned(),
                fake_github::key("app-pkcs1.pem"),
            ),
        ]
        .into(),
        github: strings(&[("api_url", "https://api.github.com")]),
        ca_bundle: fake.ca_file().display().to_string(),
        outputs: BTreeMap::new(),
        env: BTreeMap::new(),
        ran: Vec::new(),
    };
    for (i, step) in steps.iter().enumerate() {
        runner.step(i, step);
    }
    let log: String = runner
        .ran
        .iter()
        .map(|r| {
            let shown: String = r
                .output
                .lines()
                .filter(|l| !l.starts_with("::add-mask::"))
                .map(|l| format!("{l}\n"))
                .collect();
            format!("--- {} (exit {})\n{shown}", r.name, r.code)
        })
        .collect();
    assert_eq!(runner.ran.len(), steps.len(), "every step ran\n{log}");
    for ran in &runner.ran {
        assert_eq!(ran.code, 0, "{} failed:\n{log}", ran.name);
    }
    assert_nothing_leaked(
        &fake,
        &runner.ran.iter().collect::<Vec<_>>(),
        &[
            home.join(".gitconfig"),
            workspace.join("deploy-config/.git/config"),
        ],
    );

    // One token, for deploy-config only, with the two permissions asked (and metadata).
    let tokens = fake.tokens();
    assert_eq!(tokens.len(), 1, "{log}");
    let token = tokens[0].clone();
    assert_eq!(
        fake.permissions(&token),
        [
            ("contents".to_owned(), "write".to_owned()),
            ("metadata".to_owned(), "read".to_owned()),
            ("pull_requests".to_owned(), "write".to_owned()),
        ]
    );
    assert_eq!(runner.outputs["app"]["app_slug"], fake_github::APP_SLUG);
    assert_eq!(runner.outputs["app"]["token"], token);

    // The pull request: the pushed branch into main, opened with that token.
    let branch = format!("bump-{short}");
    let pulls = fake.pulls();
    let head_sha = git(&repository, &["rev-parse", &branch]).trim().to_owned();
    assert_eq!(
        pulls,
        [fake_github::PullRequest {
            repository: "acme/deploy-config".into(),
            number: 1,
            title: format!("Deploy {short}"),
            head: branch.clone(),
            base: "main".into(),
            head_sha: head_sha.clone(),
            token: token.clone(),
        }],
        "{log}"
    );
    assert!(
        runner.ran[1]
            .output
            .contains("https://github.com/acme/deploy-config/pull/1"),
        "gh api printed the pull request's URL:\n{log}"
    );
    // The branch: one commit on main, by the app's bot, recording GITHUB_SHA.
    assert_eq!(
        git(
            &repository,
            &["show", &format!("{branch}:deployed-version")]
        ),
        format!("{sha}\n")
    );
    assert_eq!(
        git(
            &repository,
            &["log", "--format=%P|%an|%ae|%cn|%s", "-1", &branch]
        )
        .trim(),
        format!(
            "{main_before}|fake-ci-app[bot]|fake-ci-app[bot]@users.noreply.github.com|fake-ci-app[bot]|Deploy {short}"
        )
    );
    assert_eq!(
        git(&repository, &["rev-parse", "main"]).trim(),
        main_before,
        "main untouched"
    );

    // Revoked by the last step, and its file removed.
    assert!(
        fake.revoked(&token),
        "the last step revoked the token\n{log}"
    );
    assert!(!workspace.join(".oauth-token/app.env").exists(), "{log}");

    // The requests: the action's three on one connection; git as x-access-token with the
    // token; the pull request with it; the revocation.
    let requests = fake.requests();
    let seen: Vec<(String, Option<String>)> = described(&requests)
        .into_iter()
        .map(|(r, t)| (r.split('?').next().unwrap().to_owned(), t))
        .collect();
    let api: Vec<&Request> = requests
        .iter()
        .filter(|r| r.host == "api.github.com")
        .collect();
    let api_calls: Vec<String> = api
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        api_calls,
        [
            "GET /repos/acme/deploy-config/installation".to_owned(),
            format!("POST /app/installations/{INSTALLATION}/access_tokens"),
            "GET /installation/repositories?per_page=1".to_owned(),
            "POST /repos/acme/deploy-config/pulls".to_owned(),
            "DELETE /installation/token".to_owned(),
        ],
        "{seen:#?}"
    );
    assert!(
        api[0].connection == api[1].connection && api[1].connection == api[2].connection,
        "the action's lookup, mint and validation share one connection"
    );
    for r in &api[3..] {
        let auth = r.header("authorization").unwrap_or_default();
        assert!(
            auth.ends_with(&format!(" {token}")),
            "{} {} with the token",
            r.method,
            r.path
        );
    }
    let body: serde_json::Value = serde_json::from_slice(&api[3].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"title": format!("Deploy {short}"), "head": branch, "base": "main"})
    );
    let git_seen: Vec<&(String, Option<String>)> = seen
        .iter()
        .filter(|(r, _)| r.contains(" github.com /acme/deploy-config.git/"))
        .collect();
    assert!(
        git_seen
            .iter()
            .any(|(r, _)| r.ends_with("/git-upload-pack")),
        "{seen:#?}"
    );
    assert!(
        git_seen
            .iter()
            .any(|(r, _)| r.ends_with("/git-receive-pack")),
        "{seen:#?}"
    );
    // git tries each command without a credential first (GitHub's Basic challenge), then
    // as x-access-token with the token gh's helper gives it.
    for (r, with) in &git_seen {
        assert!(
            with.as_deref() == Some(token.as_str()) || (with.is_none() && r.contains("/info/refs")),
            "{r}: git authenticated as x-access-token with the minted token"
        );
    }
}

/// A bare clone of `work` at `bare` (the form the fake's git backend serves); returns `bare`.
fn bare_copy(work: &Path, bare: &Path) -> PathBuf {
    fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(
        bare.parent().unwrap(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    bare.to_owned()
}
