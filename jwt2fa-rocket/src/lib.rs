//! rocket adapter for jwt2fa: the routes of the account flow, an
//! [`AuthUser`] request guard for the application's own routes, and
//! catchers that keep every error JSON.
//!
//! Every request under the prefix goes to [`Auth::handle`], which implements
//! every rule of the HTTP contract, so this crate only translates between
//! rocket and the core. For the same request it returns the same status,
//! the same `Content-Type`, `WWW-Authenticate`, `Retry-After` and `Allow`
//! headers and the same JSON body as the axum adapter.
//!
//! ```no_run
//! use std::sync::Arc;
//! use jwt2fa_core::{Auth, AuthConfig, MemoryStore};
//! use jwt2fa_rocket::{AuthUser, Jwt2fa};
//! use rocket::{get, routes};
//!
//! #[get("/hello")]
//! fn hello(user: AuthUser) -> String {
//!     format!("hello, user {}", user.user_id)
//! }
//!
//! #[rocket::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = AuthConfig::builder("an example secret of at least 32 bytes").build()?;
//!     let auth = Auth::builder(config, Arc::new(MemoryStore::new())).build()?;
//!
//!     let _rocket = rocket::build()
//!         .attach(Jwt2fa::new(auth))
//!         .mount("/", routes![hello])
//!         .launch()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! [`Jwt2fa`] puts the [`Auth`] into managed state, mounts [`routes`] at the
//! prefix, registers [`catchers`] at the prefix and [`guard_catchers`] at
//! `/`. An application that wants to assemble these itself (for example
//! because it has its own `401` catcher at `/`) can do so with those three
//! functions and `rocket.manage(auth)`.
//!
//! # Differences rocket imposes
//!
//! rocket 0.5 rejects a request whose method it does not know (anything
//! besides GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE and CONNECT)
//! with `400` before any route, fairing or guard runs, and the method's name
//! is lost. Under the prefix such a request gets the core's `404` on a path
//! that is no endpoint, as in the axum adapter, and a JSON `400`
//! (`"code": "bad_request"`) on an endpoint's path, where the axum adapter
//! sends `405`. rocket also adds its `Server` header and the security
//! headers of its default `Shield` fairing to every response.

#![forbid(unsafe_code)]

use std::io::Cursor;
use std::ops::Deref;

use jwt2fa_core::{
    ApiRequest, ApiResponse, Auth, AuthError, AuthenticatedUser, Endpoint, MAX_BODY_BYTES,
    MAX_DRAINED_BODY_BYTES,
};
use rocket::catcher::{self, Catcher};
use rocket::data::{Data, ToByteUnit};
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::uri::Origin;
use rocket::http::{Method, RawStr, Status};
use rocket::request::{self, FromRequest, Request};
use rocket::response::{self, Responder, Response};
use rocket::route::{self, Handler, Route};
use rocket::tokio::io::AsyncReadExt;
use rocket::{Build, Ignite, Rocket, Sentinel};

pub use jwt2fa_core::DEFAULT_PREFIX;

/// Every method rocket 0.5 can route. All of them reach the core, which
/// returns `405` with `Allow` for those a path does not serve.
const METHODS: [Method; 9] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Patch,
    Method::Delete,
    Method::Options,
    Method::Trace,
    Method::Connect,
];

/// Name of the API routes, which finds them again among the application's.
const ROUTE_NAME: &str = "jwt2fa";

/// Rank of the routes: the rank rocket gives a route with a static prefix
/// and a trailing `<path..>`, so that an application's own `/<path..>`
/// route at rank -1 neither collides with nor shadows the API.
const RANK: isize = -5;

/// Fairing that installs the whole API: it manages the [`Auth`], mounts
/// [`routes`] and registers [`catchers`] at the prefix, and registers
/// [`guard_catchers`] at `/`.
///
/// The [`Auth`] must not be managed by the application as well: rocket
/// allows one value per type, and the fairing fails ignition when one is
/// already there.
#[derive(Debug, Clone)]
pub struct Jwt2fa {
    auth: Auth,
    prefix: String,
}

