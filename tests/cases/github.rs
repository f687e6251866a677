//! GitHub Actions and GitLab CI: each platform's own conventions, checked by parsing what
//! that platform would parse.

use std::fs;
use std::path::Path;

use crate::support::fake::{FakeBitbucket, Reply, Setup};
use crate::support::{bare, parse_file_commands, run};

/// The action as the runner starts it: inputs as `INPUT_*`, file commands in temp files.
fn action(server: &FakeBitbucket, dir: &Path) -> assert_cmd::Command {
    let setup = server.setup();
    for file in ["github_output", "github_env", "summary"] {
        fs::write(dir.join(file), "").unwrap();
    }
    let mut cmd = bare(dir);
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", dir.join("github_output"))
        .env("GITHUB_ENV", dir.join("github_env"))
        .env("GITHUB_STEP_SUMMARY", dir.join("summary"))
        .env("GITHUB_REPOSITORY", "someone/github-repo")
        .env("INPUT_CLIENT_ID", &setup.client_id)
        .env("INPUT_CLIENT_SECRET", &setup.client_secret)
        .env("INPUT_REPOSITORY", "acme/widgets")
        .env("INPUT_TOKEN_URL", server.token_url())
        .env("INPUT_API_URL", server.api_url())
        .env("INPUT_CA_BUNDLE", server.ca_file())
        // Unset inputs arrive as empty strings.
        .env("INPUT_REQUIRED_SCOPES", "")
        .env("INPUT_OUTPUT_FILE", "")
        .env("INPUT_EXPORT_ENV", "")
        .env("INPUT_DEBUG", "");
    cmd
}

#[test]
fn outputs_are_written_as_heredocs_the_runner_parses() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let out = run(&mut action(&server, work.path()));
    out.expect_code(0)
        .expect_log("INFO: Running on GitHub Actions.")
        .expect_log("the step outputs token, expires_at and scopes (masked)");
    let outputs =
        parse_file_commands(&fs::read_to_string(work.path().join("github_output")).unwrap());
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, oauth_token_pipe::deliver::github::OUTPUTS);
    assert_eq!(outputs[0].1, server.setup().token);
    assert!(
        humantime::parse_rfc3339(&outputs[1].1).is_ok(),
        "{}",
        outputs[1].1
    );
    assert_eq!(outputs[2].1, "repository,pullrequest");
    assert_eq!(
        fs::read_to_string(work.path().join("github_env")).unwrap(),
        "",
        "GITHUB_ENV only with export_env"
    );
    assert!(
        !work.path().join("oauth-token.env").exists(),
        "no file unless output_file is set"
    );
    let summary = fs::read_to_string(work.path().join("summary")).unwrap();
    assert!(
        summary.contains("| Scopes | repository, pullrequest |")
            && summary.contains("| Validation | validated (read repository acme/widgets) |"),
        "{summary}"
    );
    assert!(!summary.contains(&server.setup().token));
}

#[test]
fn add_mask_comes_before_any_line_that_could_contain_the_token() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let out = run(action(&server, work.path()).env("INPUT_DEBUG", "true"));
    out.expect_code(0);
    assert_eq!(
        out.stdout, "",
        "on GitHub every line goes to one ordered stream, standard error (stdout is for answers)"
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    let setup = server.setup();
    assert_eq!(
        lines[0],
        format!("::add-mask::{}", setup.client_secret),
        "the secret is masked first"
    );
    let token_mask = lines
        .iter()
        .position(|l| *l == format!("::add-mask::{}", setup.token))
        .expect("the token is masked");
    let received = lines
        .iter()
        .position(|l| l.contains("Received a bearer token"))
        .unwrap();
    let first_response = lines
        .iter()
        .position(|l| l.starts_with("DEBUG: < HTTP 200"))
        .unwrap();
    // Registered the moment the response is read, before DEBUG shows any of it
    // (regression: the redacted body used to be logged first).
    assert!(
        token_mask < first_response && token_mask < received,
        "mask at {token_mask}, response at {first_response}, received at {received}"
    );
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("::add-mask::") {
            assert!(
                !line.contains(&setup.token) && !line.contains(&setup.client_secret),
                "line {i} leaks: {line}"
            );
        }
    }
}

#[test]
fn export_env_appends_the_dotenv_variables_to_github_env() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(action(&server, work.path())
        .env("INPUT_EXPORT_ENV", "true")
        .env("INPUT_TOKEN_VARIABLE", "BB_TOKEN"))
    .expect_code(0)
    .expect_log("$GITHUB_ENV as BB_TOKEN");
    let env = parse_file_commands(&fs::read_to_string(work.path().join("github_env")).unwrap());
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["BB_TOKEN", "BB_TOKEN_EXPIRES_AT", "BB_TOKEN_SCOPES"]
    );
    assert_eq!(env[0].1, server.setup().token);
}

#[test]
fn output_file_input_also_writes_the_dotenv_file() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(action(&server, work.path()).env("INPUT_OUTPUT_FILE", "tokens/bb.env"))
        .expect_code(0)
        .expect_log("source tokens/bb.env");
    assert!(
        fs::read_to_string(work.path().join("tokens/bb.env"))
            .unwrap()
            .starts_with("BITBUCKET_ACCESS_TOKEN=ey")
    );
}

