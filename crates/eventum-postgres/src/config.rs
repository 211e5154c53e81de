//! [`PgConfig`]: where the store lives and every bound it keeps (pool, batches, buffers,
//! polling), with documented defaults.

use eventum_core::Limits;

/// How to reach PostgreSQL and the bounds the store keeps.
#[derive(Clone, Debug)]
pub struct PgConfig {
    /// A libpq-style URL, e.g. `postgres://postgres@127.0.0.1:5432/eventum`.
    pub url: String,
    /// The schema holding the store's tables; created if missing. Lowercase letters,
    /// digits and `_`, starting with a letter or `_`, at most 48 bytes (so that the
    /// notification channel name `eventum_<schema>` fits PostgreSQL's 63-byte identifiers).
    /// Default `eventum`.
    pub schema: String,
    /// Most pooled connections for appends and reads. Default 16.
    pub pool_size_max: usize,
    /// Longest an operation waits for a pooled connection before failing with
    /// `Unavailable`. Default 5,000 ms.
    pub pool_wait_ms_max: u64,
    /// Longest a new connection may take. Default 5,000 ms.
    pub connect_timeout_ms: u64,
    /// Most appends one group-commit transaction carries. Default 256.
    pub group_appends_max: usize,
    /// Most events one group carries (a first append larger than this goes alone).
    /// Smaller groups let a second group insert while the first commits. Default 2,000.
    pub group_events_max: usize,
    /// Most groups in flight at once, each on its own connection: while one commits, the
    /// next locks, decides and inserts at the positions the first leaves free. 1 commits
    /// groups one after the other. Default 2.
    pub committers_max: usize,
    /// Longest a group waits for the appends the committer expects (those the last group
    /// answered, who usually append again at once, plus those that arrived meanwhile)
    /// before it commits with fewer; 0 commits whatever is queued. Default 1,000 µs.
    pub group_linger_us_max: u64,
    /// Most appends waiting for the committer; further callers wait for space.
    /// Default 4,096.
    pub append_queue_max: usize,
    /// Input limits (event and batch sizes, read counts). Default [`Limits::default`].
    pub limits: Limits,
    /// Committed batches the live broadcast holds for subscribers; a subscriber further
    /// behind reads the table instead, so a slow subscriber never blocks writers.
    /// Default 1,024.
    pub live_buffer_batches: usize,
    /// Most events one subscription catch-up read returns. Default 256.
    pub catch_up_batch_events: usize,
    /// Most events the follower reads per query when publishing new commits. Default 1,000.
    pub follow_batch_events: usize,
    /// Whether the follower listens for `NOTIFY` (commits of other processes); without it
    /// they are seen by polling only. Default true.
    pub listen: bool,
    /// How often the follower polls the head even without a notification, so a lost
    /// notification (a dropped listener connection) never stalls subscribers. Default 500 ms.
    pub poll_interval_ms: u64,
    /// Delay before the follower reconnects a lost listener connection. Default 1,000 ms.
    pub listen_reconnect_ms: u64,
}

impl PgConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "eventum".to_owned(),
            pool_size_max: 16,
            pool_wait_ms_max: 5_000,
            connect_timeout_ms: 5_000,
            group_appends_max: 256,
            group_events_max: 2_000,
            committers_max: 2,
            group_linger_us_max: 1_000,
            append_queue_max: 4_096,
            limits: Limits::default(),
            live_buffer_batches: 1_024,
            catch_up_batch_events: 256,
            follow_batch_events: 1_000,
            listen: true,
            poll_interval_ms: 500,
            listen_reconnect_ms: 1_000,
        }
    }

    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The `NOTIFY` channel appends signal on.
    pub(crate) fn channel(&self) -> String {
        format!("eventum_{}", self.schema)
    }
}

/// Whether `schema` is a safe unquoted identifier (it is spliced into SQL).
pub(crate) fn schema_is_valid(schema: &str) -> bool {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && schema.len() <= 48
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        assert!(schema_is_valid("eventum"));
        assert!(schema_is_valid("t_01abc"));
        assert!(!schema_is_valid(""));
        assert!(!schema_is_valid("1abc"));
        assert!(!schema_is_valid("Ev"));
        assert!(!schema_is_valid("a;drop"));
        assert!(!schema_is_valid(&"a".repeat(49)));
        assert_eq!(PgConfig::new("x").channel(), "eventum_eventum");
    }
}
