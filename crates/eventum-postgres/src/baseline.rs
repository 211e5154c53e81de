//! Same-run baselines for benchmarks of the store: plain autocommitted inserts of the same
//! rows on the same server (no positions, no checks, no stream rows, one index), as
//! `pgbench` would measure them, so a store figure always comes with what the server
//! itself does on this machine at that moment. Used by `eventum bench --store` and the
//! `pg_append` bench.

use std::sync::Arc;

use tokio_postgres::{Client, Error, NoTls, Statement};

/// `connections` connections inserting into a fresh table of their own.
pub struct RawInserts {
    /// Each connection with its prepared insert (one round trip per commit, as the store).
    clients: Vec<(Arc<Client>, Statement)>,
    table: String,
    url: String,
}

async fn connect(url: &str) -> Result<Client, Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Runs `sql` on a connection of its own.
pub async fn execute(url: &str, sql: &str) -> Result<(), Error> {
    connect(url).await?.batch_execute(sql).await
}

/// The server's version and the settings that decide what a durable commit costs.
pub async fn server_settings(url: &str) -> Result<String, Error> {
    let client = connect(url).await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'),
                 current_setting('fsync'), current_setting('wal_sync_method'),
                 current_setting('commit_delay')",
            &[],
        )
        .await?;
    Ok(format!(
        "PostgreSQL {}, synchronous_commit={}, fsync={}, wal_sync_method={}, commit_delay={}",
        row.get::<_, String>(0),
        row.get::<_, String>(1),
        row.get::<_, String>(2),
        row.get::<_, String>(3),
        row.get::<_, String>(4),
    ))
}

impl RawInserts {
    /// Creates the table and opens the connections.
    pub async fn create(url: &str, connections: usize) -> Result<Self, Error> {
        let table = format!("bench_raw_{}", uuid::Uuid::now_v7().simple());
        execute(
            url,
            &format!("CREATE TABLE {table} (id bigserial PRIMARY KEY, stream text, data bytea)"),
        )
        .await?;
        let sql = format!(
            "INSERT INTO {table} (stream, data) SELECT $1, d FROM UNNEST($2::bytea[]) AS d"
        );
        let mut clients = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let client = connect(url).await?;
            let statement = client.prepare(&sql).await?;
            clients.push((Arc::new(client), statement));
        }
        Ok(Self {
            clients,
            table,
            url: url.to_owned(),
        })
    }

    /// Commits `rows` in one autocommitted INSERT on connection `connection`.
    pub async fn insert(
        &self,
        connection: usize,
        stream: &str,
        rows: &[&[u8]],
    ) -> Result<(), Error> {
        let (client, statement) = &self.clients[connection % self.clients.len()];
        client.execute(statement, &[&stream, &rows]).await?;
        Ok(())
    }

    /// Drops the table.
    pub async fn finish(self) -> Result<(), Error> {
        drop(self.clients);
        execute(&self.url, &format!("DROP TABLE {}", self.table)).await
    }
}
