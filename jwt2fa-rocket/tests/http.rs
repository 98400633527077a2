//! The rocket adapter over real HTTP: a rocket server on 127.0.0.1 with
//! the in-memory store and mailer, driven with reqwest.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use jwt2fa_core::{
    find_code, ApiResponse, Auth, AuthConfig, AuthConfigBuilder, AuthError, MemoryMailer,
    MemoryStore, RateLimit, MAX_BODY_BYTES, MAX_DRAINED_BODY_BYTES,
};
use jwt2fa_rocket::{AuthRejection, AuthUser, Jwt2fa};
use reqwest::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use rocket::config::LogLevel;
use rocket::fairing::AdHoc;
use rocket::{get, routes};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const SECRET: &str = "rocket-test-secret-of-at-least-32-bytes";
const PASSWORD: &str = "tulip-Orbit-9-quarry";
const MAIL_WAIT: Duration = Duration::from_secs(10);

#[get("/me")]
fn me(user: AuthUser) -> String {
    user.user_id.to_string()
}

#[get("/me/result")]
fn me_result(user: Result<AuthUser, AuthRejection>) -> Result<String, AuthRejection> {
    Ok(format!("user {}", user?.user_id))
}

/// A running server; it shuts down when dropped.
struct Server {
    base: String,
    mailer: MemoryMailer,
    client: reqwest::Client,
    shutdown: rocket::Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

fn rocket_config() -> rocket::Config {
    let mut config = rocket::Config {
        address: Ipv4Addr::LOCALHOST.into(),
        port: 0,
        log_level: LogLevel::Off,
        cli_colors: false,
        ..rocket::Config::debug_default()
    };
    config.shutdown.ctrlc = false;
    #[cfg(unix)]
    config.shutdown.signals.clear();
    config
}

async fn start() -> Server {
    start_with(|builder| builder, Jwt2fa::new).await
}

async fn start_with(
    configure: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
    fairing: impl FnOnce(Auth) -> Jwt2fa,
) -> Server {
    let config = configure(AuthConfig::builder(SECRET)).build().unwrap();
    let mailer = MemoryMailer::new();
    let auth = Auth::builder(config, Arc::new(MemoryStore::new()))
        .mailer(Arc::new(mailer.clone()))
        .build()
        .unwrap();

    let (started, liftoff) = oneshot::channel();
    let rocket = rocket::custom(rocket_config())
        .attach(fairing(auth))
        .mount("/", routes![me, me_result])
        .attach(AdHoc::on_liftoff("test port", move |rocket| {
            Box::pin(async move {
                let _ = started.send((rocket.config().port, rocket.shutdown()));
            })
        }));
    tokio::spawn(async move {
        if let Err(e) = rocket.launch().await {
            panic!("rocket failed: {e}");
        }
    });
    let (port, shutdown) = liftoff.await.expect("rocket did not lift off");
    Server {
        base: format!("http://127.0.0.1:{port}"),
        mailer,
        client: reqwest::Client::new(),
        shutdown,
    }
}

/// A response read whole.
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: reqwest::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts that this is exactly the core's response: status, JSON
    /// content type, every extra header and the body bytes.
    fn assert_is(&self, expected: &ApiResponse) {
        assert_eq!(self.status.as_u16(), expected.status, "status");
        assert_eq!(self.header(CONTENT_TYPE), Some(ApiResponse::CONTENT_TYPE));
        for (name, value) in &expected.headers {
            let got = self.headers.get(*name).and_then(|v| v.to_str().ok());
            assert_eq!(got, Some(value.as_str()), "header {name}");
        }
        assert_eq!(
            String::from_utf8_lossy(&self.body),
            String::from_utf8_lossy(&expected.body),
            "body"
        );
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request failed");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.expect("body").to_vec(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    async fn register(&self, username: &str, email: &str) -> Reply {
        self.post(
            "/api/users/register/",
            json!({"username": username, "email": email, "password": PASSWORD}),
        )
        .await
    }

