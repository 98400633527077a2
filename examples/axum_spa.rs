//! The whole account flow on axum, with the single-page app at `/` and the
//! API under `/api/users/`.
//!
//! ```text
//! cargo run --example axum_spa
//! ```
//!
//! Settings come from the environment; README.md lists them. With none set
//! it uses a SQLite file in the working directory and prints each email to
//! the console.

use std::net::SocketAddr;

use axum::http::{header, HeaderValue, Method};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() {
    common::init_tracing("info");
    if let Err(e) = run().await {
        eprintln!("axum_spa: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let settings = common::Settings::from_env()?;
    let auth = settings.build_auth().await?;
    auth.spawn_purge_task(common::PURGE_PERIOD);

    let mut app = Router::new()
        .merge(jwt2fa_axum::router(auth.clone()))
        .fallback_service(ServeDir::new(common::spa_dir()));
    if !settings.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = settings
            .cors_origins
            .iter()
            .filter_map(|origin| HeaderValue::from_str(origin).ok())
            .collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE]),
        );
    }
    let app = app.layer(TraceLayer::new_for_http());

    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|e| format!("could not listen on JWT2FA_BIND {}: {e}", settings.bind))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("could not read the listening address: {e}"))?;
    tracing::info!(
        "axum_spa listening on http://{address}/ (database: {}, mailer: {})",
        settings.database_for_log(),
        auth.mailer_description()
    );

    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(common::shutdown_signal())
    .await
    .map_err(|e| format!("server failed: {e}"))
}
