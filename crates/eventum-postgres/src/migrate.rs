//! Versioned schema migrations: one `.sql` file per object under `migrations/`, applied in
//! order at open inside one transaction and recorded in a history table
//! (`schema_migrations` for the store). A schema migrated by a newer build is refused
//! rather than written with the wrong layout. [`apply`] runs any [`MigrationSet`], so the
//! PostgreSQL read side keeps its own numbered files and history in the same way.

use tokio_postgres::Client;

use crate::error::{OpenError, storage};

/// A migration: its version (the file's number) and SQL.
#[derive(Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A [`Migration`] from `migrations/{name}.sql` of the calling crate.
#[macro_export]
macro_rules! migration {
    ($version:literal, $name:literal) => {
        $crate::migrate::Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $name,
                ".sql"
            )),
        }
    };
}

/// Every migration this build knows, in order. Never edit a released file; add a new one.
pub const MIGRATIONS: &[Migration] = &[
    crate::migration!(1, "0001_log_head"),
    crate::migration!(2, "0002_events"),
    crate::migration!(3, "0003_events_category_index"),
    crate::migration!(4, "0004_events_event_id_index"),
    crate::migration!(5, "0005_streams"),
    crate::migration!(6, "0006_take_positions"),
];

/// A numbered list of migrations with the table that records which were applied.
#[derive(Clone, Copy, Debug)]
pub struct MigrationSet {
    /// Records applied versions; a plain identifier (spliced into SQL).
    pub history_table: &'static str,
    pub migrations: &'static [Migration],
}

impl MigrationSet {
    /// The newest version this build knows.
    pub fn latest_version(&self) -> i32 {
        self.migrations.last().map_or(0, |m| m.version)
    }

    /// The first migration that breaks the rules (versions 1, 2, 3, … in order, a name
    /// starting with the zero-padded version, non-empty SQL), for the sets' unit tests.
    pub fn misnumbered(&self) -> Option<&'static str> {
        self.migrations
            .iter()
            .enumerate()
            .find(|(i, m)| {
                m.version != *i as i32 + 1
                    || !m.name.starts_with(&format!("{:04}_", m.version))
                    || m.sql.trim().is_empty()
            })
            .map(|(_, m)| m.name)
    }
}

/// The event store's migrations.
pub const STORE: MigrationSet = MigrationSet {
    history_table: "schema_migrations",
    migrations: MIGRATIONS,
};

/// The newest version of the store's schema this build knows.
pub fn latest_version() -> i32 {
    STORE.latest_version()
}

/// Creates `schema` if missing and applies the store's missing migrations (see [`apply`]).
pub async fn migrate(client: &mut Client, schema: &str, url: &str) -> Result<Vec<i32>, OpenError> {
    apply(client, schema, url, &STORE).await
}

/// Creates `schema` if missing and applies the missing migrations of `set`, all in one
/// transaction under an advisory lock, so concurrent opens of the same schema apply each
/// file once. Returns the versions applied now. `schema` must be a valid schema name
/// (see [`crate::connect::check_schema`]).
pub async fn apply(
    client: &mut Client,
    schema: &str,
    url: &str,
    set: &MigrationSet,
) -> Result<Vec<i32>, OpenError> {
    crate::connect::check_schema(schema)?;
    let history = set.history_table;
    let err = |e| OpenError::Storage {
        url: url.to_owned(),
        source: storage(e),
    };
    let tx = client.transaction().await.map_err(err)?;
    // Advisory locks are database-wide, so this also serializes `CREATE SCHEMA` races; every
    // set uses the schema's one lock, so sets migrating the same schema take turns too.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('eventum.migrate.' || $1::text))",
        &[&schema],
    )
    .await
    .map_err(err)?;
    // `schema` was validated as a plain lowercase identifier, so splicing it is safe.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS {history} (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(err)?;
    let found: Option<i32> = tx
        .query_one(&format!("SELECT max(version) FROM {history}"), &[])
        .await
        .map_err(err)?
        .get(0);
    let found = found.unwrap_or(0);
    if found > set.latest_version() {
        return Err(OpenError::SchemaTooNew {
            schema: schema.to_owned(),
            found,
            known: set.latest_version(),
        });
    }
    let mut applied = Vec::new();
    for m in set.migrations.iter().filter(|m| m.version > found) {
        tx.batch_execute(m.sql).await.map_err(err)?;
        tx.execute(
            &format!("INSERT INTO {history} (version, name) VALUES ($1, $2)"),
            &[&m.version, &m.name],
        )
        .await
        .map_err(err)?;
        applied.push(m.version);
    }
    tx.commit().await.map_err(err)?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        assert_eq!(STORE.misnumbered(), None);
    }
}
