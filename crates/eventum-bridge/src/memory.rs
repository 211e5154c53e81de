//! An in-memory sink that fails on demand: the model broker of the relay's tests, and a
//! helper for users who test their own relays.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::SinkError;
use crate::message::Message;
use crate::sink::Sink;

#[derive(Default)]
struct State {
    received: Vec<Message>,
    down: bool,
    fail_next: u32,
    lose_next_acks: u32,
    publish_calls: u64,
}

/// Records every message it accepts. Can be taken down (every publish fails, nothing is
/// stored), fail a number of publishes, or lose acknowledgements (store the batch, then
/// report a failure: the case that makes an at-least-once relay re-send).
#[derive(Default)]
pub struct MemorySink {
    state: Mutex<State>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// While down, every publish fails with [`SinkError::Unavailable`].
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// The next `n` publishes fail without storing anything.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// The next `n` publishes store their batch but report a failure.
    pub fn lose_next_acks(&self, n: u32) {
        self.state.lock().unwrap().lose_next_acks = n;
    }

    /// Everything accepted so far, duplicates included, in arrival order.
    pub fn received(&self) -> Vec<Message> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn received_count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    /// Publish calls made, failed ones included.
    pub fn publish_calls(&self) -> u64 {
        self.state.lock().unwrap().publish_calls
    }
}

#[async_trait]
impl Sink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }

    async fn publish(&self, batch: &[Message]) -> Result<(), SinkError> {
        let mut s = self.state.lock().unwrap();
        s.publish_calls += 1;
        if s.down {
            return Err(SinkError::Unavailable("memory sink is down".into()));
        }
        if s.fail_next > 0 {
            s.fail_next -= 1;
            return Err(SinkError::Unavailable(
                "memory sink: injected failure".into(),
            ));
        }
        s.received.extend_from_slice(batch);
        if s.lose_next_acks > 0 {
            s.lose_next_acks -= 1;
            return Err(SinkError::Unavailable(
                "memory sink: acknowledgement lost".into(),
            ));
        }
        Ok(())
    }
}
