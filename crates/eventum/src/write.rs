//! `eventum append` and `eventum delete`: the writing commands.

use anyhow::Context;
use clap::Args;
use eventum_core::ExpectedVersion;
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::client::{ServerOpt, compact_json, parse_expected, print_line, send};

#[derive(Args, Debug)]
pub struct AppendArgs {
    /// Stream to append to.
    pub stream: String,
    /// Event type.
    #[arg(long = "type")]
    pub event_type: String,
    /// Event data, as JSON.
    #[arg(long)]
    pub data: String,
    /// Event metadata, as a JSON object.
    #[arg(long)]
    pub metadata: Option<String>,
    /// Event id (UUID); the server assigns one when absent.
    #[arg(long)]
    pub id: Option<Uuid>,
    /// any, no_stream, exists or the version of the stream's last event.
    #[arg(long, value_parser = parse_expected)]
    pub expected_version: Option<ExpectedVersion>,
    #[command(flatten)]
    pub server: ServerOpt,
}

/// Serialized directly (not through `serde_json::Value`), which would re-format the data:
/// `1.50` must reach the server as `1.50`.
#[derive(Serialize)]
struct AppendBody<'a> {
    expected_version: ExpectedVersion,
    events: [EventBody<'a>; 1],
}

#[derive(Serialize)]
struct EventBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: &'a str,
    data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<serde_json::Value>,
}

pub async fn append(args: AppendArgs) -> anyhow::Result<()> {
    // Kept as raw text so the server stores exactly what was given.
    let data: Box<RawValue> =
        serde_json::from_str(&args.data).context("--data is not valid JSON")?;
    let metadata: Option<serde_json::Value> = match &args.metadata {
        Some(m) => Some(serde_json::from_str(m).context("--metadata is not valid JSON")?),
        None => None,
    };
    let body = AppendBody {
        expected_version: args.expected_version.unwrap_or(ExpectedVersion::Any),
        events: [EventBody {
            id: args.id.map(|id| id.to_string()),
            event_type: &args.event_type,
            data: &data,
            metadata,
        }],
    };
    let url = args.server.url(&["streams", &args.stream])?;
    let res = send(reqwest::Client::new().post(url).json(&body), &args.server).await?;
    print_line(&compact_json(&res.text().await?))
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Stream to delete.
    pub stream: String,
    /// any, no_stream, exists or the version of the stream's last event.
    #[arg(long, value_parser = parse_expected)]
    pub expected_version: Option<ExpectedVersion>,
    #[command(flatten)]
    pub server: ServerOpt,
}

pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let url = args.server.url(&["streams", &args.stream])?;
    let mut req = reqwest::Client::new().delete(url);
    if let Some(v) = args.expected_version {
        req = req.query(&[("expected_version", v.to_string())]);
    }
    let res = send(req, &args.server).await?;
    print_line(&compact_json(&res.text().await?))
}
