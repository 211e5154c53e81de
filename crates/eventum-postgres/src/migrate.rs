//! Versioned schema migrations: one `.sql` file per object under `migrations/`, applied in
//! order at open inside one transaction and recorded in `schema_migrations`. A schema
//! migrated by a newer build is refused rather than written with the wrong layout.

use tokio_postgres::Client;

use crate::error::{OpenError, storage};

/// A migration: its version (the file's number) and SQL.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this build knows, in order. Never edit a released file; add a new one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_log_head",
        sql: include_str!("../migrations/0001_log_head.sql"),
    },
    Migration {
        version: 2,
        name: "0002_events",
        sql: include_str!("../migrations/0002_events.sql"),
    },
    Migration {
        version: 3,
        name: "0003_events_category_index",
        sql: include_str!("../migrations/0003_events_category_index.sql"),
    },
    Migration {
        version: 4,
        name: "0004_events_event_id_index",
        sql: include_str!("../migrations/0004_events_event_id_index.sql"),
    },
    Migration {
        version: 5,
        name: "0005_streams",
        sql: include_str!("../migrations/0005_streams.sql"),
    },
];

/// The newest version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Creates `schema` if missing and applies the missing migrations, all in one transaction
/// under an advisory lock, so concurrent opens of the same schema apply each file once.
/// Returns the versions applied now.
pub async fn migrate(client: &mut Client, schema: &str, url: &str) -> Result<Vec<i32>, OpenError> {
    let err = |e| OpenError::Storage {
        url: url.to_owned(),
        source: storage(e),
    };
    let tx = client.transaction().await.map_err(err)?;
    // Advisory locks are database-wide, so this also serializes `CREATE SCHEMA` races.
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
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(err)?;
    let found: Option<i32> = tx
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .map_err(err)?
        .get(0);
    let found = found.unwrap_or(0);
    if found > latest_version() {
        return Err(OpenError::SchemaTooNew {
            schema: schema.to_owned(),
            found,
            known: latest_version(),
        });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.batch_execute(m.sql).await.map_err(err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
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
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
            assert!(!m.sql.trim().is_empty());
        }
    }
}
