//! A small bank-account aggregate used by the runtime's tests, and store helpers.

#![allow(dead_code)]

use std::sync::Arc;

use eventum_core::EventStore;
use eventum_log::{LogConfig, LogStore};
use eventum_runtime::{Aggregate, Command, DomainError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AccountCommand {
    Open { id: String, owner: String },
    Deposit { id: String, amount: u64 },
    Withdraw { id: String, amount: u64 },
}

impl Command for AccountCommand {
    const TYPES: &'static [&'static str] = &["Open", "Deposit", "Withdraw"];
    fn command_type(&self) -> &'static str {
        match self {
            AccountCommand::Open { .. } => "Open",
            AccountCommand::Deposit { .. } => "Deposit",
            AccountCommand::Withdraw { .. } => "Withdraw",
        }
    }
    fn validate(&self) -> Result<(), String> {
        match self {
            AccountCommand::Deposit { amount: 0, .. }
            | AccountCommand::Withdraw { amount: 0, .. } => Err("amount must be positive".into()),
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("account is not open")]
    NotOpen,
    #[error("account is already open")]
    AlreadyOpen,
    #[error("balance {balance} is less than {amount}")]
    InsufficientFunds { balance: u64, amount: u64 },
}

impl DomainError for AccountError {
    fn code(&self) -> &str {
        match self {
            AccountError::NotOpen => "not_open",
            AccountError::AlreadyOpen => "already_open",
            AccountError::InsufficientFunds { .. } => "insufficient_funds",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub open: bool,
    pub balance: u64,
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn aggregate_id(command: &AccountCommand) -> String {
        match command {
            AccountCommand::Open { id, .. }
            | AccountCommand::Deposit { id, .. }
            | AccountCommand::Withdraw { id, .. } => id.clone(),
        }
    }

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { owner, .. } if !self.open => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            AccountCommand::Open { .. } => Err(AccountError::AlreadyOpen),
            _ if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { amount, .. } => {
                Ok(vec![AccountEvent::Deposited { amount: *amount }])
            }
            AccountCommand::Withdraw { amount, .. } if *amount > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    amount: *amount,
                })
            }
            AccountCommand::Withdraw { amount, .. } => {
                Ok(vec![AccountEvent::Withdrawn { amount: *amount }])
            }
        }
    }

    fn evolve(mut self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::Opened { .. } => self.open = true,
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
        self
    }
}

pub fn open_store(dir: &std::path::Path) -> Arc<dyn EventStore> {
    LogStore::open(dir, LogConfig::default()).expect("open store")
}

pub fn deposit(id: &str, amount: u64) -> AccountCommand {
    AccountCommand::Deposit {
        id: id.into(),
        amount,
    }
}

pub fn open(id: &str) -> AccountCommand {
    AccountCommand::Open {
        id: id.into(),
        owner: "ann".into(),
    }
}
