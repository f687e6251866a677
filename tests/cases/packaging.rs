//! The shipped artefacts, run for real: the static release binaries and the FROM scratch images.
//!
//! "FROM scratch" only works if the binary needs nothing from the image: no dynamic loader,
//! no shared library, no file under /etc. These tests check the ELF headers of both binaries
//! (linux/amd64 and linux/arm64), run each in a root that holds nothing but itself and a CA
//! file (the arm64 one under qemu-aarch64-static, copied into that root), run the arm64 one
//! against the fake Bitbucket, build the real Dockerfile and run the image the way Bitbucket
//! runs a pipe, and take apart the multi-architecture image that scripts/build-image.sh
//! writes: each manifest's architecture against its binary, the labels against Cargo.toml,
//! `docker load` of each architecture, and a push to and pull from a registry on loopback.
//!
//! They need artefacts that `cargo test` does not make: the static binaries
//! (`scripts/build-static.sh all`), qemu-user-static, skopeo and docker-registry (Debian), and
//! a Docker engine (`scripts/docker-engine.sh start`). When one is missing, a test FAILS under
//! CI=true (CI must provide it) and otherwise prints a `NOT RUN` line and returns: it never
//! claims to have tested what it did not.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::fake::{self, FakeBitbucket, Setup};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the Dockerfile COPYs the binary from, relative to the build context.
const CONTEXT_BINARY: &str = "target/x86_64-unknown-linux-musl/release/oauth-token-pipe";
/// Bitbucket's clone dir inside a pipe container (`BITBUCKET_CLONE_DIR`).
const CLONE_DIR: &str = "/opt/atlassian/pipelines/agent/build";
/// A uid/gid that is not root, like the runner user a build container may run as.
const BUILD_USER: u32 = 1000;
/// What a pipeline pulls should stay small (issue 16): each binary, and so each image layer.
const MAX_BINARY_BYTES: u64 = 3 * 1024 * 1024;

/// One architecture the release ships.
#[derive(Clone, Copy, Debug)]
struct Arch {
    /// The OCI/Docker architecture name (`linux/<name>`).
    name: &'static str,
    /// The Rust target the binary is built for.
    triple: &'static str,
    /// ELF e_machine: EM_X86_64 or EM_AARCH64.
    machine: u16,
}

const AMD64: Arch = Arch {
    name: "amd64",
    triple: "x86_64-unknown-linux-musl",
    machine: 62,
};
const ARM64: Arch = Arch {
    name: "arm64",
    triple: "aarch64-unknown-linux-musl",
    machine: 183,
};
const ARCHES: [Arch; 2] = [AMD64, ARM64];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `$CARGO_TARGET_DIR` (or `<manifest>/target`), where scripts/build-static.sh builds.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => manifest_dir().join(dir),
        _ => manifest_dir().join("target"),
    }
}

/// `<target dir>/<triple>/release/oauth-token-pipe`.
fn static_binary_path(arch: Arch) -> PathBuf {
    target_dir()
        .join(arch.triple)
        .join("release")
        .join("oauth-token-pipe")
}

/// Says plainly that `test` did not run, or fails it under CI, where nothing may be missing.
fn not_run(test: &str, problem: &str, remedy: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {problem}. CI must provide it: run {remedy} before the tests.");
    }
    // Straight to the process's stderr: libtest captures eprintln! of passing tests, and this
    // line must be seen.
    // One write, so the line is not interleaved with libtest's own.
    let line = format!("\n!!! NOT RUN: {test}: {problem} (run {remedy}) !!!\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The static binary for `arch`, when it exists and is newer than every source file it is
/// built from.
fn static_binary(test: &str, arch: Arch) -> Option<PathBuf> {
    let path = static_binary_path(arch);
    let remedy = if arch.name == "amd64" {
        "scripts/build-static.sh"
    } else {
        "scripts/build-static.sh all"
    };
    let Ok(built) = fs::metadata(&path).and_then(|m| m.modified()) else {
        not_run(
            test,
            &format!("the static binary {} is missing", path.display()),
            remedy,
        );
        return None;
    };
    if let Some((source, _)) = newest_source().filter(|(_, changed)| *changed > built) {
        not_run(
            test,
            &format!(
                "the static binary {} is older than {} (it would test stale code)",
                path.display(),
                source.display()
            ),
            remedy,
        );
        return None;
    }
    Some(path)
}

/// Both static binaries, amd64 first, or None (having said why) when one is not there.
fn static_binaries(test: &str) -> Option<[PathBuf; 2]> {
    let amd64 = static_binary(test, AMD64)?;
    let arm64 = static_binary(test, ARM64)?;
    Some([amd64, arm64])
}

/// The most recently changed of Cargo.toml, Cargo.lock and src/**.
fn newest_source() -> Option<(PathBuf, SystemTime)> {
    let mut files = vec![
        manifest_dir().join("Cargo.toml"),
        manifest_dir().join("Cargo.lock"),
    ];
    let mut dirs = vec![manifest_dir().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
        .into_iter()
        .filter_map(|f| Some((f.clone(), fs::metadata(&f).ok()?.modified().ok()?)))
        .max_by_key(|(_, at)| *at)
}

/// `name` found on this process's PATH (read, never changed), as an absolute path.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// qemu's user-mode emulator for aarch64, which runs the arm64 binary on this x86-64 machine.
/// It is itself a static binary, so it can be copied into an empty root.
fn qemu(test: &str) -> Option<PathBuf> {
    let found = find_program("qemu-aarch64-static");
    if found.is_none() {
        not_run(
            test,
            "qemu-aarch64-static is not installed",
            "apt-get install qemu-user-static",
        );
    }
    found
}

/// A helper program (docker, file, git) with a cleared environment but PATH.
fn helper(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A string no other test or run uses, for image tags and canary secrets.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;

/// What the ELF headers say about the machine and how the binary is loaded.
#[derive(Debug)]
struct Elf {
    /// e_machine: 62 x86-64, 183 aarch64.
    machine: u16,
    /// e_type: 2 ET_EXEC (fixed addresses), 3 ET_DYN (PIE or shared object).
    kind: u16,
    /// Program header types, in order.
    segment_types: Vec<u32>,
    /// DT_NEEDED entries (shared libraries required) in the dynamic segment, if any.
    needed: usize,
}

/// Parses an ELF64 little-endian file's header, program headers and dynamic segment (x86-64
/// and aarch64 share this layout).
fn parse_elf(bytes: &[u8]) -> Result<Elf, String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            bytes
                .get(at..at + 2)
                .ok_or("truncated")?
                .try_into()
                .unwrap(),
        ))
    };
    let u32_at = |at: usize| -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            bytes
                .get(at..at + 4)
                .ok_or("truncated")?
                .try_into()
                .unwrap(),
        ))
    };
    let u64_at = |at: usize| -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            bytes
                .get(at..at + 8)
                .ok_or("truncated")?
                .try_into()
                .unwrap(),
        ))
    };
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(format!(
            "not ELF64 little-endian (class {}, data {})",
            bytes[4], bytes[5]
        ));
    }
    let phoff = usize::try_from(u64_at(0x20)?).map_err(|e| e.to_string())?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    let mut elf = Elf {
        machine: u16_at(0x12)?,
        kind: u16_at(0x10)?,
        segment_types: Vec::new(),
        needed: 0,
    };
    for i in 0..phnum {
        let header = phoff + i * phentsize;
        let kind = u32_at(header)?;
        elf.segment_types.push(kind);
        if kind == PT_DYNAMIC {
            let offset = usize::try_from(u64_at(header + 8)?).map_err(|e| e.to_string())?;
            let size = usize::try_from(u64_at(header + 32)?).map_err(|e| e.to_string())?;
            for entry in (offset..offset + size).step_by(16) {
                let tag = u64_at(entry)?;
                if tag == DT_NULL {
                    break;
                }
                if tag == DT_NEEDED {
                    elf.needed += 1;
                }
            }
        }
    }
    Ok(elf)
}

