//! The examples and README section for CI identity federation, checked against the program.

use super::*;

/// The GitLab example's jobs: each names an `id_tokens:` variable the pipe reads (with the
/// audience OIDC_AUDIENCE expects), stores no secret, and is a valid configuration once GitLab
/// has set that variable.
#[test]
fn gitlab_example_jobs_define_the_identity_token_the_pipe_reads() {
    use oauth_token_pipe::config::{self, Config};
    use serde_yaml_ng::Value;
    let path = format!(
        "{}/examples/gitlab-ci-without-a-secret.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut ci: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ci.apply_merge().unwrap();
    let server = FakeOidc::start(Setup::default());
    let mut seen = Vec::new();
    for (name, job) in ci.as_mapping().unwrap() {
        let Some(id_tokens) = job.get("id_tokens") else {
            continue;
        };
        let name = name.as_str().unwrap();
        let vars = job["variables"].as_mapping().unwrap();
        let get = |k: &str| vars.get(k).and_then(Value::as_str);
        let variable = get("OIDC_TOKEN_VARIABLE").unwrap_or("OIDC_TOKEN");
        let aud = id_tokens[variable]["aud"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: id_tokens lacks {variable}"));
        let provider = get("PROVIDER").unwrap();
        let wanted = get("OIDC_AUDIENCE").or((provider == "entra").then_some(ENTRA_AUDIENCE));
        if let Some(wanted) = wanted {
            assert_eq!(
                aud, wanted,
                "{name}: the minted aud is the one the pipe checks"
            );
        }
        assert!(get("CLIENT_SECRET").is_none() && get("PRIVATE_KEY").is_none());
        let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = vars
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().unwrap();
                let v = if v.starts_with('$') {
                    "from-a-ci-variable"
                } else {
                    v
                };
                (k.as_str().unwrap().into(), v.into())
            })
            .collect();
        env.push(("GITLAB_CI".into(), "true".into()));
        env.push((variable.into(), server.mint(Ci::GitLab, &[aud]).into()));
        let (raw, problems) = config::read_env(env);
        let parsed = Config::parse(&raw, problems, oauth_token_pipe::vars::Mode::Exec);
        assert!(parsed.is_ok(), "{name}: {parsed:?}");
        seen.push(provider.to_owned());
    }
    assert_eq!(seen, ["entra", "google"]);
}

/// The README section links every example it promises, and the Variables table links it.
#[test]
fn readme_section_links_each_ci_and_sink_example() {
    let readme =
        std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(readme.contains("(#without-a-stored-secret)"));
    let start = readme.find("## Without a stored secret").unwrap();
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").unwrap()];
    for file in [
        "examples/github-actions/entra-without-a-secret.yml",
        "examples/github-actions/google-without-a-secret.yml",
        "examples/github-actions/token-exchange-without-a-secret.yml",
        "examples/bitbucket-pipelines/google-without-a-secret.yml",
        "examples/bitbucket-pipelines/token-exchange-without-a-secret.yml",
        "examples/gitlab-ci-without-a-secret.yml",
    ] {
        assert!(
            section.contains(&format!("]({file})")),
            "README lacks {file}"
        );
        assert!(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(file)
                .exists()
        );
    }
    for needle in [
        "permissions:\n      id-token: write",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "### Combinations that cannot work",
        "| Bitbucket Pipelines → Entra ID |",
    ] {
        assert!(section.contains(needle), "README section lacks {needle:?}");
    }
}
