//! Errors of the account flow and their one framework-neutral HTTP mapping.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value};

/// Validation errors keyed by field name, each with one or more messages.
///
/// Serialized as `{"field": ["message", ...]}`, the shape Django REST
/// Framework uses, so a client can show each message beside its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// Creates an empty set of errors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a set holding one message for one field.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// Adds a message for `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// Returns `true` when no field has an error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the messages for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.0.get(field).map(Vec::as_slice)
    }

    /// Returns `Err(AuthError::Validation)` when any field has an error.
    pub fn into_result(self) -> Result<(), AuthError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(AuthError::Validation(self))
        }
    }

    fn to_json(&self) -> Value {
        json!(self.0)
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<&str> = self.0.keys().map(String::as_str).collect();
        write!(f, "invalid fields: {}", fields.join(", "))
    }
}

/// An infrastructure failure of a store: the database is down, a query
/// failed, a pool timed out. Never used for "not found".
#[derive(Debug, thiserror::Error)]
#[error("store failed: {message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// Creates an error from a message.
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// Creates an error that wraps its cause.
    pub fn new(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Every way a step of the account flow can fail.
///
/// The enum has no HTTP types. [`AuthError::to_response`] is the one mapping
/// to status, headers and JSON body, shared by every adapter so that their
/// responses are identical.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// One or more fields are missing or invalid (400).
    #[error("{0}")]
    Validation(FieldErrors),
    /// The body is not valid JSON (400).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The verification code is wrong, expired, used or out of tries (400).
    #[error("invalid or expired code")]
    InvalidCode,
    /// Unknown user, wrong password or inactive account (401).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// No bearer token was sent where one is required (401).
    #[error("authentication credentials were not provided")]
    NotAuthenticated,
    /// A token failed any check: signature, expiry, type, revocation (401).
    #[error("token is invalid or expired")]
    InvalidToken,
    /// The right password for an account whose email is not verified (403).
    #[error("email address is not verified")]
    NotVerified,
    /// The caller may not act on this resource, such as another user's
    /// refresh token (403).
    #[error("permission denied")]
    PermissionDenied,
    /// No route at this path (404).
    #[error("not found")]
    NotFound,
    /// The path exists but does not serve this method (405).
    #[error("method {method} not allowed")]
    MethodNotAllowed {
        /// The method of the request.
        method: String,
        /// The methods the path serves, for the `Allow` header.
        allow: Vec<&'static str>,
    },
    /// The body is larger than the limit (413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// The `Content-Type` is not JSON (415).
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// A rate limit was reached (429).
    #[error("throttled for {retry_after} s")]
    Throttled {
        /// Seconds until the next request can succeed.
        retry_after: u64,
    },
    /// The hashing pool is saturated (503).
    #[error("service busy, retry after {retry_after} s")]
    Busy {
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an impossible state, such as a failed JWT encoding (500).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A framework-neutral HTTP response: status, extra headers and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers besides `Content-Type`, which is always `application/json`.
    pub headers: Vec<(&'static str, String)>,
    /// The serialized JSON body.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// Creates a response with a JSON body and no extra headers.
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of `Content-Type` for every response of the API.
    pub const CONTENT_TYPE: &'static str = "application/json";
}

/// Retry-After in seconds when the store is down.
const STORE_RETRY_AFTER: u64 = 5;

fn detail(text: &str, code: &str) -> Value {
    json!({ "detail": text, "code": code })
}

impl AuthError {
    /// Returns the HTTP status code of this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::Validation(_) | Self::MalformedJson(_) | Self::InvalidCode => 400,
            Self::InvalidCredentials | Self::NotAuthenticated | Self::InvalidToken => 401,
            Self::NotVerified | Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Throttled { .. } => 429,
            Self::Busy { .. } | Self::Store(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// Returns the stable machine-readable `code` of this error, or `None`
    /// for field errors, which carry their messages per field.
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            Self::Validation(_) => return None,
            Self::MalformedJson(_) => "parse_error",
            Self::InvalidCode => "invalid_code",
            Self::InvalidCredentials => "no_active_account",
            Self::NotAuthenticated => "not_authenticated",
            Self::InvalidToken => "token_not_valid",
            Self::NotVerified => "not_verified",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Throttled { .. } => "throttled",
            Self::Busy { .. } | Self::Store(_) => "service_unavailable",
            Self::Internal(_) => "error",
        })
    }

    /// Maps the error to its status, headers and JSON body.
    ///
    /// Bodies of 5xx errors never echo the cause: the caller logs it.
    pub fn to_response(&self) -> ApiResponse {
        let status = self.status();
        let code = self.code().unwrap_or("invalid");
        let body = match self {
            Self::Validation(errors) => errors.to_json(),
            Self::MalformedJson(reason) => detail(&format!("JSON parse error - {reason}"), code),
            Self::InvalidCode => detail("Invalid or expired code.", code),
            Self::InvalidCredentials => {
                detail("No active account found with the given credentials", code)
            }
            Self::NotAuthenticated => detail("Authentication credentials were not provided.", code),
            Self::InvalidToken => detail("Given token not valid for any token type", code),
            Self::NotVerified => detail(
                "Email address is not verified. Verify it with the code sent by email.",
                code,
            ),
            Self::PermissionDenied => {
                detail("You do not have permission to perform this action.", code)
            }
            Self::NotFound => detail("Not found.", code),
            Self::MethodNotAllowed { method, .. } => {
                detail(&format!("Method \"{method}\" not allowed."), code)
            }
            Self::PayloadTooLarge => detail("Request body is too large.", code),
            Self::UnsupportedMediaType(media_type) => detail(
                &format!("Unsupported media type \"{media_type}\" in request."),
                code,
            ),
            Self::Throttled { retry_after } => detail(
                &format!("Request was throttled. Expected available in {retry_after} seconds."),
                code,
            ),
            Self::Busy { .. } | Self::Store(_) => {
                detail("Service temporarily unavailable, try again later.", code)
            }
            Self::Internal(_) => detail("A server error occurred.", code),
        };

        let mut response = ApiResponse::json(status, &body);
        match self {
            Self::NotAuthenticated | Self::InvalidCredentials => {
                response = response.with_header("WWW-Authenticate", "Bearer realm=\"api\"");
            }
            Self::InvalidToken => {
                response = response.with_header(
                    "WWW-Authenticate",
                    "Bearer realm=\"api\", error=\"invalid_token\"",
                );
            }
            Self::MethodNotAllowed { allow, .. } => {
                response = response.with_header("Allow", allow.join(", "));
            }
            Self::Throttled { retry_after } | Self::Busy { retry_after } => {
                response = response.with_header("Retry-After", retry_after.to_string());
            }
            Self::Store(_) => {
                response = response.with_header("Retry-After", STORE_RETRY_AFTER.to_string());
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(error: &AuthError) -> Value {
        serde_json::from_slice(&error.to_response().body).unwrap()
    }

    #[test]
    fn field_errors_use_list_shape() {
        let mut errors = FieldErrors::new();
        errors.add("email", "Enter a valid email address.");
        errors.add("email", "Second.");
        let error = AuthError::Validation(errors);
        assert_eq!(error.status(), 400);
        assert_eq!(
            body(&error),
            json!({"email": ["Enter a valid email address.", "Second."]})
        );
    }

    #[test]
    fn every_401_has_www_authenticate() {
        for error in [
            AuthError::InvalidCredentials,
            AuthError::NotAuthenticated,
            AuthError::InvalidToken,
        ] {
            let response = error.to_response();
            assert_eq!(response.status, 401);
            let header = response
                .headers
                .iter()
                .find(|(name, _)| *name == "WWW-Authenticate");
            assert!(header.is_some_and(|(_, value)| value.starts_with("Bearer")));
        }
    }

    #[test]
    fn throttled_has_retry_after() {
        let response = AuthError::Throttled { retry_after: 7 }.to_response();
        assert_eq!(response.status, 429);
        assert!(response.headers.contains(&("Retry-After", "7".to_owned())));
    }

    #[test]
    fn store_error_body_hides_cause() {
        let error = AuthError::Store(StoreError::msg("password=abc in connection string"));
        let text = String::from_utf8(error.to_response().body).unwrap();
        assert!(!text.contains("password"));
        assert_eq!(error.status(), 503);
    }
}
