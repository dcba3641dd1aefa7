//! Model-name normalisation: turns the spellings that clients send (router prefixes, cloud
//! vendor ids, snapshot dates, `3.5` vs `3-5`) into the keys the catalogue is indexed by.
//!
//! The same functions are applied to the catalogue's own names, aliases and patterns, so both
//! sides of a comparison are always normalised the same way (`gpt-4.1` becomes `gpt-4-1` on
//! both sides and can never collide with `gpt-4`).

/// `<segment>/` prefixes that say how a model was reached (router, SDK, cloud), never which
/// model it is, so they are removed. Unknown vendors (`meta-llama/`, `qwen/`) and local
/// runtimes (`ollama/`, `lmstudio/`) are kept on purpose: the catalogue does not price the
/// former, and the latter are how local models are recognised (priced 0 by patterns).
const ROUTE_PREFIXES: &[&str] = &[
    "openai",
    "anthropic",
    "google",
    "models",
    "mistralai",
    "mistral",
    "codestral",
    "azure",
    "azure_ai",
    "azure-openai",
    "bedrock",
    "bedrock_converse",
    "converse",
    "invoke",
    "vertex_ai",
    "vertex_ai_beta",
    "vertexai",
    "vertex",
    "google-vertex",
    "gemini",
    "openrouter",
    "text-completion-openai",
];

/// Bedrock cross-region inference profiles put a region before the vendor
/// (`us.anthropic.claude-…`); only removed when a vendor follows.
const BEDROCK_REGIONS: &[&str] = &["us", "us-gov", "eu", "apac", "global", "jp", "au", "ca"];

/// Bedrock model ids are `<vendor>.<model>-<version>:<revision>`.
const BEDROCK_VENDORS: &[&str] = &[
    "anthropic",
    "mistral",
    "meta",
    "amazon",
    "cohere",
    "ai21",
    "deepseek",
    "openai",
    "writer",
    "qwen",
];

/// OpenRouter `:variant` suffixes that change routing or features, not the token price.
/// `:free` is absent on purpose: it *is* a different price (0), matched by a pattern.
const ROUTER_VARIANTS: &[&str] = &[
    "beta", "thinking", "online", "extended", "nitro", "floor", "exacto",
];

