//! Every relative link and image of the documentation leads somewhere: the
//! file exists, and an `#anchor` names a heading of the page it points to
//! (as GitHub makes anchors). Links with a scheme (`https://`, `mailto:`)
//! are not followed.

use crate::markdown::{Doc, anchors, documents, links, resolve};

#[test]
fn every_relative_link_of_the_readme_and_the_docs_resolves() {
    let docs = documents();
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        for (dest, offset) in links(&doc.text) {
            if dest.contains("://") || dest.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            if let Err(why) = check(doc, &dest) {
                broken.push(format!("{}: ({dest}) {why}", doc.at(offset)));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} relative links found: is the parser reading the files?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn check(doc: &Doc, dest: &str) -> Result<(), String> {
    let (path, anchor) = match dest.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (dest, None),
    };
    if path.starts_with('/') {
        return Err("an absolute path does not resolve on GitHub or in a clone".into());
    }
    let target = if path.is_empty() {
        crate::markdown::root().join(&doc.path)
    } else {
        resolve(&doc.path, path)
    };
    if !target.exists() {
        return Err(format!("{} does not exist", target.display()));
    }
    let Some(anchor) = anchor else {
        return Ok(());
    };
    if target.extension().is_none_or(|e| e != "md") {
        return Err("an anchor into a file that is not Markdown".into());
    }
    let text = std::fs::read_to_string(&target).map_err(|e| e.to_string())?;
    if anchors(&text).contains(anchor) {
        Ok(())
    } else {
        Err(format!(
            "no heading of {} has the anchor #{anchor}",
            target.display()
        ))
    }
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    let page = "# Write queue (`--max-queued-events`, default 200,000)\n\
                ## `ragpulse.*` attributes\n## Notes\n## Notes\n## Añadir días_2\n";
    let got = anchors(page);
    for expected in [
        "write-queue---max-queued-events-default-200000",
        "ragpulse-attributes",
        "notes",
        "notes-1",
        "añadir-días_2",
    ] {
        assert!(got.contains(expected), "{expected} not in {got:?}");
    }
}
