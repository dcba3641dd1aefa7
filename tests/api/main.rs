//! Black-box API tests: one binary (as zero2prod's `tests/api/`), one module
//! per area. Each test spawns its own server on 127.0.0.1:0 with a fresh data
//! directory and talks to it over HTTP (or runs the real binary, in
//! `durability`). `TEST_LOG=1 cargo test --test api` shows the servers' logs.

mod helpers;
mod process;
mod switchable_fs;

mod advanced;
mod auth;
mod backup;
mod bounds;
mod cache;
mod clickhouse;
mod costs;
mod crash;
mod dashboard;
mod demo;
mod durability;
mod export;
mod faults;
mod freshness;
mod health;
mod import;
mod ingest;
mod lifecycle;
mod limits;
mod live;
mod load;
mod otlp;
mod otlp_clients;
mod pricing;
mod prometheus;
mod property;
mod reranking;
mod schemathesis;
mod scope;
mod security;
mod sessions;
mod steps;
mod sync;
mod timeseries;
mod topics;
mod trending;
mod ttft;
mod users;
mod utilization;
mod validation;