/// No loader, no shared library, no dynamic section, the right CPU, under 3 MiB: the binary
/// runs where nothing else exists. (.cargo/config.toml links the musl targets non-PIE; a
/// static PIE would carry a PT_DYNAMIC segment to relocate itself.) The empty-root runs below
/// prove it by running it.
fn check_static_binary(test: &str, arch: Arch) {
    let Some(binary) = static_binary(test, arch) else {
        return;
    };
    let bytes = fs::read(&binary).unwrap();
    let elf = parse_elf(&bytes).unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    assert_eq!(
        elf.machine,
        arch.machine,
        "{} is not a linux/{} binary",
        binary.display(),
        arch.name
    );
    assert_eq!(elf.kind, 2, "{} is not ET_EXEC ({elf:?})", binary.display());
    assert!(
        !elf.segment_types.contains(&PT_INTERP),
        "{} has a PT_INTERP header: it needs a dynamic loader, which a FROM scratch image lacks ({elf:?})",
        binary.display()
    );
    assert_eq!(
        elf.needed,
        0,
        "{} needs shared libraries (DT_NEEDED), which a FROM scratch image lacks",
        binary.display()
    );
    assert!(
        !elf.segment_types.contains(&PT_DYNAMIC),
        "{} has a dynamic section (PT_DYNAMIC): build it with scripts/build-static.sh, which links it non-PIE ({elf:?})",
        binary.display()
    );
    assert!(
        bytes.len() as u64 <= MAX_BINARY_BYTES,
        "{} is {} bytes, over 3 MiB",
        binary.display(),
        bytes.len()
    );

    if let Some(file) = find_program("file") {
        let output = helper(&file).arg(&binary).output().expect("run file");
        let said = text(&output.stdout);
        assert!(
            said.contains("statically linked") && !said.contains("static-pie"),
            "`file` does not call it static: {said}"
        );
        assert!(!said.contains("interpreter"), "{said}");
        let cpu = if arch.name == "amd64" {
            "x86-64"
        } else {
            "ARM aarch64"
        };
        assert!(said.contains(cpu), "`file` does not call it {cpu}: {said}");
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "note: {test}: `file` is not installed; checked the ELF headers only"
        );
    }
}

#[test]
fn static_binary_has_no_interpreter_and_needs_no_shared_library() {
    check_static_binary(
        "static_binary_has_no_interpreter_and_needs_no_shared_library",
        AMD64,
    );
}

#[test]
fn arm64_static_binary_has_no_interpreter_and_needs_no_shared_library() {
    check_static_binary(
        "arm64_static_binary_has_no_interpreter_and_needs_no_shared_library",
        ARM64,
    );
}

#[test]
fn elf_parser_sees_the_loader_of_a_dynamic_binary() {
    // The check above is only worth something if the parser does find a PT_INTERP where one
    // is; /bin/sh is dynamically linked on every Debian.
    let Ok(bytes) = fs::read("/bin/sh") else {
        return;
    };
    let elf = parse_elf(&bytes).expect("/bin/sh is an ELF file");
    assert!(elf.segment_types.contains(&PT_INTERP), "{elf:?}");
    assert!(elf.segment_types.contains(&PT_DYNAMIC), "{elf:?}");
    assert!(elf.needed > 0, "{elf:?}");
}

