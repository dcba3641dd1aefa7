//! The assistant list the dashboard's selector needs: every registered
//! assistant and every assistant that interactions name, with its latest
//! interaction time (one index probe each, on `interactions (assistant, ts)`).

use rusqlite::Connection;
use uuid::Uuid;

use crate::metrics::models::AssistantSummary;
use crate::store::StoreError;
use crate::time::Timestamp;

/// Ordered by display name (case-insensitive), then id.
pub fn assistants(conn: &Connection) -> Result<Vec<AssistantSummary>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, a.registered, a.name, a.model,
                (SELECT max(i.ts) FROM interactions i WHERE i.assistant = a.key)
         FROM assistants a",
    )?;
    let mut rows = stmt.query([])?;
    let mut list = Vec::new();
    while let Some(r) = rows.next()? {
        let bytes: Vec<u8> = r.get(0)?;
        let id = Uuid::from_slice(&bytes).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
        })?;
        let registered = r.get::<_, i64>(1)? == 1;
        let last: Option<i64> = r.get(4)?;
        // A placeholder row that no stored interaction names is nothing to select.
        if !registered && last.is_none() {
            continue;
        }
        let name: Option<String> = if registered { r.get(2)? } else { None };
        let model: Option<String> = if registered { r.get(3)? } else { None };
        list.push(AssistantSummary {
            assistant_id: id,
            assistant_name: name.unwrap_or_else(|| id.to_string()),
            model,
            registered,
            last_active: last.map(Timestamp),
        });
    }
    list.sort_by(|a, b| {
        a.assistant_name
            .to_lowercase()
            .cmp(&b.assistant_name.to_lowercase())
            .then(a.assistant_id.cmp(&b.assistant_id))
    });
    Ok(list)
}
