//! The framework-neutral core of jwt2fa: the JWT account flow with
//! email-code verification.
//!
//! [`Auth`] is the service. It runs register, send code, verify, login,
//! refresh (rotation with reuse detection), logout, profile and password
//! change over a [`Store`] and a [`Mailer`], and [`Auth::handle`] serves the
//! whole HTTP contract from framework-neutral requests, which the axum and
//! rocket adapters call.
//!
//! ```
//! use std::sync::Arc;
//! use jwt2fa_core::{Auth, AuthConfig, MemoryMailer, MemoryStore, Registration, Secret};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), jwt2fa_core::AuthError> {
//! let config = AuthConfig::builder("an example secret of at least 32 bytes")
//!     .build()
//!     .expect("valid configuration");
//! let mailer = MemoryMailer::new();
//! let auth = Auth::builder(config, Arc::new(MemoryStore::new()))
//!     .mailer(Arc::new(mailer.clone()))
//!     .build()?;
//!
//! let user = auth
//!     .register(Registration {
//!         username: "ana".into(),
//!         email: "ana@example.com".into(),
//!         password: Secret::new("tulip-Orbit-9-quarry"),
//!     })
//!     .await?;
//! assert!(!user.is_verified);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `smtp` (default): [`SmtpMailer`], through lettre with tokio and rustls.
//! - `testing`: the storage conformance suite in [`testing`], for store
//!   implementations.

#![forbid(unsafe_code)]

mod clock;
mod codes;
mod config;
mod error;
pub mod http;
mod mailer;
mod memory;
mod password;
mod secret;
mod service;
pub mod store;
mod tokens;
pub mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Argon2Params, AuthConfig, AuthConfigBuilder, ConfigError, RateLimit, MIN_SECRET_BYTES,
};
pub use error::{ApiResponse, AuthError, FieldErrors, StoreError};
pub use http::{ApiRequest, Endpoint, DEFAULT_PREFIX, MAX_BODY_BYTES, MAX_DRAINED_BODY_BYTES};
#[cfg(feature = "smtp")]
pub use mailer::SmtpMailer;
pub use mailer::{
    find_code, redact_url, ConsoleMailer, EmailMessage, MailError, Mailer, MemoryMailer,
};
pub use memory::MemoryStore;
pub use secret::Secret;
pub use service::{
    Auth, AuthBuilder, AuthenticatedUser, Profile, PurgeReport, RegisteredUser, Registration,
};
pub use store::Store;
pub use tokens::{Claims, TokenPair, TokenType};
