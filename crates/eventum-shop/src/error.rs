//! The shop's errors, one enum per operation, each with its `ErrorCode` (which the HTTP
//! layer turns into a status through `eventum_server`'s one table). Domain refusals
//! (a taken username, an unknown product) are kept apart from technical failures
//! (`DispatchError` of the runtime, storage, the read models).

use eventum_core::ErrorCode;
use eventum_runtime::DispatchError;

/// Hashing and token failures.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("token could not be issued: {0}")]
    Token(String),
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("the shop is shutting down")]
    Closed,
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::InvalidToken(_) => ErrorCode::Unauthorized,
            AuthError::Closed => ErrorCode::Unavailable,
            AuthError::Hashing(_) | AuthError::Token(_) => ErrorCode::StorageFailed,
        }
    }
}

/// Why a registration failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    #[error("username {0} is taken")]
    UsernameTaken(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Dispatch(DispatchError),
}

impl RegisterError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RegisterError::Invalid(_) => ErrorCode::InvalidInput,
            RegisterError::UsernameTaken(_) => ErrorCode::AlreadyExists,
            RegisterError::Auth(e) => e.code(),
            RegisterError::Dispatch(e) => e.code(),
        }
    }
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password: the two are not told apart.
    #[error("invalid username or password")]
    BadCredentials,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

impl LoginError {
    pub fn code(&self) -> ErrorCode {
        match self {
            LoginError::BadCredentials => ErrorCode::Unauthorized,
            LoginError::Auth(e) => e.code(),
            LoginError::Dispatch(e) => e.code(),
        }
    }
}

/// Why an order was not placed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    #[error("{0}")]
    Invalid(String),
    #[error("orderItems[{line}]: product {product_id} does not exist")]
    UnknownProduct { line: usize, product_id: u64 },
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

impl PlaceOrderError {
    pub fn code(&self) -> ErrorCode {
        match self {
            PlaceOrderError::Invalid(_) | PlaceOrderError::UnknownProduct { .. } => {
                ErrorCode::InvalidInput
            }
            PlaceOrderError::Dispatch(e) => e.code(),
        }
    }
}

/// Why an admin's catalog change failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(String),
    #[error("product {0} does not exist")]
    NotFound(u64),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

impl CatalogError {
    pub fn code(&self) -> ErrorCode {
        match self {
            CatalogError::Invalid(_) => ErrorCode::InvalidInput,
            CatalogError::NotFound(_) => ErrorCode::NotFound,
            CatalogError::Dispatch(e) => e.code(),
        }
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} belongs to another user")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error("read model: {0}")]
    ReadModel(#[from] eventum_projections::QueryError),
}

impl ReadError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ReadError::NotFound(_) => ErrorCode::NotFound,
            ReadError::Forbidden(_) => ErrorCode::Forbidden,
            ReadError::Invalid(_) => ErrorCode::InvalidInput,
            ReadError::Dispatch(e) => e.code(),
            ReadError::ReadModel(e) => e.code(),
        }
    }
}
