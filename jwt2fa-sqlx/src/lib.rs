//! SQL storage for jwt2fa: one implementation of [`jwt2fa_core::Store`] per
//! backend, on sqlx 0.8.
//!
//! | feature | store | URL schemes |
//! |---|---|---|
//! | `sqlite` (default) | [`SqliteStore`] | `sqlite:` |
//! | `postgres` | [`PgStore`] | `postgres:`, `postgresql:` |
//! | `mysql` | [`MySqlStore`] | `mysql:`, `mariadb:` |
//!
//! [`open`] picks the backend from a `DATABASE_URL`, connects and runs the
//! migrations. Each store can also be built on a pool the application
//! already has, with `new(pool)`, followed by `migrate()`.
//!
//! ```no_run
//! # async fn example() -> Result<(), jwt2fa_sqlx::OpenError> {
//! let store = jwt2fa_sqlx::open("sqlite:jwt2fa.db").await?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! # Migrations
//!
//! Each backend has its own embedded migration set. Applied versions are
//! recorded in the table `jwt2fa_migrations` with the SHA-384 checksum of
//! their SQL, never in sqlx's `_sqlx_migrations`, so the application's own
//! migrations never collide with these. Concurrent migrators wait for each
//! other: SQLite through its write lock, PostgreSQL through a transaction
//! advisory lock, MySQL through `GET_LOCK`. Each migration runs in its own
//! transaction, but MySQL commits DDL implicitly, so a migration that fails
//! there half way stays half applied and needs manual repair. A database
//! that has a version this crate does not ship, or a shipped version whose
//! SQL changed, is rejected with a [`MigrateError`].
//!
//! # Schema
//!
//! Tables are prefixed `jwt2fa_`: `users`, `verification_codes`,
//! `refresh_families`, `refresh_tokens` and `counters`. Times are unix
//! seconds (`BIGINT`), so sub-second parts of the times given to the store
//! are dropped. The normalized username and email keys are unique and
//! compare byte for byte on every backend: the caller folds case.
//!
//! # Atomicity
//!
//! Each operation that a race could break is one statement or one
//! transaction, so concurrent app instances on one database stay correct.
//! SQLite write transactions start with `BEGIN IMMEDIATE`, so they queue on
//! the database lock (up to the busy timeout) instead of failing when a
//! reader upgrades. PostgreSQL and MySQL transactions that hit a deadlock
//! or a serialization failure are retried a few times.
//!
//! # TLS
//!
//! The crate enables no TLS backend of sqlx. An application that reaches
//! PostgreSQL or MySQL over TLS enables one on its own `sqlx` dependency,
//! for example `sqlx = { version = "0.8", features = ["tls-rustls-ring-webpki"] }`;
//! cargo unifies the features.

#![forbid(unsafe_code)]

use std::sync::Arc;

use jwt2fa_core::Store;

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod common;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Name of the table that records the applied migrations of this crate.
pub const MIGRATIONS_TABLE: &str = "jwt2fa_migrations";

