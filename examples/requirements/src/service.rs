//! Assembles the requirements service on one embedded store: the command bus over an
//! inline-projected store (the `requirements` view is current when a command returns),
//! the audit log as an async projection, the notification consumer in a consumer group,
//! and `RequirementApprovalSaga`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eventum_core::EventStore;
use eventum_groups::{GroupService, GroupsConfig};
use eventum_log::{LogConfig, LogStore};
use eventum_projections::{
    InlineProjections, Projection, ProjectionRunner, ReadModelStore, RunnerConfig, StoreConfig,
};
use eventum_runtime::{BusConfig, CommandBus, Repository, RepositoryConfig};
use eventum_sagas::{Clock, SagaConfig, SagaHandle, SagaRunner, SagaStatus, SystemClock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::approval_saga::{RequirementApprovalSaga, SAGA_NAME};
use crate::domain::Requirement;
use crate::notify;
use crate::views::{AuditLog, RequirementsView};

/// Where the service keeps its data and how it tells time.
pub struct ServiceConfig {
    pub data_dir: PathBuf,
    /// The saga's clock (a test clock in tests).
    pub clock: Arc<dyn Clock>,
    /// Notification consumers in the group.
    pub notifiers: usize,
}

impl ServiceConfig {
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        Self {
            data_dir: data_dir.as_ref().to_owned(),
            clock: Arc::new(SystemClock),
            notifiers: 2,
        }
    }
}

/// Everything the HTTP layer needs; cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub bus: Arc<CommandBus>,
    pub log: Arc<LogStore>,
    pub read_models: ReadModelStore,
    pub groups: Arc<GroupService>,
    pub sagas: Arc<SagaStatus>,
    pub audit: Arc<ProjectionRunner>,
}

impl Service {
    pub fn clock_now_us(&self) -> i64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        since_epoch.as_micros() as i64
    }
}

/// A started service and the background work to stop with it.
pub struct Running {
    pub service: Service,
    saga: SagaHandle,
    stop_notifiers: watch::Sender<bool>,
    notifiers: Vec<JoinHandle<()>>,
}

impl Running {
    pub async fn start(config: ServiceConfig) -> anyhow::Result<Running> {
        let log = LogStore::open(config.data_dir.join("log"), LogConfig::default())?;
        let read_models =
            ReadModelStore::open(config.data_dir.join("read-models"), StoreConfig::default())?;
        let inline: Vec<Arc<dyn Projection>> = vec![Arc::new(RequirementsView)];
        let projected = Arc::new(
            InlineProjections::open(
                log.clone(),
                read_models.clone(),
                inline,
                RunnerConfig::default(),
            )
            .await?,
        );
        let commands_store: Arc<dyn EventStore> = projected;
        let bus = Arc::new(
            CommandBus::builder(BusConfig::default())
                .aggregate(Repository::<Requirement>::new(
                    commands_store,
                    RepositoryConfig::default(),
                ))?
                .build(),
        );
        let raw: Arc<dyn EventStore> = log.clone();
        let audit = Arc::new(
            ProjectionRunner::start(
                read_models.clone(),
                raw.clone(),
                Arc::new(AuditLog),
                RunnerConfig::default(),
            )
            .await?,
        );
        let groups = GroupService::open(raw.clone(), GroupsConfig::default()).await?;
        notify::prepare(&groups, &read_models).await?;
        let (stop_notifiers, stop_rx) = watch::channel(false);
        let notifiers = (0..config.notifiers.max(1))
            .map(|i| {
                tokio::spawn(notify::run(
                    groups.clone(),
                    read_models.clone(),
                    format!("notifier-{i}"),
                    stop_rx.clone(),
                ))
            })
            .collect();
        let saga = SagaRunner::start(
            raw.clone(),
            bus.clone(),
            RequirementApprovalSaga,
            SagaConfig::default(),
            config.clock.clone(),
        )
        .await?;
        let sagas = Arc::new(SagaStatus::new(raw, SAGA_NAME));
        Ok(Running {
            service: Service {
                bus,
                log,
                read_models,
                groups,
                sagas,
                audit,
            },
            saga,
            stop_notifiers,
            notifiers,
        })
    }

    /// Stops the saga, the consumers and the projections, saving their checkpoints, then
    /// closes the store.
    pub async fn shutdown(self) {
        let _ = self.stop_notifiers.send(true);
        for n in self.notifiers {
            let _ = n.await;
        }
        if let Err(e) = self.saga.stop().await {
            tracing::warn!(error = %e, "saga stopped with an error");
        }
        self.service.groups.shutdown().await;
        if let Ok(audit) = Arc::try_unwrap(self.service.audit)
            && let Err(e) = audit.stop().await
        {
            tracing::warn!(error = %e, "audit projection stopped with an error");
        }
        self.service.log.shutdown();
    }
}
