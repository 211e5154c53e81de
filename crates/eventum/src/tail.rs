//! `eventum tail`: follows the SSE endpoint and prints one JSON line per event, resuming
//! with `Last-Event-ID` after a dropped connection so that nothing is missed or repeated.

use std::time::Duration;

use anyhow::Context;
use clap::{ArgGroup, Args};
use futures::StreamExt;
use serde::Deserialize;

use crate::client::{ServerError, ServerOpt, check, compact_json, print_line};
use crate::sse::SseParser;

/// Pause before reconnecting.
const RETRY_DELAY: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["stream", "category", "all"])))]
pub struct TailArgs {
    #[arg(long)]
    pub stream: Option<String>,
    #[arg(long)]
    pub category: Option<String>,
    /// Follow $all.
    #[arg(long)]
    pub all: bool,
    /// First global position to print, or `start`; default: only new events.
    #[arg(long)]
    pub from: Option<String>,
    #[command(flatten)]
    pub server: ServerOpt,
}

#[derive(Deserialize)]
struct Health {
    head_position: Option<u64>,
}

pub async fn run(args: TailArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(s) = &args.stream {
        query.push(("stream", s.clone()));
    } else if let Some(c) = &args.category {
        query.push(("category", c.clone()));
    } else {
        query.push(("all", "true".into()));
    }
    // Resume point: the position of the last event printed. "Only new events" is pinned
    // to the head now, so a reconnect cannot skip what was committed while disconnected.
    let mut last: Option<u64> = match args.from.as_deref() {
        Some("start") => None,
        Some(n) => {
            let from: u64 = n.parse().context("--from must be a position or `start`")?;
            from.checked_sub(1)
        }
        None => head_position(&client, &args.server).await?,
    };
    let from_start = last.is_none();
    let url = args.server.url(&["subscribe"])?;
    loop {
        let mut req = client.get(url.clone()).query(&query);
        req = match last {
            Some(p) => req.header("Last-Event-ID", p.to_string()),
            None if from_start => req.query(&[("from", "start")]),
            None => req,
        };
        match follow(req, &mut last).await {
            Ok(()) => eprintln!("eventum tail: connection closed; reconnecting"),
            Err(e) => {
                // A refusal of the request itself will not get better by retrying.
                if e.downcast_ref::<ServerError>()
                    .is_some_and(|se| (400..500).contains(&se.status))
                {
                    return Err(e);
                }
                eprintln!("eventum tail: {e:#}; reconnecting");
            }
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

async fn head_position(
    client: &reqwest::Client,
    server: &ServerOpt,
) -> anyhow::Result<Option<u64>> {
    let res = crate::client::send(client.get(server.url(&["health"])?), server).await?;
    Ok(res.json::<Health>().await?.head_position)
}

/// Prints events until the connection ends; updates `last` after each one printed.
async fn follow(req: reqwest::RequestBuilder, last: &mut Option<u64>) -> anyhow::Result<()> {
    let res = check(req.send().await.context("cannot reach the server")?).await?;
    let mut body = res.bytes_stream();
    let mut parser = SseParser::default();
    while let Some(chunk) = body.next().await {
        for event in parser.push(&chunk.context("connection lost")?) {
            if event.event.as_deref() == Some("error") {
                anyhow::bail!("subscription failed: {}", event.data);
            }
            print_line(&compact_json(&event.data))?;
            if let Some(id) = event.id.and_then(|id| id.parse().ok()) {
                *last = Some(id);
            }
        }
    }
    Ok(())
}