/// What FROM scratch means, without Docker: a root folder holding only the binary and the
/// fake Bitbucket's CA file (and, for arm64, the static qemu that runs it). The binary reaches
/// the fake over TLS on loopback and writes its dotenv file there; nothing under /etc, no
/// loader, no library, no certificate store.
fn run_in_an_empty_root(test: &str, arch: Arch) {
    let Some(binary) = static_binary(test, arch) else {
        return;
    };
    let emulator = if arch.name == "arm64" {
        match qemu(test) {
            Some(qemu) => Some(qemu),
            None => return,
        }
    } else {
        None
    };
    let enter: Vec<OsString> = if is_root() {
        match find_program("chroot") {
            Some(chroot) => vec![chroot.into()],
            None => return not_run(test, "chroot is not installed", "apt-get install coreutils"),
        }
    } else {
        match find_program("unshare") {
            Some(unshare)
                if helper(&unshare)
                    .args(["-r", "true"])
                    .status()
                    .is_ok_and(|s| s.success()) =>
            {
                vec![
                    unshare.into(),
                    "-r".into(),
                    "--wd=/".into(),
                    "--root".into(),
                ]
            }
            _ => {
                return not_run(
                    test,
                    "not root, and `unshare -r` (user namespaces) is unavailable",
                    "the tests as root",
                );
            }
        }
    };

    let server = FakeBitbucket::start(Setup {
        client_secret: unique("empty-root-secret"),
        token: fake::jwt_like("empty-root-token"),
        ..Setup::default()
    });
    let setup = server.setup();
    let root = tempfile::tempdir().unwrap();
    fs::copy(&binary, root.path().join("oauth-token-pipe")).unwrap();
    fs::copy(server.ca_file(), root.path().join("ca.pem")).unwrap();
    let mut expected = vec!["ca.pem", "oauth-token-pipe"];
    if let Some(qemu) = &emulator {
        fs::copy(qemu, root.path().join("qemu-aarch64-static")).unwrap();
        expected.push("qemu-aarch64-static");
    }
    assert_eq!(crate::support::listing(root.path()), expected);

    let (program, args) = enter.split_first().unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args).arg(root.path());
    if emulator.is_some() {
        cmd.arg("/qemu-aarch64-static");
    }
    let output = cmd
        .arg("/oauth-token-pipe")
        // Nothing from this machine: only what the pipe needs.
        .env_clear()
        .env("CLIENT_ID", &setup.client_id)
        .env("CLIENT_SECRET", &setup.client_secret)
        .env("TOKEN_URL", server.token_url())
        .env("API_URL", server.api_url())
        .env("CA_BUNDLE", "/ca.pem")
        .env("REPOSITORY", "acme/widgets")
        .env("NO_COLOR", "1")
        .current_dir(root.path())
        .output()
        .expect("enter the empty root");
    let log = describe(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        log.contains("✔ Access token written to oauth-token.env"),
        "{log}"
    );
    assert!(
        !log.contains(&setup.token) && !log.contains(&setup.client_secret),
        "a secret reached the log: {log}"
    );
    assert_eq!(
        server.requests().len(),
        2,
        "one token request and one validation call"
    );

    expected.push("oauth-token.env");
    expected.sort();
    assert_eq!(
        crate::support::listing(root.path()),
        expected,
        "the dotenv file appears in the root, and nothing else"
    );
    let written = fs::read_to_string(root.path().join("oauth-token.env")).unwrap();
    assert_eq!(
        written.lines().next(),
        Some(format!("BITBUCKET_ACCESS_TOKEN={}", setup.token).as_str())
    );
}

#[test]
fn static_binary_runs_in_an_empty_root() {
    run_in_an_empty_root("static_binary_runs_in_an_empty_root", AMD64);
}

#[test]
fn arm64_static_binary_runs_in_an_empty_root_under_qemu() {
    run_in_an_empty_root(
        "arm64_static_binary_runs_in_an_empty_root_under_qemu",
        ARM64,
    );
}

/// The arm64 binary under qemu, configured exactly as `support::pipe` configures the binary
/// under test (its environment and working directory, copied), against the fake Bitbucket:
/// the token is fetched, validated and written; with a wrong secret it exits 3 and writes
/// nothing. What the whole suite proves of the amd64 build, in short, for the arm64 one.
#[test]
fn arm64_binary_under_qemu_fetches_a_token_and_refuses_a_wrong_secret() {
    let test = "arm64_binary_under_qemu_fetches_a_token_and_refuses_a_wrong_secret";
    let Some(binary) = static_binary(test, ARM64) else {
        return;
    };
    let Some(qemu) = qemu(test) else {
        return;
    };
    let server = FakeBitbucket::start_default();
    let setup = server.setup();
    let under_qemu = |dir: &Path, secret: &str| -> Output {
        let template = crate::support::pipe_std(&server, dir);
        let mut cmd = Command::new(&qemu);
        cmd.arg(&binary).env_clear();
        for (name, value) in template.get_envs() {
            if let Some(value) = value {
                cmd.env(name, value);
            }
        }
        cmd.env("CLIENT_SECRET", secret)
            .current_dir(template.get_current_dir().unwrap_or(dir))
            .output()
            .expect("run qemu-aarch64-static")
    };

    let dir = tempfile::tempdir().unwrap();
    let output = under_qemu(dir.path(), &setup.client_secret);
    let log = describe(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        log.contains("Access token written to oauth-token.env"),
        "{log}"
    );
    assert!(
        !log.contains(&setup.token) && !log.contains(&setup.client_secret),
        "a secret reached the log: {log}"
    );
    let written = fs::read_to_string(dir.path().join("oauth-token.env")).unwrap();
    assert_eq!(
        written.lines().next(),
        Some(format!("BITBUCKET_ACCESS_TOKEN={}", setup.token).as_str())
    );
    assert_eq!(
        fs::metadata(dir.path().join("oauth-token.env"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(server.requests().len(), 2, "{:?}", server.requests());

    let dir = tempfile::tempdir().unwrap();
    let wrong = unique("wrong-secret");
    let output = under_qemu(dir.path(), &wrong);
    let log = describe(&output);
    assert_eq!(output.status.code(), Some(3), "{log}");
    assert!(log.contains("Invalid OAuth client credentials"), "{log}");
    assert!(!log.contains(&wrong), "the secret reached the log: {log}");
    assert!(
        crate::support::listing(dir.path()).is_empty(),
        "nothing is written"
    );
}
/// A Docker engine answering `docker info`, or why not.
fn docker(test: &str) -> Option<PathBuf> {
    let remedy = "scripts/docker-engine.sh start";
    let Some(docker) = find_program("docker") else {
        not_run(test, "the docker command is not installed", remedy);
        return None;
    };
    let info = helper(&docker)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .expect("run docker info");
    if !info.status.success() {
        not_run(
            test,
            &format!(
                "`docker info` fails, so no Docker engine answers ({})",
                text(&info.stderr).trim()
            ),
            remedy,
        );
        return None;
    }
    Some(docker)
}

/// An image this test built; removed when dropped, even when an assertion failed.
struct Image {
    docker: PathBuf,
    tag: String,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = helper(&self.docker)
            .args(["image", "rm", "--force", &self.tag])
            .output();
    }
}

/// `docker build`s the real Dockerfile and .dockerignore around `binary`, in a context laid
/// out like the repository's.
fn build_image(docker: &Path, binary: &Path) -> Image {
    let context = tempfile::tempdir().unwrap();
    for file in ["Dockerfile", ".dockerignore"] {
        fs::copy(manifest_dir().join(file), context.path().join(file)).unwrap();
    }
    let copied = context.path().join(CONTEXT_BINARY);
    fs::create_dir_all(copied.parent().unwrap()).unwrap();
    fs::copy(binary, &copied).unwrap();
    let image = Image {
        docker: docker.to_path_buf(),
        tag: format!("oauth-token-pipe-test:{}", unique("run")),
    };
    let output = helper(docker)
        .args(["build", "--build-arg"])
        .arg(format!("VERSION={VERSION}"))
        .args(["--tag", &image.tag])
        .arg(context.path())
        .output()
        .expect("run docker build");
    assert!(
        output.status.success(),
        "docker build: {}",
        describe(&output)
    );
    image
}

/// A clone dir as Bitbucket mounts it: a git work tree, owned by the build's user.
fn clone_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = find_program("git").expect("git is installed");
    let output = helper(&git)
        .args(["init", "--quiet"])
        .arg(dir.path())
        .output()
        .expect("run git init");
    assert!(output.status.success(), "git init: {}", describe(&output));
    if is_root() {
        chown_tree(dir.path(), BUILD_USER);
    }
    dir
}

fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), id);
        }
    }
}