/// Trims and lower-cases a model name: the raw form that every later step starts from.
pub(crate) fn lowered(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// The lookup key of a lower-cased name: routing prefixes, Bedrock vendor prefixes, Vertex
/// `@version` and Bedrock `:revision` suffixes removed, and `.`, `_` and blanks turned into
/// `-`. Snapshot dates are kept (see [`version_stripped_forms`]) because some snapshots are
/// priced differently from their family (gpt-4o-2024-05-13 vs gpt-4o).
pub(crate) fn clean(lowered: &str) -> String {
    let name = strip_resource_path(lowered);
    let name = strip_route_prefixes(name);
    let name = strip_bedrock_vendor(name);
    // An OpenAI fine-tune id (`ft:base:org::id`) uses `:` as its own separator.
    let name = if name.starts_with("ft:") {
        name
    } else {
        strip_tags(name)
    };
    canonical_separators(name)
}

/// Normalises a catalogue pattern the way [`clean`] normalises names (so `llama.cpp/*` and
/// `llama_cpp/*` are one pattern); `*` is left alone.
pub(crate) fn clean_pattern(pattern: &str) -> String {
    canonical_separators(&lowered(pattern))
}

/// Canonical, version-free form of a model name, for display and for grouping unpriced
/// models: `Azure/GPT-4o-2024-08-06` → `gpt-4o`, `anthropic.claude-3-5-sonnet-20240620-v1:0`
/// → `claude-3-5-sonnet`. Lookups do not use this directly: they try the exact key first.
pub fn normalize_model_name(raw: &str) -> String {
    let key = clean(&lowered(raw));
    let core = model_core(&key);
    version_stripped_forms(core)
        .last()
        .unwrap_or(core)
        .to_string()
}

/// The model a key names once fine-tune decorations are removed: `ft:gpt-4o-mini-2024-07-18:
/// acme::x1` is billed as its base model (fine-tune surcharges are not modelled).
pub(crate) fn model_core(key: &str) -> &str {
    key.strip_prefix("ft:")
        .and_then(|rest| rest.split(':').next())
        .filter(|base| !base.is_empty())
        .unwrap_or(key)
}

/// Successively shorter forms of `name` with one trailing version marker removed each time:
/// `claude-3-5-sonnet-20241022-v2` → `claude-3-5-sonnet-20241022` → `claude-3-5-sonnet`.
/// Every intermediate form is yielded so a catalogue name that itself ends in digits
/// (`text-embedding-004`) is found before stripping goes past it.
pub(crate) fn version_stripped_forms(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(strip_version_suffix(name), |form| {
        strip_version_suffix(form)
    })
}

/// Proper prefixes of `name` that end at a `-` boundary, longest first, so `gpt-4o-mini-x`
/// tries `gpt-4o-mini` before `gpt-4o`, and `gpt-4o` can never match `gpt-4`.
pub(crate) fn boundary_prefixes(name: &str) -> impl Iterator<Item = &str> {
    name.rmatch_indices('-')
        .map(|(at, _)| &name[..at])
        .filter(|prefix| !prefix.is_empty())
}

/// Vertex resource paths (`projects/…/publishers/google/models/gemini-1.5-pro-002`) and Bedrock
/// ARNs (`arn:aws:bedrock:…:foundation-model/anthropic.claude-…`) end with the model id.
fn strip_resource_path(name: &str) -> &str {
    if name.starts_with("arn:") {
        return name.rsplit('/').next().unwrap_or(name);
    }
    // Only Vertex paths: `local/models/x` or `llama.cpp/models/x.gguf` must keep their prefix.
    if !name.starts_with("publishers/") && !name.contains("/publishers/") {
        return name;
    }
    match name.rfind("/models/") {
        Some(at) => &name[at + "/models/".len()..],
        None => name,
    }
}

fn strip_route_prefixes(mut name: &str) -> &str {
    while let Some((head, rest)) = name.split_once('/') {
        if rest.is_empty() || !ROUTE_PREFIXES.contains(&head) {
            break;
        }
        name = rest;
    }
    name
}

fn strip_bedrock_vendor(name: &str) -> &str {
    let without_region = match name.split_once('.') {
        Some((region, rest)) if BEDROCK_REGIONS.contains(&region) && starts_with_vendor(rest) => {
            rest
        }
        _ => name,
    };
    match without_region.split_once('.') {
        Some((vendor, rest)) if BEDROCK_VENDORS.contains(&vendor) && !rest.is_empty() => rest,
        _ => without_region,
    }
}

fn starts_with_vendor(name: &str) -> bool {
    name.split_once('.')
        .is_some_and(|(vendor, _)| BEDROCK_VENDORS.contains(&vendor))
}

/// Removes `@version` (Vertex) and `:revision` / `:variant` suffixes (Bedrock, OpenRouter).
/// Other `:tag`s (Ollama's `:8b`, OpenRouter's `:free`) are kept: they mean something.
fn strip_tags(name: &str) -> &str {
    let mut name = name.split('@').next().unwrap_or(name);
    while let Some((head, tag)) = name.rsplit_once(':') {
        let is_revision = !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_digit());
        if head.is_empty() || !(is_revision || ROUTER_VARIANTS.contains(&tag)) {
            break;
        }
        name = head;
    }
    name
}

/// `.`, `_` and whitespace become `-`, runs of `-` collapse, and edge `-` go: `claude-3.5-
/// sonnet` = `claude-3-5-sonnet`, `Claude 3.5 Sonnet` = `claude-3-5-sonnet`.
fn canonical_separators(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        let ch = if ch == '.' || ch == '_' || ch.is_whitespace() {
            '-'
        } else {
            ch
        };
        if ch == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(ch);
    }
    if out.ends_with('-') {
        out.pop();
    }
    out
}

