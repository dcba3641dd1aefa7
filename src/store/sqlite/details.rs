//! The steps and retrieved documents of one interaction, packed into one row
//! of `interaction_details` (schema v5). One row per interaction instead of
//! one per step and one per document: the writer's row inserts were its
//! largest cost, and every reader wants an interaction's children together.
//!
//! Each column is a run of postcard-encoded items with no length prefix, so a
//! reader decodes them one at a time from the borrowed blob.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One step of an interaction: its repeats summed, as ingest delivers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedStep {
    /// Key in `step_names`.
    pub name: i64,
    /// Position of the step's first occurrence in the event.
    pub first_index: u32,
    pub occurrences: u32,
    pub duration_us: i64,
    /// (input, output) tokens, when the event gave either.
    pub tokens: Option<(i64, i64)>,
}

/// `None` for no items, so an interaction without children stores no blob.
pub fn encode<T: Serialize>(items: &[T]) -> rusqlite::Result<Option<Vec<u8>>> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(items.len() * 8);
    for item in items {
        out = postcard::to_extend(item, out)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    }
    Ok(Some(out))
}

/// Calls `each` for every item of a blob written by [`encode`].
pub fn decode<'a, T: Deserialize<'a>>(
    mut bytes: &'a [u8],
    mut each: impl FnMut(T),
) -> rusqlite::Result<()> {
    while !bytes.is_empty() {
        let (item, rest) = postcard::take_from_bytes(bytes).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Blob,
                format!("interaction details cannot be decoded ({e}); the row is damaged").into(),
            )
        })?;
        each(item);
        bytes = rest;
    }
    Ok(())
}

/// Column `index` of `row` as a borrowed blob.
pub fn blob<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> rusqlite::Result<&'r [u8]> {
    row.get_ref(index)?.as_blob().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// Every item of column `index`, none when it is NULL.
pub fn column<T: DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<Vec<T>> {
    match row.get_ref(index)? {
        rusqlite::types::ValueRef::Null => Ok(Vec::new()),
        _ => decode_all(blob(row, index)?),
    }
}

/// Every item of a blob, collected.
pub fn decode_all<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> rusqlite::Result<Vec<T>> {
    let mut out = Vec::new();
    decode(bytes, |item| out.push(item))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn step() -> impl Strategy<Value = PackedStep> {
        (
            any::<i64>(),
            any::<u32>(),
            any::<u32>(),
            any::<i64>(),
            proptest::option::of((any::<i64>(), any::<i64>())),
        )
            .prop_map(
                |(name, first_index, occurrences, duration_us, tokens)| PackedStep {
                    name,
                    first_index,
                    occurrences,
                    duration_us,
                    tokens,
                },
            )
    }

    proptest! {
        #[test]
        fn steps_come_back_as_they_were_packed(steps in proptest::collection::vec(step(), 0..40)) {
            let blob = encode(&steps).expect("encode");
            prop_assert_eq!(blob.is_none(), steps.is_empty());
            let back: Vec<PackedStep> = decode_all(blob.as_deref().unwrap_or_default()).expect("decode");
            prop_assert_eq!(back, steps);
        }

        #[test]
        fn documents_come_back_as_they_were_packed(documents in proptest::collection::vec(any::<i64>(), 0..100)) {
            let blob = encode(&documents).expect("encode");
            let back: Vec<i64> = decode_all(blob.as_deref().unwrap_or_default()).expect("decode");
            prop_assert_eq!(back, documents);
        }
    }

    #[test]
    fn small_keys_pack_into_a_byte_each() {
        let blob = encode(&[1_i64, 2, 63]).expect("encode").expect("blob");
        assert_eq!(blob, vec![2, 4, 126]);
    }

    #[test]
    fn a_damaged_blob_is_an_error_that_says_so() {
        // A varint whose continuation bit never ends.
        let error = decode_all::<i64>(&[0xff, 0xff]).expect_err("damaged");
        assert!(
            error
                .to_string()
                .contains("interaction details cannot be decoded")
        );
    }
}
