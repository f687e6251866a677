//! The shipped artefacts, run for real: the static release binary and the FROM scratch image.
//!
//! "FROM scratch" only works if the binary needs nothing from the image: no dynamic loader,
//! no shared library, no file under /etc. These tests check the ELF headers, run the binary
//! in a root that holds nothing but itself and a CA file, then build the real Dockerfile and
//! run the image the way Bitbucket runs a pipe, against the fake Bitbucket on loopback.
//!
//! They need artefacts that `cargo test` does not make: the static binary
//! (`scripts/build-static.sh`) and a Docker engine (`scripts/docker-engine.sh start`). When
//! one is missing, a test FAILS under CI=true (CI must provide it) and otherwise prints a
//! `NOT RUN` line and returns: it never claims to have tested what it did not.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::fake::{self, FakeBitbucket, Setup};

const TARGET: &str = "x86_64-unknown-linux-musl";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the Dockerfile COPYs the binary from, relative to the build context.
const CONTEXT_BINARY: &str = "target/x86_64-unknown-linux-musl/release/oauth-token-pipe";
/// Bitbucket's clone dir inside a pipe container (`BITBUCKET_CLONE_DIR`).
const CLONE_DIR: &str = "/opt/atlassian/pipelines/agent/build";
/// A uid/gid that is not root, like the runner user a build container may run as.
const BUILD_USER: u32 = 1000;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `$CARGO_TARGET_DIR` (or `<manifest>/target`) + `/x86_64-unknown-linux-musl/release/...`.
fn static_binary_path() -> PathBuf {
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => manifest_dir().join(dir),
        _ => manifest_dir().join("target"),
    };
    target_dir
        .join(TARGET)
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

/// The static binary, when it exists and is newer than every source file it is built from.
fn static_binary(test: &str) -> Option<PathBuf> {
    let path = static_binary_path();
    let remedy = "scripts/build-static.sh";
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

/// What the ELF program headers say about how the binary is loaded.
#[derive(Debug)]
struct Elf {
    /// Program header types, in order.
    segment_types: Vec<u32>,
    /// DT_NEEDED entries (shared libraries required) in the dynamic segment, if any.
    needed: usize,
}

/// Parses an x86-64 ELF64 little-endian file's program headers and dynamic segment.
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
    let machine = u16_at(0x12)?;
    if machine != 62 {
        return Err(format!("e_machine {machine}, not x86-64 (62)"));
    }
    let phoff = usize::try_from(u64_at(0x20)?).map_err(|e| e.to_string())?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    let mut elf = Elf {
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

/// No loader, no shared library, no dynamic section: the binary runs where nothing else
/// exists. (.cargo/config.toml links the musl target non-PIE; a static PIE would carry a
/// PT_DYNAMIC segment to relocate itself.) The empty-root run below proves it by running it.
#[test]
fn static_binary_has_no_interpreter_and_needs_no_shared_library() {
    let test = "static_binary_has_no_interpreter_and_needs_no_shared_library";
    let Some(binary) = static_binary(test) else {
        return;
    };
    let bytes = fs::read(&binary).unwrap();
    let elf = parse_elf(&bytes).unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
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

    if let Some(file) = find_program("file") {
        let output = helper(&file).arg(&binary).output().expect("run file");
        let said = text(&output.stdout);
        assert!(
            said.contains("statically linked") && !said.contains("static-pie"),
            "`file` does not call it static: {said}"
        );
        assert!(!said.contains("interpreter"), "{said}");
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "note: {test}: `file` is not installed; checked the ELF headers only"
        );
    }
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
/// fake Bitbucket's CA file. The binary reaches the fake over TLS on loopback and writes its
/// dotenv file there; nothing under /etc, no loader, no library, no certificate store.
#[test]
fn static_binary_runs_in_an_empty_root() {
    let test = "static_binary_runs_in_an_empty_root";
    let Some(binary) = static_binary(test) else {
        return;
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
    assert_eq!(
        crate::support::listing(root.path()),
        ["ca.pem", "oauth-token-pipe"]
    );

    let (program, args) = enter.split_first().unwrap();
    let output = Command::new(program)
        .args(args)
        .arg(root.path())
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

    assert_eq!(
        crate::support::listing(root.path()),
        ["ca.pem", "oauth-token-pipe", "oauth-token.env"],
        "the dotenv file appears in the root, and nothing else"
    );
    let written = fs::read_to_string(root.path().join("oauth-token.env")).unwrap();
    assert_eq!(
        written.lines().next(),
        Some(format!("BITBUCKET_ACCESS_TOKEN={}", setup.token).as_str())
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
    let Some(binary) = static_binary(test) else {
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
