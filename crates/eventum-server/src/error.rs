//! The HTTP error model: the one table from [`ErrorCode`] to status, the JSON error body,
//! and conversions from the store's errors.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventum_core::{
    ActualVersion, AppendError, ErrorCode, ExpectedVersion, InvalidInput, ReadError, StorageError,
};
use serde_json::{Value, json};

/// The HTTP status of each error code. Exhaustive on purpose: a new code does not compile
/// until it has a status here.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::WrongExpectedVersion => StatusCode::CONFLICT,
        ErrorCode::StreamNotFound => StatusCode::NOT_FOUND,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::StreamDeleted => StatusCode::GONE,
        ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::MalformedRequest => StatusCode::BAD_REQUEST,
        ErrorCode::EventTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::StorageFailed => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Corrupt => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::DomainRejected => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::AlreadyExists => StatusCode::CONFLICT,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
    }
}

/// An error response: `{"error": code, "message": text}`, plus `expected`/`actual` for a
/// version conflict.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Set only for transport-level refusals whose status is not a domain outcome (415
    /// for a wrong content type, 405 for a wrong method); everything else uses the table.
    status_override: Option<StatusCode>,
    conflict: Option<(ExpectedVersion, ActualVersion)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status_override: None,
            conflict: None,
        }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedRequest, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status_override = Some(status);
        self
    }

    /// Prefixes the message, to say which part of a request was wrong (`events[2]: …`).
    pub fn context(mut self, prefix: impl std::fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status_override
            .unwrap_or_else(|| status_for(self.code))
    }
}

/// The wire form of an actual version: a number, or `"no_stream"`.
pub fn actual_version_json(actual: ActualVersion) -> Value {
    match actual {
        ActualVersion::NoStream => json!("no_stream"),
        ActualVersion::Version(v) => json!(v),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = %self.code, message = %self.message, "request failed");
        } else {
            tracing::debug!(code = %self.code, message = %self.message, "request refused");
        }
        let mut body = json!({"error": self.code.as_str(), "message": self.message});
        if let Some((expected, actual)) = self.conflict {
            body["expected"] = json!(expected);
            body["actual"] = actual_version_json(actual);
        }
        (status, Json(body)).into_response()
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        let mut err = Self::new(e.code(), e.to_string());
        if let AppendError::WrongExpectedVersion {
            expected, actual, ..
        } = e
        {
            err.conflict = Some((expected, actual));
        }
        err
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

/// Every group operation's error maps through its own code.
macro_rules! from_group_error {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                Self::new(e.code(), e.to_string())
            }
        }
    )*};
}

from_group_error!(
    eventum_groups::CreateError,
    eventum_groups::DeleteError,
    eventum_groups::InfoError,
    eventum_groups::ReceiveError,
    eventum_groups::AckError,
    eventum_groups::NackError,
    eventum_groups::ParkedError,
    eventum_groups::ReplayError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_client_or_server_error_status() {
        for code in ErrorCode::ALL {
            let s = status_for(code);
            assert!(s.is_client_error() || s.is_server_error(), "{code}: {s}");
        }
        assert_eq!(status_for(ErrorCode::DiskFull).as_u16(), 507);
        assert_eq!(status_for(ErrorCode::StreamDeleted).as_u16(), 410);
    }
}
