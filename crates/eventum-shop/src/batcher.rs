//! Group commit for hot products: stock commands to one product queue up, and one worker
//! per product decides a whole queue against the product's state and appends the result
//! with a single write (`Repository::execute_batch`). A flash sale on one product then
//! costs one sync per batch instead of one per order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eventum_core::{CommandAccepted, StorageError, StorageErrorKind};
use eventum_runtime::{Aggregate, CommandContext, DispatchError, Repository};
use tokio::sync::{mpsc, oneshot};

use crate::products::{Product, ProductCommand};

type Reply = oneshot::Sender<Result<CommandAccepted, DispatchError>>;

struct Request {
    command: ProductCommand,
    ctx: CommandContext,
    reply: Reply,
}

/// Bounds of the per-product queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Most commands decided and appended together. Default 256.
    pub batch_commands_max: usize,
    /// Commands waiting for one product; senders wait beyond this. Default 4,096.
    pub queue_commands_max: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self {
            batch_commands_max: 256,
            queue_commands_max: 4_096,
        }
    }
}

/// Runs product commands through per-product batching workers.
pub struct ProductBatcher {
    repo: Arc<Repository<Product>>,
    config: BatcherConfig,
    queues: Mutex<HashMap<String, mpsc::Sender<Request>>>,
}

fn closed() -> DispatchError {
    DispatchError::Storage(StorageError::new(
        StorageErrorKind::Unavailable,
        "the product's batching worker stopped",
    ))
}

impl ProductBatcher {
    pub fn new(repo: Arc<Repository<Product>>, config: BatcherConfig) -> Self {
        Self {
            repo,
            config,
            queues: Mutex::new(HashMap::new()),
        }
    }

    pub fn repository(&self) -> &Arc<Repository<Product>> {
        &self.repo
    }

    /// Carries out `command` in the next batch of its product.
    pub async fn execute(
        &self,
        command: ProductCommand,
        ctx: CommandContext,
    ) -> Result<CommandAccepted, DispatchError> {
        let queue = self.queue(Product::aggregate_id(&command));
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request {
                command,
                ctx,
                reply,
            })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    fn queue(&self, product: String) -> mpsc::Sender<Request> {
        let mut queues = self.queues.lock().expect("queues lock");
        queues
            .entry(product)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(self.config.queue_commands_max.max(1));
                tokio::spawn(work(
                    self.repo.clone(),
                    rx,
                    self.config.batch_commands_max.max(1),
                ));
                tx
            })
            .clone()
    }
}

async fn work(repo: Arc<Repository<Product>>, mut rx: mpsc::Receiver<Request>, batch_max: usize) {
    let mut batch = Vec::with_capacity(batch_max);
    while rx.recv_many(&mut batch, batch_max).await > 0 {
        let commands: Vec<(ProductCommand, CommandContext)> = batch
            .iter()
            .map(|r| (r.command.clone(), r.ctx.clone()))
            .collect();
        match repo.execute_batch(&commands).await {
            Ok(outcomes) => {
                for (request, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(e) => {
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