/// One trailing version marker: `-latest`, a date (`-2024-08-06`, `-20240620`), a 4-digit
/// release (`-0613`, Mistral's `-2411`), a 3-digit revision (`-001`) or `-v2`.
fn strip_version_suffix(name: &str) -> Option<&str> {
    if let Some(head) = strip_iso_date(name) {
        return Some(head);
    }
    let (head, tail) = name.rsplit_once('-')?;
    if head.is_empty() {
        return None;
    }
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let is_version = tail == "latest"
        || (all_digits(tail) && matches!(tail.len(), 3 | 4 | 8))
        || tail.strip_prefix('v').is_some_and(all_digits);
    is_version.then_some(head)
}

/// `-YYYY-MM-DD` at the end of `name`.
fn strip_iso_date(name: &str) -> Option<&str> {
    const LEN: usize = "-2024-08-06".len();
    let cut = name.len().checked_sub(LEN)?;
    let (head, tail) = (name.get(..cut)?, name.get(cut..)?.as_bytes());
    let shape_ok = tail.iter().enumerate().all(|(i, b)| match i {
        0 | 5 | 8 => *b == b'-',
        _ => b.is_ascii_digit(),
    });
    (shape_ok && !head.is_empty()).then_some(head)
}

/// A `*` wildcard pattern over normalised names (`ollama/*`, `*:free`, `llama*:*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamePattern {
    text: String,
}

impl NamePattern {
    /// `None` when the pattern is empty after normalisation.
    pub(crate) fn new(raw: &str) -> Option<Self> {
        let text = clean_pattern(raw);
        (!text.is_empty()).then_some(Self { text })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// How specific the pattern is: its number of literal (non-`*`) bytes. The most
    /// specific matching pattern wins.
    pub(crate) fn specificity(&self) -> usize {
        self.text.bytes().filter(|b| *b != b'*').count()
    }

    /// Whole-string match where `*` stands for any run of characters (also empty).
    /// Byte-wise is fine: `*` is ASCII, so it can never split a UTF-8 sequence of the pattern.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let (pat, text) = (self.text.as_bytes(), name.as_bytes());
        let (mut p, mut t) = (0, 0);
        // Position of the last `*` seen and of the text it currently absorbs up to.
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < pat.len() && pat[p] == b'*' {
                backtrack = Some((p, t));
                p += 1;
            } else if p < pat.len() && pat[p] == text[t] {
                p += 1;
                t += 1;
            } else if let Some((star, absorbed)) = backtrack {
                // Let the last `*` absorb one more character and retry after it.
                backtrack = Some((star, absorbed + 1));
                p = star + 1;
                t = absorbed + 1;
            } else {
                return false;
            }
        }
        pat[p..].iter().all(|b| *b == b'*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        clean(&lowered(raw))
    }

    #[test]
    fn clean_removes_routes_and_vendor_decorations() {
        let cases = [
            ("  OpenAI/GPT-4o ", "gpt-4o"),
            ("openrouter/openai/gpt-4o", "gpt-4o"),
            ("models/gemini-1.5-pro", "gemini-1-5-pro"),
            (
                "vertex_ai/claude-3-5-sonnet-v2@20241022",
                "claude-3-5-sonnet-v2",
            ),
            (
                "bedrock/us.anthropic.claude-3-7-sonnet-20250219-v1:0",
                "claude-3-7-sonnet-20250219-v1",
            ),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
                "claude-3-haiku-20240307-v1",
            ),
            (
                "projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001",
                "gemini-2-0-flash-001",
            ),
            ("anthropic/claude-3.7-sonnet:thinking", "claude-3-7-sonnet"),
            ("ollama/llama3.1:8b", "ollama/llama3-1:8b"),
            ("google/gemma-2-9b-it:free", "gemma-2-9b-it:free"),
            ("Claude 3.5 Sonnet", "claude-3-5-sonnet"),
            (
                "ft:gpt-4o-mini-2024-07-18:acme::abc1",
                "ft:gpt-4o-mini-2024-07-18:acme::abc1",
            ),
            (
                "meta-llama/llama-3.1-8b-instruct",
                "meta-llama/llama-3-1-8b-instruct",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(key(raw), want, "clean({raw:?})");
        }
    }

