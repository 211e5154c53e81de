//! Registration, login and the admin account over a `User` repository and a command bus:
//! the rules both front doors share — the in-process shop and the gateway process.
//! Validation happens before anything is written; a taken name is refused before a hash
//! is paid for (the aggregate still decides).

use eventum_runtime::{CommandBus, CommandMeta, DispatchError, Repository};

use crate::auth::{Passwords, Tokens, now_s};
use crate::error::{LoginError, RegisterError};
use crate::users::{self, ROLE_ADMIN, ROLE_USER, User, UserCommand};

/// Registers `username` as a `USER`.
pub async fn register(
    users: &Repository<User>,
    passwords: &Passwords,
    bus: &CommandBus,
    username: String,
    password: String,
) -> Result<(), RegisterError> {
    users::check_username(&username).map_err(RegisterError::Invalid)?;
    users::check_password(&password).map_err(RegisterError::Invalid)?;
    let existing = users
        .load(&username)
        .await
        .map_err(RegisterError::Dispatch)?;
    if existing.state.is_registered() {
        return Err(RegisterError::UsernameTaken(username));
    }
    let password_hash = passwords.hash(password).await?;
    let command = UserCommand::RegisterUser {
        username: username.clone(),
        password_hash,
        role: ROLE_USER.into(),
    };
    match bus.dispatch(command, CommandMeta::new()).await {
        Ok(_) => Ok(()),
        Err(DispatchError::Rejected { code, .. }) if code == "username_taken" => {
            Err(RegisterError::UsernameTaken(username))
        }
        Err(e) => Err(RegisterError::Dispatch(e)),
    }
}

/// A token for valid credentials.
pub async fn login(
    users: &Repository<User>,
    passwords: &Passwords,
    tokens: &Tokens,
    username: &str,
    password: String,
) -> Result<String, LoginError> {
    if users::check_username(username).is_err() {
        return Err(LoginError::BadCredentials);
    }
    let user = users.load(username).await?;
    if !user.state.is_registered() {
        return Err(LoginError::BadCredentials);
    }
    let ok = passwords
        .verify(password, user.state.password_hash.clone())
        .await?;
    if !ok {
        return Err(LoginError::BadCredentials);
    }
    Ok(tokens.issue(username, &user.state.role, now_s())?)
}

/// Registers the admin account if it does not exist yet.
pub async fn ensure_admin(
    users: &Repository<User>,
    passwords: &Passwords,
    bus: &CommandBus,
    username: &str,
    password: &str,
) -> anyhow::Result<()> {
    if users.load(username).await?.state.is_registered() {
        return Ok(());
    }
    let hash = passwords.hash(password.to_owned()).await?;
    let command = UserCommand::RegisterUser {
        username: username.to_owned(),
        password_hash: hash,
        role: ROLE_ADMIN.into(),
    };
    bus.dispatch(command, CommandMeta::new()).await?;
    Ok(())
}
