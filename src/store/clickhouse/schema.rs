//! The tables of the ClickHouse backend, as data: each table's columns,
//! engine key and sharding key, from which the DDL of its local table (one per
//! node) and of its Distributed table (over the cluster) is generated, so the
//! two never disagree. Every statement is `IF NOT EXISTS` and runs on each
//! node in turn (no `ON CLUSTER`: that needs ZooKeeper), and uses only what
//! 18.16 and current versions share: no TTL, CODEC, LowCardinality, Map,
//! DateTime64 or Nullable key columns, and the `PARTITION BY … ORDER BY`
//! engine syntax.
//!
//! Retries and many ingest nodes: every fact table is a
//! `ReplacingMergeTree(version)` whose sorting key ends in the event's id,
//! sharded on a hash of that id, so every copy of a resent event lands on the
//! same shard in the same partition and reads with `FINAL` count it once.
//! Rollups are not materialised views (those count every copy): they are
//! metric states recomputed from deduplicated rows and keyed by their slot,
//! so writing one again replaces it.

/// The schema version the migrations below reach.
pub const VERSION: u32 = 1;

/// One table: a local table on every node and a Distributed table over it.
pub struct Table {
    /// The Distributed table's name; the local one adds `_local`.
    pub name: &'static str,
    pub columns: &'static [(&'static str, &'static str)],
    /// The `ReplacingMergeTree` version column.
    pub version: &'static str,
    pub partition_by: Option<&'static str>,
    pub order_by: &'static str,
    /// The Distributed table's sharding expression (UUIDs hashed as text:
    /// 18.16's cityHash64 takes no UUID).
    pub shard_by: &'static str,
}

/// The month of a microsecond timestamp column, as partitions of about a
/// month keep retention a `DROP PARTITION` per node.
const MONTH_OF_TS: &str = "toYYYYMM(toDateTime(intDiv(ts_us, 1000000)))";

