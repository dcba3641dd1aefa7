//! The documentation checked against the software: README.md, CHANGELOG.md
//! and docs/ are read as CommonMark. Every relative link resolves (files and
//! `#anchors`), `docs/configuration.md` lists exactly the options each
//! command's `--help` prints (with the same environment variables and
//! defaults), and every `curl` example runs against a real demo server and
//! gets a 2xx answer.

mod examples;
mod help;
mod links;
mod markdown;
