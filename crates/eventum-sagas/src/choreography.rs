//! Choreography: reactors turn events into commands with no instance state. The runner
//! follows the reactor's source from a durable checkpoint, reacting to the events of
//! different streams concurrently and to one stream's events in order; each command's id
//! is derived from the reactor's name, the event id and the command's index, so an event
//! delivered again (after a crash, before the checkpoint moved) sends the same ids and
//! the bus runs them once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventum_core::{
    Causation, CommandEnvelope, CommandSender, EventStore, RecordedEvent, SubscriptionFrom,
    SubscriptionTarget,
};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::checkpoint::Checkpoint;
use crate::config::ReactorConfig;
use crate::dispatch::{RetryPolicy, send_with_retries};
use crate::error::{RunError, StartError};
use crate::pipeline::{Finished, Pipeline};
use crate::records::{self, derived_id};
use crate::saga::CommandSpec;

/// Pure event → commands logic.
pub trait Reactor: Send + Sync + 'static {
    /// Names the checkpoint stream and seeds command ids: keep it stable.
    fn name(&self) -> &str;
    fn source(&self) -> SubscriptionTarget;
    /// The commands `event` calls for. Called on the runner's own task for every event
    /// of the source, before any reaction starts: an event that calls for none costs
    /// only this call, so keep the refusal of an uninteresting event cheap.
    fn react(&self, event: &RecordedEvent) -> Vec<CommandSpec>;
}

type Handler = Box<dyn Fn(&RecordedEvent) -> Vec<CommandSpec> + Send + Sync>;

/// A reactor built from one closure per event type.
pub struct Choreography {
    name: String,
    source: SubscriptionTarget,
    handlers: HashMap<String, Handler>,
}

impl Choreography {
    pub fn new(name: impl Into<String>, source: SubscriptionTarget) -> Self {
        Self {
            name: name.into(),
            source,
            handlers: HashMap::new(),
        }
    }

    /// Reacts to `event_type` with the commands `handler` returns.
    pub fn on(
        mut self,
        event_type: impl Into<String>,
        handler: impl Fn(&RecordedEvent) -> Vec<CommandSpec> + Send + Sync + 'static,
    ) -> Self {
        self.handlers.insert(event_type.into(), Box::new(handler));
        self
    }
}

impl Reactor for Choreography {
    fn name(&self) -> &str {
        &self.name
    }
    fn source(&self) -> SubscriptionTarget {
        self.source.clone()
    }
    fn react(&self, event: &RecordedEvent) -> Vec<CommandSpec> {
        self.handlers
            .get(&event.event_type)
            .map_or_else(Vec::new, |h| h(event))
    }
}

/// The command a reactor sends for the `index`th spec produced by `event`.
pub fn reaction_command(
    reactor: &str,
    event: &RecordedEvent,
    index: usize,
    spec: CommandSpec,
) -> CommandEnvelope {
    let causation = Causation::caused_by_event(event);
    CommandEnvelope {
        command_id: derived_id(&[
            "reactor",
            reactor,
            &event.id.to_string(),
            &index.to_string(),
        ]),
        command_type: spec.command_type,
        payload: spec.payload,
        correlation_id: causation.correlation_id,
        causation_id: causation.causation_id,
    }
}

/// Counters of a running reactor.
#[derive(Debug, Default)]
pub struct ReactorStats {
    pub events_handled: AtomicU64,
    pub commands_sent: AtomicU64,
    /// Commands the domain refused (logged; the reactor moves on).
    pub commands_rejected: AtomicU64,
}

/// Starts reactor runners.
pub struct ReactorRunner;

impl ReactorRunner {
    pub async fn start<R: Reactor>(
        store: Arc<dyn EventStore>,
        sender: Arc<dyn CommandSender>,
        reactor: R,
        config: ReactorConfig,
    ) -> Result<ReactorHandle, StartError> {
        config.check()?;
        let (checkpoint, from) = Checkpoint::open(
            store.clone(),
            records::checkpoint_stream("reactor", reactor.name())?,
        )
        .await?;
        let stats = Arc::new(ReactorStats::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let span = tracing::info_span!("reactor", reactor = %reactor.name());
        let task = tokio::spawn(
            run(
                store,
                sender,
                reactor,
                config,
                checkpoint,
                from,
                stats.clone(),
                stop_rx,
            )
            .instrument(span),
        );
        Ok(ReactorHandle {
            stop: stop_tx,
            task,
            stats,
        })
    }
}

/// A running reactor.
pub struct ReactorHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), RunError>>,
    stats: Arc<ReactorStats>,
}

impl ReactorHandle {
    pub fn stats(&self) -> &ReactorStats {
        &self.stats
    }

    /// Stops after the event in hand, saving the checkpoint.
    pub async fn stop(self) -> Result<(), RunError> {
        let _ = self.stop.send(true);
        self.join().await
    }