impl Jwt2fa {
    /// Installs the API under `/api/users`.
    pub fn new(auth: Auth) -> Self {
        Self::with_prefix(auth, DEFAULT_PREFIX)
    }

    /// Installs the API under `prefix`, such as `/auth`. A trailing slash is
    /// ignored. `""` or `"/"` mounts the API at the root, where the prefix
    /// catchers then render every error of the application as JSON.
    ///
    /// Ignition fails when the prefix is not a valid path without query.
    pub fn with_prefix(auth: Auth, prefix: &str) -> Self {
        Self {
            auth,
            prefix: mount_base(prefix),
        }
    }

    /// Returns the path the routes are mounted at.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// Turns a prefix into rocket's form of a mount base: a leading slash and
/// no trailing one.
fn mount_base(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

#[rocket::async_trait]
impl Fairing for Jwt2fa {
    fn info(&self) -> Info {
        Info {
            name: "jwt2fa",
            kind: Kind::Ignite,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        if rocket.state::<Auth>().is_some() {
            tracing::error!(
                "an Auth is already managed: attach the jwt2fa fairing instead of managing the Auth yourself"
            );
            return Err(rocket);
        }
        // rocket's `mount` and `register` panic on such a base; failing
        // ignition names the problem instead.
        let valid = Origin::parse(&self.prefix).is_ok_and(|origin| origin.query().is_none());
        if !valid {
            tracing::error!(prefix = %self.prefix, "the jwt2fa prefix is not a valid path");
            return Err(rocket);
        }
        let base = self.prefix.as_str();
        Ok(rocket
            .manage(self.auth.clone())
            .mount(base, routes())
            .register(base, catchers())
            .register("/", guard_catchers()))
    }
}

/// Returns the routes of the API, to mount at the prefix. They serve every
/// method on the prefix and every path below it and read the [`Auth`]
/// from managed state.
pub fn routes() -> Vec<Route> {
    METHODS
        .into_iter()
        .map(|method| {
            let mut route = Route::ranked(RANK, method, "/<path..>", ApiHandler);
            route.name = Some(ROUTE_NAME.into());
            route
        })
        .collect()
}

/// Returns the catchers to register at the prefix: they render any error
/// rocket raises there in the contract's JSON shapes.
///
/// A status the core has an error for gets exactly the core's response
/// (`404` is [`AuthError::NotFound`], `413`
/// [`AuthError::PayloadTooLarge`], `401` [`AuthError::NotAuthenticated`]
/// or the [`AuthUser`] guard's own error, and so on). Any other status gets
/// `{"detail": "<reason>.", "code": "<reason in snake case>"}`.
pub fn catchers() -> Vec<Catcher> {
    let mut catcher = Catcher::new(None, prefix_catcher);
    catcher.name = Some("jwt2fa".into());
    vec![catcher]
}

/// Returns the catcher to register at `/` (or wherever the application's
/// protected routes live): it renders a failed [`AuthUser`] guard as the
/// contract's `401`, with `WWW-Authenticate`, and any other `401` as
/// [`AuthError::NotAuthenticated`].
pub fn guard_catchers() -> Vec<Catcher> {
    let mut catcher = Catcher::new(401, prefix_catcher);
    catcher.name = Some("jwt2fa guard".into());
    vec![catcher]
}

fn prefix_catcher<'r>(status: Status, req: &'r Request<'_>) -> catcher::BoxFuture<'r> {
    let response = error_response(status, req);
    Box::pin(async move { ApiResponder(response).respond_to(req) })
}

/// Returns the contract's response for an error rocket raised with
/// `status` while handling `req`. The catchers of this crate use it, and an
/// application's own catcher can call it to render a failed [`AuthUser`]
/// guard.
pub fn error_response(status: Status, req: &Request<'_>) -> ApiResponse {
    if let Some(failure) = &req.local_cache(|| GuardFailure(None)).0 {
        if failure.status == status.code {
            return failure.clone();
        }
    }
    // rocket rejects a method it does not know with 400 before routing, so
    // no route is set. The core checks the path before the method, so a path
    // that is no endpoint still gets the 404 the axum adapter sends.
    if status == Status::BadRequest && req.route().is_none() {
        if let Some(base) = api_base(req) {
            if Endpoint::from_path(&path_below(req, &base)).is_none() {
                return AuthError::NotFound.to_response();
            }
        }
    }

    let error = match status.code {
        401 => AuthError::NotAuthenticated,
        403 => AuthError::PermissionDenied,
        404 => AuthError::NotFound,
        413 => AuthError::PayloadTooLarge,
        415 => {
            let media_type = header(req, "Content-Type")
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim();
            AuthError::UnsupportedMediaType(media_type.to_owned())
        }
        500 => AuthError::Internal(format!("rocket raised {status}")),
        _ => return status_response(status),
    };
    error.to_response()
}

/// Returns the response for a status the core has no error for.
fn status_response(status: Status) -> ApiResponse {
    let reason = status.reason().unwrap_or("Error");
    let code: String = reason
        .chars()
        .filter_map(|c| match c {
            ' ' | '-' => Some('_'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    ApiResponse::json(
        status.code,
        &serde_json::json!({ "detail": format!("{reason}."), "code": code }),
    )
}

/// The route handler: hands the request to [`Auth::handle`].
#[derive(Clone)]
struct ApiHandler;

#[rocket::async_trait]
impl Handler for ApiHandler {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> route::Outcome<'r> {
        let response = dispatch(req, data).await;
        route::Outcome::from(req, ApiResponder(response))
    }
}

async fn dispatch(req: &Request<'_>, data: Data<'_>) -> ApiResponse {
    let Some(auth) = req.rocket().state::<Auth>() else {
        return missing_auth();
    };

    let body = match read_body(req, data).await {
        Ok(body) => body,
        Err(response) => return response,
    };

    let base = req.route().map_or("/", |route| route.uri.base());
    let relative = path_below(req, base);

    auth.handle(ApiRequest {
        method: sent_method(req, &body).as_str(),
        path: &relative,
        content_type: header(req, "Content-Type"),
        authorization: header(req, "Authorization"),
        forwarded_for: header(req, "X-Forwarded-For"),
        peer: req.remote().map(|address| address.ip()),
        body: &body,
    })
    .await
}

/// Reads the body up to [`MAX_BODY_BYTES`], exactly as the axum adapter
/// does. A longer body is drained up to [`MAX_DRAINED_BODY_BYTES`] so that
/// the client reliably sees the 413. A body declared or sent longer than
/// that gets the 413 at once.
async fn read_body(req: &Request<'_>, data: Data<'_>) -> Result<Vec<u8>, ApiResponse> {
    let too_large = || AuthError::PayloadTooLarge.to_response();
    let declared_length =
        header(req, "Content-Length").and_then(|value| value.parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > MAX_DRAINED_BODY_BYTES) {
        return Err(too_large());
    }

    // The stream ends one byte past the drain limit, which is enough to
    // tell an overlong body from one of exactly that size.
    let mut stream = data.open((MAX_DRAINED_BODY_BYTES + 1).bytes());
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut total = 0usize;
    loop {
        let read = stream.read(&mut chunk).await.map_err(|e| {
            tracing::debug!(error = %e, "reading the request body failed");
            AuthError::MalformedJson("the request body could not be read".to_owned()).to_response()
        })?;
        if read == 0 {
            break;
        }
        total += read;
        if total > MAX_DRAINED_BODY_BYTES {
            return Err(too_large());
        }
        if total <= MAX_BODY_BYTES {
            bytes.extend_from_slice(&chunk[..read]);
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Returns the method the client sent.
///
/// Before routing, rocket turns a POST whose body is a form starting with
/// a `_method=VERB` field into a VERB request (HTML forms can only POST).
/// The core must see the method as sent, so such a request is turned back
/// into a POST. A client that sends VERB itself with that same form body
/// is taken for a POST as well, because rocket does not keep the original
/// method.
fn sent_method(req: &Request<'_>, body: &[u8]) -> Method {
    let method = req.method();
    let is_form = req.content_type().is_some_and(|media| media.is_form());
    if method != Method::Post && is_form && form_method_override(body) == Some(method) {
        Method::Post
    } else {
        method
    }
}

/// Applies rocket's own test for a method override: its first 14 body
/// bytes, at least 11 of them, hold a first form field `_method` with a
/// method name.
fn form_method_override(body: &[u8]) -> Option<Method> {
    const MIN_LEN: usize = "_method=get".len();
    const MAX_LEN: usize = "_method=delete".len();
    let peeked = &body[..body.len().min(MAX_LEN)];
    if peeked.len() < MIN_LEN {
        return None;
    }
    let text = std::str::from_utf8(peeked).ok()?;
    let field = rocket::form::Form::<()>::values(text).next()?;
    if field.name != "_method" {
        return None;
    }
    field.value.parse().ok()
}

/// Returns the path of `req` below the mount base `base`, percent-decoded,
/// as the core expects it.
fn path_below(req: &Request<'_>, base: &str) -> String {
    let base_segments = base
        .split('/')
        .filter(|segment| !segment.is_empty())
        .count();
    let below = below_prefix(req.uri().path().as_str(), base_segments);
    // A path that does not decode to UTF-8 matches no endpoint.
    RawStr::new(below)
        .percent_decode()
        .map(|path| path.into_owned())
        .unwrap_or_default()
}

/// Returns the mount base of the API routes that the path of `req` is
/// under, the longest one when the routes are mounted more than once.
fn api_base(req: &Request<'_>) -> Option<String> {
    let segments: Vec<&str> = req.uri().path().segments().collect();
    req.rocket()
        .routes()
        .filter(|route| route.name.as_deref() == Some(ROUTE_NAME))
        .map(|route| route.uri.base())
        .filter(|base| {
            let base_segments: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
            segments.starts_with(&base_segments)
        })
        .max_by_key(|base| base.len())
        .map(str::to_owned)
}

/// Returns the raw path after the first `base_segments` segments and the
/// one slash that follows them: `register/` for `/api/users/register/`.
/// This is what axum's `{*path}` wildcard captures, so a doubled or
/// trailing slash reaches the core as it was sent.
fn below_prefix(path: &str, base_segments: usize) -> &str {
    let mut rest = path;
    for _ in 0..base_segments {
        // rocket's router ignores empty segments, so skip them as well.
        rest = rest.trim_start_matches('/');
        rest = rest.find('/').map_or("", |end| &rest[end..]);
    }
    rest.strip_prefix('/').unwrap_or(rest)
}

fn missing_auth() -> ApiResponse {
    tracing::error!("no Auth in rocket's managed state: attach the jwt2fa fairing or manage one");
    AuthError::Internal("no Auth in managed state".to_owned()).to_response()
}

/// Returns a header's first value when it is visible ASCII, the only
/// values axum's `HeaderValue::to_str` gives, so both adapters see the
/// same headers.
fn header<'a>(req: &'a Request<'_>, name: &str) -> Option<&'a str> {
    req.headers().get_one(name).filter(|value| {
        value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    })
}

/// Converts a core response into a rocket response: its status, its
/// headers, `Content-Type: application/json` and the JSON body.
pub fn into_response(response: ApiResponse) -> Response<'static> {
    let ApiResponse {
        status,
        headers,
        body,
    } = response;
    let mut builder = Response::build();
    builder
        .status(Status::new(status))
        .raw_header("Content-Type", ApiResponse::CONTENT_TYPE);
    for (name, value) in headers {
        builder.raw_header_adjoin(name, value);
    }
    builder.sized_body(body.len(), Cursor::new(body));
    builder.finalize()
}

/// A [`Responder`] for a core [`ApiResponse`], for routes of the
/// application that call the core themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponder(pub ApiResponse);

impl From<ApiResponse> for ApiResponder {
    fn from(response: ApiResponse) -> Self {
        Self(response)
    }
}

impl<'r> Responder<'r, 'static> for ApiResponder {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Ok(into_response(self.0))
    }
}

/// The user behind a valid `Authorization: Bearer` access token.
///
/// The token is checked without the database (signature, expiry, type), so
/// a deactivated user's token works until it expires.
///
/// A missing or invalid token fails the guard with `401`. The catcher from
/// [`guard_catchers`], which [`Jwt2fa`] registers, then renders the
/// contract's JSON body and `WWW-Authenticate` header, byte for byte like
/// the axum adapter's rejection.
///
/// `Result<AuthUser, AuthRejection>` lets a route return the rejection
/// itself.
///
/// A route that uses this guard aborts launch when no [`Auth`] is managed.
#[derive(Debug, Clone)]
pub struct AuthUser(pub AuthenticatedUser);

impl Deref for AuthUser {
    type Target = AuthenticatedUser;

    fn deref(&self) -> &AuthenticatedUser {
        &self.0
    }
}

/// Error of the [`AuthUser`] guard: the core's error, rendered as JSON
/// when used as a responder.
#[derive(Debug)]
pub struct AuthRejection(pub AuthError);

impl<'r> Responder<'r, 'static> for AuthRejection {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Ok(into_response(self.0.to_response()))
    }
}

/// The failed guard's response, kept in request-local cache for the
/// catchers.
struct GuardFailure(Option<ApiResponse>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = AuthRejection;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, AuthRejection> {
        let result = match req.rocket().state::<Auth>() {
            Some(auth) => auth.authenticate_header(header(req, "Authorization")),
            None => {
                tracing::error!("AuthUser needs an Auth in rocket's managed state");
                Err(AuthError::Internal("no Auth in managed state".to_owned()))
            }
        };
        match result {
            Ok(user) => request::Outcome::Success(AuthUser(user)),
            Err(error) => {
                let response = error.to_response();
                let status = Status::new(response.status);
                req.local_cache(|| GuardFailure(Some(response)));
                request::Outcome::Error((status, AuthRejection(error)))
            }
        }
    }
}

impl Sentinel for AuthUser {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        if rocket.state::<Auth>().is_some() {
            return false;
        }
        tracing::error!("a route uses AuthUser but no Auth is managed: attach the jwt2fa fairing");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_prefix_keeps_what_follows_the_base() {
        assert_eq!(below_prefix("/api/users/register/", 2), "register/");
        assert_eq!(below_prefix("/api/users/register", 2), "register");
        assert_eq!(below_prefix("/api/users//register", 2), "/register");
        assert_eq!(below_prefix("/api/users/", 2), "");
        assert_eq!(below_prefix("/api/users", 2), "");
        assert_eq!(below_prefix("/register/", 0), "register/");
        assert_eq!(below_prefix("/auth/verify/send/", 1), "verify/send/");
    }

    #[test]
    fn form_method_override_follows_rocket() {
        assert_eq!(
            form_method_override(b"_method=patch&bio=x"),
            Some(Method::Patch)
        );
        assert_eq!(
            form_method_override(b"_method=DELETE"),
            Some(Method::Delete)
        );
        assert_eq!(form_method_override(b"bio=x&_method=patch"), None);
        assert_eq!(form_method_override(b"_method=nope&x=1"), None);
        assert_eq!(form_method_override(b"_method=pu"), None);
    }

    #[test]
    fn mount_base_normalizes_slashes() {
        assert_eq!(mount_base("/api/users/"), "/api/users");
        assert_eq!(mount_base("auth"), "/auth");
        assert_eq!(mount_base(""), "/");
        assert_eq!(mount_base("/"), "/");
    }

    #[test]
    fn unknown_status_gets_detail_and_code() {
        let response = status_response(Status::BadRequest);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(response.status, 400);
        assert_eq!(
            body,
            serde_json::json!({"detail": "Bad Request.", "code": "bad_request"})
        );
    }
}