/// `docker run`s `image` the way Bitbucket runs a pipe: the clone dir mounted at
/// /opt/atlassian/pipelines/agent/build and used as the working directory, the BITBUCKET_*
/// variables, the pipe's variables, host networking (the fake listens on the host's
/// loopback). Every value travels in docker's environment and is named with `-e NAME`, so
/// no secret is in any process's argv.
fn run_pipe(
    image: &Image,
    clone: &Path,
    ca_file: &Path,
    pipe_variables: &[(&str, &str)],
) -> Output {
    let storage = format!(
        "{CLONE_DIR}/.bitbucket/pipelines/generated/pipeline/pipes/oauthtokenpipe/oauth-token-pipe"
    );
    let shared_storage = format!("{CLONE_DIR}/.bitbucket/pipelines/generated/pipeline/pipes");
    let platform: &[(&str, &str)] = &[
        ("CI", "true"),
        ("BITBUCKET_BUILD_NUMBER", "42"),
        ("BITBUCKET_CLONE_DIR", CLONE_DIR),
        (
            "BITBUCKET_COMMIT",
            "0123456789abcdef0123456789abcdef01234567",
        ),
        ("BITBUCKET_BRANCH", "main"),
        ("BITBUCKET_WORKSPACE", "acme"),
        ("BITBUCKET_REPO_SLUG", "widgets"),
        ("BITBUCKET_REPO_FULL_NAME", "acme/widgets"),
        ("BITBUCKET_REPO_OWNER", "acme"),
        ("BITBUCKET_REPO_IS_PRIVATE", "true"),
        (
            "BITBUCKET_GIT_HTTP_ORIGIN",
            "http://bitbucket.org/acme/widgets",
        ),
        (
            "BITBUCKET_STEP_UUID",
            "{5b2a3c3e-8f1e-4c55-9f0e-3a1c2b4d5e6f}",
        ),
        (
            "BITBUCKET_PIPELINE_UUID",
            "{7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f}",
        ),
        ("BITBUCKET_PIPE_STORAGE_DIR", &storage),
        ("BITBUCKET_PIPE_SHARED_STORAGE_DIR", &shared_storage),
    ];
    let mut cmd = helper(&image.docker);
    cmd.args(["run", "--rm", "--network", "host"])
        .arg(format!("--volume={}:{CLONE_DIR}", clone.display()))
        .arg(format!(
            "--volume={}:/opt/oauth-token-pipe-test/ca.pem:ro",
            ca_file.display()
        ))
        .arg(format!("--workdir={CLONE_DIR}"))
        .arg("--label=org.bitbucket.pipelines.system=true");
    let ca = ("CA_BUNDLE", "/opt/oauth-token-pipe-test/ca.pem");
    for (name, value) in platform
        .iter()
        .chain(pipe_variables)
        .chain(std::iter::once(&ca))
    {
        cmd.arg("-e").arg(name).env(name, value);
    }
    cmd.arg(&image.tag);
    for (name, value) in pipe_variables {
        if name.contains("SECRET") {
            assert!(
                cmd.get_args().all(|a| !a.to_string_lossy().contains(value)),
                "{name}'s value would be in docker's argv"
            );
        }
    }
    cmd.output().expect("run docker run")
}

