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

mod image;
mod oci;

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
