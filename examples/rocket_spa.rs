//! The whole account flow on rocket, with the single-page app at `/` and the
//! API under `/api/users/`.
//!
//! ```text
//! cargo run --example rocket_spa
//! ```
//!
//! Settings come from the environment, the same variables as `axum_spa`;
//! README.md lists them. With none set it uses a SQLite file in the working
//! directory and prints each email to the console. `Rocket.toml` and
//! `ROCKET_*` variables are not read.

use std::net::SocketAddr;

use jwt2fa_rocket::Jwt2fa;
use rocket::config::LogLevel;
use rocket::error::ErrorKind;
use rocket::fairing::{AdHoc, Fairing, Info, Kind};
use rocket::fs::FileServer;
use rocket::http::{Header, Method};
use rocket::{catch, catchers, Request, Response};

#[path = "common/mod.rs"]
mod common;

#[rocket::main]
async fn main() {
    // rocket's own log records reach tracing and would print its launch
    // banner; `rocket::` (with the colons) keeps `rocket_spa` itself visible.
    common::init_tracing("info,rocket::=off");
    if let Err(e) = run().await {
        eprintln!("rocket_spa: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let settings = common::Settings::from_env()?;
    let auth = settings.build_auth().await?;
    auth.spawn_purge_task(common::PURGE_PERIOD);

    let mut config = rocket::Config {
        address: settings.bind.ip(),
        port: settings.bind.port(),
        // This applies only when rocket installs its own logger. Here the
        // tracing filter in `init_tracing` decides.
        log_level: LogLevel::Critical,
        cli_colors: false,
        ..rocket::Config::default()
    };
    // Ctrl-C and SIGTERM go through `common::shutdown_signal`, as in axum_spa.
    config.shutdown.ctrlc = false;
    #[cfg(unix)]
    config.shutdown.signals.clear();

    let database = settings.database_for_log();
    let mailer = auth.mailer_description();
    let mut app = rocket::custom(config)
        .attach(Jwt2fa::new(auth))
        .mount("/", FileServer::from(common::spa_dir()))
        .register("/", catchers![not_found])
        .attach(AdHoc::on_liftoff("start-up line", move |rocket| {
            Box::pin(async move {
                let address = SocketAddr::new(rocket.config().address, rocket.config().port);
                tracing::info!(
                    "rocket_spa listening on http://{address}/ (database: {database}, mailer: {mailer})"
                );
            })
        }));
    if !settings.cors_origins.is_empty() {
        app = app.attach(Cors {
            origins: settings.cors_origins.clone(),
        });
    }

    let app = app
        .ignite()
        .await
        .map_err(|e| format!("could not start the server: {e}"))?;
    let shutdown = app.shutdown();
    rocket::tokio::spawn(async move {
        common::shutdown_signal().await;
        shutdown.notify();
    });

    match app.launch().await {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            ErrorKind::Bind(cause) => Err(format!(
                "could not listen on JWT2FA_BIND {}: {cause}",
                settings.bind
            )),
            _ => Err(format!("server failed: {e}")),
        },
    }
}

/// Returns an empty `404` for a path outside the API that has no file, as
/// tower-http's `ServeDir` in axum_spa does.
#[catch(404)]
fn not_found() {}

/// CORS for the origins in `JWT2FA_CORS_ORIGINS`, with the headers that
/// tower-http's `CorsLayer` in axum_spa sends for the same settings.
///
/// Like that layer, it treats every `OPTIONS` request as a preflight and
/// responds to it with an empty `200`.
struct Cors {
    origins: Vec<String>,
}

/// The request headers a preflight response depends on.
const VARY: &str = "origin, access-control-request-method, access-control-request-headers";

#[rocket::async_trait]
impl Fairing for Cors {
    fn info(&self) -> Info {
        Info {
            name: "CORS",
            kind: Kind::Response,
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let allowed_origin = req
            .headers()
            .get_one("Origin")
            .filter(|origin| self.origins.iter().any(|allowed| allowed == origin))
            .map(str::to_owned);

        if req.method() == Method::Options {
            let mut preflight = Response::new();
            preflight.set_header(Header::new("Vary", VARY));
            preflight.set_header(Header::new(
                "Access-Control-Allow-Methods",
                "GET,POST,PUT,PATCH",
            ));
            preflight.set_header(Header::new(
                "Access-Control-Allow-Headers",
                "authorization,content-type",
            ));
            if let Some(origin) = allowed_origin {
                preflight.set_header(Header::new("Access-Control-Allow-Origin", origin));
            }
            *res = preflight;
            return;
        }

        res.adjoin_header(Header::new("Vary", VARY));
        if let Some(origin) = allowed_origin {
            res.set_header(Header::new("Access-Control-Allow-Origin", origin));
        }
        res.set_header(Header::new(
            "Access-Control-Expose-Headers",
            "retry-after,www-authenticate",
        ));
    }
}