/// The image, built from the real Dockerfile, run as Bitbucket runs a pipe: it fetches and
/// validates the token against the fake Bitbucket, writes the dotenv file into the mounted
/// clone dir, excludes it from git and gives it to the clone dir's owner (uid 1000), mode
/// 0600; with a wrong secret it exits 3 and writes nothing.
#[test]
fn image_runs_the_way_bitbucket_runs_a_pipe() {
    let test = "image_runs_the_way_bitbucket_runs_a_pipe";
    let Some(binary) = static_binary(test, AMD64) else {
        return;
    };
    let Some(docker) = docker(test) else {
        return;
    };
    let image = build_image(&docker, &binary);

    let inspect = helper(&docker)
        .args(["image", "inspect", "--format", "{{json .}}", &image.tag])
        .output()
        .expect("run docker image inspect");
    assert!(inspect.status.success(), "{}", describe(&inspect));
    let inspected: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let labels = &inspected["Config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], VERSION);
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        env!("CARGO_PKG_LICENSE")
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    assert_eq!(
        inspected["Config"]["Entrypoint"],
        serde_json::json!(["/oauth-token-pipe"])
    );
    assert_eq!(
        inspected["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1),
        "FROM scratch plus the binary is one layer"
    );
    let binary_size = fs::metadata(&binary).unwrap().len();
    let image_size = inspected["Size"].as_u64().expect("image size");
    assert!(
        image_size <= binary_size + 64 * 1024,
        "the image ({image_size} bytes) holds more than the binary ({binary_size} bytes)"
    );

    let server = FakeBitbucket::start(Setup {
        client_secret: unique("docker-secret"),
        token: fake::jwt_like("docker-run-token"),
        ..Setup::default()
    });
    let setup = server.setup();
    let pipe_variables = |secret: &str| -> Vec<(&'static str, String)> {
        vec![
            ("CLIENT_ID", setup.client_id.clone()),
            ("CLIENT_SECRET", secret.to_owned()),
            ("TOKEN_URL", server.token_url()),
            ("API_URL", server.api_url()),
        ]
    };

    // Success.
    let clone = clone_dir();
    let exclude_file = clone.path().join(".git/info/exclude");
    let vars = pipe_variables(&setup.client_secret);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output = run_pipe(&image, clone.path(), server.ca_file(), &vars);
    let log = describe(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(log.contains('✔'), "{log}");
    assert!(
        log.contains("Access token written to oauth-token.env (mode 0600)"),
        "{log}"
    );
    // The BITBUCKET_* variables reached the container.
    assert!(log.contains("Running on Bitbucket Pipelines."), "{log}");
    // No REPOSITORY was given: the pipe fell back to BITBUCKET_REPO_FULL_NAME.
    assert!(
        log.contains("validated (read repository acme/widgets)"),
        "{log}"
    );
    assert!(
        !log.contains(&setup.token) && !log.contains(&setup.client_secret),
        "a secret reached the log: {log}"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].path, "/2.0/repositories/acme/widgets");

    assert_eq!(
        crate::support::listing(clone.path()),
        [".git", "oauth-token.env"]
    );
    let file = clone.path().join("oauth-token.env");
    let written = fs::read_to_string(&file).unwrap();
    assert_eq!(
        written.lines().next(),
        Some(format!("BITBUCKET_ACCESS_TOKEN={}", setup.token).as_str())
    );
    let exclude = fs::read_to_string(&exclude_file).unwrap();
    assert!(
        exclude.lines().any(|l| l == "/oauth-token.env"),
        "{exclude}"
    );
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "the token file is private");
    if is_root() {
        assert!(log.contains("Gave oauth-token.env to uid 1000"), "{log}");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (BUILD_USER, BUILD_USER),
            "the token file belongs to the clone dir's owner, who must `source` it"
        );
        assert_eq!(
            fs::metadata(&exclude_file).unwrap().uid(),
            BUILD_USER,
            "appending to .git/info/exclude keeps its owner"
        );
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "note: {test}: not root, so the clone dir could not be given to uid {BUILD_USER}; ownership not checked"
        );
    }

    // A wrong secret: exit 3, nothing written, nothing added to the git exclude file.
    let clone = clone_dir();
    let exclude_before = fs::read(clone.path().join(".git/info/exclude")).ok();
    let wrong = unique("wrong-secret");
    let vars = pipe_variables(&wrong);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output = run_pipe(&image, clone.path(), server.ca_file(), &vars);
    let log = describe(&output);
    assert_eq!(output.status.code(), Some(3), "{log}");
    assert!(log.contains('✖'), "{log}");
    assert!(log.contains("Invalid OAuth client credentials"), "{log}");
    assert!(!log.contains(&wrong), "the secret reached the log: {log}");
    assert_eq!(
        crate::support::listing(clone.path()),
        [".git"],
        "nothing is written"
    );
    assert_eq!(
        fs::read(clone.path().join(".git/info/exclude")).ok(),
        exclude_before
    );
}

