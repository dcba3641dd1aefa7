//! `ragpulse migrate`: creates or upgrades the ClickHouse backend's schema on
//! every node and prints, per node as it is done, what it found and what it
//! created.

use anyhow::Context;

use crate::cli::{ClickHouseArgs, MigrateArgs};
use crate::store::clickhouse::Connection;
use crate::store::clickhouse::migrate::{NodeReport, migrate};

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let connection = connection(&args.clickhouse);
    let database = connection.database.clone();
    let reports = migrate(&connection, &mut |report| {
        println!("{}", describe(report, &database));
    })
    .await
    .with_context(|| {
        format!(
            "migrating database {} on {}",
            connection.database,
            connection.urls.join(",")
        )
    })?;
    if let Some(warning) = fewer_nodes_than_shards(&reports, &connection.cluster) {
        eprintln!("{warning}");
    }
    Ok(())
}

/// A Distributed insert fails on a shard without the local tables: every
/// node of the cluster must be migrated, which fewer URLs than shards cannot
/// have done.
fn fewer_nodes_than_shards(reports: &[NodeReport], cluster: &str) -> Option<String> {
    let shards = reports.iter().map(|r| r.shards).max()?;
    (reports.len() < shards as usize).then(|| {
        format!(
            "warning: cluster {cluster} has {shards} shards and {} URL(s) were migrated: \
             run migrate with the URL of every node",
            reports.len()
        )
    })
}

pub fn connection(args: &ClickHouseArgs) -> Connection {
    Connection {
        urls: args.urls.clone(),
        database: args.clickhouse_database.clone(),
        cluster: args.clickhouse_cluster.clone(),
        user: args.clickhouse_user.clone(),
        password: args.clickhouse_password.clone(),
    }
}

/// One line per node: `http://…: database rp created; schema 0 -> 1; created 19 tables: …`.
fn describe(report: &NodeReport, database: &str) -> String {
    let mut parts = Vec::new();
    if report.database_created {
        parts.push(format!("database {database} created"));
    }
    if report.from_version != report.to_version {
        parts.push(format!(
            "schema {} -> {}",
            report.from_version, report.to_version
        ));
    } else if report.created_tables.is_empty() {
        parts.push(format!(
            "schema at version {}, nothing to do",
            report.to_version
        ));
    } else {
        parts.push(format!("schema at version {}", report.to_version));
    }
    if !report.created_tables.is_empty() {
        parts.push(format!(
            "created {} tables: {}",
            report.created_tables.len(),
            report.created_tables.join(", ")
        ));
    }
    format!(
        "{} ({} shards): {}",
        report.url,
        report.shards,
        parts.join("; ")
    )
}
