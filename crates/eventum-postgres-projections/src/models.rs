//! [`PgReadModels`]: the read side in PostgreSQL — opening (migrations, pool), and the
//! queries on document read models and checkpoints that serve the application's reads.

use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use eventum_core::StorageError;
use eventum_postgres::OpenError;
use eventum_postgres::connect::{self, PoolSettings};
use serde_json::{Map, Value};

use crate::config::ReadConfig;
use crate::error::{InvalidInput, QueryError, storage};
use crate::migrate::READ_SIDE;

/// A document of a read model.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub key: String,
    pub doc: Value,
}

/// The read side in one PostgreSQL schema: consumer checkpoints, inboxes and document read
/// models. Cheap to clone (one pool).
#[derive(Clone)]
pub struct PgReadModels {
    pool: Pool,
    config: Arc<ReadConfig>,
}

impl PgReadModels {
    /// Connects and applies the read side's missing migrations to `config.schema`.
    pub async fn open(config: ReadConfig) -> Result<Self, OpenError> {
        let settings = PoolSettings {
            url: &config.url,
            schema: &config.schema,
            pool_size_max: config.pool_size_max,
            pool_wait_ms_max: config.pool_wait_ms_max,
            connect_timeout_ms: config.connect_timeout_ms,
        };
        let pool = connect::migrate_and_pool(&settings, &READ_SIDE).await?;
        Ok(Self {
            pool,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &ReadConfig {
        &self.config
    }

    /// A pooled connection (its `search_path` is the read side's schema), for a
    /// transaction of one's own: record ids with [`crate::inbox::record`], write documents
    /// with [`crate::DocumentTx`], move a checkpoint with [`crate::checkpoint::save`].
    pub async fn client(&self) -> Result<Object, StorageError> {
        self.pool.get().await.map_err(eventum_postgres::pool_error)
    }

    /// Closes the pool; later calls fail with `Unavailable`.
    pub fn close(&self) {
        self.pool.close();
    }

    /// The position `consumer` handles next, if it has a checkpoint.
    pub async fn checkpoint(&self, consumer: &str) -> Result<Option<u64>, StorageError> {
        self.one_number(
            "SELECT position_next FROM consumer_checkpoints WHERE consumer = $1",
            consumer,
        )
        .await
    }

    /// The stored version of document read model `model`, if registered.
    pub async fn model_version(&self, model: &str) -> Result<Option<u64>, StorageError> {
        self.one_number("SELECT version FROM read_models WHERE model = $1", model)
            .await
    }

    async fn one_number(&self, sql: &str, name: &str) -> Result<Option<u64>, StorageError> {
        let client = self.client().await?;
        let row = client.query_opt(sql, &[&name]).await.map_err(storage)?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    /// The document at `key` of `model`.
    pub async fn get(&self, model: &str, key: &str) -> Result<Option<Value>, QueryError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT doc::text FROM documents WHERE model = $1 AND key = $2")
            .await
            .map_err(storage)?;
        let row = client
            .query_opt(&stmt, &[&model, &key])
            .await
            .map_err(storage)?;
        row.map(|r| decode(model, r.get(0))).transpose()
    }

    fn check_limit(&self, limit: usize) -> Result<i64, InvalidInput> {
        if limit == 0 || limit > self.config.query_limit_max {
            return Err(InvalidInput::BadLimit {
                limit,
                max: self.config.query_limit_max,
            });
        }
        Ok(limit as i64)
    }

    /// Documents of `model` in key order, after key `after`, at most `limit`.
    pub async fn list(
        &self,
        model: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Document>, QueryError> {
        let limit = self.check_limit(limit)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT key, doc::text FROM documents
                 WHERE model = $1 AND ($2::text IS NULL OR key > $2)
                 ORDER BY key LIMIT $3",
            )
            .await
            .map_err(storage)?;
        let rows = client
            .query(&stmt, &[&model, &after, &limit])
            .await
            .map_err(storage)?;
        documents(model, &rows)
    }

    /// Documents of `model` whose field at JSON pointer `pointer` (object keys, such as
    /// `/customer/id`) equals `value`, or is an array holding it; in key order after
    /// `after`, at most `limit`. Served by the GIN index on the documents.
    pub async fn find(
        &self,
        model: &str,
        pointer: &str,
        value: &Value,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Document>, QueryError> {
        let limit = self.check_limit(limit)?;
        let (equal, holds) = containment(pointer, value)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT key, doc::text FROM documents
                 WHERE model = $1 AND (doc @> $2::text::jsonb OR doc @> $3::text::jsonb)
                   AND ($4::text IS NULL OR key > $4)
                 ORDER BY key LIMIT $5",
            )
            .await
            .map_err(storage)?;
        let rows = client
            .query(&stmt, &[&model, &equal, &holds, &after, &limit])
            .await
            .map_err(storage)?;
        documents(model, &rows)
    }
}

fn documents(model: &str, rows: &[tokio_postgres::Row]) -> Result<Vec<Document>, QueryError> {
    rows.iter()
        .map(|r| {
            Ok(Document {
                key: r.get(0),
                doc: decode(model, r.get(1))?,
            })
        })
        .collect()
}

fn decode(model: &str, text: &str) -> Result<Value, QueryError> {
    serde_json::from_str(text).map_err(|e| {
        QueryError::Storage(StorageError::new(
            eventum_core::StorageErrorKind::Corrupt,
            format!("a document of {model} does not decode: {e}"),
        ))
    })
}

/// The two documents whose containment finds `value` at `pointer`: the field equal to
/// it, and the field an array holding it (as JSON text).
fn containment(pointer: &str, value: &Value) -> Result<(String, String), InvalidInput> {
    let tokens: Vec<String> = match pointer.strip_prefix('/') {
        Some(rest) if !pointer.is_empty() => rest
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
        _ => return Err(InvalidInput::BadPointer(pointer.to_owned())),
    };
    let nest = |leaf: Value| {
        tokens.iter().rev().fold(leaf, |inner, token| {
            let mut object = Map::new();
            object.insert(token.clone(), inner);
            Value::Object(object)
        })
    };
    let equal = nest(value.clone()).to_string();
    let holds = nest(Value::Array(vec![value.clone()])).to_string();
    Ok((equal, holds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_become_containment_documents() {
        let (eq, holds) = containment("/customer/id", &json!("c-1")).unwrap();
        assert_eq!(eq, r#"{"customer":{"id":"c-1"}}"#);
        assert_eq!(holds, r#"{"customer":{"id":["c-1"]}}"#);
        let (eq, _) = containment("/a~1b/c~0d", &json!(3)).unwrap();
        assert_eq!(eq, r#"{"a/b":{"c~d":3}}"#);
        assert!(containment("", &json!(1)).is_err());
        assert!(containment("status", &json!(1)).is_err());
    }
}
