//! The multi-architecture image scripts/build-image.sh writes, taken apart: each manifest's
//! architecture against its binary, the labels against Cargo.toml, `docker load` of each
//! architecture, and a push to and pull from a registry on loopback.

use super::image::{Image, clone_dir, docker, run_pipe};
use super::*;

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
