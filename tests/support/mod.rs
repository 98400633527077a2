//! Shared test support: start the real adapters on 127.0.0.1 port 0 with a
//! SQLite file and the loopback SMTP sink, send requests and record the
//! parts of each response that the contract fixes.

#![allow(dead_code)]

pub mod database;
pub mod smtp;
pub mod webdriver;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use jwt2fa_core::{Auth, AuthConfig, AuthConfigBuilder, SmtpMailer};
use reqwest::Method;
use serde_json::Value;

pub use smtp::SmtpSink;

/// The secret of every test server.
pub const SECRET: &str = "contract-test-secret-of-32-bytes-or-more";
/// A password that passes the strength check.
pub const PASSWORD: &str = "tulip-Orbit-9-quarry";

/// The web framework a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Axum,
    Rocket,
}

pub use database::{Database, TestDatabase};

/// What the contract fixes about one response.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub status: u16,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
    pub allow: Option<String>,
    /// The JSON body with tokens and timestamps replaced by placeholders.
    pub body: Value,
}

/// A running server and a client for it.
pub struct TestServer {
    pub adapter: Adapter,
    pub auth: Auth,
    pub smtp: SmtpSink,
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    client: reqwest::Client,
    transcript: Mutex<Vec<Observed>>,
    database: Option<TestDatabase>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // Dropping the database needs async I/O, which a destructor cannot
        // await on the test's runtime, so it runs on a thread of its own.
        if let Some(database) = self.database.take() {
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    // The server's pool may still hold connections for a moment.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    database.drop_database().await;
                });
            });
            let _ = dropped.join();
        }
    }
}

/// Configuration for a test server: no per-client limits, since every
/// request comes from 127.0.0.1.
pub fn base_config() -> AuthConfigBuilder {
    AuthConfig::builder(SECRET).without_client_limits()
}

/// Starts a server with the given adapter and configuration on SQLite.
pub async fn start(adapter: Adapter, config: AuthConfigBuilder) -> TestServer {
    start_on(adapter, Database::Sqlite, config).await
}

/// Starts a server with the given adapter, database and configuration.
pub async fn start_on(
    adapter: Adapter,
    database: Database,
    config: AuthConfigBuilder,
) -> TestServer {
    let dir = tempfile::tempdir().expect("temporary directory");
    let test_database = TestDatabase::create(database, dir.path()).await;
    let store = jwt2fa_sqlx::open(&test_database.url)
        .await
        .unwrap_or_else(|e| panic!("open the {database:?} store: {e}"));
    let smtp = SmtpSink::start().await;
    let mailer = SmtpMailer::from_url(&smtp.url()).expect("SMTP URL");
    let auth = Auth::builder(config.build().expect("valid configuration"), store)
        .mailer(Arc::new(mailer))
        .build()
        .expect("build the service");

    let (shutdown, stopped) = tokio::sync::oneshot::channel();
    let address = match adapter {
        Adapter::Axum => start_axum(auth.clone(), stopped).await,
        Adapter::Rocket => start_rocket(auth.clone(), stopped).await,
    };
    TestServer {
        adapter,
        auth,
        smtp,
        origin: format!("http://{address}"),
        client: reqwest::Client::new(),
        transcript: Mutex::default(),
        database: Some(test_database),
        _dir: dir,
        shutdown: Some(shutdown),
    }
}

async fn start_axum(auth: Auth, stopped: tokio::sync::oneshot::Receiver<()>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = jwt2fa_axum::router(auth);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .await
        .expect("axum server");
    });
    address
}

async fn start_rocket(auth: Auth, stopped: tokio::sync::oneshot::Receiver<()>) -> SocketAddr {
    let mut config = rocket::Config {
        address: std::net::Ipv4Addr::LOCALHOST.into(),
        port: 0,
        log_level: rocket::config::LogLevel::Off,
        cli_colors: false,
        ..rocket::Config::debug_default()
    };
    config.shutdown.ctrlc = false;
    #[cfg(unix)]
    config.shutdown.signals.clear();

    let (started, liftoff) = tokio::sync::oneshot::channel();
    let server = rocket::custom(config)
        .attach(jwt2fa_rocket::Jwt2fa::new(auth))
        .attach(rocket::fairing::AdHoc::on_liftoff(
            "test port",
            move |rocket| {
                Box::pin(async move {
                    let _ = started.send((rocket.config().port, rocket.shutdown()));
                })
            },
        ));
    tokio::spawn(async move {
        if let Err(e) = server.launch().await {
            panic!("rocket failed: {e}");
        }
    });
    let (port, shutdown) = liftoff.await.expect("rocket did not lift off");
    tokio::spawn(async move {
        let _ = stopped.await;
        shutdown.notify();
    });
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One request.
pub struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub bearer: Option<&'a str>,
    pub body: Vec<u8>,
}

fn normalize(value: &mut Value) {
    match value {
        Value::String(text) => {
            if text.starts_with("eyJ") && text.matches('.').count() == 2 {
                *text = "<jwt>".to_owned();
            } else if let Some(rest) =
                text.strip_prefix("Request was throttled. Expected available in ")
            {
                // The seconds depend on when the request landed.
                let unit = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                *text = format!("Request was throttled. Expected available in <n>{unit}");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if name == "date_joined" && field.is_string() {
                    *field = Value::String("<timestamp>".to_owned());
                } else {
                    normalize(field);
                }
            }
        }
        _ => {}
    }
}