    #[test]
    fn dotted_versions_stay_distinct() {
        assert_eq!(key("gpt-4.1"), "gpt-4-1");
        assert_ne!(key("gpt-4.1"), key("gpt-4"));
        assert_eq!(key("claude-3.5-sonnet"), key("claude-3-5-sonnet"));
    }

    #[test]
    fn version_forms_yield_every_step() {
        let forms: Vec<_> = version_stripped_forms("claude-3-5-sonnet-20241022-v2").collect();
        assert_eq!(forms, ["claude-3-5-sonnet-20241022", "claude-3-5-sonnet"]);
        let forms: Vec<_> = version_stripped_forms("text-embedding-004-latest").collect();
        assert_eq!(forms, ["text-embedding-004", "text-embedding"]);
        let forms: Vec<_> = version_stripped_forms("gpt-4o-2024-08-06").collect();
        assert_eq!(forms, ["gpt-4o"]);
        // Single digits are model generations, not versions.
        assert_eq!(version_stripped_forms("claude-sonnet-4-5").count(), 0);
        assert_eq!(version_stripped_forms("gpt-4-1").count(), 0);
        assert_eq!(version_stripped_forms("o3").count(), 0);
    }

    #[test]
    fn normalized_name_is_version_free() {
        assert_eq!(normalize_model_name("Azure/GPT-4o-2024-08-06"), "gpt-4o");
        assert_eq!(
            normalize_model_name("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            "claude-3-5-sonnet"
        );
        assert_eq!(
            normalize_model_name("mistral-large-latest"),
            "mistral-large"
        );
        assert_eq!(
            normalize_model_name("ft:gpt-4o-mini-2024-07-18:acme::x"),
            "gpt-4o-mini"
        );
        assert_eq!(normalize_model_name("  "), "");
    }

    #[test]
    fn boundary_prefixes_are_longest_first_and_at_dashes() {
        let prefixes: Vec<_> = boundary_prefixes("gpt-4o-mini-ft").collect();
        assert_eq!(prefixes, ["gpt-4o-mini", "gpt-4o", "gpt"]);
        assert_eq!(boundary_prefixes("o1").count(), 0);
    }

    #[test]
    fn fine_tunes_resolve_to_their_base() {
        assert_eq!(
            model_core("ft:gpt-4o-mini-2024-07-18:acme::x"),
            "gpt-4o-mini-2024-07-18"
        );
        assert_eq!(model_core("ft:"), "ft:");
        assert_eq!(model_core("gpt-4o"), "gpt-4o");
    }

    #[test]
    fn patterns_match_whole_names() {
        let p = |s: &str| NamePattern::new(s).unwrap_or_else(|| panic!("pattern {s:?}"));
        assert!(p("ollama/*").matches("ollama/llama3-1:8b"));
        assert!(!p("ollama/*").matches("xollama/llama3"));
        assert!(p("*:free").matches("gemma-2-9b-it:free"));
        assert!(!p("*:free").matches("gemma-2-9b-it:freex"));
        assert!(p("llama*:*").matches("llama3-1:8b"));
        assert!(!p("llama*:*").matches("llama3-1-8b"));
        assert!(p("gemini-*-exp").matches("gemini-2-0-flash-exp"));
        assert!(p("a*b*c").matches("aXbYbZc"));
        assert!(!p("a*b*c").matches("aXbYbZ"));
        assert!(p("*").matches(""));
        assert!(p("*-gguf").matches("llama-q4-gguf"));
        // Patterns are normalised like names.
        assert_eq!(p("LLama.cpp/*").as_str(), "llama-cpp/*");
        assert_eq!(p("llama*:*").specificity(), 6);
        assert!(NamePattern::new("  ").is_none());
    }
}
