//! pipe.yml, the Dockerfile and the example pipelines cannot drift from the program: the
//! variables pipe.yml declares are exactly the ones the program reads (`config::VARIABLES`),
//! with the program's own defaults; the image tag and the Dockerfile's VERSION are the crate
//! version; and every example pipeline parses, passes our pipe only variables it declares,
//! takes the consumer's credentials from (secured) variables, and never prints the token.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use oauth_token_pipe::config::{self, Config, table};
use oauth_token_pipe::vars::Mode;
use serde::Deserialize;
use serde_yaml_ng::Value;

/// The Docker Hub repository pipe.yml and the examples name.
const IMAGE_REPOSITORY: &str = "oauthtokenpipe/oauth-token-pipe";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The templates issue #3 asks for (a)-(e); the README links to them.
const TEMPLATES: &[&str] = &[
    "api-call-with-curl.yml",
    "git-push-over-https.yml",
    "official-pipe-upload-file.yml",
    "share-token-with-later-step.yml",
];

/// pipe.yml in Atlassian's format; unknown keys are refused so a typo cannot hide a field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipeYml {
    name: String,
    image: String,
    description: String,
    category: String,
    repository: String,
    vendor: Party,
    maintainer: Party,
    tags: Vec<String>,
    variables: Vec<Variable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Party {
    name: String,
    website: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Variable {
    name: String,
    default: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn pipe_yml() -> PipeYml {
    serde_yaml_ng::from_str(&read("pipe.yml")).unwrap_or_else(|e| panic!("pipe.yml: {e}"))
}

/// The default the program applies when `name` is unset, as pipe.yml should spell it; `None`
/// for a variable this table does not know yet (the test then says to add it).
fn program_default(name: &str) -> Option<String> {
    // The table's defaults are held to the code's constants by a unit test in config.
    table::find(name).map(|v| v.default.to_owned())
}

#[test]
fn pipe_yml_declares_exactly_the_variables_the_program_reads() {
    let pipe = pipe_yml();
    let declared: Vec<&str> = pipe.variables.iter().map(|v| v.name.as_str()).collect();
    let declared_set: BTreeSet<&str> = declared.iter().copied().collect();
    let read_set: BTreeSet<&str> = table::pipe_variables().into_iter().collect();
    let missing: Vec<_> = read_set.difference(&declared_set).collect();
    let extra: Vec<_> = declared_set.difference(&read_set).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "pipe.yml `variables` differ from the variable table: the program reads {missing:?} but pipe.yml does not declare them; pipe.yml declares {extra:?} but the program does not read them"
    );
    assert_eq!(
        declared.len(),
        declared_set.len(),
        "pipe.yml declares a variable twice: {declared:?}"
    );
    assert_eq!(
        declared,
        table::pipe_variables(),
        "pipe.yml should list the variables in the table's order (the README's)"
    );
}

#[test]
fn pipe_yml_defaults_are_the_programs_defaults() {
    for variable in pipe_yml().variables {
        let expected = program_default(&variable.name).unwrap_or_else(|| {
            panic!(
                "{} has no known default: add it to program_default() in this test",
                variable.name
            )
        });
        assert_eq!(
            variable.default, expected,
            "pipe.yml's default for {} differs from the program's",
            variable.name
        );
    }
}

/// The same check, through the program's own parser: a pipeline that sets a variable to
/// pipe.yml's default (with `$BITBUCKET_REPO_FULL_NAME` expanded, as Bitbucket's shell would)
/// gets exactly the configuration of one that leaves it unset.
#[test]
fn pipe_yml_defaults_change_nothing_when_set_explicitly() {
    // The least a pipeline sets; the repository name is unusual so that a literal default
    // cannot match it by chance.
    let base = [
        ("CLIENT_ID", "key"),
        ("CLIENT_SECRET", "secret"),
        ("BITBUCKET_REPO_FULL_NAME", "default-check/repo-8c1f"),
    ];
    let configure = |extra: Option<(&str, String)>| {
        let mut vars: Vec<(OsString, OsString)> = base
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        vars.extend(extra.map(|(k, v)| (OsString::from(k), OsString::from(v))));
        let (raw, problems) = config::read_env(vars);
        format!("{:?}", Config::parse(&raw, problems, Mode::Pipe))
    };
    let unset = configure(None);
    assert!(unset.starts_with("Ok("), "{unset}");
    for variable in pipe_yml().variables {
        if let Some((_, value)) = base.iter().find(|(k, _)| *k == variable.name) {
            // Required: the pipeline sets it, so pipe.yml can have no default.
            assert_eq!(
                variable.default, "",
                "{} is required ({value:?} in this test) and must have an empty default in pipe.yml",
                variable.name
            );
            continue;
        }
        let value = match variable.default.strip_prefix('$') {
            Some(reference) => base
                .iter()
                .find(|(k, _)| *k == reference.trim_matches(['{', '}']))
                .map(|(_, v)| v.to_string())
                .unwrap_or_default(),
            None => variable.default.clone(),
        };
        assert_eq!(
            configure(Some((&variable.name, value.clone()))),
            unset,
            "setting {}={value:?} (pipe.yml's default) changes the program's configuration",
            variable.name
        );
    }
}

#[test]
fn pipe_yml_metadata_names_this_crate_and_version() {
    let pipe = pipe_yml();
    assert_eq!(
        pipe.image,
        format!("{IMAGE_REPOSITORY}:{VERSION}"),
        "pipe.yml's image must be tagged with the crate version"
    );
    assert_eq!(pipe.repository, env!("CARGO_PKG_REPOSITORY"));
    assert_eq!(pipe.category, "Utilities");
    for (field, value) in [
        ("name", &pipe.name),
        ("description", &pipe.description),
        ("vendor.name", &pipe.vendor.name),
        ("vendor.website", &pipe.vendor.website),
        ("maintainer.name", &pipe.maintainer.name),
        ("maintainer.website", &pipe.maintainer.website),
    ] {
        assert!(!value.trim().is_empty(), "pipe.yml's {field} is empty");
    }
    assert!(!pipe.tags.is_empty(), "pipe.yml has no tags");
}

#[test]
fn dockerfile_version_and_labels_are_the_crates() {
    let dockerfile = read("Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let version_args: Vec<&str> = instructions
        .iter()
        .filter_map(|l| l.strip_prefix("ARG VERSION="))
        .collect();
    assert_eq!(
        version_args,
        [VERSION],
        "the Dockerfile's `ARG VERSION=` default must be the crate version"
    );
    assert_eq!(instructions.first(), Some(&"FROM scratch"));
    assert!(
        instructions.contains(&r#"ENTRYPOINT ["/oauth-token-pipe"]"#),
        "ENTRYPOINT must be the binary, in exec form"
    );
    for label in [
        "org.opencontainers.image.version=\"${VERSION}\"".to_owned(),
        format!(
            "org.opencontainers.image.source=\"{}\"",
            env!("CARGO_PKG_REPOSITORY")
        ),
        format!(
            "org.opencontainers.image.licenses=\"{}\"",
            env!("CARGO_PKG_LICENSE")
        ),
    ] {
        assert!(dockerfile.contains(&label), "the Dockerfile lacks {label}");
    }
}

fn example_dir() -> PathBuf {
    root().join("examples/bitbucket-pipelines")
}

/// Every example pipeline, parsed, with YAML merge keys applied.
fn examples() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for entry in fs::read_dir(example_dir()).expect("examples/bitbucket-pipelines") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).unwrap();
        let mut value: Value = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"));
        value
            .apply_merge()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        found.push((name, value));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every mapping in `value` that has a `pipe:` key, with the pipe's image.
fn pipe_blocks(value: &Value) -> Vec<(&str, &Value)> {
    let mut blocks = Vec::new();
    walk(value, &mut |v| {
        if let Some(image) = v.get("pipe").and_then(Value::as_str) {
            blocks.push((image, v));
        }
    });
    blocks
}

fn walk<'a>(value: &'a Value, visit: &mut impl FnMut(&'a Value)) {
    visit(value);
    match value {
        Value::Sequence(items) => items.iter().for_each(|v| walk(v, visit)),
        Value::Mapping(map) => map.values().for_each(|v| walk(v, visit)),
        Value::Tagged(tagged) => walk(&tagged.value, visit),
        _ => {}
    }
}

fn strings(value: &Value) -> Vec<&str> {
    let mut found = Vec::new();
    walk(value, &mut |v| {
        if let Some(s) = v.as_str() {
            found.push(s);
        }
    });
    found
}

fn is_ours(image: &str) -> bool {
    image
        .trim()
        .trim_start_matches("docker://")
        .starts_with(&format!("{IMAGE_REPOSITORY}:"))
}

/// `$NAME` or `${NAME}`, and nothing else.
fn is_variable_reference(value: &str) -> bool {
    let name = value
        .strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .or_else(|| value.strip_prefix('$'));
    name.is_some_and(oauth_token_pipe::vars::is_variable_name)
}

#[test]
fn every_template_exists_and_parses_as_a_pipeline() {
    let examples = examples();
    let names: Vec<&str> = examples.iter().map(|(n, _)| n.as_str()).collect();
    for template in TEMPLATES {
        assert!(
            names.contains(template),
            "examples/bitbucket-pipelines/{template} is missing (found {names:?})"
        );
    }
    for (name, value) in &examples {
        assert!(
            value.get("pipelines").is_some_and(Value::is_mapping),
            "{name} has no `pipelines:` mapping, so it is not a complete bitbucket-pipelines.yml"
        );
    }
}

#[test]
fn examples_pass_our_pipe_only_declared_variables_and_secured_credentials() {
    let pipe = pipe_yml();
    let declared: BTreeSet<&str> = pipe.variables.iter().map(|v| v.name.as_str()).collect();
    for (name, value) in examples() {
        let ours: Vec<_> = pipe_blocks(&value)
            .into_iter()
            .filter(|(image, _)| is_ours(image))
            .collect();
        // Or the released binary itself, where git needs it as a credential helper.
        let runs_binary = strings(&value).iter().any(|s| {
            s.contains(&format!(
                "releases/download/v{VERSION}/oauth-token-pipe-{VERSION}-"
            ))
        });
        assert!(
            !ours.is_empty() || runs_binary,
            "{name} never runs our pipe"
        );
        for (image, block) in ours {
            assert_eq!(
                image.trim(),
                format!("docker://{}", pipe.image),
                "{name}: our pipe must be referenced as docker://<pipe.yml image>"
            );
            let variables = block
                .get("variables")
                .and_then(Value::as_mapping)
                .unwrap_or_else(|| panic!("{name}: a `pipe: {image}` block has no variables"));
            for (key, value) in variables {
                let key = key.as_str().expect("variable names are strings");
                // Bitbucket's own identity token, passed on as itself (`oidc: true` steps).
                if key == "BITBUCKET_STEP_OIDC_TOKEN" {
                    assert_eq!(
                        value.as_str(),
                        Some("$BITBUCKET_STEP_OIDC_TOKEN"),
                        "{name}: BITBUCKET_STEP_OIDC_TOKEN is passed on as itself"
                    );
                    continue;
                }
                assert!(
                    declared.contains(key),
                    "{name}: passes {key} to our pipe, which pipe.yml does not declare ({declared:?})"
                );
                assert!(
                    value.is_string(),
                    "{name}: {key} should be a quoted string, as Bitbucket passes it"
                );
            }
            // No stored secret: the step mints an identity token and nothing secret is passed.
            let get = |k: &str| variables.get(k).and_then(Value::as_str);
            let federated = get("PROVIDER") == Some("google")
                || matches!(get("GRANT"), Some("token_exchange" | "jwt_bearer"))
                || get("CLIENT_AUTH") == Some("federated");
            if federated {
                assert!(
                    oidc_steps(&value).iter().any(|step| {
                        let mut holds = false;
                        walk(step, &mut |v| holds |= std::ptr::eq(v, block));
                        holds
                    }),
                    "{name}: a federated pipe runs in a step with `oidc: true` (or `oidc: audiences:`)"
                );
                assert_eq!(
                    get("BITBUCKET_STEP_OIDC_TOKEN"),
                    Some("$BITBUCKET_STEP_OIDC_TOKEN")
                );
                for secret in ["CLIENT_SECRET", "PRIVATE_KEY"] {
                    assert!(
                        get(secret).is_none(),
                        "{name}: a federated pipe gets no {secret}"
                    );
                }
                continue;
            }
            let credentials: &[&str] = match variables.get("PROVIDER").and_then(Value::as_str) {
                Some("github-app") => &["APP_ID", "PRIVATE_KEY"],
                _ => &["CLIENT_ID", "CLIENT_SECRET"],
            };
            for credential in credentials {
                let value = variables.get(*credential).and_then(Value::as_str);
                assert!(
                    value.is_some_and(is_variable_reference),
                    "{name}: {credential} must come from a (secured) variable, as `{credential}: $OAUTH_{credential}`, never a literal; got {value:?}"
                );
            }
        }
    }
}

/// The steps that mint an identity token: `oidc: true`, or `oidc:` with `audiences:`.
fn oidc_steps(value: &Value) -> Vec<&Value> {
    let mut steps = Vec::new();
    walk(value, &mut |v| {
        if let Some(step) = v.get("step") {
            let oidc = &step["oidc"];
            if oidc.as_bool() == Some(true) || oidc.get("audiences").is_some() {
                steps.push(step);
            }
        }
    });
    steps
}

/// Commands that show what they are given, or the whole environment.
const PRINTERS: &[&str] = &[
    "echo", "printf", "cat", "tee", "head", "tail", "less", "more", "od", "xxd", "hexdump",
    "base64", "strings", "printenv",
];

/// Why `script` (one YAML string of a pipeline) could print the token, if it could.
fn prints_token(script: &str, token_variables: &[&str], files: &[&str]) -> Option<String> {
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| c.is_whitespace() || "\"'(){}<>".contains(c))
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let all = words(script);
    for pair in all.windows(2) {
        if pair[0] == "set" && pair[1].starts_with('-') && pair[1].contains('x') {
            return Some(format!(
                "`set {}` traces every command, token included",
                pair[1]
            ));
        }
    }
    if all.iter().any(|w| w == "xtrace") {
        return Some("xtrace prints every command, token included".into());
    }
    // Split into simple commands; `$(` and backquotes start one too.
    let segments = script
        .split(['\n', ';', '|', '&', '`'])
        .flat_map(|s| s.split("$("));
    for segment in segments {
        let words = words(segment);
        if words.first().is_some_and(|w| w == "printenv")
            || matches!(
                words.iter().map(String::as_str).collect::<Vec<_>>()[..],
                ["env"] | ["set"] | ["export"] | ["export", "-p"] | ["declare", "-p"]
            )
        {
            return Some(format!("`{}` prints the whole environment", segment.trim()));
        }
        let printer = words.iter().find(|w| PRINTERS.contains(&w.as_str()));
        let Some(printer) = printer else { continue };
        for variable in token_variables {
            if references(segment, variable) {
                return Some(format!("`{printer}` with ${variable}"));
            }
        }
        for file in files {
            if words
                .iter()
                .any(|w| w == file || w.ends_with(&format!("/{file}")))
            {
                return Some(format!("`{printer}` with {file}"));
            }
        }
    }
    None
}

/// Whether `text` expands `$variable` or `${variable}` (not a longer name that starts alike).
fn references(text: &str, variable: &str) -> bool {
    let braced = format!("${{{variable}}}");
    let bare = format!("${variable}");
    text.contains(&braced)
        || text.match_indices(&bare).any(|(at, _)| {
            !text[at + bare.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[test]
fn the_token_printing_check_catches_what_it_should() {
    let vars = ["BITBUCKET_ACCESS_TOKEN"];
    let files = ["oauth-token.env"];
    for bad in [
        "echo $BITBUCKET_ACCESS_TOKEN",
        "echo \"token: ${BITBUCKET_ACCESS_TOKEN}\"",
        "printf '%s' \"$BITBUCKET_ACCESS_TOKEN\" | base64",
        "cat oauth-token.env",
        "source ./oauth-token.env && cat ./oauth-token.env",
        "echo \"$(cat oauth-token.env)\"",
        "printenv",
        "printenv BITBUCKET_ACCESS_TOKEN",
        "env",
        "set -ex",
        "set -o xtrace",
    ] {
        assert!(
            prints_token(bad, &vars, &files).is_some(),
            "not caught: {bad}"
        );
    }
    for good in [
        "source oauth-token.env",
        "set -a && source oauth-token.env && set +a",
        "echo \"valid until $BITBUCKET_ACCESS_TOKEN_EXPIRES_AT\"",
        "curl -H \"Authorization: Bearer $BITBUCKET_ACCESS_TOKEN\" https://api.bitbucket.org/2.0/user",
        "set -e",
        "echo done; git push \"https://x-token-auth:$BITBUCKET_ACCESS_TOKEN@bitbucket.org/a/b.git\"",
    ] {
        assert_eq!(
            prints_token(good, &vars, &files),
            None,
            "wrongly caught: {good}"
        );
    }
}

#[test]
fn examples_never_print_the_token() {
    for (name, value) in examples() {
        // The names and file this example's own pipe blocks chose, besides the defaults.
        let mut token_variables = vec![
            oauth_token_pipe::provider::bitbucket::DEFAULT_TOKEN_VARIABLE.to_owned(),
            oauth_token_pipe::provider::oauth2::DEFAULT_TOKEN_VARIABLE.to_owned(),
        ];
        let mut files = vec![oauth_token_pipe::deliver::DEFAULT_OUTPUT_FILE.to_owned()];
        for (image, block) in pipe_blocks(&value) {
            if !is_ours(image) {
                continue;
            }
            let variables = block.get("variables");
            let get = |key: &str| {
                variables
                    .and_then(|v| v.get(key))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            token_variables.extend(get("TOKEN_VARIABLE"));
            files.extend(
                get("OUTPUT_FILE").map(|f| f.rsplit('/').next().unwrap_or_default().to_owned()),
            );
        }
        let token_variables: Vec<&str> = token_variables.iter().map(String::as_str).collect();
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        for script in strings(&value) {
            if let Some(why) = prints_token(script, &token_variables, &files) {
                panic!("{name} could print the access token ({why}) in: {script}");
            }
        }
    }
}

/// The OAuth 2.0 profiles, each with a template `{profile}-client-credentials.yml` (issue 12).
const PROFILES: &[&str] = &["oauth2", "entra", "auth0", "okta", "keycloak"];

/// A pipe block's variables as the pipe would see them: `$NAME` references (secured
/// variables) replaced by a value of the right shape.
fn resolved(variables: &[(String, String)]) -> Vec<(OsString, OsString)> {
    variables
        .iter()
        .map(|(k, v)| {
            let value = if is_variable_reference(v) {
                format!(
                    "{}-from-a-variable",
                    k.to_ascii_lowercase().replace('_', "-")
                )
            } else {
                v.clone()
            };
            (OsString::from(k), OsString::from(value))
        })
        .collect()
}

#[test]
fn each_oauth_profile_has_a_template_that_is_a_valid_configuration_for_it() {
    let examples = examples();
    for profile in PROFILES {
        let name = format!("{profile}-client-credentials.yml");
        let (_, value) = examples
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("examples/bitbucket-pipelines/{name} is missing"));
        let blocks: Vec<_> = pipe_blocks(value)
            .into_iter()
            .filter(|(image, _)| is_ours(image))
            .collect();
        assert_eq!(blocks.len(), 1, "{name}: one pipe block");
        let variables: Vec<(String, String)> = blocks[0]
            .1
            .get("variables")
            .and_then(Value::as_mapping)
            .expect("variables")
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_owned(),
                    v.as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            variables
                .iter()
                .any(|(k, v)| k == "PROVIDER" && v == profile),
            "{name}: sets PROVIDER: \"{profile}\""
        );
        for (key, _) in &variables {
            assert!(
                table::find(key).is_some(),
                "{name}: {key} is not in the variable table"
            );
        }
        // Through the program's own parser: the template configures what it says it does.
        let (raw, problems) = config::read_env(resolved(&variables));
        let parsed = Config::parse(&raw, problems, Mode::Pipe);
        assert!(
            parsed.is_ok(),
            "{name} is not a valid configuration: {parsed:?}"
        );
    }
}
