//! axum adapter for jwt2fa: the routes of the account flow, an [`AuthUser`]
//! extractor for the application's own routes, and JSON errors.
//!
//! Every request under the prefix goes to [`Auth::handle`], which implements every
//! rule of the HTTP contract, so this crate only translates between axum
//! and the core.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use jwt2fa_axum::AuthUser;
//! use jwt2fa_core::{Auth, AuthConfig, MemoryStore};
//!
//! async fn hello(user: AuthUser) -> String {
//!     format!("hello, user {}", user.user_id)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = AuthConfig::builder("an example secret of at least 32 bytes").build()?;
//! let auth = Auth::builder(config, Arc::new(MemoryStore::new())).build()?;
//!
//! let app = Router::new()
//!     .route("/hello", get(hello))
//!     .with_state(auth.clone())
//!     .merge(jwt2fa_axum::router(auth));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! Serve with `into_make_service_with_connect_info::<SocketAddr>()` so the
//! per-client rate limits see the peer address; without it they are off.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::ops::Deref;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, RawPathParams, Request, State};
use axum::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures_util::StreamExt;
use jwt2fa_core::{
    ApiRequest, ApiResponse, Auth, AuthError, AuthenticatedUser, MAX_BODY_BYTES,
    MAX_DRAINED_BODY_BYTES,
};

pub use jwt2fa_core::DEFAULT_PREFIX;

/// Returns a router with every route of the contract under `/api/users`.
pub fn router(auth: Auth) -> Router {
    router_with_prefix(auth, DEFAULT_PREFIX)
}

/// Returns a router with every route of the contract under `prefix`, such
/// as `/auth` (no trailing slash; `""` mounts them at the root).
///
/// Each path responds with and without its trailing slash, and every
/// response, errors included, is JSON.
pub fn router_with_prefix(auth: Auth, prefix: &str) -> Router {
    let prefix = prefix.trim_end_matches('/');
    // The wildcard does not match an empty rest, so the prefix itself gets
    // routes of its own, which the core rejects with its JSON 404.
    let mut router = Router::new().route(&format!("{prefix}/{{*path}}"), any(handle));
    router = router.route(&format!("{prefix}/"), any(handle));
    if !prefix.is_empty() {
        router = router.route(prefix, any(handle));
    }
    router.with_state(auth)
}

/// Converts a core response into an axum response.
pub fn into_response(response: ApiResponse) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(CONTENT_TYPE, ApiResponse::CONTENT_TYPE);
    // `from_bytes` lowercases the core's names (`Retry-After`, ...), so any
    // header the core adds passes through unchanged.
    for (name, value) in response.headers {
        let name = HeaderName::from_bytes(name.as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(&value)) {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(Body::from(response.body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn header(parts: &Parts, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
    parts
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

async fn handle(State(auth): State<Auth>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();

    let body = match read_body(&parts, body).await {
        Ok(bytes) => bytes,
        Err(response) => return into_response(response),
    };

    let relative = wildcard_path(&mut parts).await;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());

    let response = auth
        .handle(ApiRequest {
            method: parts.method.as_str(),
            path: &relative,
            content_type: header(&parts, CONTENT_TYPE),
            authorization: header(&parts, AUTHORIZATION),
            forwarded_for: header(&parts, "x-forwarded-for"),
            peer,
            body: &body,
        })
        .await;
    into_response(response)
}

/// Reads the body up to [`MAX_BODY_BYTES`]. A longer body is drained up to
/// [`MAX_DRAINED_BODY_BYTES`] so the client reliably sees the 413.
async fn read_body(parts: &Parts, body: Body) -> Result<Bytes, ApiResponse> {
    let too_large = || AuthError::PayloadTooLarge.to_response();
    let declared_length =
        header(parts, CONTENT_LENGTH).and_then(|value| value.parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > MAX_DRAINED_BODY_BYTES) {
        return Err(too_large());
    }

    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            AuthError::MalformedJson("the request body could not be read".to_owned()).to_response()
        })?;
        total += chunk.len();
        if total > MAX_DRAINED_BODY_BYTES {
            return Err(too_large());
        }
        if total <= MAX_BODY_BYTES {
            bytes.extend_from_slice(&chunk);
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(Bytes::from(bytes))
}

/// Returns the part of the path matched by the router's wildcard, such as
/// `register/`.
async fn wildcard_path(parts: &mut Parts) -> String {
    let params = RawPathParams::from_request_parts(parts, &()).await;
    params
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(name, _)| *name == "path")
                .map(|(_, value)| value.to_owned())
        })
        .unwrap_or_default()
}

/// The user behind a valid `Authorization: Bearer` access token.
///
/// The token is checked without the database (signature, expiry, type), so
/// a deactivated user's token works until it expires. A missing or invalid
/// token rejects the request with the contract's 401 JSON body and
/// `WWW-Authenticate: Bearer`.
///
/// The router's state must give an [`Auth`] through [`FromRef`].
#[derive(Debug, Clone)]
pub struct AuthUser(pub AuthenticatedUser);

impl Deref for AuthUser {
    type Target = AuthenticatedUser;

    fn deref(&self) -> &AuthenticatedUser {
        &self.0
    }
}

/// Rejection of [`AuthUser`]: the core's error, rendered as JSON.
#[derive(Debug)]
pub struct AuthRejection(pub AuthError);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        into_response(self.0.to_response())
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    Auth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_ref(state);
        auth.authenticate_header(header(parts, AUTHORIZATION))
            .map(AuthUser)
            .map_err(AuthRejection)
    }
}
