//! The `eventum` command: runs the server, talks to a running one, and checks a data
//! directory. Each subcommand lives in its own module as an `Args` struct plus `run`;
//! adding one is an enum variant here and a match arm in [`run`].

mod bench;
mod bench_raw;
mod bridge;
mod client;
mod groups;
mod read;
mod sagas;
mod serve;
mod serve_config;
mod shop;
mod shop_load;
mod shop_load_ws;
mod shop_service;
mod sse;
mod tail;
mod verify;

/// glibc's malloc spent about a quarter of the server's cycles under the shop's load
/// (fragmented bins: `unlink_chunk`, `malloc_consolidate`); mimalloc's per-thread pages
/// suit the many short-lived event buffers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod write;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "eventum", version, about = "Eventum event store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API over a data directory.
    Serve(serve::ServeArgs),
    /// Append one event to a stream.
    Append(write::AppendArgs),
    /// Read a stream, a category or $all as JSON lines.
    Read(read::ReadArgs),
    /// Follow a stream, a category or $all as JSON lines, resuming after disconnects.
    Tail(tail::TailArgs),
    /// Soft-delete a stream.
    Delete(write::DeleteArgs),
    /// Check every record of a data directory; optionally truncate at corruption.
    Verify(verify::VerifyArgs),
    /// Manage consumer groups: create, list, info, delete.
    Groups(groups::GroupsArgs),
    /// The shop of seed 004: `shop load` measures it over HTTP.
    Shop(shop_load::ShopArgs),
    /// Inspect and replay a consumer group's dead letters.
    Dlq(groups::DlqArgs),
    /// Saga instances of a running server: list, show.
    Sagas(sagas::SagasArgs),
    /// Measure durable appends, reads and catch-up against a same-run raw-disk baseline.
    Bench(bench::BenchArgs),
    /// Relay the store's events to a broker (NATS JetStream, Redis Streams, RabbitMQ).
    Bridge(bridge::BridgeArgs),
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Append(args) => write::append(args).await,
        Command::Read(args) => read::run(args).await,
        Command::Tail(args) => tail::run(args).await,
        Command::Delete(args) => write::delete(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Groups(args) => groups::run_groups(args).await,
        Command::Shop(args) => shop_load::run(args).await,
        Command::Dlq(args) => groups::run_dlq(args).await,
        Command::Sagas(args) => sagas::run(args).await,
        Command::Bridge(args) => bridge::run(args).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr so that stdout stays machine-readable (JSON lines, the
    // listening line).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eventum: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
