//! `eventum verify`: checks a data directory offline, optionally repairing it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Data directory to check (the server must not be running on it).
    #[arg(long)]
    pub data: PathBuf,
    /// Truncate the log at the first corrupt record and rebuild the index. Events from
    /// that record on are lost.
    #[arg(long)]
    pub repair: bool,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let dir = args.data.clone();
    // verify reads every segment: blocking work, kept off the async workers.
    let report = tokio::task::spawn_blocking(move || eventum_log::verify(&dir, args.repair))
        .await?
        .with_context(|| format!("cannot verify {}", args.data.display()))?;
    println!("data: {}", args.data.display());
    println!("segments: {}", report.segments);
    println!("events: {}", report.events);
    match report.head_position {
        Some(p) => println!("head_position: {p}"),
        None => println!("head_position: none"),
    }
    match &report.torn_tail_at {
        None => println!("torn_tail: none"),
        Some((file, offset)) => println!(
            "torn_tail: {} at byte {offset} (the next open truncates it)",
            file.display()
        ),
    }
    match &report.corruption {
        None => println!("corruption: none"),
        Some((file, offset, reason)) => {
            println!("corruption: {} at byte {offset}: {reason}", file.display())
        }
    }
    println!("repaired: {}", report.repaired);
    if !report.is_healthy() {
        bail!(
            "corruption found and not repaired; run again with --repair to truncate the log there"
        );
    }
    Ok(())
}
