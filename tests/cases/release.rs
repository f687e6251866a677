//! The project's own pipelines cannot drift from the repository: bitbucket-pipelines.yml and
//! .github/workflows/release.yml run `.ci/run` on every push and the release scripts on a `v*`
//! tag; every repository file a command of theirs names exists; every version they name is
//! the crate's (and the Rust image they build in is at least the crate's rust-version); and
//! scripts/check-version.sh, which both release paths run first, passes on this tree and
//! refuses a tag that is not the crate version.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_yaml_ng::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const FILES: [&str; 2] = ["bitbucket-pipelines.yml", ".github/workflows/release.yml"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(file: &str) -> String {
    fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn parse(file: &str) -> Value {
    serde_yaml_ng::from_str(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Every shell command in a pipeline file: the strings under any `script:` (Bitbucket) or
/// `run:` (GitHub) key, anchors resolved, one entry per line.
fn commands(value: &Value) -> Vec<String> {
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Mapping(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        (Some("script"), Value::Sequence(lines)) => {
                            found.extend(lines.iter().filter_map(Value::as_str).map(str::to_owned))
                        }
                        (Some("run"), Value::String(script)) => found.push(script.clone()),
                        _ => walk(value, found),
                    }
                }
            }
            Value::Sequence(items) => items.iter().for_each(|item| walk(item, found)),
            Value::Tagged(tagged) => walk(&tagged.value, found),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(value, &mut found);
    found
        .iter()
        .flat_map(|script| script.lines())
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// The words of `command` that name a path inside the repository: relative, and starting with
/// one of the repository's own top-level names (target/, what builds make, aside).
fn repository_paths(command: &str) -> Vec<String> {
    let top: Vec<String> = fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "target" && name != ".git")
        .collect();
    command
        .split_whitespace()
        .map(|word| {
            let word = word.rsplit("$(").next().unwrap();
            word.trim_matches(|c| matches!(c, '"' | '\'' | ')' | ';' | '|'))
        })
        .filter(|word| !word.contains('$') && !word.starts_with('/') && !word.starts_with('-'))
        .map(|word| word.trim_start_matches("./"))
        .filter(|word| {
            let first = word.split('/').next().unwrap();
            top.iter().any(|t| t == first) && (word.contains('/') || word.contains('.'))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_repository_file_a_pipeline_command_names_exists() {
    for file in FILES {
        let commands = commands(&parse(file));
        assert!(!commands.is_empty(), "{file} runs no command");
        let mut named = 0;
        for command in &commands {
            for path in repository_paths(command) {
                named += 1;
                assert!(
                    root().join(&path).is_file(),
                    "{file}: `{command}` names {path}, which is not a file in the repository"
                );
            }
        }
        // .ci/run, scripts/release.sh and scripts/push-image.sh at least.
        assert!(
            named >= 3,
            "{file}: only {named} repository files named: {commands:?}"
        );
    }
    // The release scripts themselves call the version check and the builders.
    let release = read("scripts/release.sh");
    for script in [
        "scripts/check-version.sh",
        "scripts/build-static.sh",
        "scripts/build-image.sh",
    ] {
        assert!(
            release.contains(&format!("bash {script}")),
            "scripts/release.sh does not run {script}"
        );
        assert!(root().join(script).is_file(), "{script}");
    }
}

fn runs(commands: &[String], script: &str) -> bool {
    commands
        .iter()
        .any(|c| repository_paths(c).iter().any(|p| p == script))
}

#[test]
fn bitbucket_runs_ci_on_every_push_and_releases_on_a_version_tag() {
    let pipelines = parse("bitbucket-pipelines.yml");
    let default = &pipelines["pipelines"]["default"];
    assert!(
        runs(&commands(default), ".ci/run"),
        "the default pipeline (every push) must run .ci/run"
    );
    let tags = pipelines["pipelines"]["tags"]
        .as_mapping()
        .expect("pipelines.tags");
    let names: Vec<&str> = tags.keys().filter_map(Value::as_str).collect();
    assert_eq!(names, ["v*"], "releases come from v* tags alone");
    let steps = tags.get("v*").and_then(Value::as_sequence).expect("steps");
    let first = commands(&steps[0]);
    assert!(
        runs(&first, ".ci/run"),
        "a tag runs the whole CI before releasing: {first:?}"
    );
    let rest: Vec<String> = steps[1..].iter().flat_map(commands).collect();
    for script in [
        "scripts/release.sh",
        "scripts/push-image.sh",
        "scripts/upload-bitbucket-downloads.sh",
    ] {
        assert!(
            runs(&rest, script),
            "the tag pipeline does not run {script}: {rest:?}"
        );
    }
    assert!(
        rest.iter()
            .any(|c| c.contains("scripts/release.sh \"$BITBUCKET_TAG\"")),
        "scripts/release.sh must get the tag, which it checks: {rest:?}"
    );
}

#[test]
fn github_runs_ci_on_every_push_and_releases_on_a_version_tag() {
    let workflow = parse(".github/workflows/release.yml");
    let on = &workflow["on"]["push"];
    assert_eq!(
        on["branches"],
        serde_yaml_ng::from_str::<Value>("['**']").unwrap()
    );
    assert_eq!(
        on["tags"],
        serde_yaml_ng::from_str::<Value>("['v*']").unwrap()
    );
    let ci = commands(&workflow["jobs"]["ci"]);
    assert!(runs(&ci, ".ci/run"), "the ci job must run .ci/run: {ci:?}");
    assert!(
        workflow["jobs"]["ci"].get("if").is_none(),
        "the ci job runs on every push"
    );

    let release = &workflow["jobs"]["release"];
    assert_eq!(release["needs"], "ci", "a release only after CI passed");
    let condition = release["if"].as_str().unwrap_or_default();
    assert!(
        condition.contains("refs/tags/v"),
        "the release job runs on v* tags only: {condition:?}"
    );
    let commands = commands(release);
    for script in ["scripts/release.sh", "scripts/push-image.sh"] {
        assert!(
            runs(&commands, script),
            "the release job does not run {script}"
        );
    }
    assert!(
        commands
            .iter()
            .any(|c| c.contains("scripts/release.sh \"$GITHUB_REF_NAME\"")),
        "scripts/release.sh must get the tag, which it checks: {commands:?}"
    );
    let uses: Vec<&str> = release["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s["uses"].as_str())
        .collect();
    assert!(
        uses.iter()
            .filter(|u| u.starts_with("actions/attest-build-provenance@"))
            .count()
            == 2,
        "provenance for the files and for the image: {uses:?}"
    );
    for permission in ["id-token", "attestations", "contents"] {
        assert_eq!(
            release["permissions"][permission], "write",
            "attestations and the release need {permission}: write"
        );
    }
}

/// The versions after each `prefix` in `text`.
fn versions_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

fn numbers(version: &str) -> Vec<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .take_while(|part| !part.is_empty())
        .map(|part| part.parse().unwrap())
        .collect()
}

#[test]
fn every_version_a_pipeline_names_is_the_crates() {
    let mut rust_images = Vec::new();
    for file in FILES {
        let text = read(file);
        for prefix in [
            "oauthtokenpipe/oauth-token-pipe:",
            "oauth-token-pipe/oauth-token-pipe@v",
        ] {
            for version in versions_after(&text, prefix) {
                assert_eq!(version, VERSION, "{file} names {prefix}{version}");
            }
        }
        let rust: Vec<String> = versions_after(&text, "rust:")
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert!(!rust.is_empty(), "{file} names no rust image");
        for version in &rust {
            assert!(
                numbers(version) >= numbers(env!("CARGO_PKG_RUST_VERSION")),
                "{file} builds with rust:{version}, older than Cargo.toml's rust-version {}",
                env!("CARGO_PKG_RUST_VERSION")
            );
        }
        rust_images.extend(rust);
    }
    rust_images.dedup();
    assert_eq!(
        rust_images.len(),
        1,
        "both pipelines build in the same Rust image, so they make the same binaries: {rust_images:?}"
    );
}

fn check_version(tag: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new("bash");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("scripts/check-version.sh")
        .current_dir(root());
    if let Some(tag) = tag {
        cmd.arg(tag);
    }
    cmd.output().expect("run scripts/check-version.sh")
}

#[test]
fn check_version_passes_on_the_crate_version_and_refuses_another_tag() {
    let output = check_version(Some(&format!("v{VERSION}")));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = check_version(Some("v0.0.0-not-this"));
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains(&format!("is not v{VERSION}")),
        "the refusal names the expected tag: {said}"
    );
}
