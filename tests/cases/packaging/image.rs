//! The real Dockerfile built and its image run the way Bitbucket runs a pipe.

use super::*;

/// A Docker engine answering `docker info`, or why not.
pub(super) fn docker(test: &str) -> Option<PathBuf> {
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
pub(super) struct Image {
    pub(super) docker: PathBuf,
    pub(super) tag: String,
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
pub(super) fn clone_dir() -> tempfile::TempDir {
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
pub(super) fn run_pipe(
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
