//! `eventum sagas list|show`: a running server's saga instances (status, state, pending
//! deadlines, history), printed as JSON lines.

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::{ServerOpt, compact_json, print_line, send};

#[derive(Args, Debug)]
pub struct SagasArgs {
    #[command(subcommand)]
    pub command: SagasCommand,
}

#[derive(Subcommand, Debug)]
pub enum SagasCommand {
    /// List a saga's instances with their status, one JSON line each, in start order.
    List(ListArgs),
    /// Show one instance: status, reason, state, pending deadlines and history.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The saga's name.
    pub saga: String,
    /// Most instances to list (at least 1).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    #[command(flatten)]
    pub server: ServerOpt,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The saga's name.
    pub saga: String,
    /// The instance's correlation key.
    pub key: String,
    #[command(flatten)]
    pub server: ServerOpt,
}

pub async fn run(args: SagasArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    match args.command {
        SagasCommand::List(a) => {
            // Pages of at most 100 until `limit` instances or the end.
            const PAGE: u64 = 100;
            let mut from = 0u64;
            let mut listed = 0u64;
            while listed < a.limit {
                let mut url = a.server.url(&["sagas", &a.saga, "instances"])?;
                let page = PAGE.min(a.limit - listed);
                url.query_pairs_mut()
                    .append_pair("from", &from.to_string())
                    .append_pair("limit", &page.to_string());
                let res = send(client.get(url), &a.server).await?;
                let body: Value = serde_json::from_str(&res.text().await?)?;
                for instance in body["instances"].as_array().into_iter().flatten() {
                    print_line(&instance.to_string())?;
                    listed += 1;
                }
                match body["next_from"].as_u64() {
                    Some(next) => from = next,
                    None => break,
                }
            }
            Ok(())
        }
        SagasCommand::Show(a) => {
            let url = a.server.url(&["sagas", &a.saga, "instances", &a.key])?;
            let res = send(client.get(url), &a.server).await?;
            print_line(&compact_json(&res.text().await?))
        }
    }
}
