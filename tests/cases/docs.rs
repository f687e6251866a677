//! The README cannot drift from the code: variables, defaults, exit codes, versions and the
//! first two commands are checked against the program and `.ci/run`.

use std::collections::BTreeMap;

use oauth_token_pipe::config::table;

use crate::support::table_after;
use oauth_token_pipe::error::Exit;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

/// The body of the first fenced block of `lang` after the heading `heading`.
fn block_after(text: &str, heading: &str, lang: &str) -> String {
    let section = &text[text
        .find(heading)
        .unwrap_or_else(|| panic!("README lacks {heading}"))..];
    let start = section
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("no ```{lang} block after {heading}"))
        + lang.len()
        + 4;
    let end = section[start..].find("```").expect("closed block");
    section[start..start + end].to_owned()
}

#[test]
fn variables_table_lists_exactly_what_the_program_reads() {
    let rows = table_after(&readme(), "## Variables");
    let names: Vec<&str> = rows
        .iter()
        .map(|(n, _)| n.trim_end_matches(" (*)"))
        .collect();
    assert_eq!(
        names,
        table::pipe_variables(),
        "README Variables table vs the variable table"
    );
    let required: Vec<&str> = rows
        .iter()
        .filter(|(n, _)| n.ends_with(" (*)"))
        .map(|(n, _)| n.trim_end_matches(" (*)"))
        .collect();
    assert_eq!(required, ["CLIENT_ID", "CLIENT_SECRET"]);
}

#[test]
fn variables_table_states_the_real_defaults() {
    let rows: BTreeMap<String, String> =
        table_after(&readme(), "## Variables").into_iter().collect();
    // The table's defaults are held to the code's constants by a unit test in config.
    let defaults = table::VARIABLES
        .iter()
        .filter(|v| v.in_pipe_yml() && !v.default.is_empty());
    for var in defaults {
        let (name, default) = (var.name, var.default);
        let usage = &rows[name];
        assert!(
            usage.contains(&format!("Default: `{default}`")),
            "{name}: README says {usage:?}, the program's default is {default}"
        );
    }
}

#[test]
fn yaml_definition_shows_every_variable_and_the_current_image() {
    let block = block_after(&readme(), "## YAML Definition", "yaml");
    // The optional variables are commented out; uncomment them to parse the whole snippet.
    let uncommented: String = block
        .lines()
        .map(|l| match l.trim_start().strip_prefix("# ") {
            Some(rest) => format!(
                "{}{}\n",
                &l[..l.len() - l.trim_start().len()],
                rest.split(" # ").next().unwrap()
            ),
            None => format!("{l}\n"),
        })
        .collect();
    let steps: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&uncommented).expect("YAML Definition parses");
    let pipe = &steps[0];
    assert_eq!(
        pipe["pipe"].as_str(),
        Some(format!("docker://oauthtokenpipe/oauth-token-pipe:{VERSION}").as_str())
    );
    let names: Vec<&str> = pipe["variables"]
        .as_mapping()
        .expect("variables")
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        table::pipe_variables(),
        "YAML Definition vs the variable table"
    );
}

#[test]
fn every_image_reference_uses_the_crate_version() {
    let text = readme();
    let refs: Vec<&str> = text
        .match_indices("oauthtokenpipe/oauth-token-pipe:")
        .map(|(i, m)| {
            text[i + m.len()..]
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()
                .unwrap()
        })
        .collect();
    assert!(refs.len() >= 3, "{refs:?}");
    assert!(
        refs.iter().all(|v| *v == VERSION),
        "README image versions {refs:?} vs crate {VERSION}"
    );
}

#[test]
fn exit_code_table_matches_the_exit_enum() {
    let rows = table_after(&readme(), "## Exit codes");
    let codes: Vec<u8> = rows
        .iter()
        .map(|(c, _)| c.parse().expect("numeric code"))
        .collect();
    assert_eq!(codes, Exit::ALL.map(Exit::code));
    // Each row's text starts with what the code means as the program says it.
    for ((_, usage), exit) in rows.iter().zip(Exit::ALL) {
        assert!(!usage.is_empty(), "{exit:?} is undocumented");
    }
}

#[test]
fn first_two_commands_are_the_demo_and_the_test_suite_and_ci_runs_them() {
    let text = readme();
    let commands = block_after(&text, "## Try it first", "sh");
    let commands: Vec<&str> = commands.lines().collect();
    assert_eq!(
        commands,
        ["cargo run --example demo", "cargo test --locked"]
    );
    let ci =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l == commands[1]),
        ".ci/run must run the README's test command {:?}",
        commands[1]
    );
    assert!(
        ci.lines()
            .any(|l| l.starts_with("cargo run") && l.ends_with("--example demo")),
        ".ci/run must run the demo"
    );
}

#[test]
fn every_command_in_the_readme_is_one_the_program_parses_and_its_help_lists() {
    let rows = table_after(&readme(), "## Reuse, exec, git and status");
    assert!(rows.len() >= 5, "{rows:?}");
    for (command, _) in rows {
        let words: Vec<&str> = command
            .trim_matches('`')
            .split_whitespace()
            .skip(1)
            .take_while(|w| !w.contains("...") && !w.contains('\\'))
            .collect();
        let first = words.first().copied().unwrap_or("");
        let args: Vec<std::ffi::OsString> = match first {
            "exec" => vec!["exec".into(), "--".into(), "true".into()],
            "git-credential" => vec!["git-credential".into(), "get".into()],
            _ => words.iter().map(Into::into).collect(),
        };
        assert!(
            oauth_token_pipe::cli::parse(args).is_ok(),
            "README command {command} does not parse"
        );
        assert!(
            oauth_token_pipe::cli::help().contains(&format!("oauth-token-pipe {first}")),
            "--help does not list {command}"
        );
    }
}
