//! `requirements serve` runs the service on an embedded store; `requirements rebuild`
//! rebuilds a read model from the log with a progress bar.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use eventum_core::EventStore;
use eventum_log::{LogConfig, LogStore};
use eventum_projections::progress::RebuildBar;
use eventum_projections::{Projection, ReadModelStore, RunnerConfig, StoreConfig, rebuild};
use requirements::views::{AuditLog, RequirementsView};
use requirements::{Running, ServiceConfig, http};

#[derive(Parser)]
#[command(about = "The requirements-tracking service (seed 000) on Eventum")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serves the HTTP API.
    Serve {
        #[arg(long, default_value = "./requirements-data")]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:2114")]
        listen: String,
    },
    /// Rebuilds a read model (`requirements` or `requirement-audit`) from position 0 while
    /// the service is stopped.
    Rebuild {
        #[arg(long, default_value = "./requirements-data")]
        data: PathBuf,
        model: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Cmd::Serve { data, listen } => {
            // First: SIGINT or SIGTERM during start-up still stops the service cleanly.
            let shutdown = eventum_server::Shutdown::install()?;
            let running = Running::start(ServiceConfig::new(&data)).await?;
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            println!(
                "requirements listening on http://{} (data: {})",
                listener.local_addr()?,
                data.display()
            );
            eventum_server::serve_app(
                listener,
                http::router(running.service.clone()),
                shutdown.received(),
            )
            .await?;
            running.shutdown().await;
        }
        Cmd::Rebuild { data, model } => {
            let projection: Arc<dyn Projection> = match model.as_str() {
                "requirements" => Arc::new(RequirementsView),
                "requirement-audit" => Arc::new(AuditLog),
                other => {
                    anyhow::bail!("unknown read model {other:?}: requirements or requirement-audit")
                }
            };
            let log = LogStore::open(data.join("log"), LogConfig::default())?;
            let read_models =
                ReadModelStore::open(data.join("read-models"), StoreConfig::default())?;
            let events: Arc<dyn EventStore> = log.clone();
            let bar = RebuildBar::new(&model);
            let report = rebuild(
                read_models,
                events,
                projection,
                RunnerConfig::default(),
                |s| bar.update(s),
            )
            .await?;
            bar.finish();
            println!(
                "{model}: generation {} active, {} events applied in {:.1} s",
                report.generation,
                report.events_applied,
                report.elapsed.as_secs_f64()
            );
            log.shutdown();
        }
    }
    Ok(())
}