#[test]
fn plain_variable_names_work_on_github_too() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let setup = server.setup();
    run(action(&server, work.path())
        .env("INPUT_CLIENT_ID", "")
        .env("CLIENT_ID", &setup.client_id))
    .expect_code(0);
}

#[test]
fn failures_become_error_annotations_and_set_no_output() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let out = run(action(&server, work.path()).env("INPUT_CLIENT_SECRET", "wrong-secret"));
    out.expect_code(3).expect_log(
        "::error title=oauth-token-pipe%3A credentials rejected (exit 3)::Bitbucket refused the token request (HTTP 400 Bad Request, unauthorized_client: Invalid OAuth client credentials).%0AThe Key or Secret is wrong.",
    );
    assert_eq!(
        fs::read_to_string(work.path().join("github_output")).unwrap(),
        ""
    );
}

#[test]
fn configuration_problems_name_the_input() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(action(&server, work.path())
        .env("INPUT_CLIENT_ID", "")
        .env("INPUT_VALIDATE", "sometimes"))
    .expect_code(2)
    .expect_log("✖ CLIENT_ID (the `client_id` input) is not set")
    .expect_log("VALIDATE (the `validate` input) (\"sometimes\") is not a boolean")
    .expect_log("::error title=oauth-token-pipe%3A invalid configuration (exit 2)::");
}

#[test]
fn a_hostile_token_is_refused_rather_than_written() {
    for token in [
        "abc\nghadelimiter_0000\nEVIL<<X",
        "abc\r\nINJECTED=1",
        "ghadelimiter_x<<y",
    ] {
        let body =
            serde_json::json!({"access_token": token, "token_type": "bearer", "expires_in": 7200})
                .to_string();
        let server = FakeBitbucket::start(Setup {
            token_replies: vec![Reply::json(200, &body)],
            ..Setup::default()
        });
        let work = tempfile::tempdir().unwrap();
        run(action(&server, work.path()).env("INPUT_EXPORT_ENV", "true"))
            .expect_code(5)
            .expect_log("refusing it");
        for file in ["github_output", "github_env"] {
            assert_eq!(
                fs::read_to_string(work.path().join(file)).unwrap(),
                "",
                "{token:?} reached {file}"
            );
        }
    }
}

#[test]
fn github_without_github_output_is_a_configuration_error() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(action(&server, work.path()).env_remove("GITHUB_OUTPUT"))
        .expect_code(2)
        .expect_log("GITHUB_ACTIONS is true but GITHUB_OUTPUT is not set");
}

/// GitLab's dotenv report parser (Ci::ParseDotenvArtifactService): one `KEY=VALUE` per line,
/// the key `^[a-zA-Z_][a-zA-Z0-9_]*$`, the value taken as it is (no quote handling, no
/// escapes, no multi-line values), at most 5 KiB per file.
fn parse_gitlab_dotenv(text: &str) -> Vec<(String, String)> {
    assert!(
        text.len() <= 5 * 1024,
        "GitLab refuses dotenv files over 5 KiB"
    );
    text.lines()
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("GitLab rejects {line:?}"));
            let key = key.trim();
            assert!(
                oauth_token_pipe::vars::is_variable_name(key),
                "GitLab rejects key {key:?}"
            );
            assert!(
                !value.starts_with(['"', '\'']),
                "quotes would be kept in the value by GitLab: {value}"
            );
            (key.to_owned(), value.trim().to_owned())
        })
        .collect()
}

#[test]
fn gitlab_is_detected_and_its_dotenv_parser_reads_the_file() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(crate::support::pipe(&server, work.path()).env("GITLAB_CI", "true"))
        .expect_code(0)
        .expect_log("INFO: Running on GitLab CI.");
    let pairs =
        parse_gitlab_dotenv(&fs::read_to_string(work.path().join("oauth-token.env")).unwrap());
    assert_eq!(
        pairs[0],
        ("BITBUCKET_ACCESS_TOKEN".to_owned(), server.setup().token)
    );
    assert_eq!(
        pairs[2],
        (
            "BITBUCKET_ACCESS_TOKEN_SCOPES".to_owned(),
            "repository,pullrequest".to_owned()
        )
    );
}

#[test]
fn bitbucket_and_local_runs_say_where_they_are() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(crate::support::pipe(&server, work.path()).env("BITBUCKET_BUILD_NUMBER", "42"))
        .expect_code(0)
        .expect_log("INFO: Running on Bitbucket Pipelines.");
    run(&mut crate::support::pipe(&server, work.path()))
        .expect_code(0)
        .expect_log("INFO: Running on a local shell (no CI detected).");
}

/// `docker run --env-file`'s parser (moby opts/envfile.go): leading whitespace is trimmed,
/// empty and `#` lines are skipped, the name is up to the first `=` and may hold no
/// whitespace, and the value is taken as it is — no quotes, no escapes.
fn parse_docker_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| line.trim_start())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            assert!(
                !name.contains(char::is_whitespace),
                "docker rejects {name:?}: variable contains whitespaces"
            );
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn docker_env_file_reads_the_file_as_written() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(&mut crate::support::pipe(&server, work.path())).expect_code(0);
    let text = fs::read_to_string(work.path().join("oauth-token.env")).unwrap();
    let written: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .unwrap()
        })
        .collect();
    assert_eq!(parse_docker_env_file(&text), written);
    assert_eq!(written[0].1, server.setup().token);
}
