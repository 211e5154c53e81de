//! An in-memory sink that fails on demand: the model broker of the relay's tests, and a
//! helper for users who test their own relays.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::SinkError;
use crate::message::Message;
use crate::sink::{Acks, Sink};

#[derive(Default)]
struct State {
    received: Vec<Message>,
    down: bool,
    fail_next: u32,
    lose_next_acks: u32,
    acks_held: bool,
    publish_calls: u64,
}

/// Releases of held acknowledgements: (how many so far, whether the last one failed
/// them).
type Gate = (u64, bool);

/// Records every message it accepts. Can be taken down (every publish fails, nothing is
/// stored), fail a number of publishes, or lose acknowledgements (store the batch, then
/// report a failure: the case that makes an at-least-once relay re-send), or hold the
/// acknowledgements of pipelined batches until released.
pub struct MemorySink {
    state: Mutex<State>,
    gate: watch::Sender<Gate>,
}

impl Default for MemorySink {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            gate: watch::channel((0, false)).0,
        }
    }
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

    /// Batches sent from now on (through [`Sink::send`]) are stored, but their
    /// acknowledgements wait for [`MemorySink::release_acks`].
    pub fn hold_acks(&self) {
        self.state.lock().unwrap().acks_held = true;
    }

    /// Resolves every held acknowledgement, as failures when `fail`; later batches are
    /// acknowledged at once.
    pub fn release_acks(&self, fail: bool) {
        self.state.lock().unwrap().acks_held = false;
        self.gate.send_modify(|(releases, failed)| {
            *releases += 1;
            *failed = fail;
        });
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
        s.accept(batch)?;
        s.ack()
    }

    async fn send(&self, batch: &[Message]) -> Result<Acks, SinkError> {
        let mut s = self.state.lock().unwrap();
        s.accept(batch)?;
        if !s.acks_held {
            return Ok(Box::pin(std::future::ready(s.ack())));
        }
        let mut gate = self.gate.subscribe();
        let releases = gate.borrow().0;
        Ok(Box::pin(async move {
            let released = gate.wait_for(|(n, _)| *n > releases).await;
            match released.map(|g| g.1) {
                Ok(false) => Ok(()),
                _ => Err(SinkError::Unavailable(
                    "memory sink: held acknowledgement failed".into(),
                )),
            }
        }))
    }
}

impl State {
    /// Counts a call and stores `batch` unless the sink is down or told to fail.
    fn accept(&mut self, batch: &[Message]) -> Result<(), SinkError> {
        self.publish_calls += 1;
        if self.down {
            return Err(SinkError::Unavailable("memory sink is down".into()));
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(SinkError::Unavailable(
                "memory sink: injected failure".into(),
            ));
        }
        self.received.extend_from_slice(batch);
        Ok(())
    }

    /// The acknowledgement of a stored batch, lost when told to.
    fn ack(&mut self) -> Result<(), SinkError> {
        if self.lose_next_acks > 0 {
            self.lose_next_acks -= 1;
            return Err(SinkError::Unavailable(
                "memory sink: acknowledgement lost".into(),
            ));
        }
        Ok(())
    }
}
