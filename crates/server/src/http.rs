//! What every service's HTTP side shares: the error answer, a JSON body extractor that reports bad
//! input in that same shape, and `/health`.

use std::collections::BTreeMap;

use auction_proto::rest::{ErrorBody, ErrorCode, ErrorDetail, Health};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::store::StoreError;

/// Every failure a handler can answer with. Internal details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { field: Option<String>, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("a backing store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn field(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest { field: Some(field.to_owned()), message: format!("{field}: {message}") }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(_) => ApiError::Internal(e.into()),
            StoreError::Redis(_)
            | StoreError::Timeout(_)
            | StoreError::NotSubscribed(_)
            | StoreError::NotReplicated(_) => ApiError::Unavailable(e.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = match &self {
            ApiError::BadRequest { field, .. } => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, field.clone()),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, None),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, None),
            ApiError::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyConnections, None),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NodeFull, None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict, None),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::BodyTooLarge, None),
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %format!("{e:#}"), "request failed: store unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, None)
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, None)
            }
        };
        let body = ErrorBody { error: ErrorDetail { code, message: self.to_string(), field } };
        (status, Json(body)).into_response()
    }
}

/// A JSON body whose problems come back as `400 {"error":{...}}` naming the field, or 413.
pub struct ApiJson<T>(pub T);

/// The largest request body any endpoint takes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::BadRequest { field: None, message: rejection.body_text() }
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserializes `bytes`, naming the offending field (by its path) in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest { field: None, message: format!("body is not valid JSON: {inner}") };
        }
        let message = inner.to_string();
        let field = if path != "." {
            Some(path)
        } else {
            // An unknown or missing field is reported at the parent's path; its name is in the text.
            message.split('`').nth(1).map(str::to_owned)
        };
        match field {
            Some(field) => ApiError::field(&field, strip_position(&message)),
            None => ApiError::BadRequest { field: None, message: strip_position(&message) },
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest { field: None, message: format!("body is not valid JSON: {e}") })?;
    Ok(value)
}

/// serde_json appends " at line 1 column 20"; the field name says more than the position.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Builds the `/health` answer from named checks; 503 unless every check passed.
pub fn health_response(service: &str, instance_id: &str, checks: BTreeMap<String, String>) -> Response {
    let ok = checks.values().all(|v| v == "ok");
    let body = Health {
        status: if ok { "ok" } else { "degraded" }.to_owned(),
        service: service.to_owned(),
        instance_id: instance_id.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        checks,
    };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// The answer for any path no route matches.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".to_owned())
}

/// The one-word result of a health check.
pub fn check<E: std::fmt::Display>(result: Result<(), E>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