/// Failure to open a store from a URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL's scheme names no backend of this crate.
    #[error(
        "unsupported database URL scheme {scheme:?}: expected sqlite, postgres, postgresql, mysql or mariadb"
    )]
    UnknownScheme {
        /// The scheme as given, or `""` when the URL has none. A scheme
        /// that is not valid URL syntax is replaced by a placeholder, so
        /// that a mistyped secret is not echoed.
        scheme: String,
    },
    /// The URL names a backend whose cargo feature is off.
    #[error(
        "database URL scheme {scheme:?} needs the `{feature}` feature of jwt2fa-sqlx, which is not enabled"
    )]
    BackendDisabled {
        /// The scheme as given.
        scheme: String,
        /// The feature that would enable the backend.
        feature: &'static str,
    },
    /// sqlx could not parse the URL.
    #[error("invalid database URL {url}")]
    InvalidUrl {
        /// The URL with its password replaced by `***`.
        url: String,
        /// The parse error.
        #[source]
        source: sqlx::Error,
    },
    /// Connecting to the database failed.
    #[error("could not connect to {url}")]
    Connect {
        /// The URL with its password replaced by `***`.
        url: String,
        /// The connection error.
        #[source]
        source: sqlx::Error,
    },
    /// Running the migrations failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// Failure to bring the schema up to date.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A query of the migration runner or of a migration failed.
    #[error("migration failed: {context}")]
    Database {
        /// The runner step that failed.
        context: String,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
    /// An applied migration's recorded checksum differs from the shipped
    /// SQL: the migration was edited after it ran.
    #[error("migration {version} was applied with different SQL than this version of jwt2fa-sqlx ships (checksum mismatch)")]
    ChecksumMismatch {
        /// The migration version.
        version: i64,
    },
    /// The database has a migration that this version does not ship, so a
    /// newer version of jwt2fa-sqlx migrated it.
    #[error("the database has migration {version}, which this version of jwt2fa-sqlx does not know; it was migrated by a newer version")]
    UnknownVersion {
        /// The migration version.
        version: i64,
    },
    /// Another process held the migration lock for too long.
    #[error("timed out waiting for the migration lock held by another process")]
    LockTimeout,
}

/// Opens a store from a database URL: picks the backend by scheme,
/// connects, and runs the migrations.
///
/// Schemes: `sqlite:` (feature `sqlite`), `postgres:` and `postgresql:`
/// (feature `postgres`), `mysql:` and `mariadb:` (feature `mysql`). SQLite
/// creates the file when it is missing; see [`SqliteStore::connect`] for its
/// settings.
///
/// # Errors
///
/// [`OpenError::UnknownScheme`] for any other scheme,
/// [`OpenError::BackendDisabled`] when the backend's feature is off, and
/// the connection and migration errors of the backend.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, OpenError> {
    let scheme = url_scheme(url);
    match scheme.as_str() {
        "sqlite" => open_sqlite(url, scheme).await,
        "postgres" | "postgresql" => open_postgres(url, scheme).await,
        "mysql" | "mariadb" => open_mysql(url, scheme).await,
        _ => Err(OpenError::UnknownScheme { scheme }),
    }
}

/// Returns the lowercased scheme of `url`, `""` when it has none, or a
/// placeholder when the text before the first `:` is not a valid scheme
/// (it could be part of a secret).
fn url_scheme(url: &str) -> String {
    let Some((scheme, _)) = url.split_once(':') else {
        return String::new();
    };
    let valid = scheme.len() <= 32
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid {
        scheme.to_ascii_lowercase()
    } else {
        "(not a URL scheme)".to_owned()
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str, _scheme: String) -> Result<Arc<dyn Store>, OpenError> {
    let store = SqliteStore::connect(url).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_url: &str, scheme: String) -> Result<Arc<dyn Store>, OpenError> {
    Err(OpenError::BackendDisabled {
        scheme,
        feature: "sqlite",
    })
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, _scheme: String) -> Result<Arc<dyn Store>, OpenError> {
    let store = PgStore::connect(url).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str, scheme: String) -> Result<Arc<dyn Store>, OpenError> {
    Err(OpenError::BackendDisabled {
        scheme,
        feature: "postgres",
    })
}

#[cfg(feature = "mysql")]
async fn open_mysql(url: &str, _scheme: String) -> Result<Arc<dyn Store>, OpenError> {
    let store = MySqlStore::connect(url).await?;
    store.migrate().await?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "mysql"))]
async fn open_mysql(_url: &str, scheme: String) -> Result<Arc<dyn Store>, OpenError> {
    Err(OpenError::BackendDisabled {
        scheme,
        feature: "mysql",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_is_lowercased_and_checked() {
        assert_eq!(url_scheme("SQLite:data.db"), "sqlite");
        assert_eq!(url_scheme("postgresql://u:p@h/db"), "postgresql");
        assert_eq!(url_scheme("data.db"), "");
        assert_eq!(url_scheme("hunter2 secret:x"), "(not a URL scheme)");
        assert_eq!(url_scheme("2fa:x"), "(not a URL scheme)");
    }
}
