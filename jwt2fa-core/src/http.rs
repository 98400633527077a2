//! The HTTP contract, framework neutral: routing, content negotiation, body
//! parsing, per-client limits and the response of every endpoint.
//!
//! Adapters pass the method, path, a few headers, the peer address and the
//! body bytes to [`Auth::handle`] and write back the [`ApiResponse`]. Every
//! rule lives here, so the axum and rocket adapters respond to every request
//! byte for byte alike.

use std::net::IpAddr;

use serde_json::{json, Map, Value};
use tracing::error;

use crate::config::RateLimit;
use crate::error::{ApiResponse, AuthError, FieldErrors};
use crate::secret::Secret;
use crate::service::{Auth, Registration};
use crate::store::ProfileChanges;

/// Largest request body the API reads, in bytes. Adapters reject longer
/// bodies with [`AuthError::PayloadTooLarge`] before reading them whole.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Maximum body size an adapter reads and discards before responding with 413. Over
/// HTTP/1.1 a client that is still sending when the response arrives may
/// see a reset connection instead of the 413, so bodies up to this size are
/// drained first. Larger ones get the 413 at once and the connection closes.
pub const MAX_DRAINED_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The default path prefix of the routes.
pub const DEFAULT_PREFIX: &str = "/api/users";

/// One endpoint of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST register/`
    Register,
    /// `POST verify/send/`
    SendCode,
    /// `POST verify/`
    Verify,
    /// `POST login/`
    Login,
    /// `GET, PUT, PATCH profile/`
    Profile,
    /// `POST token/refresh/`
    Refresh,
    /// `POST logout/`
    Logout,
    /// `POST password/change/`
    ChangePassword,
}

impl Endpoint {
    /// Every endpoint, in the order of the contract.
    pub const ALL: [Endpoint; 8] = [
        Self::Register,
        Self::SendCode,
        Self::Verify,
        Self::Login,
        Self::Profile,
        Self::Refresh,
        Self::Logout,
        Self::ChangePassword,
    ];

    /// Returns the path below the prefix, without slashes at either end.
    pub fn path(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SendCode => "verify/send",
            Self::Verify => "verify",
            Self::Login => "login",
            Self::Profile => "profile",
            Self::Refresh => "token/refresh",
            Self::Logout => "logout",
            Self::ChangePassword => "password/change",
        }
    }

    /// Returns the methods the endpoint serves, as the `Allow` header lists them.
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Self::Profile => &["GET", "HEAD", "PUT", "PATCH"],
            _ => &["POST"],
        }
    }

    /// Finds the endpoint of a path below the prefix; a trailing slash is optional.
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        Self::ALL
            .into_iter()
            .find(|endpoint| endpoint.path() == path)
    }
}

/// A request as the adapters hand it over.
#[derive(Clone, Copy)]
pub struct ApiRequest<'a> {
    /// Upper-case method, such as `POST`.
    pub method: &'a str,
    /// Path below the prefix, such as `register/` or `/register`.
    pub path: &'a str,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `X-Forwarded-For` header, believed only from trusted proxies.
    pub forwarded_for: Option<&'a str>,
    /// The address of the connection's peer.
    pub peer: Option<IpAddr>,
    /// The body, at most [`MAX_BODY_BYTES`] long.
    pub body: &'a [u8],
}

