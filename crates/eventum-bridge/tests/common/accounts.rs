//! A tiny aggregate for the inbound-to-command-bus tests: `Deposit` into an account,
//! refused above 1,000, and a sender that fails its first sends like an overloaded bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use eventum_core::{CommandAccepted, CommandEnvelope, CommandSender, EventStore, SendError};
use eventum_runtime::{
    Aggregate, BusConfig, Command, CommandBus, DomainError, Repository, RepositoryConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AccountCommand {
    Deposit { account: String, amount: i64 },
}

impl Command for AccountCommand {
    const TYPES: &'static [&'static str] = &["Deposit"];
    fn command_type(&self) -> &'static str {
        "Deposit"
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    Deposited { amount: i64 },
}

#[derive(Debug, thiserror::Error)]
#[error("deposit of {0} is above 1000")]
pub struct TooLarge(i64);

impl DomainError for TooLarge {
    fn code(&self) -> &str {
        "too_large"
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Account {
    pub balance: i64,
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = TooLarge;

    fn aggregate_id(command: &AccountCommand) -> String {
        let AccountCommand::Deposit { account, .. } = command;
        account.clone()
    }

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, TooLarge> {
        let AccountCommand::Deposit { amount, .. } = command;
        if *amount > 1000 {
            return Err(TooLarge(*amount));
        }
        Ok(vec![AccountEvent::Deposited { amount: *amount }])
    }

    fn evolve(self, event: &AccountEvent) -> Self {
        let AccountEvent::Deposited { amount } = event;
        Account {
            balance: self.balance + amount,
        }
    }
}

/// A fresh command bus (empty outcome cache) over `store`.
pub fn bus(store: &Arc<dyn EventStore>) -> Arc<CommandBus> {
    let repository = Repository::<Account>::new(store.clone(), RepositoryConfig::default());
    Arc::new(
        CommandBus::builder(BusConfig::default())
            .aggregate(repository)
            .unwrap()
            .build(),
    )
}

/// Fails its first `failures` sends with a transient error, then forwards.
pub struct Flaky {
    pub inner: Arc<dyn CommandSender>,
    pub failures: AtomicU32,
}

#[async_trait]
impl CommandSender for Flaky {
    async fn send(&self, command: CommandEnvelope) -> Result<CommandAccepted, SendError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(SendError::Failed("injected: bus overloaded".into()));
        }
        self.inner.send(command).await
    }
}
