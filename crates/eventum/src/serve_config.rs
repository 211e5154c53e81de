//! `eventum serve --config <file.toml>`: the server's config file. Today it holds
//! `[[bridge]]` sections (see README): each starts a relay (`to = "<broker URL>"`) or an
//! inbound bridge (`from = "<broker URL>"`, `into = "shop"`) inside the server, stopped
//! with it. Unknown sections and fields are refused, so a typo is an error at start-up.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use eventum_bridge::{BridgeSpec, Bridges};
use eventum_core::{CommandSender, EventStore};
use serde::Deserialize;

/// The parsed config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[[bridge]]` sections, started in file order.
    #[serde(default)]
    pub bridge: Vec<BridgeSpec>,
}

impl ConfigFile {
    /// Reads and checks `path`; no file means an empty configuration.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: Self = toml::from_str(text)?;
        for spec in &file.bridge {
            spec.validate()?;
        }
        Ok(file)
    }

    /// Starts the file's bridges over `store`; inbound ones send commands to the shop's
    /// bus (`into = "shop"`), with their inbox in `<data>/bridge-inbox`.
    pub async fn start_bridges(
        &self,
        store: Arc<dyn EventStore>,
        shop: Option<&eventum_shop::RunningShop>,
        data: &Path,
    ) -> anyhow::Result<Option<Bridges>> {
        if self.bridge.is_empty() {
            return Ok(None);
        }
        let mut buses: HashMap<String, Arc<dyn CommandSender>> = HashMap::new();
        if let Some(shop) = shop {
            buses.insert("shop".into(), shop.shop.bus().clone());
        }
        let bridges = Bridges::start(&self.bridge, store, &buses, &data.join("bridge-inbox"))
            .await
            .context("cannot start the config file's bridges")?;
        let (relays, inbound) = bridges.names();
        println!("bridges: relays {relays:?}, inbound {inbound:?}");
        Ok(Some(bridges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bridges_and_refuses_typos() {
        let file = ConfigFile::parse(
            r#"
            [[bridge]]
            name = "orders-out"
            to = "kafka://127.0.0.1:9092"
            topics = "type"
            batches_in_flight_max = 8

            [[bridge]]
            name = "shop-in"
            from = "redis://127.0.0.1:6379"
            into = "shop"
            consume = ["shop:commands"]
            "#,
        )
        .unwrap();
        assert_eq!(file.bridge.len(), 2);
        assert_eq!(file.bridge[0].batches_in_flight_max, Some(8));
        assert_eq!(file.bridge[1].consume, vec!["shop:commands".to_owned()]);
        assert!(
            ConfigFile::parse("[[bridge]]\nname = \"x\"\nto = \"nats://h\"\ntopic = \"type\"")
                .is_err()
        );
        assert!(ConfigFile::parse("[server]\nport = 1").is_err());
        let missing_into = "[[bridge]]\nname = \"x\"\nfrom = \"kafka://h:9092\"\nconsume = [\"t\"]";
        let err = format!("{:#}", ConfigFile::parse(missing_into).unwrap_err());
        assert!(err.contains("into"), "{err}");
    }

    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../../../README.md");
        let example = readme
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("README has a toml example");
        let file = ConfigFile::parse(example).unwrap();
        assert_eq!(file.bridge.len(), 2);
    }
}
