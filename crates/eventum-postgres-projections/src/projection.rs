//! Document projections: a [`DocumentProjection`] folds events into the JSON documents of
//! its read model through a [`DocumentTx`], without writing SQL, and runs as a
//! [`PgConsumer`] named after its model, so documents, checkpoint and inbox commit
//! together. Like `eventum_projections::Projection`, but async: a document is a round
//! trip away, so reads are awaited (and can be prefetched for a whole batch).
//!
//! A projection started with a version other than the stored one empties its model,
//! checkpoint and inbox in one transaction and rebuilds from position 0 (queries see the
//! model refill meanwhile; the embedded store's side-by-side generations are not
//! replicated here).

use std::sync::Arc;

use async_trait::async_trait;
use eventum_core::{EventStore, RecordedEvent, SubscriptionTarget};

use crate::checkpoint;
use crate::config::ConsumerConfig;
use crate::documents::{DocLimits, DocumentTx};
use crate::error::{ConsumerError, HandlerError, storage};
use crate::handler::{PgHandler, Transaction};
use crate::models::PgReadModels;
use crate::runner::{PgConsumer, check_consumer_name};

/// A JSON document read model kept up to date from the event log.
///
/// `apply` must be a deterministic function of the documents it reads and the event: a
/// rebuild replays the log from position 0 and must arrive at the same documents.
#[async_trait]
pub trait DocumentProjection: Send + Sync + 'static {
    /// The read model's name (also its consumer's name).
    fn name(&self) -> &str;

    /// The version of the projection's code; another stored version rebuilds the model.
    fn version(&self) -> u64 {
        1
    }

    /// What the projection follows.
    fn target(&self) -> SubscriptionTarget;

    /// The document keys `event` will touch, if known without reading: a batch's keys
    /// are loaded in one query before `apply` runs. Default none (loaded on first use).
    fn keys(&self, _event: &RecordedEvent) -> Vec<String> {
        Vec::new()
    }

    /// Applies one event: reads and writes documents through `docs`. An error rolls the
    /// whole batch back (transient ones are tried again; others stop the projection).
    async fn apply(
        &self,
        docs: &mut DocumentTx<'_, '_>,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError>;
}

/// Runs a [`DocumentProjection`] as a [`PgHandler`].
struct Adapter {
    projection: Arc<dyn DocumentProjection>,
    limits: DocLimits,
}

#[async_trait]
impl PgHandler for Adapter {
    async fn handle(
        &self,
        tx: &mut Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), HandlerError> {
        let mut docs = DocumentTx::with_limits(tx, self.projection.name().to_owned(), self.limits);
        let keys: Vec<String> = events
            .iter()
            .flat_map(|e| self.projection.keys(e))
            .collect();
        if !keys.is_empty() {
            docs.prefetch(&keys).await?;
        }
        for event in events {
            self.projection.apply(&mut docs, event).await?;
        }
        docs.flush().await
    }
}

/// Registers the projection's model: records its version, or, when the stored one
/// differs, empties the model, its checkpoint and its inbox so it rebuilds from 0.
/// Returns whether it was reset.
async fn register(
    models: &PgReadModels,
    name: &str,
    version: u64,
) -> Result<bool, eventum_core::StorageError> {
    let mut client = models.client().await?;
    let tx = client.transaction().await.map_err(storage)?;
    let version = i64::try_from(version).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO read_models (model, version) VALUES ($1, $2) ON CONFLICT (model) DO NOTHING",
        &[&name, &version],
    )
    .await
    .map_err(storage)?;
    let stored: i64 = tx
        .query_one(
            "SELECT version FROM read_models WHERE model = $1 FOR UPDATE",
            &[&name],
        )
        .await
        .map_err(storage)?
        .get(0);
    let reset = stored != version;
    if reset {
        tx.execute("DELETE FROM documents WHERE model = $1", &[&name])
            .await
            .map_err(storage)?;
        checkpoint::reset(&tx, name, 0).await?;
        tx.execute(
            "UPDATE read_models SET version = $2 WHERE model = $1",
            &[&name, &version],
        )
        .await
        .map_err(storage)?;
    }
    tx.commit().await.map_err(storage)?;
    Ok(reset)
}

impl PgConsumer {
    /// Registers `projection` (rebuilding its model when its version changed) and starts
    /// it as a consumer named after its model.
    pub async fn start_projection(
        models: PgReadModels,
        events: Arc<dyn EventStore>,
        projection: Arc<dyn DocumentProjection>,
        config: ConsumerConfig,
    ) -> Result<PgConsumer, ConsumerError> {
        let name = projection.name().to_owned();
        check_consumer_name(&name).map_err(|source| ConsumerError::Invalid {
            consumer: name.clone(),
            source,
        })?;
        let reset = register(&models, &name, projection.version())
            .await
            .map_err(|source| ConsumerError::Storage {
                consumer: name.clone(),
                source,
            })?;
        if reset {
            tracing::info!(model = %name, version = projection.version(), "document projection version changed; rebuilding from 0");
        }
        let target = projection.target();
        let adapter = Adapter {
            limits: models.config().into(),
            projection,
        };
        PgConsumer::start(models, events, &name, target, Arc::new(adapter), config).await
    }
}