impl std::fmt::Debug for ApiRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Returns whether a `Content-Type` value is JSON: `application/json` or
/// `application/*+json`, with any parameters.
pub fn is_json_content_type(value: &str) -> bool {
    let media_type = value.split(';').next().unwrap_or_default().trim();
    let media_type = media_type.to_ascii_lowercase();
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// A JSON object body with typed field readers that collect field errors.
struct Body {
    fields: Map<String, Value>,
    errors: FieldErrors,
}

impl Body {
    fn parse(bytes: &[u8]) -> Result<Self, AuthError> {
        let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(bytes).map_err(|e| AuthError::MalformedJson(e.to_string()))?
        };
        match value {
            Value::Object(fields) => Ok(Self {
                fields,
                errors: FieldErrors::new(),
            }),
            other => Err(AuthError::Validation(FieldErrors::single(
                "non_field_errors",
                format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    json_type_name(&other)
                ),
            ))),
        }
    }

    /// Reads a string field that may be absent.
    fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.fields.get(name) {
            None => None,
            Some(Value::String(value)) => Some(value.clone()),
            Some(Value::Null) => {
                self.errors.add(name, "This field may not be null.");
                None
            }
            Some(_) => {
                self.errors.add(name, "Not a valid string.");
                None
            }
        }
    }

    /// Reads a required string field.
    fn string(&mut self, name: &str) -> String {
        if !self.fields.contains_key(name) {
            self.errors.add(name, "This field is required.");
            return String::new();
        }
        self.optional_string(name).unwrap_or_default()
    }

    /// Reads a required string field that must not be blank.
    fn non_blank(&mut self, name: &str) -> String {
        let present = matches!(self.fields.get(name), Some(Value::String(_)));
        let value = self.string(name);
        if present && value.is_empty() {
            self.errors.add(name, "This field may not be blank.");
        }
        value
    }

    fn finish(self) -> Result<(), AuthError> {
        self.errors.into_result()
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn ok(status: u16, body: &impl serde::Serialize) -> ApiResponse {
    match serde_json::to_value(body) {
        Ok(value) => ApiResponse::json(status, &value),
        Err(e) => AuthError::Internal(format!("response serialization failed: {e}")).to_response(),
    }
}

impl Auth {
    /// Handles one request of the HTTP contract and returns its response.
    ///
    /// The steps run in this order: route, method, authentication, content
    /// type, body, per-client limit, action. Requests with a malformed body
    /// or missing fields are not counted toward the per-client limits, so
    /// they cannot use up the budget of a real login from the same client.
    pub async fn handle(&self, request: ApiRequest<'_>) -> ApiResponse {
        match self.dispatch(request).await {
            Ok(response) => response,
            Err(e) => {
                match &e {
                    AuthError::Store(cause) => error!(error = %cause, "store failed"),
                    AuthError::Internal(cause) => error!(error = %cause, "internal error"),
                    _ => {}
                }
                e.to_response()
            }
        }
    }

    async fn dispatch(&self, request: ApiRequest<'_>) -> Result<ApiResponse, AuthError> {
        let endpoint = Endpoint::from_path(request.path).ok_or(AuthError::NotFound)?;
        let method = request.method.to_ascii_uppercase();
        if !endpoint.methods().contains(&method.as_str()) {
            return Err(AuthError::MethodNotAllowed {
                method,
                allow: endpoint.methods().to_vec(),
            });
        }

        let user = match endpoint {
            Endpoint::Profile | Endpoint::Logout | Endpoint::ChangePassword => {
                Some(self.authenticate_header(request.authorization)?)
            }
            _ => None,
        };

        if matches!(method.as_str(), "GET" | "HEAD") {
            self.check_client_limit(endpoint, &request).await?;
            let user_id = user.map(|user| user.user_id).unwrap_or_default();
            return Ok(ok(200, &self.profile(user_id).await?));
        }

        match request.content_type {
            Some(content_type) if is_json_content_type(content_type) => {}
            None if request.body.is_empty() => {}
            other => {
                let media_type = other
                    .unwrap_or_default()
                    .split(';')
                    .next()
                    .unwrap_or_default();
                return Err(AuthError::UnsupportedMediaType(
                    media_type.trim().to_owned(),
                ));
            }
        }
        let mut body = Body::parse(request.body)?;

        match endpoint {
            Endpoint::Register => {
                let registration = Registration {
                    username: body.string("username"),
                    email: body.string("email"),
                    password: Secret::new(body.string("password")),
                };
                body.finish()?;
                self.check_client_limit(endpoint, &request).await?;
                Ok(ok(201, &self.register(registration).await?))
            }
            Endpoint::SendCode => {
                let email = body.string("email");
                body.finish()?;
                self.check_client_limit(endpoint, &request).await?;
                self.send_verification_code(&email).await?;
                Ok(ok(
                    200,
                    &json!({"detail": "If an account with this email needs verification, a code has been sent."}),
                ))
            }
            Endpoint::Verify => {
                let email = body.string("email");
                let code = Secret::new(body.string("code"));
                body.finish()?;
                self.check_client_limit(endpoint, &request).await?;
                self.verify_email(&email, &code).await?;
                Ok(ok(200, &json!({"detail": "User verified!"})))
            }
            Endpoint::Login => {
                let username = body.non_blank("username");
                let password = Secret::new(body.non_blank("password"));
                body.finish()?;
                self.check_client_limit(endpoint, &request).await?;
                Ok(ok(200, &self.login(&username, &password).await?))
            }
            Endpoint::Refresh => {
                let refresh = Secret::new(body.non_blank("refresh"));
                body.finish()?;
                self.check_client_limit(endpoint, &request).await?;
                Ok(ok(200, &self.refresh(&refresh).await?))
            }
            Endpoint::Logout => {
                let refresh = Secret::new(body.non_blank("refresh"));
                body.finish()?;
                self.check_client_limit(endpoint, &request).await?;
                let user = user.ok_or(AuthError::NotAuthenticated)?;
                self.logout(&user, &refresh).await?;
                Ok(ok(200, &json!({"detail": "Successfully logged out."})))
            }
            Endpoint::Profile => {
                let changes = ProfileChanges {
                    bio: body.optional_string("bio"),
                    avatar: body.optional_string("avatar"),
                };
                body.finish()?;
                self.check_client_limit(endpoint, &request).await?;
                let user = user.ok_or(AuthError::NotAuthenticated)?;
                Ok(ok(200, &self.update_profile(user.user_id, changes).await?))
            }
            Endpoint::ChangePassword => {
                let old_password = Secret::new(body.non_blank("old_password"));
                let new_password = Secret::new(body.non_blank("new_password"));
                body.finish()?;
                self.check_client_limit(endpoint, &request).await?;
                let user = user.ok_or(AuthError::NotAuthenticated)?;
                let pair = self
                    .change_password(user.user_id, &old_password, &new_password)
                    .await?;
                Ok(ok(200, &pair))
            }
        }
    }

    /// Returns the client address: the peer, or, when the peer is a trusted
    /// proxy, the right-most `X-Forwarded-For` entry that is not one.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let trusted = &self.config().trusted_proxies;
        let peer = peer?;
        if !trusted.contains(&peer) {
            return Some(peer);
        }
        let Some(header) = forwarded_for else {
            return Some(peer);
        };
        let mut client = peer;
        for entry in header.rsplit(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(address) => {
                    client = address;
                    if !trusted.contains(&address) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Some(client)
    }

    async fn check_client_limit(
        &self,
        endpoint: Endpoint,
        request: &ApiRequest<'_>,
    ) -> Result<(), AuthError> {
        let config = self.config();
        let limit: Option<RateLimit> = match endpoint {
            Endpoint::Register => config.register_limit,
            Endpoint::SendCode => config.send_code_limit,
            Endpoint::Verify => config.verify_limit,
            Endpoint::Login => config.login_limit,
            _ => None,
        };
        let (Some(limit), Some(client)) =
            (limit, self.client_ip(request.peer, request.forwarded_for))
        else {
            return Ok(());
        };
        let now = self.now();
        let key = format!("client:{}:{client}", endpoint.path());
        let state = self.store().hit(&key, now, limit.window).await?;
        if state.count > limit.max {
            let retry_after = (state.window_ends_at - now).whole_seconds().max(1) as u64;
            return Err(AuthError::Throttled { retry_after });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_with_and_without_slash() {
        assert_eq!(Endpoint::from_path("register/"), Some(Endpoint::Register));
        assert_eq!(Endpoint::from_path("/register"), Some(Endpoint::Register));
        assert_eq!(
            Endpoint::from_path("verify/send/"),
            Some(Endpoint::SendCode)
        );
        assert_eq!(
            Endpoint::from_path("token/refresh"),
            Some(Endpoint::Refresh)
        );
        assert_eq!(Endpoint::from_path("nope/"), None);
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/merge-patch+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/x-www-form-urlencoded"));
    }

    #[test]
    fn array_body_is_rejected() {
        let error = Body::parse(b"[1, 2]").err().unwrap();
        assert_eq!(error.status(), 400);
    }
}
