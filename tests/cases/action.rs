//! action.yml, the program and the README's GitHub section cannot drift apart.

use oauth_token_pipe::config::table;
use oauth_token_pipe::deliver::github::OUTPUTS as GITHUB_OUTPUTS;
use serde_yaml_ng::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn action() -> Value {
    serde_yaml_ng::from_str(&read("action.yml")).expect("action.yml parses")
}

fn keys(value: &Value) -> Vec<String> {
    value
        .as_mapping()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_input_is_handled_by_the_program_and_mapped_explicitly() {
    let action = action();
    let inputs = keys(&action["inputs"]);
    let github_inputs = table::github_inputs();
    let handled: Vec<&str> = github_inputs.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        inputs, handled,
        "action.yml inputs vs the variable table's inputs"
    );
    let env = &action["runs"]["env"];
    for (input, variable) in &github_inputs {
        assert!(
            table::find(variable).is_some_and(|v| v.input),
            "{variable} is not read by the program"
        );
        assert_eq!(
            env[*variable].as_str(),
            Some(format!("${{{{ inputs.{input} }}}}").as_str()),
            "runs.env.{variable} must be ${{{{ inputs.{input} }}}}"
        );
    }
    assert_eq!(
        keys(env).len(),
        github_inputs.len(),
        "runs.env sets only mapped inputs"
    );
    let required: Vec<String> = inputs
        .iter()
        .filter(|i| action["inputs"][i.as_str()]["required"].as_bool() == Some(true))
        .cloned()
        .collect();
    // Which inputs a run needs depends on PROVIDER (github-app and federated runs pass no
    // secret); the program checks them itself, so action.yml marks none required.
    assert!(required.is_empty(), "{required:?}");
}

#[test]
fn outputs_are_the_ones_the_program_writes() {
    // The common outputs, then each provider's own.
    let mut outputs = GITHUB_OUTPUTS.to_vec();
    outputs.extend(oauth_token_pipe::provider::github_app::OUTPUTS);
    assert_eq!(keys(&action()["outputs"]), outputs);
}

#[test]
fn the_action_runs_the_version_tagged_image() {
    let action = action();
    assert_eq!(action["runs"]["using"].as_str(), Some("docker"));
    assert_eq!(
        action["runs"]["image"].as_str(),
        Some(
            format!(
                "docker://oauthtokenpipe/oauth-token-pipe:{}",
                env!("CARGO_PKG_VERSION")
            )
            .as_str()
        )
    );
}

#[test]
fn the_readme_documents_every_input_and_output() {
    let readme = read("README.md");
    let section = &readme[readme.find("## GitHub Actions").expect("GitHub section")
        ..readme.find("## GitLab CI").expect("GitLab section")];
    for (input, variable) in table::github_inputs() {
        assert!(
            section.contains(&format!("| `{input}`"))
                && section.contains(&format!("| {variable} |")),
            "README lacks input {input} ({variable})"
        );
    }
    for output in GITHUB_OUTPUTS
        .iter()
        .chain(oauth_token_pipe::provider::github_app::OUTPUTS)
    {
        assert!(
            section.contains(&format!("| `{output}` |")),
            "README lacks output {output}"
        );
    }
}

