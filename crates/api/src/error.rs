//! The one error type of the API: every failure becomes Cloudflare's envelope
//! `{success: false, errors: [{code, message, source: {pointer}}], messages: [], result: null}`
//! and nothing internal leaks into it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The error codes edgetrace answers with. Cloudflare's where Cloudflare has one; ours are
/// documented in `openapi.json` and in `docs/api.md`.
pub mod codes {
    /// Internal error (details only in the server log).
    pub const INTERNAL: u32 = 1000;
    /// The body is not valid JSON, or not the JSON object the route expects.
    pub const MALFORMED_BODY: u32 = 1001;
    /// A field has a wrong type or value; `source.pointer` names it.
    pub const INVALID_FIELD: u32 = 1002;
    /// The body is not `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 1003;
    /// The body is larger than 1 MiB.
    pub const BODY_TOO_LARGE: u32 = 1004;
    /// A name in `colos` designates no colo; the message lists the known ones.
    pub const UNKNOWN_COLO: u32 = 1005;
    /// The object clashes with an existing one (a zone name, an entry point, a stale version).
    pub const CONFLICT: u32 = 1006;
    /// The colos cannot be reached now (no connection to NATS); retry shortly (503).
    pub const COLOS_UNREACHABLE: u32 = 1007;
    /// Too many requests with this token (Cloudflare's 1015).
    pub const RATE_LIMITED: u32 = 1015;
    /// No route for that URI.
    pub const NO_ROUTE: u32 = 7000;
    /// Method not allowed on this route.
    pub const METHOD_NOT_ALLOWED: u32 = 7001;
    /// Could not route: an identifier in the path is invalid.
    pub const INVALID_IDENTIFIER: u32 = 7003;
    /// Missing X-Auth-Key, X-Auth-Email or Authorization headers.
    pub const MISSING_AUTH: u32 = 9106;
    /// Not authorized for this account, or the token lacks the permission.
    pub const UNAUTHORIZED: u32 = 9109;
    /// Authentication error: unknown or revoked token, wrong key.
    pub const AUTHENTICATION: u32 = 10000;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorSource {
    /// JSON pointer of the offending field of the request body, e.g. `/options/max_ttl`.
    pub pointer: String,
}

/// One error or message of the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorItem {
    #[schema(minimum = 1000)]
    pub code: u32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
}

impl ErrorItem {
    pub fn new(code: u32, message: impl Into<String>) -> ErrorItem {
        ErrorItem {
            code,
            message: message.into(),
            source: None,
        }
    }

    pub fn at(code: u32, pointer: impl Into<String>, message: impl Into<String>) -> ErrorItem {
        ErrorItem {
            code,
            message: message.into(),
            source: Some(ErrorSource {
                pointer: pointer.into(),
            }),
        }
    }
}

/// A failed request: an HTTP status and one error per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<ErrorItem>,
    /// Seconds until a rate-limited client may retry.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            errors: vec![ErrorItem::new(code, message)],
            retry_after: None,
        }
    }

    pub fn invalid(errors: Vec<ErrorItem>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            errors,
            retry_after: None,
        }
    }

    /// An internal failure: logged with a reference, answered without details.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> ApiError {
        let reference = uuid::Uuid::new_v4().simple().to_string();
        eprintln!("edgetrace: internal error {reference}: {context}: {error}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            format!("internal error; the server log has the details under reference {reference}"),
        )
    }

    /// 404 for an identifier in the path that names nothing (or is not an identifier).
    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::INVALID_IDENTIFIER,
            format!("Could not route to {path}, perhaps your object identifier is invalid?"),
        )
    }

    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NO_ROUTE,
            format!("No route for that URI: {path}"),
        )
    }
}

impl From<edgetrace_store::StoreError> for ApiError {
    fn from(e: edgetrace_store::StoreError) -> ApiError {
        use edgetrace_store::StoreError;
        match e {
            StoreError::Invalid { field, message } => ApiError::invalid(vec![ErrorItem::at(
                codes::INVALID_FIELD,
                format!("/{field}"),
                format!("{field}: {message}"),
            )]),
            StoreError::Conflict { field, message } => ApiError {
                status: StatusCode::CONFLICT,
                errors: vec![ErrorItem::at(
                    codes::CONFLICT,
                    format!("/{field}"),
                    format!("{field}: {message}"),
                )],
                retry_after: None,
            },
            StoreError::NotFound { what, id } => ApiError::new(
                StatusCode::NOT_FOUND,
                codes::INVALID_IDENTIFIER,
                format!("no {what} with id {id}"),
            ),
            e => ApiError::internal("database", &e),
        }
    }
}

impl From<Vec<edgetrace_edge::FieldError>> for ApiError {
    /// Validation problems of a body: 400, one error per problem, each with its pointer; a
    /// body that is not even an object (pointer `""`) is malformed (1001), a bad field 1002.
    fn from(errors: Vec<edgetrace_edge::FieldError>) -> ApiError {
        ApiError::invalid(
            errors
                .into_iter()
                .map(|e| {
                    let code = if e.pointer.is_empty() {
                        codes::MALFORMED_BODY
                    } else {
                        codes::INVALID_FIELD
                    };
                    ErrorItem::at(code, e.pointer, e.message)
                })
                .collect(),
        )
    }
}

/// The body of every failed response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always false.
    pub success: bool,
    pub errors: Vec<ErrorItem>,
    pub messages: Vec<ErrorItem>,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    pub result: Option<()>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            success: false,
            errors: self.errors,
            messages: Vec::new(),
            result: None,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(v) = self
            .retry_after
            .and_then(|secs| HeaderValue::from_str(&secs.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
