//! `eventum read`: one page of a stream, a category or `$all`, as JSON lines.

use clap::{ArgGroup, Args};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::client::{ServerOpt, compact_json, print_line, send};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["stream", "all", "category"])))]
pub struct ReadArgs {
    /// Stream to read.
    pub stream: Option<String>,
    /// Read $all instead of a stream.
    #[arg(long)]
    pub all: bool,
    /// Read a category (streams named CATEGORY-…) instead of a stream.
    #[arg(long)]
    pub category: Option<String>,
    /// First version (stream) or global position ($all, category).
    #[arg(long)]
    pub from: Option<u64>,
    /// Most events to print (the server's default when absent).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Read newest first (streams and $all).
    #[arg(long)]
    pub backward: bool,
    #[command(flatten)]
    pub server: ServerOpt,
}

#[derive(Deserialize)]
struct ReadBody {
    events: Vec<Box<RawValue>>,
}

pub async fn run(args: ReadArgs) -> anyhow::Result<()> {
    let url = match (&args.stream, &args.category) {
        (Some(stream), _) => args.server.url(&["streams", stream])?,
        (None, Some(category)) => args.server.url(&["categories", category])?,
        (None, None) => args.server.url(&["all"])?,
    };
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(from) = args.from {
        query.push(("from", from.to_string()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    if args.backward {
        query.push(("direction", "backward".into()));
    }
    let res = send(reqwest::Client::new().get(url).query(&query), &args.server).await?;
    let body: ReadBody = serde_json::from_str(&res.text().await?)?;
    for event in body.events {
        print_line(&compact_json(event.get()))?;
    }
    Ok(())
}