    /// Registers, verifies by the mailed code and logs in; returns the
    /// access and refresh tokens.
    async fn verified_login(&self, username: &str, email: &str) -> (String, String) {
        assert_eq!(
            self.register(username, email).await.status,
            StatusCode::CREATED
        );
        let sent = self
            .post("/api/users/verify/send/", json!({"email": email}))
            .await;
        assert_eq!(sent.status, StatusCode::OK);
        let code = self.code_for(email).await;
        let verified = self
            .post("/api/users/verify/", json!({"email": email, "code": code}))
            .await;
        assert_eq!(verified.status, StatusCode::OK);
        let login = self
            .post(
                "/api/users/login/",
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(login.status, StatusCode::OK);
        let tokens = login.json();
        (
            tokens["access"].as_str().unwrap().to_owned(),
            tokens["refresh"].as_str().unwrap().to_owned(),
        )
    }

    async fn code_for(&self, email: &str) -> String {
        let messages = self.mailer.wait_for(email, 1, MAIL_WAIT).await;
        let message = messages.last().expect("a verification mail");
        find_code(&message.text).expect("a code in the mail")
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_is_201_with_optional_slash() {
    let server = start().await;

    let with_slash = server.register("ana", "ana@example.com").await;
    assert_eq!(with_slash.status, StatusCode::CREATED);
    assert_eq!(with_slash.header(CONTENT_TYPE), Some("application/json"));
    let user = with_slash.json();
    assert_eq!(user["username"], "ana");
    assert_eq!(user["email"], "ana@example.com");
    assert_eq!(user["is_verified"], false);
    assert!(user["id"].is_i64());

    let without_slash = server
        .post(
            "/api/users/register",
            json!({"username": "bo", "email": "bo@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(without_slash.status, StatusCode::CREATED);
    assert_eq!(without_slash.json()["username"], "bo");

    // The axum adapter's wildcard captures "/register/" here, and the core
    // accepts one leading slash.
    let doubled_slash = server
        .post(
            "/api/users//register/",
            json!({"username": "cy", "email": "cy@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(doubled_slash.status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_json_404() {
    let server = start().await;
    let expected = AuthError::NotFound.to_response();
    for path in [
        "/api/users/nope/",
        "/api/users/nope",
        "/api/users",
        "/api/users/",
        "/api/users/register//",
    ] {
        let reply = server.send(server.client.get(server.url(path))).await;
        reply.assert_is(&expected);
    }
    let reply = server
        .send(
            server
                .client
                .post(server.url("/api/users/a/b/c"))
                .json(&json!({})),
        )
        .await;
    reply.assert_is(&expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405_with_allow() {
    let server = start().await;

    let reply = server
        .send(server.client.get(server.url("/api/users/register/")))
        .await;
    reply.assert_is(
        &AuthError::MethodNotAllowed {
            method: "GET".into(),
            allow: vec!["POST"],
        }
        .to_response(),
    );
    assert_eq!(reply.header(ALLOW), Some("POST"));

    let reply = server
        .send(server.client.delete(server.url("/api/users/profile")))
        .await;
    reply.assert_is(
        &AuthError::MethodNotAllowed {
            method: "DELETE".into(),
            allow: vec!["GET", "HEAD", "PUT", "PATCH"],
        }
        .to_response(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_json_400_or_404() {
    let server = start().await;
    let method = Method::from_bytes(b"PROPFIND").unwrap();

    // rocket drops a method it does not know before routing, so an
    // endpoint's path cannot get the 405 that would name it.
    let on_endpoint = server
        .send(
            server
                .client
                .request(method.clone(), server.url("/api/users/register/")),
        )
        .await;
    assert_eq!(on_endpoint.status, StatusCode::BAD_REQUEST);
    assert_eq!(on_endpoint.header(CONTENT_TYPE), Some("application/json"));
    assert_eq!(
        on_endpoint.json(),
        json!({"detail": "Bad Request.", "code": "bad_request"})
    );

    let elsewhere = server
        .send(
            server
                .client
                .request(method, server.url("/api/users/nope/")),
        )
        .await;
    elsewhere.assert_is(&AuthError::NotFound.to_response());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_plain_body_is_415() {
    let server = start().await;
    let reply = server
        .send(
            server
                .client
                .post(server.url("/api/users/login/"))
                .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                .body("username=ana"),
        )
        .await;
    reply.assert_is(&AuthError::UnsupportedMediaType("text/plain".into()).to_response());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_content_length_is_413() {
    let server = start().await;
    // A declared length over the drain limit gets the 413 without waiting
    // for the body. Only the head and the first bytes of the body are sent,
    // because rocket peeks at up to 14 body bytes before routing.
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/users/register/ HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"username\": \"aaaa",
        MAX_DRAINED_BODY_BYTES + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // Guards against a hang only; the test does not measure time.
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("timed out waiting for the 413 sent before the body")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    let expected = AuthError::PayloadTooLarge.to_response();
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");
    let lower = raw.to_ascii_lowercase();
    assert!(
        lower.contains("\r\ncontent-type: application/json\r\n"),
        "{raw}"
    );
    assert!(
        raw.ends_with(&*String::from_utf8_lossy(&expected.body)),
        "{raw}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_method_override_is_undone() {
    let server = start().await;
    // rocket would route this POST as a PATCH; the client sent a POST,
    // which the profile does not serve.
    let reply = server
        .send(
            server
                .client
                .post(server.url("/api/users/profile/"))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("_method=patch&bio=x"),
        )
        .await;
    reply.assert_is(
        &AuthError::MethodNotAllowed {
            method: "POST".into(),
            allow: vec!["GET", "HEAD", "PUT", "PATCH"],
        }
        .to_response(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_megabyte_body_is_413() {
    let server = start().await;
    let body = format!("{{\"username\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    // The server reads and discards a body this size before it responds,
    // so the client finishes sending and then reads the 413.
    let reply = server
        .send(
            server
                .client
                .post(server.url("/api/users/register/"))
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await;
    reply.assert_is(&AuthError::PayloadTooLarge.to_response());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_is_413() {
    let server = start().await;
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let chunk = vec![b' '; MAX_BODY_BYTES + 1];
    let mut request = format!(
        "POST /api/users/register/ HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    request.extend_from_slice(&chunk);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut raw = Vec::new();
    // Guards against a hang only; the test does not measure time.
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("timed out waiting for the 413")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    let expected = AuthError::PayloadTooLarge.to_response();
    assert!(raw.starts_with("HTTP/1.1 413 "), "{raw}");
    assert!(
        raw.ends_with(&*String::from_utf8_lossy(&expected.body)),
        "{raw}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400() {
    let server = start().await;
    let text = "{\"username\": ";
    let reason = serde_json::from_str::<Value>(text).unwrap_err().to_string();
    let reply = server
        .send(
            server
                .client
                .post(server.url("/api/users/login/"))
                .header(CONTENT_TYPE, "application/json")
                .body(text),
        )
        .await;
    reply.assert_is(&AuthError::MalformedJson(reason).to_response());
    assert_eq!(reply.json()["code"], "parse_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_use_field_lists() {
    let server = start().await;
    let reply = server
        .post("/api/users/login/", json!({"username": ""}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({
            "password": ["This field is required."],
            "username": ["This field may not be blank."],
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_without_token_is_401() {
    let server = start().await;
    let reply = server
        .send(server.client.get(server.url("/api/users/profile/")))
        .await;
    reply.assert_is(&AuthError::NotAuthenticated.to_response());
    assert!(reply
        .header(WWW_AUTHENTICATE)
        .is_some_and(|value| value.starts_with("Bearer")));

    let reply = server
        .send(
            server
                .client
                .get(server.url("/api/users/profile/"))
                .header(AUTHORIZATION, "Bearer not-a-token"),
        )
        .await;
    reply.assert_is(&AuthError::InvalidToken.to_response());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_user_guard_matches_api_errors() {
    let server = start().await;

    let missing = server.send(server.client.get(server.url("/me"))).await;
    missing.assert_is(&AuthError::NotAuthenticated.to_response());

    let invalid = server
        .send(
            server
                .client
                .get(server.url("/me"))
                .header(AUTHORIZATION, "Bearer not-a-token"),
        )
        .await;
    invalid.assert_is(&AuthError::InvalidToken.to_response());

    let other_scheme = server
        .send(
            server
                .client
                .get(server.url("/me/result"))
                .header(AUTHORIZATION, "Basic YW5hOnB3"),
        )
        .await;
    other_scheme.assert_is(&AuthError::NotAuthenticated.to_response());

    let (access, _) = server.verified_login("ana", "ana@example.com").await;
    let profile = server
        .send(
            server
                .client
                .get(server.url("/api/users/profile/"))
                .header(AUTHORIZATION, bearer(&access)),
        )
        .await;
    let id = profile.json()["id"].as_i64().unwrap();

    let accepted = server
        .send(
            server
                .client
                .get(server.url("/me"))
                .header(AUTHORIZATION, bearer(&access)),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK);
    assert_eq!(String::from_utf8_lossy(&accepted.body), id.to_string());

    let accepted = server
        .send(
            server
                .client
                .get(server.url("/me/result"))
                .header(AUTHORIZATION, bearer(&access)),
        )
        .await;
    assert_eq!(
        String::from_utf8_lossy(&accepted.body),
        format!("user {id}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_head_has_no_body() {
    let server = start().await;
    let (access, _) = server.verified_login("ana", "ana@example.com").await;
    let get = server
        .send(
            server
                .client
                .get(server.url("/api/users/profile/"))
                .header(AUTHORIZATION, bearer(&access)),
        )
        .await;
    let head = server
        .send(
            server
                .client
                .head(server.url("/api/users/profile/"))
                .header(AUTHORIZATION, bearer(&access)),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header(CONTENT_TYPE), Some("application/json"));
    assert_eq!(
        head.header(reqwest::header::CONTENT_LENGTH),
        Some(get.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_limit_ignores_x_forwarded_for() {
    let server = start_with(
        |builder| builder.register_limit(Some(RateLimit::new(1, time::Duration::hours(1)))),
        Jwt2fa::new,
    )
    .await;
    assert_eq!(
        server.register("ana", "ana@example.com").await.status,
        StatusCode::CREATED
    );
    let reply = server
        .send(
            server
                .client
                .post(server.url("/api/users/register/"))
                .header("X-Forwarded-For", "203.0.113.7")
                .json(&json!({"username": "bo", "email": "bo@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = reply.header(RETRY_AFTER).unwrap().parse().unwrap();
    reply.assert_is(&AuthError::Throttled { retry_after }.to_response());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_prefix_serves_the_api() {
    let server = start_with(
        |builder| builder,
        |auth| Jwt2fa::with_prefix(auth, "/auth/"),
    )
    .await;
    let reply = server
        .post(
            "/auth/register",
            json!({"username": "ana", "email": "ana@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = server
        .send(server.client.get(server.url("/auth/nope/")))
        .await;
    reply.assert_is(&AuthError::NotFound.to_response());
    let reply = server
        .send(server.client.get(server.url("/api/users/profile/")))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_flow_register_to_logout() {
    let server = start().await;
    let email = "ana@example.com";

    let registered = server.register("ana", email).await;
    assert_eq!(registered.status, StatusCode::CREATED);

    let early_login = server
        .post(
            "/api/users/login/",
            json!({"username": "ana", "password": PASSWORD}),
        )
        .await;
    early_login.assert_is(&AuthError::NotVerified.to_response());

    let sent = server
        .post("/api/users/verify/send", json!({"email": email}))
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    assert!(sent.json()["detail"].is_string());
    let code = server.code_for(email).await;

    let verified = server
        .post("/api/users/verify", json!({"email": email, "code": code}))
        .await;
    assert_eq!(verified.status, StatusCode::OK);
    assert_eq!(verified.json(), json!({"detail": "User verified!"}));

    let login = server
        .post(
            "/api/users/login",
            json!({"username": "ana", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let tokens = login.json();
    let access = tokens["access"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh"].as_str().unwrap().to_owned();

    let profile = server
        .send(
            server
                .client
                .get(server.url("/api/users/profile"))
                .header(AUTHORIZATION, bearer(&access)),
        )
        .await;
    assert_eq!(profile.status, StatusCode::OK);
    let profile = profile.json();
    assert_eq!(profile["username"], "ana");
    assert_eq!(profile["is_verified"], true);
    assert_eq!(profile["bio"], "");

    let patched = server
        .send(
            server
                .client
                .patch(server.url("/api/users/profile/"))
                .header(AUTHORIZATION, bearer(&access))
                .json(&json!({"bio": "hello", "username": "ignored"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let patched = patched.json();
    assert_eq!(patched["bio"], "hello");
    assert_eq!(patched["username"], "ana");
    assert_eq!(patched["avatar"], "");

    let rotated = server
        .post("/api/users/token/refresh/", json!({"refresh": refresh}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let rotated = rotated.json();
    let new_access = rotated["access"].as_str().unwrap().to_owned();
    let new_refresh = rotated["refresh"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh);

    let logout = server
        .send(
            server
                .client
                .post(server.url("/api/users/logout/"))
                .header(AUTHORIZATION, bearer(&new_access))
                .json(&json!({"refresh": new_refresh})),
        )
        .await;
    assert_eq!(logout.status, StatusCode::OK);
    assert!(logout.json()["detail"].is_string());

    let after_logout = server
        .post("/api/users/token/refresh/", json!({"refresh": new_refresh}))
        .await;
    after_logout.assert_is(&AuthError::InvalidToken.to_response());
}

#[tokio::test]
async fn fairing_rejects_managed_auth() {
    let config = AuthConfig::builder(SECRET).build().unwrap();
    let auth = Auth::builder(config, Arc::new(MemoryStore::new()))
        .build()
        .unwrap();
    let result = rocket::custom(rocket_config())
        .manage(auth.clone())
        .attach(Jwt2fa::new(auth))
        .ignite()
        .await;
    let error = result.expect_err("ignition must fail");
    assert!(
        matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{error}"
    );
}

#[tokio::test]
async fn guard_without_fairing_aborts_launch() {
    let result = rocket::custom(rocket_config())
        .mount("/", routes![me])
        .ignite()
        .await;
    let error = result.expect_err("ignition must fail");
    assert!(
        matches!(error.kind(), rocket::error::ErrorKind::SentinelAborts(_)),
        "{error}"
    );
}