/// The whole backend's tables. Registries keep one row per registration
/// event with a `*_set` flag per field (0: the event left the field alone;
/// 1: it set it, `NULL` clearing it); a field's value is the latest set one
/// (`argMaxIf(field, version, field_set)`), so concurrent and resent patches
/// fold the same on every node.
pub const TABLES: &[Table] = &[
    Table {
        name: "interactions",
        columns: &[
            ("event_id", "UUID"),
            ("ts_us", "Int64"),
            ("assistant_id", "UUID"),
            ("session_id", "String"),
            ("user_id", "Nullable(String)"),
            ("question", "Nullable(String)"),
            // The client's topic label, and the deterministic key of the
            // question's topic (the same on every ragpulse node).
            ("topic", "Nullable(String)"),
            ("topic_key", "Nullable(String)"),
            ("model", "Nullable(String)"),
            ("provider", "Nullable(String)"),
            ("ttft_us", "Nullable(Int64)"),
            ("total_us", "Nullable(Int64)"),
            ("cache_hit", "UInt8"),
            ("input_tokens", "Int64"),
            ("output_tokens", "Int64"),
            ("cached_input_tokens", "Int64"),
            ("cost_nusd", "Int64"),
            // 0 = the client's cost_usd, 1 = the catalogue, 2 = unpriced.
            ("cost_source", "UInt8"),
            ("price_id", "Nullable(String)"),
            ("priced_model", "Nullable(String)"),
            ("rerank_before", "Nullable(Float64)"),
            ("rerank_after", "Nullable(Float64)"),
            ("rerank_improvement_n", "Nullable(Int64)"),
            ("rerank_position_n", "Nullable(Int64)"),
            // The details: steps and retrieved documents as parallel arrays
            // (18.16 flattens Array(Tuple) columns).
            ("step_names", "Array(String)"),
            ("step_first_index", "Array(UInt32)"),
            ("step_occurrences", "Array(UInt32)"),
            ("step_duration_us", "Array(Int64)"),
            ("step_has_tokens", "Array(UInt8)"),
            ("step_input_tokens", "Array(Int64)"),
            ("step_output_tokens", "Array(Int64)"),
            ("document_ids", "Array(UUID)"),
            // When the row was written (µs): a reprice writes it again with
            // a later version, which replaces it.
            ("version", "UInt64"),
        ],
        version: "version",
        partition_by: Some(MONTH_OF_TS),
        order_by: "assistant_id, ts_us, event_id",
        shard_by: "cityHash64(toString(event_id))",
    },
    Table {
        // One row per retrieved document, on its interaction's shard: the
        // document-centric reads (cold documents, last retrieval).
        name: "retrievals",
        columns: &[
            ("document_id", "UUID"),
            ("assistant_id", "UUID"),
            ("ts_us", "Int64"),
            ("event_id", "UUID"),
            ("version", "UInt64"),
        ],
        version: "version",
        partition_by: Some(MONTH_OF_TS),
        order_by: "document_id, assistant_id, ts_us, event_id",
        shard_by: "cityHash64(toString(event_id))",
    },
    Table {
        name: "syncs",
        columns: &[
            ("sync_id", "UUID"),
            ("connector_id", "UUID"),
            // 0 = success, 1 = partial, 2 = failure.
            ("status", "UInt8"),
            ("started_at_us", "Int64"),
            ("duration_us", "Nullable(Int64)"),
            ("documents_synced", "Nullable(Int64)"),
            ("error", "Nullable(String)"),
            ("version", "UInt64"),
        ],
        version: "version",
        partition_by: None,
        order_by: "sync_id",
        shard_by: "cityHash64(toString(sync_id))",
    },
    Table {
        name: "assistants",
        columns: &[
            ("assistant_id", "UUID"),
            ("name_set", "UInt8"),
            ("name", "Nullable(String)"),
            ("model_set", "UInt8"),
            ("model", "Nullable(String)"),
            ("version", "UInt64"),
        ],
        version: "version",
        partition_by: None,
        order_by: "assistant_id, version",
        shard_by: "cityHash64(toString(assistant_id))",
    },
    Table {
        name: "users",
        columns: &[
            ("user_id", "String"),
            ("email_set", "UInt8"),
            ("email", "Nullable(String)"),
            ("full_name_set", "UInt8"),
            ("full_name", "Nullable(String)"),
            ("version", "UInt64"),
        ],
        version: "version",
        partition_by: None,
        order_by: "user_id, version",
        shard_by: "cityHash64(user_id)",
    },
    Table {
        name: "connectors",
        columns: &[
            ("connector_id", "UUID"),
            ("name_set", "UInt8"),
            ("name", "Nullable(String)"),
            ("version", "UInt64"),
        ],
        version: "version",
        partition_by: None,
        order_by: "connector_id, version",
        shard_by: "cityHash64(toString(connector_id))",
    },
    Table {
        name: "documents",
        columns: &[
            ("document_id", "UUID"),
            ("connector_id_set", "UInt8"),
            ("connector_id", "Nullable(UUID)"),
            ("file_name_set", "UInt8"),
            ("file_name", "Nullable(String)"),
            ("updated_at_set", "UInt8"),
            ("updated_at_us", "Nullable(Int64)"),
            ("deleted_set", "UInt8"),
            ("deleted", "Nullable(UInt8)"),
            ("version", "UInt64"),
        ],
        version: "version",
        partition_by: None,
        order_by: "document_id, version",
        shard_by: "cityHash64(toString(document_id))",
    },
    Table {
        // Metric states of closed buckets (hours, days), postcard-encoded as
        // the SQLite backend keeps them, recomputed from `FINAL` rows; the
        // latest computation of a slot replaces the others.
        name: "rollups",
        columns: &[
            ("metric", "UInt8"),
            ("level", "UInt8"),
            ("bucket", "Int64"),
            ("assistant_id", "UUID"),
            ("state", "String"),
            ("version", "UInt64"),
        ],
        version: "version",
        partition_by: None,
        order_by: "metric, level, bucket, assistant_id",
        shard_by: "cityHash64(metric, level, bucket, toString(assistant_id))",
    },
    Table {
        // Buckets whose rollups a late or resent event made stale: computed
        // again, then their row is written with `recomputed = 1`.
        name: "rollup_dirty",
        columns: &[
            ("level", "UInt8"),
            ("bucket", "Int64"),
            ("recomputed", "UInt8"),
            ("version", "UInt64"),
        ],
        version: "version",
        partition_by: None,
        order_by: "level, bucket",
        shard_by: "cityHash64(level, bucket)",
    },
];

