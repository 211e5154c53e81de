//! `eventum bridge run`: relays the store's events to a broker (NATS JetStream, Kafka,
//! Redis Streams or RabbitMQ, chosen by the `--to` URL's scheme) until SIGINT or SIGTERM.
//! The flags make one [`BridgeSpec`], the same as a `[[bridge]]` section of
//! `eventum serve --config`.
//! The store is opened directly (the embedded log in `--data`, or `--store postgres://…`),
//! so with the embedded log it runs while no `eventum serve` holds the same directory.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use eventum_bridge::{BridgeSpec, Relay};
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
    /// Broker URL: nats://host:4222, kafka://host:9092, redis://host:6379 or
    /// amqp://user:pass@host:5672/%2f.
    #[arg(long)]
    to: String,
    /// Topic per stream `category` (order-events) or per event `type` (order-created).
    #[arg(long, default_value = "category")]
    topics: String,
    /// Relay name; its checkpoint is the stream `$bridge-{name}-checkpoint`.
    #[arg(long, default_value = "default")]
    name: String,
    /// NATS subject prefix, Kafka topic prefix, Redis key prefix or RabbitMQ exchange.
    #[arg(long, default_value = "eventum")]
    prefix: String,
    /// NATS only: create (or reuse) this JetStream stream capturing `{prefix}.>`.
    #[arg(long)]
    create_stream: Option<String>,
    /// Message headers: `full`, or `compact` (without the derivable
    /// ce_datacontenttype, eventum_version, eventum_position).
    #[arg(long, default_value = "full")]
    headers: String,
    /// Most events per published batch.
    #[arg(long, default_value_t = 512)]
    batch_events_max: usize,
    /// Batches sent and not yet acknowledged at once.
    #[arg(long, default_value_t = 4)]
    batches_in_flight_max: usize,
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

impl RunArgs {
    fn spec(&self) -> BridgeSpec {
        BridgeSpec {
            name: self.name.clone(),
            to: Some(self.to.clone()),
            topics: Some(self.topics.clone()),
            prefix: Some(self.prefix.clone()),
            headers: Some(self.headers.clone()),
            create_stream: self.create_stream.clone(),
            batch_events_max: Some(self.batch_events_max),
            batches_in_flight_max: Some(self.batches_in_flight_max),
            ..BridgeSpec::default()
        }
    }
}

async fn run_relay(args: RunArgs) -> anyhow::Result<()> {
    // First: a signal while connecting must still stop the relay cleanly.
    let shutdown =
        eventum_server::Shutdown::install().context("cannot catch SIGINT and SIGTERM")?;
    let spec = args.spec();
    spec.validate()?;
    let config = spec.relay_config()?;
    let sink = spec.connect_sink().await?;
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
        () = shutdown.received() => relay.stop().await,
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
