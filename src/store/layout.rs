//! The layout's promise, checked on the source so that a change breaking it
//! fails here: the metric states name no storage and no service above them;
//! the store names no analytics or HTTP code; and outside `src/store` nothing
//! names the SQLite backend or its driver, except the benchmarks of that
//! backend and the test-only `internals` of `lib.rs`. Comment lines are not
//! code and are skipped.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, as a path relative to the crate's `src`.
fn sources(dir: &Path, src: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, src, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(src).unwrap_or(&path);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push((relative.display().to_string(), text));
        }
    }
}

/// The code lines of `files` matching `in_file` that contain one of `names`.
fn offences(
    files: &[(String, String)],
    in_file: impl Fn(&str) -> bool,
    names: &[&str],
) -> Vec<String> {
    let mut found = Vec::new();
    for (file, text) in files.iter().filter(|(f, _)| in_file(f)) {
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(name) = names.iter().find(|n| code.contains(**n)) {
                found.push(format!("{file}:{}: names {name}", number + 1));
            }
        }
    }
    found
}

fn all_sources() -> Vec<(String, String)> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    assert!(files.len() > 50, "the sources were not found in {src:?}");
    files
}

#[test]
fn the_metric_states_depend_on_no_storage_and_no_service_above_them() {
    let files = all_sources();
    let found = offences(
        &files,
        |f| f.starts_with("metrics/"),
        &["crate::store", "crate::analytics", "crate::api", "rusqlite"],
    );
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn the_store_depends_on_no_analytics_and_no_http_code() {
    let files = all_sources();
    let found = offences(
        &files,
        // This file names what it looks for.
        |f| f.starts_with("store/") && f != "store/layout.rs",
        &[
            "crate::analytics",
            "crate::api",
            "crate::live",
            "crate::server",
        ],
    );
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn only_the_store_names_its_sqlite_backend() {
    let files = all_sources();
    let found = offences(
        &files,
        |f| !f.starts_with("store/") && !f.starts_with("bench/") && f != "lib.rs",
        &["store::sqlite", "SqliteStore", "rusqlite"],
    );
    assert_eq!(found, Vec::<String>::new());
}