/// The release command in the README builds from the repository root: the context must be
/// the binary alone, which is also the only file the Dockerfile copies.
#[test]
fn docker_build_context_is_the_binary_alone() {
    let ignore = fs::read_to_string(manifest_dir().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let keep = format!("!{CONTEXT_BINARY}");
    assert_eq!(patterns, ["*", keep.as_str()]);
    let dockerfile = fs::read_to_string(manifest_dir().join("Dockerfile")).unwrap();
    let copies: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY") || l.starts_with("ADD"))
        .collect();
    assert_eq!(
        copies,
        [format!("COPY {CONTEXT_BINARY} /oauth-token-pipe").as_str()]
    );
}

/// One member of a tar archive.
#[derive(Debug)]
struct TarEntry {
    /// ustar typeflag: b'0' (or 0) a file, b'5' a folder.
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    data: Vec<u8>,
}

/// The members of a ustar archive (what GNU tar's --format=ustar and Docker write), by path;
/// a few lines here instead of a tar crate the tests would need for nothing else.
fn untar(bytes: &[u8]) -> BTreeMap<String, TarEntry> {
    let field = |header: &[u8], range: std::ops::Range<usize>| -> String {
        let raw = &header[range];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        String::from_utf8_lossy(&raw[..end]).trim().to_owned()
    };
    let octal = |header: &[u8], range: std::ops::Range<usize>| -> u64 {
        let digits = field(header, range);
        u64::from_str_radix(&digits, 8).unwrap_or_else(|_| panic!("bad octal field {digits:?}"))
    };
    let mut entries = BTreeMap::new();
    let mut at = 0;
    while at + 512 <= bytes.len() {
        let header = &bytes[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let name = field(header, 0..100);
        let prefix = field(header, 345..500);
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let size = usize::try_from(octal(header, 124..136)).unwrap();
        let data = bytes[at + 512..at + 512 + size].to_vec();
        entries.insert(
            path.trim_end_matches('/').to_owned(),
            TarEntry {
                kind: header[156],
                mode: u32::try_from(octal(header, 100..108)).unwrap(),
                uid: octal(header, 108..116),
                gid: octal(header, 116..124),
                data,
            },
        );
        at += 512 + size.div_ceil(512) * 512;
    }
    entries
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let gzip = find_program("gzip").expect("gzip is installed");
    let mut child = helper(&gzip)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(output.status.success(), "gzip -dc: {}", describe(&output));
    output.stdout
}

/// The image's repository as pipe.yml names it (`image: NAME:VERSION`).
fn image_name() -> String {
    let pipe = fs::read_to_string(manifest_dir().join("pipe.yml")).unwrap();
    let image = pipe
        .lines()
        .find_map(|l| l.strip_prefix("image: "))
        .expect("pipe.yml names an image");
    image.rsplit_once(':').unwrap().0.to_owned()
}

/// The Dockerfile's LABELs, with ${VERSION} replaced by the crate version.
fn dockerfile_labels() -> BTreeMap<String, String> {
    let dockerfile = fs::read_to_string(manifest_dir().join("Dockerfile")).unwrap();
    let mut labels = BTreeMap::new();
    let mut in_label = false;
    for line in dockerfile.lines() {
        let line = line.trim();
        let rest = match line.strip_prefix("LABEL ") {
            Some(rest) => rest,
            None if in_label => line,
            None => continue,
        };
        in_label = rest.ends_with('\\');
        let pair = rest.trim_end_matches('\\').trim();
        let (key, value) = pair.split_once('=').expect("LABEL key=\"value\"");
        labels.insert(
            key.to_owned(),
            value.trim_matches('"').replace("${VERSION}", VERSION),
        );
    }
    labels
}

/// The multi-architecture image, written by scripts/build-image.sh into `out`.
struct MultiArch {
    /// The image index's digest, `sha256:...`, as the script printed it.
    digest: String,
    /// oauth-token-pipe-V.oci.tar
    archive: PathBuf,
    /// oauth-token-pipe-V-linux-{amd64,arm64}.docker.tar, in ARCHES order.
    docker_archives: [PathBuf; 2],
}

fn build_multi_arch(out: &Path, source_date_epoch: Option<&str>) -> MultiArch {
    let bash = find_program("bash").expect("bash is installed");
    let mut cmd = helper(&bash);
    cmd.arg("scripts/build-image.sh")
        .arg("--out")
        .arg(out)
        .current_dir(manifest_dir());
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    if let Some(epoch) = source_date_epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    let output = cmd.output().expect("run scripts/build-image.sh");
    assert!(
        output.status.success(),
        "build-image: {}",
        describe(&output)
    );
    let digest = text(&output.stdout).trim().to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "build-image printed {digest:?}"
    );
    let name = env!("CARGO_PKG_NAME");
    MultiArch {
        digest,
        archive: out.join(format!("{name}-{VERSION}.oci.tar")),
        docker_archives: ARCHES
            .map(|arch| out.join(format!("{name}-{VERSION}-linux-{}.docker.tar", arch.name))),
    }
}

fn json_blob(files: &BTreeMap<String, TarEntry>, digest: &str) -> Value {
    let path = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let blob = files
        .get(&path)
        .unwrap_or_else(|| panic!("the archive lacks {path}"));
    serde_json::from_slice(&blob.data).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What one architecture's image is made of, by digest.
#[derive(Debug, PartialEq)]
struct ImageParts {
    manifest: String,
    config: String,
    layer: String,
}

/// The OCI archive that build-image.sh writes, taken apart and checked against the binaries,
/// the Dockerfile and Cargo.toml; returns each architecture's manifest, config and layer.
fn check_oci_archive(image: &MultiArch, binaries: &[PathBuf; 2]) -> [ImageParts; 2] {
    let files = untar(&fs::read(&image.archive).unwrap());
    let layout: Value = serde_json::from_slice(&files["oci-layout"].data).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    for (path, entry) in &files {
        if let Some(digest) = path.strip_prefix("blobs/sha256/") {
            assert_eq!(sha256_hex(&entry.data), digest, "{path} is not its digest");
        }
    }

    let top: Value = serde_json::from_slice(&files["index.json"].data).unwrap();
    let entries = top["manifests"].as_array().expect("index.json manifests");
    assert_eq!(entries.len(), 1, "one image in the layout: {top}");
    let entry = &entries[0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(entry["digest"], image.digest.as_str());
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        VERSION
    );
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        format!("docker.io/{}:{VERSION}", image_name()).as_str()
    );

    let index = json_blob(&files, &image.digest);
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().expect("index manifests");
    let platforms: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    let expected_labels: BTreeMap<String, String> = [
        ("org.opencontainers.image.title", env!("CARGO_PKG_NAME")),
        (
            "org.opencontainers.image.description",
            env!("CARGO_PKG_DESCRIPTION"),
        ),
        (
            "org.opencontainers.image.source",
            env!("CARGO_PKG_REPOSITORY"),
        ),
        ("org.opencontainers.image.version", VERSION),
        (
            "org.opencontainers.image.licenses",
            env!("CARGO_PKG_LICENSE"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(
        dockerfile_labels(),
        expected_labels,
        "the Dockerfile's labels vs Cargo.toml"
    );

    let mut parts = Vec::new();
    for ((entry, arch), binary) in manifests.iter().zip(ARCHES).zip(binaries) {
        let digest = entry["digest"].as_str().unwrap();
        let blob = &files[&format!("blobs/sha256/{}", &digest[7..])];
        assert_eq!(entry["size"], blob.data.len());
        let manifest = json_blob(&files, digest);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config = json_blob(&files, config_digest);
        assert_eq!(
            config["architecture"], arch.name,
            "the {} manifest's config",
            arch.name
        );
        assert_eq!(config["os"], "linux");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/oauth-token-pipe"])
        );
        let labels: BTreeMap<String, String> =
            serde_json::from_value(config["config"]["Labels"].clone()).unwrap();
        assert_eq!(
            labels, expected_labels,
            "{}: the image's labels are the Dockerfile's",
            arch.name
        );

        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "FROM scratch plus the binary is one layer");
        assert_eq!(
            layers[0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let layer_digest = layers[0]["digest"].as_str().unwrap();
        let compressed = &files[&format!("blobs/sha256/{}", &layer_digest[7..])].data;
        let layer = gunzip(compressed);
        assert_eq!(
            config["rootfs"]["diff_ids"],
            serde_json::json!([format!("sha256:{}", sha256_hex(&layer))])
        );
        let contents = untar(&layer);
        assert_eq!(
            contents.keys().collect::<Vec<_>>(),
            ["oauth-token-pipe"],
            "the {} layer holds the binary alone",
            arch.name
        );
        let file = &contents["oauth-token-pipe"];
        assert!(matches!(file.kind, b'0' | 0), "{file:?}");
        assert_eq!(
            (file.mode & 0o7777, file.uid, file.gid),
            (0o755, 0, 0),
            "root's, executable"
        );
        assert!(
            file.data == fs::read(binary).unwrap(),
            "the {} layer's binary is not {}",
            arch.name,
            binary.display()
        );
        let elf = parse_elf(&file.data).unwrap();
        assert_eq!(
            elf.machine, arch.machine,
            "the linux/{} image holds a binary for ELF machine {}",
            arch.name, elf.machine
        );
        parts.push(ImageParts {
            manifest: digest.to_owned(),
            config: config_digest.to_owned(),
            layer: layer_digest.to_owned(),
        });
    }
    parts.try_into().unwrap()
}

/// The image index, built from both binaries without an engine or registry: one entry per
/// architecture, each manifest's config naming the architecture of the binary in its one
/// layer (ELF e_machine 62 for amd64, 183 for arm64), the Dockerfile's entrypoint and labels,
/// which are Cargo.toml's; the per-architecture `docker load` archives hold the same blobs;
/// and a second build gives the same bytes.
#[test]
fn multi_arch_image_holds_each_binary_under_its_architecture_with_the_crates_labels() {
    let test = "multi_arch_image_holds_each_binary_under_its_architecture_with_the_crates_labels";
    let Some(binaries) = static_binaries(test) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let image = build_multi_arch(out.path(), None);
    let parts = check_oci_archive(&image, &binaries);

    let name = format!("{}:{VERSION}", image_name());
    for ((archive, arch), part) in image.docker_archives.iter().zip(ARCHES).zip(&parts) {
        let files = untar(&fs::read(archive).unwrap());
        let manifest: Value = serde_json::from_slice(&files["manifest.json"].data).unwrap();
        assert_eq!(
            manifest,
            serde_json::json!([{
                "Config": format!("blobs/sha256/{}", &part.config[7..]),
                "RepoTags": [name],
                "Layers": [format!("blobs/sha256/{}", &part.layer[7..])],
            }]),
            "{}",
            archive.display()
        );
        let index: Value = serde_json::from_slice(&files["index.json"].data).unwrap();
        assert_eq!(index["manifests"][0]["digest"], part.manifest.as_str());
        assert_eq!(index["manifests"][0]["platform"]["architecture"], arch.name);
        let blobs: Vec<&String> = files
            .keys()
            .filter(|p| p.starts_with("blobs/sha256/") && files[*p].kind != b'5')
            .collect();
        assert_eq!(blobs.len(), 3, "manifest, config and layer: {blobs:?}");
    }

    let again = tempfile::tempdir().unwrap();
    let rebuilt = build_multi_arch(again.path(), None);
    assert_eq!(rebuilt.digest, image.digest, "the image is reproducible");
    for (first, second) in [(&image.archive, &rebuilt.archive)]
        .into_iter()
        .chain(image.docker_archives.iter().zip(&rebuilt.docker_archives))
    {
        assert!(
            fs::read(first).unwrap() == fs::read(second).unwrap(),
            "{} differs between two builds",
            first.display()
        );
    }
}

/// Images this test put in the engine, removed when dropped; a tag the test moved is put back.
struct Loaded {
    docker: PathBuf,
    ids: Vec<String>,
    restore: Option<(String, String)>,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let keep = self.restore.as_ref().map(|(id, _)| id.as_str());
        for id in &self.ids {
            if Some(id.as_str()) != keep {
                let _ = helper(&self.docker)
                    .args(["image", "rm", "--force", id])
                    .output();
            }
        }
        if let Some((id, tag)) = &self.restore {
            let _ = helper(&self.docker).args(["tag", id, tag]).output();
        }
    }
}

/// The image ID a reference names in the engine, if any.
fn image_id(docker: &Path, reference: &str) -> Option<String> {
    let output = helper(docker)
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .expect("run docker image inspect");
    output
        .status
        .success()
        .then(|| text(&output.stdout).trim().to_owned())
}

fn inspect(docker: &Path, reference: &str) -> Value {
    let output = helper(docker)
        .args(["image", "inspect", "--format", "{{json .}}", reference])
        .output()
        .expect("run docker image inspect");
    assert!(output.status.success(), "{}", describe(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Each architecture's archive goes into the engine with `docker load` under the tag pipe.yml
/// names, as the image whose ID is its config's digest, for its architecture; and the amd64
/// one, which this machine runs, works as Bitbucket runs a pipe.
#[test]
fn each_architecture_docker_loads_and_the_amd64_image_runs_as_a_pipe() {
    let test = "each_architecture_docker_loads_and_the_amd64_image_runs_as_a_pipe";
    let Some(binaries) = static_binaries(test) else {
        return;
    };
    let Some(docker) = docker(test) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let image = build_multi_arch(out.path(), None);
    let parts = check_oci_archive(&image, &binaries);
    let name = format!("{}:{VERSION}", image_name());
    let mut loaded = Loaded {
        docker: docker.clone(),
        ids: Vec::new(),
        restore: image_id(&docker, &name).map(|id| (id, name.clone())),
    };

    let mut amd64 = None;
    for ((archive, arch), part) in image.docker_archives.iter().zip(ARCHES).zip(&parts) {
        let output = helper(&docker)
            .args(["load", "--input"])
            .arg(archive)
            .output()
            .expect("run docker load");
        assert!(
            output.status.success(),
            "docker load: {}",
            describe(&output)
        );
        assert!(
            text(&output.stdout).contains(&format!("Loaded image: {name}")),
            "{}",
            describe(&output)
        );
        loaded.ids.push(part.config.clone());
        assert_eq!(
            image_id(&docker, &name).as_deref(),
            Some(part.config.as_str())
        );
        let inspected = inspect(&docker, &part.config);
        assert_eq!(inspected["Architecture"], arch.name);
        assert_eq!(inspected["Os"], "linux");
        assert_eq!(
            inspected["Config"]["Labels"]["org.opencontainers.image.version"],
            VERSION
        );
        assert_eq!(
            inspected["Config"]["Entrypoint"],
            serde_json::json!(["/oauth-token-pipe"])
        );
        if arch.name == "amd64" {
            // A tag of this test's own, so that loading arm64 next does not take it away.
            let tagged = Image {
                docker: docker.clone(),
                tag: format!("oauth-token-pipe-test:{}", unique("loaded")),
            };
            let output = helper(&docker)
                .args(["tag", &part.config, &tagged.tag])
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", describe(&output));
            amd64 = Some(tagged);
        }
    }

    let amd64 = amd64.unwrap();
    let server = FakeBitbucket::start(Setup {
        client_secret: unique("loaded-secret"),
        token: fake::jwt_like("loaded-image-token"),
        ..Setup::default()
    });
    let setup = server.setup();
    let clone = clone_dir();
    let token_url = server.token_url();
    let api_url = server.api_url();
    let output = run_pipe(
        &amd64,
        clone.path(),
        server.ca_file(),
        &[
            ("CLIENT_ID", &setup.client_id),
            ("CLIENT_SECRET", &setup.client_secret),
            ("TOKEN_URL", &token_url),
            ("API_URL", &api_url),
        ],
    );
    let log = describe(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        log.contains("Access token written to oauth-token.env"),
        "{log}"
    );
    let written = fs::read_to_string(clone.path().join("oauth-token.env")).unwrap();
    assert_eq!(
        written.lines().next(),
        Some(format!("BITBUCKET_ACCESS_TOKEN={}", setup.token).as_str())
    );
}

/// A docker-registry (Debian's Distribution registry) on loopback, stopped when dropped.
struct Registry {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start(program: &Path) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        // A port the kernel just handed out and that nothing holds now; the registry binds it
        // a moment later (it takes no port 0).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.path().join("log")).unwrap();
        let child = helper(program)
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry {
            child,
            address,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}): {}",
                    fs::read_to_string(registry.dir.path().join("log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "docker-registry did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release's push (scripts/push-image.sh) against a real registry on loopback: the tag
/// then names this build's image index, digest unchanged; `docker pull --platform` gets each
/// architecture's image from it; pushing the same build again changes nothing, and pushing a
/// different build under the same tag is refused.
#[test]
fn multi_arch_image_pushes_to_a_registry_and_pulls_for_each_platform() {
    let test = "multi_arch_image_pushes_to_a_registry_and_pulls_for_each_platform";
    let Some(binaries) = static_binaries(test) else {
        return;
    };
    let Some(docker) = docker(test) else {
        return;
    };
    let mut tools = Vec::new();
    for (program, package) in [("skopeo", "skopeo"), ("docker-registry", "docker-registry")] {
        match find_program(program) {
            Some(path) => tools.push(path),
            None => {
                return not_run(
                    test,
                    &format!("{program} is not installed"),
                    &format!("apt-get install {package}"),
                );
            }
        }
    }
    let registry = Registry::start(&tools[1]);
    let out = tempfile::tempdir().unwrap();
    // Its own SOURCE_DATE_EPOCH, so its images are not the ones the `docker load` test,
    // running at the same time, removes from the engine by ID.
    let image = build_multi_arch(out.path(), Some("2"));
    let parts = check_oci_archive(&image, &binaries);
    let reference = format!("{}/{}:{VERSION}", registry.address, image_name());

    let bash = find_program("bash").unwrap();
    let push = |archive: &Path| -> Output {
        helper(&bash)
            .arg("scripts/push-image.sh")
            .arg(archive)
            .arg(&reference)
            .env("PUSH_TLS_VERIFY", "false")
            .current_dir(manifest_dir())
            .output()
            .expect("run scripts/push-image.sh")
    };
    let output = push(&image.archive);
    assert!(output.status.success(), "push: {}", describe(&output));
    assert_eq!(text(&output.stdout).trim(), image.digest);

    let mut loaded = Loaded {
        docker: docker.clone(),
        ids: Vec::new(),
        restore: None,
    };
    for (arch, part) in ARCHES.iter().zip(&parts) {
        let output = helper(&docker)
            .args(["pull", "--quiet", "--platform"])
            .arg(format!("linux/{}", arch.name))
            .arg(&reference)
            .output()
            .expect("run docker pull");
        assert!(
            output.status.success(),
            "docker pull: {}",
            describe(&output)
        );
        loaded.ids.push(part.config.clone());
        let inspected = inspect(&docker, &reference);
        assert_eq!(inspected["Id"], part.config.as_str(), "linux/{}", arch.name);
        assert_eq!(inspected["Architecture"], arch.name);
        // The engine records REPO@INDEX-DIGEST on the first image it pulled through it
        // only (one such name names one local image), so on the amd64 one.
        if arch.name == "amd64" {
            let repo_digests = inspected["RepoDigests"].to_string();
            assert!(
                repo_digests.contains(&image.digest),
                "pulled by the index digest: {repo_digests}"
            );
        }
    }

    let output = push(&image.archive);
    assert!(output.status.success(), "push again: {}", describe(&output));
    assert!(
        text(&output.stderr).contains("nothing to push"),
        "{}",
        describe(&output)
    );

    let other = tempfile::tempdir().unwrap();
    let different = build_multi_arch(other.path(), Some("3"));
    assert_ne!(different.digest, image.digest);
    let output = push(&different.archive);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        text(&output.stderr).contains("refusing to replace a published version"),
        "{}",
        describe(&output)
    );
    drop(loaded);
}
