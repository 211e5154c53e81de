//! `eventum serve`: opens the data directory, serves the HTTP API, and shuts the store
//! down cleanly on SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use eventum_groups::{GroupService, GroupsConfig};
use eventum_log::LogConfig;
use eventum_server::{DEFAULT_LISTEN_ADDR, ServerConfig};

#[path = "serve_store.rs"]
pub(crate) mod serve_store;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "./eventum-data")]
    pub data: PathBuf,
    /// Address to listen on; port 0 picks a free port (the listening line tells which).
    #[arg(long, default_value = DEFAULT_LISTEN_ADDR)]
    pub listen: String,
    /// Largest event (type + data + metadata) in bytes.
    #[arg(long)]
    pub event_bytes_max: Option<usize>,
    /// Most events in one append.
    #[arg(long)]
    pub batch_events_max: Option<usize>,
    /// Size of each segment file in bytes.
    #[arg(long)]
    pub segment_bytes: Option<u64>,
    /// Bytes of the active segment behind the write offset left in the page cache (older
    /// pages are dropped as the writer passes them); 0 keeps everything.
    #[arg(long)]
    pub cache_behind_bytes: Option<u64>,
    /// Event store: omit for the embedded log in --data, or a `postgres://user@host/db`
    /// URL for PostgreSQL (the shop's and groups' local files stay in --data).
    #[arg(long)]
    pub store: Option<String>,
    /// PostgreSQL schema holding the store's tables (with --store postgres://…).
    #[arg(long, default_value = "eventum")]
    pub store_schema: String,
    /// Config file (TOML) whose `[[bridge]]` sections start relays and inbound bridges
    /// inside the server (see README).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub shop: crate::shop::ShopServeArgs,
}

impl ServeArgs {
    fn log_config(&self) -> LogConfig {
        let mut config = LogConfig::default();
        if let Some(n) = self.event_bytes_max {
            config.limits.event_bytes_max = n;
        }
        if let Some(n) = self.batch_events_max {
            config.limits.batch_events_max = n;
        }
        if let Some(n) = self.segment_bytes {
            config.segment_bytes = n;
        }
        if let Some(n) = self.cache_behind_bytes {
            config.cache_behind_bytes = n;
        }
        config
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // First: a signal during start-up must still shut down cleanly.
    let shutdown =
        eventum_server::Shutdown::install().context("cannot catch SIGINT and SIGTERM")?;
    let file = crate::serve_config::ConfigFile::load(args.config.as_deref())?;
    let config = args.log_config();
    let store = serve_store::OpenedStore::open(
        args.store.as_deref(),
        &args.store_schema,
        &args.data,
        config,
    )
    .await?;
    // Consumer groups resume from their stored checkpoints and dead letters.
    let groups = match GroupService::open(store.as_dyn(), GroupsConfig::default()).await {
        Ok(g) => g,
        Err(e) => {
            store.shutdown();
            return Err(anyhow::Error::new(e).context("cannot open consumer groups"));
        }
    };
    // The shop of seed 004 (under /api and /ws), unless --no-shop.
    let shop = match args.shop.start(&args.data, store.as_dyn()).await {
        Ok(s) => s,
        Err(e) => {
            groups.shutdown().await;
            store.shutdown();
            return Err(e);
        }
    };
    let bridges = match file
        .start_bridges(
            store.as_dyn(),
            shop.as_ref().map(|s| &s.running),
            &args.data,
        )
        .await
    {
        Ok(b) => b,
        Err(e) => {
            if let Some(shop) = shop {
                shop.shutdown().await;
            }
            groups.shutdown().await;
            store.shutdown();
            return Err(e);
        }
    };
    let shop_routes = shop
        .as_ref()
        .map(|s| eventum_shop::http::router(s.running.shop.clone()));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Tests and scripts wait for this line; println! flushes at the newline.
    println!(
        "eventum listening on http://{addr} ({})",
        store.describe(&args.data)
    );
    if shop.is_some() {
        let admin = match args.shop.shop_admin_password {
            Some(_) => "from --shop-admin-password".to_owned(),
            None => format!(
                "in {}",
                args.data.join("shop").join("admin-password").display()
            ),
        };
        println!("shop: http://{addr}/api/products (admin password {admin})");
    }
    let served = eventum_server::serve_with_routes(
        store.as_dyn(),
        Some(groups.clone()),
        shop_routes,
        ServerConfig::default(),
        listener,
        shutdown.received(),
    )
    .await;
    // Final checkpoints first (they are appends), then flush the index and stop the
    // writer, even if serving failed.
    if let Some(bridges) = bridges {
        bridges.stop().await;
    }
    if let Some(shop) = shop {
        shop.shutdown().await;
    }
    groups.shutdown().await;
    store.shutdown();
    tracing::info!("stopped");
    served.context("server failed")
}
