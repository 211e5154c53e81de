//! Users bounded context: the `User` aggregate (registration with a password hash and a
//! role). Hashing happens before the command (it is slow and random); `decide` stays pure.

use eventum_runtime::{Aggregate, Command, DomainError};
use serde::{Deserialize, Serialize};

/// Shortest and longest accepted username, in characters.
pub const USERNAME_CHARS_MIN: usize = 3;
pub const USERNAME_CHARS_MAX: usize = 32;
/// Shortest and longest accepted password, in characters.
pub const PASSWORD_CHARS_MIN: usize = 8;
pub const PASSWORD_CHARS_MAX: usize = 128;

pub const ROLE_USER: &str = "USER";
pub const ROLE_ADMIN: &str = "ADMIN";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum UserCommand {
    RegisterUser {
        username: String,
        /// A PHC string (argon2id), never the password.
        password_hash: String,
        role: String,
    },
}

impl Command for UserCommand {
    const TYPES: &'static [&'static str] = &["RegisterUser"];
    fn command_type(&self) -> &'static str {
        "RegisterUser"
    }
    fn validate(&self) -> Result<(), String> {
        let UserCommand::RegisterUser {
            username,
            password_hash,
            role,
        } = self;
        check_username(username)?;
        if !password_hash.starts_with("$argon2") {
            return Err("password_hash must be an argon2 PHC string".into());
        }
        if role != ROLE_USER && role != ROLE_ADMIN {
            return Err(format!("role must be {ROLE_USER} or {ROLE_ADMIN}"));
        }
        Ok(())
    }
}

/// Usernames are stream ids: lowercase ASCII letters, digits, `_`, `.`, `-`.
pub fn check_username(username: &str) -> Result<(), String> {
    let n = username.chars().count();
    if !(USERNAME_CHARS_MIN..=USERNAME_CHARS_MAX).contains(&n) {
        return Err(format!(
            "username must be {USERNAME_CHARS_MIN} to {USERNAME_CHARS_MAX} characters"
        ));
    }
    if !username
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
    {
        return Err("username may contain only a-z, 0-9, '_', '.', '-'".into());
    }
    Ok(())
}

pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&n) {
        return Err(format!(
            "password must be {PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters"
        ));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum UserEvent {
    UserRegistered {
        user_id: String,
        username: String,
        password_hash: String,
        role: String,
    },
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UserError {
    #[error("username {0} is taken")]
    UsernameTaken(String),
}

impl DomainError for UserError {
    fn code(&self) -> &str {
        match self {
            UserError::UsernameTaken(_) => "username_taken",
        }
    }
}

/// A registered user; the default state is "not registered".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub username: Option<String>,
    pub password_hash: String,
    pub role: String,
}

impl User {
    pub fn is_registered(&self) -> bool {
        self.username.is_some()
    }
}

impl Aggregate for User {
    const CATEGORY: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn aggregate_id(command: &UserCommand) -> String {
        let UserCommand::RegisterUser { username, .. } = command;
        username.clone()
    }

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        let UserCommand::RegisterUser {
            username,
            password_hash,
            role,
        } = command;
        if self.is_registered() {
            return Err(UserError::UsernameTaken(username.clone()));
        }
        Ok(vec![UserEvent::UserRegistered {
            user_id: username.clone(),
            username: username.clone(),
            password_hash: password_hash.clone(),
            role: role.clone(),
        }])
    }

    fn evolve(mut self, event: &UserEvent) -> Self {
        match event {
            UserEvent::UserRegistered {
                username,
                password_hash,
                role,
                ..
            } => {
                self.username = Some(username.clone());
                self.password_hash = password_hash.clone();
                self.role = role.clone();
            }
        }
        self
    }
}
