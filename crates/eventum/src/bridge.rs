//! `eventum bridge run`: relays the store's events to a broker (NATS JetStream, Redis
//! Streams or RabbitMQ, chosen by the `--to` URL's scheme) until SIGINT or SIGTERM.
//! The store is opened directly (the embedded log in `--data`, or `--store postgres://…`),
//! so with the embedded log it runs while no `eventum serve` holds the same directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use eventum_bridge::{
    NatsSink, NatsSinkConfig, RabbitMqSink, RabbitMqSinkConfig, RedisSink, RedisSinkConfig, Relay,
    RelayConfig, Sink, TopicMapping,
};
use eventum_log::LogConfig;

// The same store opening as `eventum serve --store`.
use crate::serve::serve_store as bridge_store;

#[derive(Args, Debug)]
pub struct BridgeArgs {
    #[command(subcommand)]
    command: BridgeCommand,
}

#[derive(Subcommand, Debug)]
enum BridgeCommand {
    /// Relay every event to a broker; resumes from its checkpoint in the store.
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Broker URL: nats://host:4222, redis://host:6379 or amqp://user:pass@host:5672/%2f.
    #[arg(long)]
    to: String,
    /// Topic per stream `category` (order-events) or per event `type` (order-created).
    #[arg(long, default_value = "category")]
    topics: String,
    /// Relay name; its checkpoint is the stream `$bridge-{name}-checkpoint`.
    #[arg(long, default_value = "default")]
    name: String,
    /// NATS subject prefix, Redis key prefix or RabbitMQ exchange.
    #[arg(long, default_value = "eventum")]
    prefix: String,
    /// NATS only: create (or reuse) this JetStream stream capturing `{prefix}.>`.
    #[arg(long)]
    create_stream: Option<String>,
    /// Most events per published batch.
    #[arg(long, default_value_t = 512)]
    batch_events_max: usize,
    /// Data directory of the embedded log (without --store).
    #[arg(long, default_value = "./eventum-data")]
    data: PathBuf,
    /// Event store: omit for the embedded log in --data, or a postgres:// URL.
    #[arg(long)]
    store: Option<String>,
    /// PostgreSQL schema of the store (with --store postgres://…).
    #[arg(long, default_value = "eventum")]
    store_schema: String,
}

pub async fn run(args: BridgeArgs) -> anyhow::Result<()> {
    match args.command {
        BridgeCommand::Run(args) => run_relay(args).await,
    }
}

async fn sink_for(args: &RunArgs) -> anyhow::Result<Arc<dyn Sink>> {
    let url = args.to.as_str();
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    let sink: Arc<dyn Sink> = match scheme {
        "nats" => {
            let config = NatsSinkConfig {
                subject_prefix: args.prefix.clone(),
                ..NatsSinkConfig::default()
            };
            let sink = NatsSink::connect(url, config).await?;
            if let Some(stream) = &args.create_stream {
                // A day of duplicate window: a relay re-sends at most what followed its
                // last checkpoint, however long the outage lasted.
                sink.ensure_stream(stream, Duration::from_secs(24 * 3600))
                    .await?;
            }
            Arc::new(sink)
        }
        "redis" | "rediss" => {
            let config = RedisSinkConfig {
                key_prefix: args.prefix.clone(),
                ..RedisSinkConfig::default()
            };
            Arc::new(RedisSink::connect(url, config).await?)
        }
        "amqp" | "amqps" => {
            let config = RabbitMqSinkConfig {
                exchange: args.prefix.clone(),
                ..RabbitMqSinkConfig::default()
            };
            Arc::new(RabbitMqSink::connect(url, config).await?)
        }
        _ => {
            return Err(anyhow!(
                "--to {url:?}: expected a nats://, redis:// or amqp:// URL"
            ));
        }
    };
    if args.create_stream.is_some() && scheme != "nats" {
        return Err(anyhow!("--create-stream is for nats:// only"));
    }
    Ok(sink)
}

async fn run_relay(args: RunArgs) -> anyhow::Result<()> {
    let topics: TopicMapping = args.topics.parse()?;
    let config = RelayConfig {
        topics,
        batch_events_max: args.batch_events_max,
        ..RelayConfig::named(args.name.clone())
    };
    config.validate()?;
    let sink = sink_for(&args)
        .await
        .with_context(|| format!("cannot reach the broker at {}", args.to))?;
    let store = bridge_store::OpenedStore::open(
        args.store.as_deref(),
        &args.store_schema,
        &args.data,
        LogConfig::default(),
    )
    .await?;
    let relay = Relay::spawn(store.as_dyn(), sink, config)?;
    println!(
        "eventum bridge {} relaying to {} (topics: {}, prefix: {})",
        args.name, args.to, args.topics, args.prefix
    );
    let mut progress = relay.progress();
    let outcome = tokio::select! {
        () = shutdown_signal() => relay.stop().await,
        // Only an error ends a relay by itself (e.g. the store closed).
        _ = progress.wait_for(|p| p.state == eventum_bridge::RelayState::Stopped) => relay.join().await,
    };
    let last = progress.borrow().clone();
    eprintln!(
        "eventum bridge {}: stopped at position {} ({} messages published, {} failed attempts)",
        args.name, last.next_position, last.published_total, last.publish_failures_total
    );
    store.shutdown();
    outcome.context("relay failed")
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
