//! The shop of seed 004 inside `eventum serve` (its flags and start-up), and
//! `eventum shop load`, a load generator against a running server.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use eventum_core::EventStore;
use eventum_shop::{FlowStyle, HashingConfig, RunningShop, ShopConfig};

/// The shop's flags of `eventum serve`.
#[derive(Args, Debug, Clone)]
pub struct ShopServeArgs {
    /// Do not start the shop (serve only the store's API).
    #[arg(long)]
    pub no_shop: bool,
    /// How the order flow is coordinated: orchestrated (a saga) or choreography.
    #[arg(long, env = "EVENTUM_SHOP_FLOW", default_value = "orchestrated")]
    pub shop_flow: FlowStyle,
    /// Runners per flow service (each works on many orders at once); keep it fixed for a
    /// data directory.
    #[arg(long, default_value_t = 1)]
    pub shop_partitions: u32,
    /// HS256 secret of the shop's JWTs (≥ 32 bytes). Default: a random secret kept in
    /// `<data>/shop/jwt-secret`.
    #[arg(long, env = "EVENTUM_SHOP_JWT_SECRET", hide_env_values = true)]
    pub shop_jwt_secret: Option<String>,
    /// Password of the `admin` account, set when the account is first created. Default:
    /// a random one kept in `<data>/shop/admin-password`.
    #[arg(long, env = "EVENTUM_SHOP_ADMIN_PASSWORD", hide_env_values = true)]
    pub shop_admin_password: Option<String>,
    /// Lifetime of a token in seconds.
    #[arg(long, default_value_t = 3600)]
    pub shop_token_ttl_s: u64,
    /// Simulated payment latency in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub shop_payment_latency_ms: u64,
    /// Payments above this amount (KRW) are declined.
    #[arg(long, default_value_t = 10_000_000)]
    pub shop_payment_amount_max: i64,
    /// Argon2 memory per password hash, KiB (lower it for load tests only).
    #[arg(long, default_value_t = 19 * 1024)]
    pub shop_hash_memory_kib: u32,
    /// Argon2 passes per password hash.
    #[arg(long, default_value_t = 2)]
    pub shop_hash_iterations: u32,
    /// Do not seed the demo catalog into an empty store.
    #[arg(long)]
    pub shop_no_demo: bool,
    /// Worker threads of a runtime of its own for the shop's flow and read models, apart
    /// from the one serving requests: a burst of flow work then no longer queues in front
    /// of requests (accept p50 at 2,000 orders/s 1.1-2.2 ms on the shared runtime,
    /// 0.97-1.4 ms apart). 0 runs them on the server's runtime.
    #[arg(long, default_value_t = 2)]
    pub shop_flow_threads: usize,
}

/// The shop inside `eventum serve`, with the runtime its flow runs on.
pub struct ServedShop {
    pub running: RunningShop,
    _flow_runtime: FlowRuntime,
}

impl ServedShop {
    /// Stops the flow and the read models, then their runtime.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// The shop's own runtime, if any; shut down without waiting when dropped, because a
/// runtime cannot be dropped (which blocks) inside another one.
struct FlowRuntime(Option<tokio::runtime::Runtime>);

impl Drop for FlowRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A secret kept in `path`, created with `make` (mode 0600) if missing.
fn kept_secret(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        return Ok(s.trim().to_owned());
    }
    let value = make();
    std::fs::create_dir_all(path.parent().expect("a file in a directory"))?;
    std::fs::write(path, &value).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(value)
}

fn random_hex(bytes: usize) -> String {
    (0..bytes.div_ceil(16))
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect::<String>()[..bytes * 2]
        .to_owned()
}

impl ShopServeArgs {
    pub fn config(&self, data: &Path) -> anyhow::Result<ShopConfig> {
        let dir = data.join("shop");
        let secret = match &self.shop_jwt_secret {
            Some(s) => s.clone(),
            None => kept_secret(&dir.join("jwt-secret"), || random_hex(32))?,
        };
        let admin_password = match &self.shop_admin_password {
            Some(p) => p.clone(),
            None => kept_secret(&dir.join("admin-password"), || random_hex(12))?,
        };
        let mut c = ShopConfig::new(dir.join("read-models"), secret.into_bytes(), admin_password);
        c.flow = self.shop_flow;
        c.flow_partitions = self.shop_partitions;
        c.token_ttl_s = self.shop_token_ttl_s;
        c.provider.latency_ms = self.shop_payment_latency_ms;
        c.provider.amount_max = self.shop_payment_amount_max;
        c.hashing = HashingConfig {
            memory_kib: self.shop_hash_memory_kib,
            iterations: self.shop_hash_iterations,
            ..HashingConfig::default()
        };
        c.demo_catalog = !self.shop_no_demo;
        c.check().map_err(anyhow::Error::msg)?;
        Ok(c)
    }

    /// Starts the shop on `store` unless `--no-shop`: on a runtime of its own with
    /// `--shop-flow-threads`, so that every task it spawns (flow runners, read models)
    /// runs there, while requests stay on the caller's runtime.
    pub async fn start(
        &self,
        data: &Path,
        store: Arc<dyn EventStore>,
    ) -> anyhow::Result<Option<ServedShop>> {
        if self.no_shop {
            return Ok(None);
        }
        let config = self.config(data)?;
        if self.shop_flow_threads == 0 {
            let running = RunningShop::start(store, config)
                .await
                .context("cannot start the shop")?;
            return Ok(Some(ServedShop {
                running,
                _flow_runtime: FlowRuntime(None),
            }));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.shop_flow_threads)
            .thread_name("eventum-shop-flow")
            .enable_all()
            .build()
            .context("cannot start the shop's runtime")?;
        let started = runtime
            .spawn(RunningShop::start(store, config))
            .await
            .context("the shop's start-up task failed");
        let running = match started {
            Ok(Ok(running)) => running,
            Ok(Err(e)) | Err(e) => {
                runtime.shutdown_background();
                return Err(e.context("cannot start the shop"));
            }
        };
        Ok(Some(ServedShop {
            running,
            _flow_runtime: FlowRuntime(Some(runtime)),
        }))
    }
}
