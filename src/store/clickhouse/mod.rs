//! The ClickHouse backend's foundation: the HTTP client of the nodes
//! (`client`), ClickHouse's failures as a typed error mapped onto
//! [`crate::store::StoreError`] (`error`), the tables (`schema`) and creating
//! or upgrading them on every node (`migrate`). It does not implement
//! [`crate::store::Store`] yet: the server keeps serving from SQLite.

pub mod client;
pub mod error;
pub mod migrate;
pub mod schema;

pub use client::Client;
pub use error::ClickHouseError;

/// Where the cluster is and how to log in.
#[derive(Debug, Clone)]
pub struct Connection {
    /// One HTTP URL per node (`http://host:8123`); the schema is created on
    /// each of them.
    pub urls: Vec<String>,
    pub database: String,
    /// The `remote_servers` cluster the Distributed tables span.
    pub cluster: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Database, cluster and table names go into SQL text (18.16 has no query
/// parameters), so only plain identifiers are accepted.
pub fn valid_identifier(what: &str, name: &str) -> Result<(), ClickHouseError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && name.len() <= 64 {
        Ok(())
    } else {
        Err(ClickHouseError::Config(format!(
            "invalid ClickHouse {what} name {name:?}: letters, digits and _ only, not starting with a digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_accepted() {
        for good in ["rp", "ragpulse_test_1", "_x"] {
            assert!(valid_identifier("database", good).is_ok(), "{good}");
        }
        for bad in ["", "1rp", "rp;DROP", "a-b", "a.b", "a b", "é"] {
            assert!(valid_identifier("database", bad).is_err(), "{bad}");
        }
    }
}
