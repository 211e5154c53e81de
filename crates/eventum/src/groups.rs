//! `eventum groups create|list|info|delete` and `eventum dlq list|replay`: manage the
//! consumer groups of a running server and their dead letters, printing JSON lines.

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::client::{ServerOpt, compact_json, print_line, send};

#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// Create a group on a stream, a category or $all.
    Create(CreateArgs),
    /// List every group with its lag, one JSON line each.
    List(ServerOnly),
    /// Show one group's settings and lag.
    Info(NameArgs),
    /// Delete a group.
    Delete(NameArgs),
}

#[derive(Args, Debug)]
pub struct ServerOnly {
    #[command(flatten)]
    pub server: ServerOpt,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// Group name.
    pub name: String,
    #[command(flatten)]
    pub server: ServerOpt,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["stream", "category", "all"])))]
pub struct CreateArgs {
    /// Group name: ASCII letters, digits, '_', '.', '-'.
    pub name: String,
    /// Follow one stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Follow a category (streams named CATEGORY-…).
    #[arg(long)]
    pub category: Option<String>,
    /// Follow $all (system streams skipped).
    #[arg(long)]
    pub all: bool,
    /// Where to start: start (default), end, or a global position.
    #[arg(long)]
    pub from: Option<String>,
    /// Hand out a stream's events without waiting for earlier ones.
    #[arg(long)]
    pub unordered: bool,
    /// Deliveries before an event is parked.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// First retry delay in ms; doubles per retry.
    #[arg(long)]
    pub retry_delay_ms_base: Option<u64>,
    /// Longest retry delay in ms.
    #[arg(long)]
    pub retry_delay_ms_max: Option<u64>,
    /// Redeliver when not acked within this many ms.
    #[arg(long)]
    pub ack_timeout_ms: Option<u64>,
    /// Most deliveries in flight.
    #[arg(long)]
    pub in_flight_max: Option<usize>,
    /// Most events read ahead.
    #[arg(long)]
    pub buffer_events_max: Option<usize>,
    #[command(flatten)]
    pub server: ServerOpt,
}

impl CreateArgs {
    /// The settings body; only the options given are sent, so the server's defaults apply.
    fn body(&self) -> Value {
        let mut body = Map::new();
        let target = match (&self.stream, &self.category) {
            (Some(s), _) => json!({"stream": s}),
            (None, Some(c)) => json!({"category": c}),
            (None, None) => json!("all"),
        };
        body.insert("target".into(), target);
        if let Some(from) = &self.from {
            let v = from
                .parse::<u64>()
                .map_or_else(|_| json!(from), |p| json!(p));
            body.insert("from".into(), v);
        }
        if self.unordered {
            body.insert("ordered".into(), json!(false));
        }
        let mut opt = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body.insert(k.into(), v);
            }
        };
        opt("max_attempts", self.max_attempts.map(|v| json!(v)));
        opt(
            "retry_delay_ms_base",
            self.retry_delay_ms_base.map(|v| json!(v)),
        );
        opt(
            "retry_delay_ms_max",
            self.retry_delay_ms_max.map(|v| json!(v)),
        );
        opt("ack_timeout_ms", self.ack_timeout_ms.map(|v| json!(v)));
        opt("in_flight_max", self.in_flight_max.map(|v| json!(v)));
        opt(
            "buffer_events_max",
            self.buffer_events_max.map(|v| json!(v)),
        );
        Value::Object(body)
    }
}

#[derive(Args, Debug)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List a group's unresolved dead letters, one JSON line each.
    List(DlqListArgs),
    /// Re-deliver a group's dead letters through the group: one (--id) or all.
    Replay(DlqReplayArgs),
}

#[derive(Args, Debug)]
pub struct DlqListArgs {
    /// Group name.
    pub group: String,
    /// First dead-letter id.
    #[arg(long)]
    pub from: Option<u64>,
    /// Most to print (the server's default when absent).
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub server: ServerOpt,
}

#[derive(Args, Debug)]
pub struct DlqReplayArgs {
    /// Group name.
    pub group: String,
    /// Replay only this dead letter.
    #[arg(long)]
    pub id: Option<u64>,
    #[command(flatten)]
    pub server: ServerOpt,
}

pub async fn run_groups(args: GroupsArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    match args.command {
        GroupsCommand::Create(a) => {
            let url = a.server.url(&["groups", &a.name])?;
            let res = send(client.put(url).json(&a.body()), &a.server).await?;
            print_line(&compact_json(&res.text().await?))
        }
        GroupsCommand::List(a) => {
            let res = send(client.get(a.server.url(&["groups"])?), &a.server).await?;
            let body: Value = serde_json::from_str(&res.text().await?)?;
            for g in body["groups"].as_array().into_iter().flatten() {
                print_line(&g.to_string())?;
            }
            Ok(())
        }
        GroupsCommand::Info(a) => {
            let url = a.server.url(&["groups", &a.name])?;
            let res = send(client.get(url), &a.server).await?;
            print_line(&compact_json(&res.text().await?))
        }
        GroupsCommand::Delete(a) => {
            let url = a.server.url(&["groups", &a.name])?;
            send(client.delete(url), &a.server).await?;
            print_line(&json!({"deleted": a.name}).to_string())
        }
    }
}

pub async fn run_dlq(args: DlqArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    match args.command {
        DlqCommand::List(a) => {
            let url = a.server.url(&["groups", &a.group, "parked"])?;
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(from) = a.from {
                query.push(("from", from.to_string()));
            }
            if let Some(limit) = a.limit {
                query.push(("limit", limit.to_string()));
            }
            let res = send(client.get(url).query(&query), &a.server).await?;
            let body: Value = serde_json::from_str(&res.text().await?)?;
            for p in body["parked"].as_array().into_iter().flatten() {
                print_line(&p.to_string())?;
            }
            Ok(())
        }
        DlqCommand::Replay(a) => {
            let url = a.server.url(&["groups", &a.group, "parked", "replay"])?;
            let body = match a.id {
                Some(id) => json!({"id": id}),
                None => json!({}),
            };
            let res = send(client.post(url).json(&body), &a.server).await?;
            print_line(&compact_json(&res.text().await?))
        }
    }
}