#[test]
fn workflow_examples_use_the_action_with_real_inputs_from_secrets() {
    let dir = format!("{}/examples/github-actions", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let workflow: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (_, job) in workflow["jobs"].as_mapping().expect("jobs") {
            let id_token_write = [&job["permissions"], &workflow["permissions"]]
                .iter()
                .any(|p| p["id-token"].as_str() == Some("write"));
            for step in job["steps"].as_sequence().expect("steps") {
                let Some(uses) = step["uses"]
                    .as_str()
                    .filter(|u| u.starts_with("oauth-token-pipe/oauth-token-pipe@"))
                else {
                    continue;
                };
                seen += 1;
                assert_eq!(
                    uses,
                    format!(
                        "oauth-token-pipe/oauth-token-pipe@v{}",
                        env!("CARGO_PKG_VERSION")
                    )
                );
                for input in keys(&step["with"]) {
                    assert!(
                        table::github_inputs().iter().any(|(i, _)| *i == input),
                        "{}: unknown input {input}",
                        path.display()
                    );
                }
                // No stored secret (README "Without a stored secret"): the job's OIDC identity
                // token is the credential, so the job must be allowed to mint one, and no
                // secret input may be passed.
                let with = &step["with"];
                let federated = with["provider"].as_str() == Some("google")
                    || matches!(
                        with["grant"].as_str(),
                        Some("token_exchange" | "jwt_bearer")
                    )
                    || with["client_auth"].as_str() == Some("federated")
                    || (with["provider"].as_str() == Some("entra")
                        && with["client_secret"].is_null()
                        && with["private_key"].is_null());
                if federated {
                    assert!(
                        id_token_write,
                        "{}: a federated step needs `permissions: id-token: write`",
                        path.display()
                    );
                    for secret in ["client_secret", "private_key"] {
                        assert!(
                            with[secret].is_null(),
                            "{}: a federated step passes no {secret}",
                            path.display()
                        );
                    }
                    continue;
                }
                // Each provider's credentials (github-app: the app's ID and key).
                let credentials: &[&str] = match step["with"]["provider"].as_str() {
                    Some("github-app") => &["app_id", "private_key"],
                    _ => &["client_id", "client_secret"],
                };
                for secret in credentials {
                    assert!(
                        step["with"][*secret]
                            .as_str()
                            .is_some_and(|v| v.starts_with("${{ secrets.")),
                        "{}: {secret} must come from a secret",
                        path.display()
                    );
                }
            }
        }
    }
    assert!(seen >= 2, "examples use the action");
}

#[test]
fn gitlab_example_reports_the_dotenv_file_the_pipe_writes() {
    let ci: Value =
        serde_yaml_ng::from_str(&read("examples/gitlab-ci.yml")).expect("gitlab-ci.yml parses");
    let job = &ci["bitbucket-token"];
    assert_eq!(
        job["artifacts"]["reports"]["dotenv"].as_str(),
        Some(oauth_token_pipe::deliver::DEFAULT_OUTPUT_FILE)
    );
    assert!(
        job["script"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.contains(&format!(
                "oauthtokenpipe/oauth-token-pipe:{}",
                env!("CARGO_PKG_VERSION")
            ))))
    );
}

/// Every workflow example whose step sets `provider:` to an OAuth 2.0 profile: its inputs,
/// mapped to their variables and with `${{ … }}` expressions given a value, are a valid
/// configuration for that profile.
#[test]
fn oauth_workflow_examples_are_valid_configurations() {
    use oauth_token_pipe::config::{self, Config};
    let dir = format!("{}/examples/github-actions", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let workflow: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (_, job) in workflow["jobs"].as_mapping().expect("jobs") {
            let id_token_write = [&job["permissions"], &workflow["permissions"]]
                .iter()
                .any(|p| p["id-token"].as_str() == Some("write"));
            for step in job["steps"].as_sequence().expect("steps") {
                let provider = step["with"]["provider"].as_str().unwrap_or("bitbucket");
                if !["oauth2", "entra", "auth0", "okta", "keycloak"].contains(&provider) {
                    continue;
                }
                seen += 1;
                let vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = keys(&step["with"])
                    .into_iter()
                    .map(|input| {
                        let (_, variable) = table::github_inputs()
                            .into_iter()
                            .find(|(i, _)| *i == input)
                            .unwrap_or_else(|| panic!("{}: unknown input {input}", path.display()));
                        let value = step["with"][input.as_str()].as_str().unwrap_or_default();
                        let value = if value.starts_with("${{") {
                            format!("{}-from-an-expression", input.replace('_', "-"))
                        } else {
                            value.to_owned()
                        };
                        (variable.into(), value.into())
                    })
                    .collect();
                let mut vars = vars;
                // With `permissions: id-token: write` the runner gives the action's container
                // what it needs to mint an identity token (README "Without a stored secret").
                if id_token_write {
                    for (name, value) in [
                        ("GITHUB_ACTIONS", "true"),
                        ("GITHUB_OUTPUT", "/github/file_commands/set_output"),
                        (
                            "ACTIONS_ID_TOKEN_REQUEST_URL",
                            "https://pipelines.actions.githubusercontent.com/x/idtoken?api-version=2.0",
                        ),
                        (
                            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                            "request-token-from-the-runner",
                        ),
                    ] {
                        vars.push((name.into(), value.into()));
                    }
                }
                let (raw, problems) = config::read_env(vars);
                let parsed = Config::parse(&raw, problems, oauth_token_pipe::vars::Mode::Pipe);
                assert!(parsed.is_ok(), "{}: {parsed:?}", path.display());
            }
        }
    }
    assert!(seen >= 1, "an OAuth 2.0 workflow example exists");
}