impl TestServer {
    /// Returns the URL of a path below `/api/users/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/users/{}", self.origin, path.trim_start_matches('/'))
    }

    /// Sends a request, records it in the transcript and returns the
    /// observed response with the raw JSON body (tokens kept).
    pub async fn send(&self, call: Call<'_>) -> (Observed, Value) {
        let mut request = self.client.request(call.method, self.url(call.path));
        if let Some(content_type) = call.content_type {
            request = request.header("Content-Type", content_type);
        }
        if let Some(token) = call.bearer {
            request = request.header("Authorization", format!("Bearer {token}"));
        }

        let response = request.body(call.body).send().await.expect("request sent");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let mut observed = Observed {
            status: response.status().as_u16(),
            content_type: header("content-type"),
            www_authenticate: header("www-authenticate"),
            // The seconds depend on when the request landed, so only their
            // presence and form are compared.
            retry_after: header("retry-after").map(|value| {
                if value.parse::<u64>().is_ok_and(|seconds| seconds > 0) {
                    "<seconds>".to_owned()
                } else {
                    value
                }
            }),
            allow: header("allow"),
            body: Value::Null,
        };

        let bytes = response.bytes().await.expect("response body");
        let raw: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{:?}: body is not JSON: {:?}",
                    self.adapter,
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        let mut body = raw.clone();
        normalize(&mut body);
        observed.body = body;

        self.transcript.lock().unwrap().push(observed.clone());
        (observed, raw)
    }

    /// Sends a JSON body with `method`.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> (Observed, Value) {
        self.send(Call {
            method,
            path,
            content_type: Some("application/json"),
            bearer,
            body: serde_json::to_vec(&body).unwrap(),
        })
        .await
    }

    /// Sends `POST` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (Observed, Value) {
        self.json(Method::POST, path, None, body).await
    }

    /// Sends `GET` with an optional Bearer token.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (Observed, Value) {
        self.send(Call {
            method: Method::GET,
            path,
            content_type: None,
            bearer,
            body: Vec::new(),
        })
        .await
    }

    /// Returns every response recorded so far.
    pub fn transcript(&self) -> Vec<Observed> {
        self.transcript.lock().unwrap().clone()
    }

    /// Registers a user and returns the response.
    pub async fn register(&self, username: &str, email: &str) -> (Observed, Value) {
        self.post(
            "register/",
            serde_json::json!({"username": username, "email": email, "password": PASSWORD}),
        )
        .await
    }

    /// Registers, verifies with the mailed code, and logs in; returns the
    /// access and refresh tokens.
    pub async fn verified_login(&self, username: &str, email: &str) -> (String, String) {
        let (registered, _) = self.register(username, email).await;
        assert_eq!(
            registered.status, 201,
            "{:?}: register {username}",
            self.adapter
        );
        let (sent, _) = self
            .post("verify/send/", serde_json::json!({"email": email}))
            .await;
        assert_eq!(sent.status, 200);
        let code = self.smtp.code(email, 1).await;
        let (verified, _) = self
            .post("verify/", serde_json::json!({"email": email, "code": code}))
            .await;
        assert_eq!(verified.status, 200, "{:?}: verify {email}", self.adapter);
        self.login(username).await
    }

    /// Logs in with [`PASSWORD`] and returns the access and refresh tokens.
    pub async fn login(&self, username: &str) -> (String, String) {
        let (observed, raw) = self
            .post(
                "login/",
                serde_json::json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            observed.status, 200,
            "{:?}: login {username}: {:?}",
            self.adapter, observed.body
        );
        (
            raw["access"].as_str().expect("access token").to_owned(),
            raw["refresh"].as_str().expect("refresh token").to_owned(),
        )
    }
}

/// A contract case: a function that drives one server and asserts what it
/// expects.
pub type Case = for<'a> fn(&'a TestServer) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs a case on every adapter with the same configuration and checks that
/// every recorded response is identical across adapters.
pub async fn compare(
    name: &str,
    config: fn() -> AuthConfigBuilder,
    case: Case,
    adapters: &[Adapter],
) {
    let mut transcripts = Vec::new();
    for &adapter in adapters {
        let server = start(adapter, config()).await;
        case(&server).await;
        transcripts.push((adapter, server.transcript()));
    }
    // Concurrent requests finish in any order, so each transcript is
    // compared as a sorted list.
    for (_, transcript) in &mut transcripts {
        transcript.sort_by_key(|observed| format!("{observed:?}"));
    }
    let (first_adapter, first) = &transcripts[0];
    for (adapter, transcript) in &transcripts[1..] {
        assert_eq!(
            first.len(),
            transcript.len(),
            "{name}: {first_adapter:?} and {adapter:?} recorded a different number of responses"
        );
        for (index, (a, b)) in first.iter().zip(transcript).enumerate() {
            assert_eq!(
                a, b,
                "{name}: response {index} differs between {first_adapter:?} and {adapter:?}"
            );
        }
    }
}
