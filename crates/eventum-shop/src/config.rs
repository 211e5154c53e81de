//! The shop's configuration, with documented defaults: JWT secret and lifetime, the admin
//! account, password hashing cost, the simulated payment provider, the flow style and its
//! partitions, and the bounds of queries.

use std::path::PathBuf;

use crate::batcher::BatcherConfig;
use crate::payments::ProviderConfig;

/// How the order flow is coordinated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowStyle {
    /// One saga instance per order drives the steps and the compensations.
    #[default]
    Orchestrated,
    /// Each service reacts to the others' events.
    Choreography,
}

impl std::str::FromStr for FlowStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "orchestrated" | "saga" => Ok(FlowStyle::Orchestrated),
            "choreography" => Ok(FlowStyle::Choreography),
            other => Err(format!(
                "flow style must be orchestrated or choreography, not {other:?}"
            )),
        }
    }
}

/// Argon2id cost. The defaults follow OWASP's minimum (19 MiB, 2 passes); load tests that
/// register thousands of users lower them so that hashing does not dominate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashingConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once (each holds `memory_kib`); more requests wait.
    /// Default 4.
    pub concurrent_max: usize,
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            concurrent_max: 4,
        }
    }
}

impl HashingConfig {
    /// The cheapest parameters argon2 accepts: for tests and load generation only.
    pub fn fast_insecure() -> Self {
        Self {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
            concurrent_max: 16,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ShopConfig {
    /// Where the shop's read models live (a redb file is created inside).
    pub read_model_dir: PathBuf,
    /// HS256 secret of the JWTs; at least 32 bytes.
    pub jwt_secret: Vec<u8>,
    /// Lifetime of a token, in seconds. Default 3600.
    pub token_ttl_s: u64,
    /// The admin account, registered at start if missing. Default `admin`.
    pub admin_username: String,
    pub admin_password: String,
    pub hashing: HashingConfig,
    pub provider: ProviderConfig,
    pub flow: FlowStyle,
    /// Runners per flow service (saga partitions or reactor partitions). Each runner
    /// already works on many orders at once (`eventum_sagas::SagaConfig::
    /// instances_in_flight_max`), so more partitions only add subscriptions; they exist
    /// to spread the flow over several processes. Default 1.
    pub flow_partitions: u32,
    /// Events a flow runner handles between two checkpoint writes (also written every
    /// second). Every runner follows `$all`, so a small value multiplies writes; a crash
    /// redelivers at most this many events, which the flow handles idempotently.
    /// Default 10,000.
    pub flow_checkpoint_every_events: u64,
    /// Orders a flow runner works on at once (saga instances, or source streams of a
    /// reactor); one order's steps stay in order. Default 256.
    pub flow_orders_in_flight_max: usize,
    /// Saga instances a flow runner keeps decoded between their steps (least recently
    /// used out first). An order waits for each reply behind every order created
    /// meanwhile, so at N orders/s with replies t seconds late, about N × t instances are
    /// between steps: fewer cached ones means reloading and decoding an instance's
    /// records for most steps. Each is a few KiB. Default 16,384.
    pub flow_instances_cached_max: usize,
    /// Group commit of stock commands per product.
    pub stock_batching: BatcherConfig,
    /// Seed a demo catalog when the store has no product. Default true.
    pub demo_catalog: bool,
    /// Most orders `GET /api/orders` returns, and most notifications per listing.
    /// Default 100.
    pub list_limit_max: usize,
    /// Open WebSocket connections at once; more are refused with 503. Default 1024.
    pub websockets_max: usize,
    /// Notifications queued for one slow WebSocket client before it is disconnected.
    /// Default 256.
    pub websocket_queue_max: usize,
}

impl ShopConfig {
    /// Defaults for a data directory, with the given secret and admin password.
    pub fn new(
        read_model_dir: impl Into<PathBuf>,
        jwt_secret: impl Into<Vec<u8>>,
        admin_password: impl Into<String>,
    ) -> Self {
        Self {
            read_model_dir: read_model_dir.into(),
            jwt_secret: jwt_secret.into(),
            token_ttl_s: 3600,
            admin_username: "admin".into(),
            admin_password: admin_password.into(),
            hashing: HashingConfig::default(),
            provider: ProviderConfig::default(),
            flow: FlowStyle::default(),
            flow_partitions: 1,
            flow_checkpoint_every_events: 10_000,
            flow_orders_in_flight_max: 256,
            flow_instances_cached_max: 16_384,
            stock_batching: BatcherConfig::default(),
            demo_catalog: true,
            list_limit_max: 100,
            websockets_max: 1024,
            websocket_queue_max: 256,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if self.jwt_secret.len() < 32 {
            return Err("the JWT secret must be at least 32 bytes".into());
        }
        crate::users::check_username(&self.admin_username).map_err(|e| format!("admin: {e}"))?;
        crate::users::check_password(&self.admin_password).map_err(|e| format!("admin: {e}"))?;
        if self.flow_partitions == 0 || self.flow_partitions > 64 {
            return Err("flow_partitions must be 1 to 64".into());
        }
        if self.token_ttl_s == 0
            || self.list_limit_max == 0
            || self.hashing.concurrent_max == 0
            || self.flow_checkpoint_every_events == 0
            || self.flow_orders_in_flight_max == 0
            || self.flow_instances_cached_max == 0
        {
            return Err("token_ttl_s, list_limit_max, hashing.concurrent_max, \
                 flow_checkpoint_every_events, flow_orders_in_flight_max and \
                 flow_instances_cached_max must be positive"
                .into());
        }
        Ok(())
    }
}
