//! Topic keys: how a question or a client label finds its topic. This module
//! owns the normalisation rules; the store owns the topic rows.

pub mod centroids;
pub mod lexical;

use unicode_normalization::UnicodeNormalization;

/// Labelled and unlabelled topics never merge, even with equal texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    Label = 0,
    Question = 1,
    /// Grouped by embedding similarity; such topics have no text key.
    Embedding = 2,
}

/// What decides which topic an interaction joins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicKey {
    pub kind: TopicKind,
    pub norm: String,
}

/// The topic key of an interaction with this label and question, if any.
/// Questions that carry an embedding are grouped by similarity instead (see
/// [`centroids`]), so they get no text key.
pub fn topic_key(
    label: Option<&str>,
    question: Option<&str>,
    has_embedding: bool,
) -> Option<TopicKey> {
    if let Some(label) = label {
        return Some(TopicKey {
            kind: TopicKind::Label,
            norm: normalise_label(label),
        });
    }
    if has_embedding {
        return None;
    }
    question.map(|q| TopicKey {
        kind: TopicKind::Question,
        norm: question_norm_or_raw(q),
    })
}

/// Labels compare trimmed, with whitespace runs collapsed and lower-cased.
pub fn normalise_label(label: &str) -> String {
    collapse_whitespace(label).to_lowercase()
}

/// Unicode NFKC, lower case, punctuation (anything neither alphanumeric nor
/// whitespace) removed, whitespace collapsed and trimmed.
pub fn normalise_question(question: &str) -> String {
    let cleaned: String = question
        .nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect();
    collapse_whitespace(&cleaned)
}

/// A question made only of punctuation ("???") would normalise to nothing and
/// join every other such question; it keeps its own trimmed text instead.
fn question_norm_or_raw(question: &str) -> String {
    let norm = normalise_question(question);
    if norm.is_empty() {
        question.trim().to_string()
    } else {
        norm
    }
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_equal_after_normalisation_share_a_key() {
        let a = normalise_question("How do I reset my password?");
        let b = normalise_question("  how do i   RESET my password ");
        let c = normalise_question("How do I reset my password!!!");
        assert_eq!(a, "how do i reset my password");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, normalise_question("How do I reset my router?"));
    }

    #[test]
    fn nfkc_folds_compatibility_forms() {
        // Full-width letters and the "ﬁ" ligature fold to their plain forms.
        assert_eq!(normalise_question("ＡＢＣ ﬁle"), "abc file");
        assert_eq!(normalise_question("Straße?"), "straße");
    }

    #[test]
    fn labels_keep_punctuation_but_fold_case_and_spaces() {
        assert_eq!(normalise_label("  Billing   &  Plans "), "billing & plans");
    }

    #[test]
    fn labels_win_over_questions_and_stay_a_separate_kind() {
        let labelled = topic_key(Some("Reset password"), Some("How do I reset?"), false).unwrap();
        let unlabelled = topic_key(None, Some("reset password"), false).unwrap();
        assert_eq!(labelled.kind, TopicKind::Label);
        assert_eq!(labelled.norm, unlabelled.norm);
        assert_ne!(labelled, unlabelled);
        assert_eq!(topic_key(None, None, false), None);
        assert_eq!(topic_key(None, Some("q"), true), None);
        assert!(topic_key(Some("l"), Some("q"), true).is_some());
    }

    #[test]
    fn punctuation_only_questions_keep_their_text() {
        assert_eq!(topic_key(None, Some(" ??? "), false).unwrap().norm, "???");
    }
}
