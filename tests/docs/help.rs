//! `docs/configuration.md` and the binary's `--help` list the same options:
//! every command of `ragpulse --help` (and every scenario of `bench`) has a
//! section headed by its command line (`ragpulse serve`, `ragpulse bench
//! live`), whose tables list exactly the options its `--help` prints, each
//! with the environment variable and the default (when the help prints one)
//! the help prints. The options of the `ragpulse` section apply to every
//! command; `demo` takes every option of `serve` besides its own rows.

use std::collections::BTreeMap;
use std::process::Command;

use crate::markdown::{Doc, tables};

/// An option as a list states it.
#[derive(Debug, Clone, PartialEq)]
struct Opt {
    env: Option<String>,
    default: Option<String>,
}

type Options = BTreeMap<String, Opt>;

/// `ragpulse ARGS --help`, which must succeed.
fn help(command: &[String]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ragpulse"))
        .args(command)
        .arg("--help")
        .env_remove("RAGPULSE_CONFIG")
        .output()
        .expect("failed to run ragpulse");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "ragpulse {} --help failed: {}",
        command.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// The subcommands a help lists under "Commands:" (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == "Commands:" {
            inside = true;
        } else if inside && line.starts_with("  ") {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name != "help" {
                names.push(name.to_string());
            }
        } else if inside {
            break;
        }
    }
    names
}

/// The options a help prints, with their `[env: ...]` and `[default: ...]`
/// (which may stand on the option's line or on the lines below it).
fn help_options(help: &str) -> Options {
    let mut options = Options::new();
    let mut current: Option<(String, String)> = None;
    let finish = |current: Option<(String, String)>, options: &mut Options| {
        if let Some((name, text)) = current
            && name != "--help"
            && name != "--version"
        {
            let env = bracketed(&text, "[env: ").map(|e| {
                e.trim_end_matches('=')
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .to_string()
            });
            let default = bracketed(&text, "[default: ");
            options.insert(name, Opt { env, default });
        }
    };
    for line in help.lines() {
        let trimmed = line.trim_start();
        let option = trimmed
            .strip_prefix("-h, ")
            .or_else(|| trimmed.strip_prefix("-V, "))
            .unwrap_or(trimmed);
        if line.starts_with("  ") && option.starts_with("--") {
            finish(current.take(), &mut options);
            let name = option.split([' ', '=']).next().unwrap_or("").to_string();
            current = Some((name, line.to_string()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push(' ');
            text.push_str(line.trim());
        }
    }
    finish(current, &mut options);
    options
}

/// What follows `open` up to the next `]`.
fn bracketed(text: &str, open: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(']')? + start;
    Some(text[start..end].to_string())
}

/// The options of each command section of configuration.md, keyed by the
/// section's command line without `ragpulse` (`""`, `"serve"`, `"bench live"`).
fn documented() -> BTreeMap<String, Options> {
    let doc = Doc::read("docs/configuration.md");
    let mut sections: BTreeMap<String, Options> = BTreeMap::new();
    for (heading, table) in tables(&doc.text) {
        let Some(command) = heading.strip_prefix("ragpulse").map(str::trim) else {
            continue;
        };
        let Some(option) = table.column("option") else {
            continue;
        };
        let env = table.column("environment");
        let default = table.column("default");
        let cell = |row: &Vec<String>, column: Option<usize>| {
            column
                .and_then(|c| row.get(c))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let options = sections.entry(command.to_string()).or_default();
        for row in &table.rows {
            let name = row[option]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            assert!(
                name.starts_with("--"),
                "configuration.md, `ragpulse {command}`: {name:?} is not an option"
            );
            let opt = Opt {
                env: cell(row, env),
                default: cell(row, default),
            };
            assert!(
                options.insert(name.clone(), opt).is_none(),
                "configuration.md, `ragpulse {command}`: {name} is listed twice"
            );
        }
    }
    sections
}

/// Every command line of the binary: `""`, `"serve"`, ..., `"bench live"`.
fn commands() -> Vec<Vec<String>> {
    let mut all = vec![Vec::new()];
    let mut i = 0;
    while i < all.len() {
        let command = all[i].clone();
        for sub in subcommands(&help(&command)) {
            let mut child = command.clone();
            child.push(sub);
            all.push(child);
        }
        i += 1;
    }
    all
}

#[test]
fn configuration_md_lists_exactly_the_options_of_every_commands_help() {
    let documented = documented();
    let global = documented.get("").cloned().unwrap_or_default();
    assert!(
        global.contains_key("--config"),
        "the `ragpulse` section lists --config"
    );
    let mut problems = Vec::new();
    let commands = commands();
    assert!(commands.len() > 10, "commands found: {commands:?}");
    for command in &commands {
        let key = command.join(" ");
        let Some(own) = documented.get(&key) else {
            problems.push(format!(
                "`ragpulse {key}` has no section with an option table"
            ));
            continue;
        };
        let mut expected = Options::new();
        if !command.is_empty() {
            expected.extend(global.clone());
        }
        if key == "demo" {
            expected.extend(documented.get("serve").cloned().unwrap_or_default());
        }
        expected.extend(own.clone());
        let actual = help_options(&help(command));
        for (name, printed) in &actual {
            let Some(listed) = expected.get(name) else {
                problems.push(format!(
                    "`ragpulse {key}`: {name} is in --help, not in the docs"
                ));
                continue;
            };
            if listed.env != printed.env {
                problems.push(format!(
                    "`ragpulse {key}` {name}: environment {:?} in the docs, {:?} in --help",
                    listed.env, printed.env
                ));
            }
            if let Some(default) = &printed.default {
                let doc_default = listed.default.clone().unwrap_or_default();
                if doc_default != *default {
                    problems.push(format!(
                        "`ragpulse {key}` {name}: default {doc_default:?} in the docs, \
                         {default:?} in --help"
                    ));
                }
            }
        }
        for name in expected.keys() {
            if !actual.contains_key(name) {
                problems.push(format!(
                    "`ragpulse {key}`: {name} is in the docs, not in --help"
                ));
            }
        }
    }
    for key in documented.keys() {
        if !commands.iter().any(|c| c.join(" ") == *key) {
            problems.push(format!(
                "configuration.md documents `ragpulse {key}`, which does not exist"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn help_options_are_read_with_their_environment_and_default() {
    let help = "Options:\n      --config <CONFIG>  Config file [default: ./x when present] [env: RAGPULSE_CONFIG=]\n      \
                --admin-token <T>\n          Admin token [env: RAGPULSE_ADMIN_TOKEN]\n      --quiet\n          \
                No progress bar\n\n          [default: realistic]\n  -h, --help  Print help\n";
    let got = help_options(help);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["--admin-token", "--config", "--quiet"]
    );
    assert_eq!(got["--config"].env.as_deref(), Some("RAGPULSE_CONFIG"));
    assert_eq!(got["--config"].default.as_deref(), Some("./x when present"));
    assert_eq!(
        got["--admin-token"].env.as_deref(),
        Some("RAGPULSE_ADMIN_TOKEN")
    );
    assert_eq!(got["--quiet"].default.as_deref(), Some("realistic"));
}
