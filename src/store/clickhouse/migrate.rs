//! Creating or upgrading the schema on every node of the cluster, one node
//! after the other (no `ON CLUSTER` without ZooKeeper). Each node records the
//! versions it reached in its own `schema_version` table. Every run creates
//! whatever table of the current schema a node lacks (`IF NOT EXISTS`), so a
//! migration stopped halfway is simply run again; a change to an existing
//! table becomes a step applied to the nodes below its version. A node whose
//! schema is newer than this binary's is left alone.

use serde::Deserialize;

use super::error::ClickHouseError;
use super::schema::{self, TABLES, VERSION};
use super::{Client, Connection, valid_identifier};

/// What a migration did on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    pub url: String,
    /// The node's schema version before (0: none).
    pub from_version: u32,
    pub to_version: u32,
    pub database_created: bool,
    /// Tables that did not exist before, sorted.
    pub created_tables: Vec<String>,
    /// Shards of the cluster as this node sees it.
    pub shards: u32,
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

#[derive(Deserialize)]
struct Count {
    n: u64,
}

/// Creates or upgrades the schema on every node of `connection`, in order,
/// handing each node's report to `done` as soon as it is migrated; stops at
/// the first node that fails.
pub async fn migrate(
    connection: &Connection,
    done: &mut dyn FnMut(&NodeReport),
) -> Result<Vec<NodeReport>, ClickHouseError> {
    valid_identifier("cluster", &connection.cluster)?;
    let client = Client::new(connection)?;
    let mut reports = Vec::new();
    for node in 0..client.nodes().len() {
        let report = migrate_node(&client, &connection.cluster, node).await?;
        done(&report);
        reports.push(report);
    }
    Ok(reports)
}

async fn migrate_node(
    client: &Client,
    cluster: &str,
    node: usize,
) -> Result<NodeReport, ClickHouseError> {
    let database = client.database();
    let shards = cluster_shards(client, node, cluster).await?;
    let database_created = !database_exists(client, node, database).await?;
    let before = tables(client, node, database).await?;
    client
        .execute(node, &schema::create_database(database))
        .await?;
    client
        .execute(node, &schema::create_schema_version(database))
        .await?;
    let from_version = version(client, node).await?;
    if from_version > VERSION {
        return Err(ClickHouseError::Config(format!(
            "{} holds schema version {from_version}, newer than this ragpulse's {VERSION}: \
             upgrade ragpulse",
            client.nodes()[node]
        )));
    }
    // Every table of the current schema, whatever the recorded version: a
    // migration stopped halfway, or a table dropped by hand, is completed.
    for table in TABLES {
        client
            .execute(node, &schema::create_local(database, table))
            .await?;
    }
    for table in TABLES {
        client
            .execute(node, &schema::create_distributed(database, cluster, table))
            .await?;
    }
    if from_version < VERSION {
        let record = format!(
            "INSERT INTO {database}.{} (version, applied_us) VALUES ({VERSION}, {})",
            schema::SCHEMA_VERSION_TABLE,
            crate::time::Timestamp::now().micros()
        );
        client.execute(node, &record).await?;
    }
    let after = tables(client, node, database).await?;
    let created_tables = after.into_iter().filter(|t| !before.contains(t)).collect();
    Ok(NodeReport {
        url: client.nodes()[node].clone(),
        from_version,
        to_version: VERSION,
        database_created,
        created_tables,
        shards,
    })
}

/// The shards of `cluster` in the node's `remote_servers`; a node that does
/// not know the cluster cannot hold its Distributed tables.
async fn cluster_shards(
    client: &Client,
    node: usize,
    cluster: &str,
) -> Result<u32, ClickHouseError> {
    let sql = format!(
        "SELECT uniqExact(shard_num) AS n FROM system.clusters WHERE cluster = '{cluster}'"
    );
    let n = client
        .system_rows::<Count>(node, &sql)
        .await?
        .first()
        .map_or(0, |c| c.n);
    if n == 0 {
        return Err(ClickHouseError::Config(format!(
            "{} has no cluster {cluster:?} in its remote_servers",
            client.nodes()[node]
        )));
    }
    Ok(n as u32)
}

async fn database_exists(
    client: &Client,
    node: usize,
    database: &str,
) -> Result<bool, ClickHouseError> {
    let sql = format!("SELECT count() AS n FROM system.databases WHERE name = '{database}'");
    Ok(client
        .system_rows::<Count>(node, &sql)
        .await?
        .first()
        .is_some_and(|c| c.n > 0))
}

/// The node's tables in `database`, sorted.
pub async fn tables(
    client: &Client,
    node: usize,
    database: &str,
) -> Result<Vec<String>, ClickHouseError> {
    let sql = format!("SELECT name FROM system.tables WHERE database = '{database}' ORDER BY name");
    let rows = client.system_rows::<Name>(node, &sql).await?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

async fn version(client: &Client, node: usize) -> Result<u32, ClickHouseError> {
    let sql = format!(
        "SELECT max(version) AS n FROM {}.{}",
        client.database(),
        schema::SCHEMA_VERSION_TABLE
    );
    Ok(client
        .system_rows::<Count>(node, &sql)
        .await?
        .first()
        .map_or(0, |c| c.n as u32))
}