/// The table recording which schema versions a node has (local only: each
/// node answers for its own tables).
pub const SCHEMA_VERSION_TABLE: &str = "schema_version";

/// `CREATE DATABASE` for `database` (a checked identifier).
pub fn create_database(database: &str) -> String {
    format!("CREATE DATABASE IF NOT EXISTS {database}")
}

pub fn create_schema_version(database: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {database}.{SCHEMA_VERSION_TABLE} \
         (version UInt32, applied_us Int64) \
         ENGINE = ReplacingMergeTree(applied_us) ORDER BY version"
    )
}

fn column_list(table: &Table) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|(name, kind)| format!("{name} {kind}"))
        .collect();
    columns.join(", ")
}

/// The node's own table of `table`.
pub fn create_local(database: &str, table: &Table) -> String {
    let partition = table
        .partition_by
        .map(|p| format!(" PARTITION BY {p}"))
        .unwrap_or_default();
    format!(
        "CREATE TABLE IF NOT EXISTS {database}.{}_local ({}) \
         ENGINE = ReplacingMergeTree({}){partition} ORDER BY ({})",
        table.name,
        column_list(table),
        table.version,
        table.order_by
    )
}

/// The Distributed table of `table` over `cluster`.
pub fn create_distributed(database: &str, cluster: &str, table: &Table) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {database}.{name} ({}) \
         ENGINE = Distributed({cluster}, {database}, {name}_local, {})",
        column_list(table),
        table.shard_by,
        name = table.name,
    )
}

/// Every table a node has at [`VERSION`], sorted: the schema version table,
/// and a local and a Distributed table per [`TABLES`] entry.
pub fn expected_tables() -> Vec<String> {
    let mut names: Vec<String> = TABLES
        .iter()
        .flat_map(|t| [t.name.to_string(), format!("{}_local", t.name)])
        .chain([SCHEMA_VERSION_TABLE.to_string()])
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_table_is_a_replacing_merge_tree_with_its_keys() {
        let sql = create_local("rp", &TABLES[2]);
        assert_eq!(
            sql,
            "CREATE TABLE IF NOT EXISTS rp.syncs_local (sync_id UUID, connector_id UUID, status UInt8, \
             started_at_us Int64, duration_us Nullable(Int64), documents_synced Nullable(Int64), \
             error Nullable(String), version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY (sync_id)"
        );
    }

    #[test]
    fn the_distributed_table_has_the_local_columns_and_shards_on_its_key() {
        let sql = create_distributed("rp", "ragpulse", &TABLES[2]);
        assert!(
            sql.starts_with("CREATE TABLE IF NOT EXISTS rp.syncs (sync_id UUID, connector_id UUID")
        );
        assert!(sql.ends_with(
            "ENGINE = Distributed(ragpulse, rp, syncs_local, cityHash64(toString(sync_id)))"
        ));
    }

    /// FINAL merges copies of a row only on one shard and in one partition:
    /// the sharding key and the partition must depend on the sorting key only.
    #[test]
    fn every_table_shards_and_partitions_on_columns_of_its_sorting_key() {
        for table in TABLES {
            let key: Vec<&str> = table.order_by.split(", ").collect();
            let inner = |expr: &str| -> Vec<String> {
                let args = expr["cityHash64(".len()..expr.len() - 1].replace("toString(", "");
                args.split(',')
                    .map(|a| a.trim().trim_end_matches(')').to_string())
                    .collect()
            };
            for column in inner(table.shard_by) {
                assert!(key.contains(&column.as_str()), "{}: {column}", table.name);
            }
            if table.partition_by.is_some() {
                assert!(key.contains(&"ts_us"), "{}", table.name);
            }
            assert!(table.columns.iter().any(|(c, _)| *c == table.version));
            for column in &key {
                let kind = table
                    .columns
                    .iter()
                    .find(|(c, _)| c == column)
                    .map(|(_, k)| *k);
                assert!(
                    kind.is_some_and(|k| !k.starts_with("Nullable")),
                    "{}: {column}",
                    table.name
                );
            }
        }
    }
}
