#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use jwt2fa_core as core;
pub use jwt2fa_core::{
    Auth, AuthConfig, AuthConfigBuilder, AuthError, ConsoleMailer, Mailer, MemoryMailer,
    MemoryStore, Secret, SmtpMailer, Store,
};
pub use jwt2fa_sqlx as sqlx;

#[cfg(feature = "axum")]
pub use jwt2fa_axum as axum;
#[cfg(feature = "rocket")]
pub use jwt2fa_rocket as rocket;
