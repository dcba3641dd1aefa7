//! What the checks read of a Markdown file, through pulldown-cmark: links and
//! images, heading anchors as GitHub makes them, fenced code blocks with their
//! info strings, and tables under each heading.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// The repository's root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A Markdown file of the documentation, with its path relative to the root.
pub struct Doc {
    pub path: PathBuf,
    pub text: String,
}

impl Doc {
    pub fn read(relative: &str) -> Doc {
        let path = PathBuf::from(relative);
        let text = std::fs::read_to_string(root().join(&path))
            .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"));
        Doc { path, text }
    }

    /// `path:line` of a byte offset, for messages.
    pub fn at(&self, offset: usize) -> String {
        let line = self.text[..offset].matches('\n').count() + 1;
        format!("{}:{line}", self.path.display())
    }
}

/// README.md, CHANGELOG.md, every docs/*.md and deploy/README.md.
pub fn documents() -> Vec<Doc> {
    let mut paths = vec![
        "README.md".to_string(),
        "CHANGELOG.md".to_string(),
        "deploy/README.md".to_string(),
    ];
    let docs = std::fs::read_dir(root().join("docs")).expect("docs/ is readable");
    let mut pages: Vec<String> = docs
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    paths.extend(pages);
    paths.iter().map(|p| Doc::read(p)).collect()
}

fn parser(text: &str) -> pulldown_cmark::OffsetIter<'_> {
    Parser::new_ext(text, Options::ENABLE_TABLES).into_offset_iter()
}

/// Every link and image destination, with its byte offset.
pub fn links(text: &str) -> Vec<(String, usize)> {
    parser(text)
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some((dest_url.to_string(), range.start))
            }
            _ => None,
        })
        .collect()
}

/// The anchors GitHub gives the headings of a page: the heading's text in
/// lower case, without punctuation other than `-` and `_`, each space a `-`;
/// a repeated one gets `-1`, `-2`, ...
pub fn anchors(text: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    for (heading, _, _) in headings(text) {
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                '-' | '_' => Some(c),
                c if c.is_alphanumeric() => Some(c),
                _ => None,
            })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while anchors.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        anchors.insert(candidate);
    }
    anchors
}

/// Each heading's text (code spans without their backticks), level and offset.
pub fn headings(text: &str) -> Vec<(String, HeadingLevel, usize)> {
    let mut found = Vec::new();
    let mut current: Option<(String, HeadingLevel, usize)> = None;
    for (event, range) in parser(text) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((String::new(), level, range.start));
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((heading, _, _)) = current.as_mut() {
                    heading.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => found.extend(current.take()),
            _ => {}
        }
    }
    found
}

/// A fenced code block: its info string (`sh`, `sh no-test`, ...), its text
/// and its offset.
pub struct CodeBlock {
    pub info: String,
    pub body: String,
    pub offset: usize,
}

pub fn code_blocks(text: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut current: Option<CodeBlock> = None;
    for (event, range) in parser(text) {
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let info = match kind {
                    CodeBlockKind::Fenced(info) => info.to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                current = Some(CodeBlock {
                    info,
                    body: String::new(),
                    offset: range.start,
                });
            }
            Event::Text(t) => {
                if let Some(block) = current.as_mut() {
                    block.body.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(current.take()),
            _ => {}
        }
    }
    blocks
}

/// A table: its header cells and rows, each cell as plain text (code spans
/// without backticks, links as their text).
#[derive(Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The column whose header is `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// The tables of a page, each with the text of the heading it stands under.
pub fn tables(text: &str) -> Vec<(String, Table)> {
    let mut found = Vec::new();
    let mut heading = String::new();
    let mut in_heading = false;
    let mut table: Option<Table> = None;
    let mut row: Vec<String> = Vec::new();
    let mut cell: Option<String> = None;
    for (event, _) in parser(text) {
        match event {
            Event::Start(Tag::Heading { .. }) => {
                in_heading = true;
                heading.clear();
            }
            Event::End(TagEnd::Heading(_)) => in_heading = false,
            Event::Start(Tag::Table(_)) => table = Some(Table::default()),
            Event::End(TagEnd::Table) => {
                found.extend(table.take().map(|t| (heading.clone(), t)));
            }
            Event::End(TagEnd::TableHead) => {
                if let Some(t) = table.as_mut() {
                    t.header = std::mem::take(&mut row);
                }
            }
            Event::End(TagEnd::TableRow) => {
                if let Some(t) = table.as_mut() {
                    t.rows.push(std::mem::take(&mut row));
                }
            }
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::End(TagEnd::TableCell) => row.extend(cell.take().map(|c| c.trim().to_string())),
            Event::Text(t) | Event::Code(t) => {
                if in_heading {
                    heading.push_str(&t);
                } else if let Some(c) = cell.as_mut() {
                    c.push_str(&t);
                }
            }
            _ => {}
        }
    }
    found
}

/// `relative` resolved from the directory of the document `from`.
pub fn resolve(from: &Path, relative: &str) -> PathBuf {
    let base = from.parent().unwrap_or(Path::new(""));
    root().join(base).join(relative)
}