    /// Waits for the runner to end by itself (only on an error).
    pub async fn join(self) -> Result<(), RunError> {
        self.task
            .await
            .map_err(|e| RunError::Aborted(e.to_string()))?
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Ends the runner at whatever await it is at, without saving the checkpoint: what a
    /// crash does. For tests of redelivery; use [`Self::stop`] otherwise.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn run<R: Reactor>(
    store: Arc<dyn EventStore>,
    sender: Arc<dyn CommandSender>,
    reactor: R,
    config: ReactorConfig,
    checkpoint: Checkpoint,
    from: u64,
    stats: Arc<ReactorStats>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let mut subscription = store.subscribe(reactor.source(), SubscriptionFrom::Position(from));
    let period = Duration::from_millis(config.checkpoint_interval_ms.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cx = Arc::new(ReactionContext {
        sender,
        reactor,
        stats,
        commands_per_event_max: config.commands_per_event_max,
        policy: RetryPolicy {
            retries_max: config.send_retries_max,
            delay_ms: config.send_retry_delay_ms,
            delay_ms_max: config.send_retry_delay_ms_max,
        },
    });
    // Events of one source stream react in order; different streams concurrently.
    let mut pipeline: Pipeline<Reaction, Result<(), RunError>> = Pipeline::new(
        from,
        config.streams_in_flight_max,
        config.events_in_flight_max,
    );
    let mut saved = from;
    let mut unsaved = 0u64;
    let result = loop {
        let room = pipeline.has_room();
        tokio::select! {
            biased;
            _ = stop.changed() => break Ok(()),
            finished = pipeline.next_finished() => {
                let Finished { key, position, output } = match finished {
                    Ok(f) => f,
                    Err(e) => break Err(RunError::Aborted(e.to_string())),
                };
                if let Err(e) = output {
                    break Err(e);
                }
                if let Some((position, reaction)) = pipeline.finish(&key, position) {
                    pipeline.start(key, position, react(cx.clone(), reaction));
                }
                unsaved += 1;
            }
            item = subscription.next(), if room => {
                let event = match item {
                    Some(Ok(event)) => event,
                    Some(Err(e)) => break Err(RunError::Subscription(e)),
                    None => break Err(RunError::SubscriptionEnded),
                };
                // The reactor is pure, so it is asked here: an event that calls for no
                // command (most of them, for a reactor on `$all`) is done at once, with no
                // task and no place in its stream's queue, since it has no effect to order.
                let specs = if event.stream.starts_with('$') {
                    Vec::new()
                } else {
                    cx.reactor.react(&event)
                };
                if specs.is_empty() {
                    cx.stats.events_handled.fetch_add(1, Ordering::Relaxed);
                    pipeline.skip(event.position);
                    unsaved += 1;
                } else {
                    let key = event.stream.clone();
                    let position = event.position;
                    let reaction = Reaction { event, specs };
                    if let Some(reaction) = pipeline.submit(&key, Some(position), reaction) {
                        pipeline.start(key, Some(position), react(cx.clone(), reaction));
                    }
                }
            }
            _ = tick.tick() => {
                let position = pipeline.checkpoint_position();
                if position != saved {
                    checkpoint.save(position).await?;
                    saved = position;
                    unsaved = 0;
                }
                continue;
            }
        };
        if unsaved >= config.checkpoint_every_events {
            let position = pipeline.checkpoint_position();
            checkpoint.save(position).await?;
            saved = position;
            unsaved = 0;
        }
    };
    // Let the reactions in hand end; a failed one stays behind the checkpoint, so a
    // restart retries it with the same command ids.
    let mut result = result;
    for finished in pipeline.drain().await {
        match finished {
            Ok(Finished {
                position,
                output: Ok(()),
                ..
            }) => pipeline.mark_finished(position),
            Ok(Finished { output: Err(e), .. }) if result.is_ok() => result = Err(e),
            Err(e) if result.is_ok() => result = Err(RunError::Aborted(e.to_string())),
            _ => {}
        }
    }
    checkpoint.save(pipeline.checkpoint_position()).await?;
    result
}

/// What every reaction task of one runner shares.
struct ReactionContext<R> {
    sender: Arc<dyn CommandSender>,
    reactor: R,
    stats: Arc<ReactorStats>,
    commands_per_event_max: usize,
    policy: RetryPolicy,
}

/// An event and the commands its reactor asked for.
struct Reaction {
    event: RecordedEvent,
    specs: Vec<CommandSpec>,
}

/// Sends the commands `event` calls for, in order. A command that keeps failing
/// technically fails the reaction (and the runner); a refused one is counted and logged.
async fn react<R: Reactor>(
    cx: Arc<ReactionContext<R>>,
    Reaction { event, specs }: Reaction,
) -> Result<(), RunError> {
    if specs.len() > cx.commands_per_event_max {
        tracing::error!(event_id = %event.id, commands = specs.len(), "reaction exceeds commands_per_event_max; event skipped");
    } else {
        for (i, spec) in specs.into_iter().enumerate() {
            let command = reaction_command(cx.reactor.name(), &event, i, spec);
            match send_with_retries(cx.sender.as_ref(), &command, cx.policy).await {
                None => {
                    cx.stats.commands_sent.fetch_add(1, Ordering::Relaxed);
                }
                Some(r) if r.code == "failed" => {
                    return Err(RunError::SendFailed {
                        command_id: r.command_id,
                        command_type: r.command_type,
                        message: r.message,
                    });
                }
                Some(r) => {
                    cx.stats.commands_rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(command_id = %r.command_id, code = %r.code, message = %r.message, "reaction refused");
                }
            }
        }
    }
    cx.stats.events_handled.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
