//! Settings and service set-up shared by the axum and rocket examples.
//!
//! Only the examples read environment variables; the library crates take
//! every setting through `AuthConfig`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use jwt2fa_core::{Auth, AuthConfig, ConsoleMailer, Mailer, Secret, SmtpMailer};
use rand::RngCore;

/// Database used when `DATABASE_URL` is not set: a SQLite file in the
/// working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://jwt2fa.sqlite3";
/// Address used when `JWT2FA_BIND` is not set.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// Sender used when `JWT2FA_MAIL_FROM` is not set.
pub const DEFAULT_MAIL_FROM: &str = "jwt2fa <no-reply@localhost>";
/// How often expired codes, tokens and counters are deleted.
pub const PURGE_PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

/// Settings read from the environment.
pub struct Settings {
    pub database_url: String,
    pub secret: Option<Secret>,
    pub smtp_url: Option<String>,
    pub bind: SocketAddr,
    pub cors_origins: Vec<String>,
    pub mail_from: String,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    pub trusted_proxies: Vec<IpAddr>,
    pub client_limits: bool,
}

fn var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

fn seconds(name: &str, default: i64) -> Result<i64, String> {
    let Some(value) = var(name)? else {
        return Ok(default);
    };
    match value.trim().parse::<i64>() {
        Ok(seconds) if seconds > 0 => Ok(seconds),
        _ => Err(format!(
            "{name}={value:?} is invalid: expected a whole number of seconds greater than 0"
        )),
    }
}

impl Settings {
    /// Reads the settings. The error names the variable and what it expects.
    pub fn from_env() -> Result<Self, String> {
        let database_url = var("DATABASE_URL")?.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let scheme = database_url.split(':').next().unwrap_or_default();
        if !matches!(
            scheme,
            "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb"
        ) {
            return Err(format!(
                "DATABASE_URL has the unsupported scheme {scheme:?}: expected sqlite://FILE, postgres://… or mysql://…"
            ));
        }

        let secret = match var("JWT2FA_SECRET")? {
            Some(value) if value.len() < jwt2fa_core::MIN_SECRET_BYTES => {
                return Err(format!(
                    "JWT2FA_SECRET is too short ({} bytes): expected at least {} bytes, such as the output of `openssl rand -hex 32`",
                    value.len(),
                    jwt2fa_core::MIN_SECRET_BYTES
                ));
            }
            other => other.map(Secret::new),
        };

        let smtp_url = var("SMTP_URL")?;
        if let Some(url) = &smtp_url {
            SmtpMailer::from_url(url).map_err(|e| {
                format!("SMTP_URL is invalid ({e}): expected smtp://HOST:PORT, smtp://HOST:PORT?tls=required or smtps://USER:PASSWORD@HOST:PORT")
            })?;
        }

        let bind_text = var("JWT2FA_BIND")?.unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_text.parse::<SocketAddr>().map_err(|_| {
            format!(
                "JWT2FA_BIND={bind_text:?} is invalid: expected IP:PORT, such as 127.0.0.1:8000"
            )
        })?;

        let mut cors_origins = Vec::new();
        for origin in var("JWT2FA_CORS_ORIGINS")?.unwrap_or_default().split(',') {
            let origin = origin.trim();
            if origin.is_empty() {
                continue;
            }
            let valid = url::Url::parse(origin).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.path() == "/"
                    && !origin.ends_with('/')
                    && url.query().is_none()
            });
            if !valid {
                return Err(format!(
                    "JWT2FA_CORS_ORIGINS contains {origin:?}: expected comma-separated origins such as http://localhost:5173 (scheme, host and optional port, no path)"
                ));
            }
            cors_origins.push(origin.to_owned());
        }

        let mail_from = var("JWT2FA_MAIL_FROM")?.unwrap_or_else(|| DEFAULT_MAIL_FROM.to_owned());
        if !jwt2fa_core::validate::is_valid_mailbox(&mail_from) {
            return Err(format!(
                "JWT2FA_MAIL_FROM={mail_from:?} is invalid: expected an address such as no-reply@example.com or \"Name <no-reply@example.com>\""
            ));
        }

        let mut trusted_proxies = Vec::new();
        for proxy in var("JWT2FA_TRUSTED_PROXIES")?
            .unwrap_or_default()
            .split(',')
        {
            let proxy = proxy.trim();
            if proxy.is_empty() {
                continue;
            }
            let address = proxy.parse::<IpAddr>().map_err(|_| {
                format!("JWT2FA_TRUSTED_PROXIES contains {proxy:?}: expected comma-separated IP addresses")
            })?;
            trusted_proxies.push(address);
        }

        let client_limits = match var("JWT2FA_CLIENT_LIMITS")?.as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(format!(
                    "JWT2FA_CLIENT_LIMITS={other:?} is invalid: expected on or off"
                ));
            }
        };

        Ok(Self {
            database_url,
            secret,
            smtp_url,
            bind,
            cors_origins,
            mail_from,
            access_ttl: seconds("JWT2FA_ACCESS_TTL", 300)?,
            refresh_ttl: seconds("JWT2FA_REFRESH_TTL", 86_400)?,
            trusted_proxies,
            client_limits,
        })
    }

    /// Opens the store and builds the service. Also returns a description
    /// of the mailer for the start-up line.
    pub async fn build_auth(&self) -> Result<Auth, String> {
        let secret = match &self.secret {
            Some(secret) => secret.clone(),
            None => {
                tracing::warn!(
                    "JWT2FA_SECRET is not set: using a random key for this run, so every token dies when the server restarts"
                );
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        if self.refresh_ttl < self.access_ttl {
            tracing::warn!(
                "JWT2FA_REFRESH_TTL ({} s) is shorter than JWT2FA_ACCESS_TTL ({} s): sessions end before their first refresh",
                self.refresh_ttl,
                self.access_ttl
            );
        }
        let mut builder = AuthConfig::builder(secret);
        if !self.client_limits {
            tracing::warn!("JWT2FA_CLIENT_LIMITS=off: per-client rate limits are disabled");
            builder = builder.without_client_limits();
        }
        let config = builder
            .access_ttl(time::Duration::seconds(self.access_ttl))
            .refresh_ttl(time::Duration::seconds(self.refresh_ttl))
            .mail_from(self.mail_from.clone())
            .trusted_proxies(self.trusted_proxies.clone())
            .build()
            .map_err(|e| format!("invalid configuration: {e}"))?;

        let store = jwt2fa_sqlx::open(&self.database_url).await.map_err(|e| {
            format!(
                "could not open DATABASE_URL {}: {}",
                jwt2fa_core::redact_url(&self.database_url),
                error_chain(&e)
            )
        })?;
        let mailer: Arc<dyn Mailer> = match &self.smtp_url {
            Some(url) => Arc::new(SmtpMailer::from_url(url)?),
            None => Arc::new(ConsoleMailer),
        };
        Auth::builder(config, store)
            .mailer(mailer)
            .build()
            .map_err(|e| format!("could not start the service: {e}"))
    }

    /// Returns the database URL with any password hidden, for logs.
    pub fn database_for_log(&self) -> String {
        jwt2fa_core::redact_url(&self.database_url)
    }
}

/// Returns an error with its causes, joined by ": ", so a start-up message
/// shows the database's own reason (refused, unknown database, ...).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Sets up logging from `RUST_LOG`, or from `default_filter` when it is unset.
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colours only on a terminal, so a log written to a file stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
}

/// Returns the folder of the single-page app, whatever the working directory.
pub fn spa_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/spa")
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
