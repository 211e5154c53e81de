//! The HTTP client side shared by the commands that talk to a server: URLs, the server's
//! JSON errors, and compact JSON-line output.

use std::io::Write;

use anyhow::{Context, anyhow};
use clap::Args;
use eventum_core::ExpectedVersion;
use reqwest::{Response, Url};
use serde::Deserialize;

/// `--server`, shared by every client command.
#[derive(Args, Clone, Debug)]
pub struct ServerOpt {
    /// Base URL of the eventum server.
    #[arg(long, env = "EVENTUM_SERVER", default_value = "http://127.0.0.1:2113")]
    pub server: String,
}

impl ServerOpt {
    /// The URL of `segments` under the server, each one percent-encoded as needed (a
    /// stream name may hold `/`, `?` or spaces).
    pub fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        let mut url = Url::parse(&self.server)
            .with_context(|| format!("--server {:?} is not a URL", self.server))?;
        url.path_segments_mut()
            .map_err(|()| anyhow!("--server {:?} cannot be a base URL", self.server))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }
}

/// An error answered by the server: its code and message.
#[derive(Debug)]
pub struct ServerError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (HTTP {})", self.code, self.message, self.status)
    }
}

impl std::error::Error for ServerError {}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

/// The response if it is a success; otherwise the server's error.
pub async fn check(res: Response) -> anyhow::Result<Response> {
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let text = res.text().await.unwrap_or_default();
    let err = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(b) => ServerError {
            status: status.as_u16(),
            code: b.error,
            message: b.message,
        },
        Err(_) => ServerError {
            status: status.as_u16(),
            code: "http_error".into(),
            message: text,
        },
    };
    Err(err.into())
}

/// Sends a request, naming the server when it cannot be reached.
pub async fn send(req: reqwest::RequestBuilder, server: &ServerOpt) -> anyhow::Result<Response> {
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach the eventum server at {}", server.server))?;
    check(res).await
}

/// Parses `any`, `no_stream`, `exists` or a version, for clap.
pub fn parse_expected(text: &str) -> Result<ExpectedVersion, String> {
    ExpectedVersion::parse(text)
        .ok_or_else(|| "expected any, no_stream, exists or a non-negative integer".to_owned())
}

/// JSON text without insignificant whitespace, so that each value fits on one line;
/// numbers and key order stay exactly as the server sent them.
pub fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Writes one line to stdout and flushes it, so that followers see it at once.
pub fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_strings_and_numbers() {
        assert_eq!(
            compact_json("{ \"a b\" : [1.50, \"x \\\" y\"],\n \"c\":null }"),
            "{\"a b\":[1.50,\"x \\\" y\"],\"c\":null}"
        );
    }

    #[test]
    fn urls_encode_stream_names() {
        let s = ServerOpt {
            server: "http://127.0.0.1:2113/".into(),
        };
        let url = s.url(&["streams", "a/b c?"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:2113/streams/a%2Fb%20c%3F");
    }
}
