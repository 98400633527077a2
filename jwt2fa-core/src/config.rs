//! Service configuration and its builder.

use std::fmt;
use std::net::IpAddr;

use time::Duration;

use crate::secret::Secret;

/// A per-client rate limit: at most `max` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in one window.
    pub max: u32,
    /// Length of the window.
    pub window: Duration,
}

impl RateLimit {
    /// Creates a limit of `max` requests per `window`.
    pub const fn new(max: u32, window: Duration) -> Self {
        Self { max, window }
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// Returns the OWASP recommendation: m = 19456 KiB (19 MiB), t = 2, p = 1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Configuration of the [`Auth`](crate::Auth) service.
///
/// Build it with [`AuthConfig::builder`]; each setter's doc states its default.
#[derive(Clone)]
pub struct AuthConfig {
    pub(crate) secret: Secret,
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
    pub(crate) family_ttl: Duration,
    pub(crate) refresh_grace: Duration,
    pub(crate) leeway: Duration,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) code_ttl: Duration,
    pub(crate) code_max_attempts: u32,
    pub(crate) code_resend_cooldown: Duration,
    pub(crate) code_daily_sends: u32,
    pub(crate) login_free_failures: u32,
    pub(crate) login_failure_window: Duration,
    pub(crate) login_first_delay: Duration,
    pub(crate) login_max_delay: Duration,
    pub(crate) argon2: Argon2Params,
    pub(crate) hash_permits: usize,
    pub(crate) hash_wait: std::time::Duration,
    pub(crate) mail_from: String,
    pub(crate) mail_subject: String,
    pub(crate) trusted_proxies: Vec<IpAddr>,
    pub(crate) register_limit: Option<RateLimit>,
    pub(crate) send_code_limit: Option<RateLimit>,
    pub(crate) verify_limit: Option<RateLimit>,
    pub(crate) login_limit: Option<RateLimit>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("secret", &self.secret)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("family_ttl", &self.family_ttl)
            .field("argon2", &self.argon2)
            .field("hash_permits", &self.hash_permits)
            .finish_non_exhaustive()
    }
}

/// The configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The secret is shorter than 32 bytes.
    #[error("the secret must be at least 32 bytes long, got {0} bytes")]
    SecretTooShort(usize),
    /// A value is out of its range.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// The expected form or range.
        reason: String,
    },
}

/// Minimum length of the secret in bytes (the HS256 key size).
pub const MIN_SECRET_BYTES: usize = 32;

impl AuthConfig {
    /// Starts a builder with the secret that signs tokens (HS256, its UTF-8
    /// bytes as given) and from which the code-hashing key is derived. It
    /// must be at least 32 bytes long.
    pub fn builder(secret: impl Into<Secret>) -> AuthConfigBuilder {
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        AuthConfigBuilder {
            config: AuthConfig {
                secret: secret.into(),
                access_ttl: Duration::minutes(5),
                refresh_ttl: Duration::days(1),
                family_ttl: Duration::days(30),
                refresh_grace: Duration::seconds(10),
                leeway: Duration::ZERO,
                issuer: None,
                audience: None,
                code_ttl: Duration::minutes(10),
                code_max_attempts: 5,
                code_resend_cooldown: Duration::seconds(60),
                code_daily_sends: 10,
                login_free_failures: 5,
                login_failure_window: Duration::minutes(15),
                login_first_delay: Duration::seconds(1),
                login_max_delay: Duration::minutes(15),
                argon2: Argon2Params::default(),
                hash_permits: parallelism,
                hash_wait: std::time::Duration::from_secs(5),
                mail_from: "jwt2fa <no-reply@localhost>".to_owned(),
                mail_subject: "Your verification code".to_owned(),
                trusted_proxies: Vec::new(),
                register_limit: Some(RateLimit::new(20, Duration::hours(1))),
                send_code_limit: Some(RateLimit::new(30, Duration::hours(1))),
                verify_limit: Some(RateLimit::new(60, Duration::hours(1))),
                login_limit: Some(RateLimit::new(60, Duration::minutes(5))),
            },
        }
    }

    /// Returns the access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Returns the refresh-token lifetime.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// Returns the Argon2id parameters.
    pub fn argon2(&self) -> Argon2Params {
        self.argon2
    }

    /// Returns the number of password hashes that may run at once.
    pub fn hash_permits(&self) -> usize {
        self.hash_permits
    }
}

/// Builder of [`AuthConfig`].
#[derive(Debug, Clone)]
pub struct AuthConfigBuilder {
    config: AuthConfig,
}

impl AuthConfigBuilder {
    /// Sets the access-token lifetime. Default: 5 minutes.
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.config.access_ttl = ttl;
        self
    }

    /// Sets the refresh-token lifetime; each rotation issues a token with a
    /// fresh lifetime, within the family's end. Default: 1 day.
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.config.refresh_ttl = ttl;
        self
    }

    /// Sets how long after login a refresh-token family ends, however often
    /// it is rotated. Default: 30 days.
    pub fn family_ttl(mut self, ttl: Duration) -> Self {
        self.config.family_ttl = ttl;
        self
    }

    /// Sets the grace window in which a used refresh token gets the same
    /// successor again instead of revoking its family. Default: 10 seconds.
    pub fn refresh_grace(mut self, grace: Duration) -> Self {
        self.config.refresh_grace = grace;
        self
    }

    /// Sets the leeway for `exp` and `nbf` checks, for clock skew between
    /// app instances. Default: 0 seconds.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.config.leeway = leeway;
        self
    }

    /// Sets the `iss` claim written into tokens and required when reading
    /// them. Default: none (not written, not checked).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuer = Some(issuer.into());
        self
    }

    /// Sets the `aud` claim written into tokens and required when reading
    /// them. Default: none (not written, not checked).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.config.audience = Some(audience.into());
        self
    }

    /// Sets how long a verification code stays valid. Default: 10 minutes.
    pub fn code_ttl(mut self, ttl: Duration) -> Self {
        self.config.code_ttl = ttl;
        self
    }

    /// Sets how many tries one code allows before it is dead. Default: 5.
    pub fn code_max_attempts(mut self, attempts: u32) -> Self {
        self.config.code_max_attempts = attempts;
        self
    }

    /// Sets the minimum time between two codes sent to one address; a
    /// request inside it gets the usual response and sends nothing.
    /// Default: 60 seconds.
    pub fn code_resend_cooldown(mut self, cooldown: Duration) -> Self {
        self.config.code_resend_cooldown = cooldown;
        self
    }

    /// Sets how many codes one address may receive in 24 hours.
    /// Default: 10.
    pub fn code_daily_sends(mut self, sends: u32) -> Self {
        self.config.code_daily_sends = sends;
        self
    }

    /// Sets how many failed logins per username are free before delays
    /// start; each further failure doubles the delay, starting at
    /// [`login_first_delay`](Self::login_first_delay), up to
    /// [`login_max_delay`](Self::login_max_delay). Default: 5.
    pub fn login_free_failures(mut self, failures: u32) -> Self {
        self.config.login_free_failures = failures;
        self
    }

    /// Sets the window over which failed logins of a username are counted.
    /// Default: 15 minutes.
    pub fn login_failure_window(mut self, window: Duration) -> Self {
        self.config.login_failure_window = window;
        self
    }

    /// Sets the delay after the first failed login past the free ones; each
    /// further failure doubles it. Default: 1 second.
    pub fn login_first_delay(mut self, delay: Duration) -> Self {
        self.config.login_first_delay = delay;
        self
    }

    /// Sets the longest delay between failed logins. Default: 15 minutes.
    pub fn login_max_delay(mut self, delay: Duration) -> Self {
        self.config.login_max_delay = delay;
        self
    }

    /// Sets the Argon2id parameters for new hashes. Default: the OWASP
    /// recommendation, m = 19456 KiB, t = 2, p = 1.
    pub fn argon2(mut self, params: Argon2Params) -> Self {
        self.config.argon2 = params;
        self
    }

    /// Sets how many password hashes may run at once. Default: the number
    /// of CPUs.
    pub fn hash_permits(mut self, permits: usize) -> Self {
        self.config.hash_permits = permits;
        self
    }

    /// Sets how long a request waits for a hashing slot before it gets 503
    /// with `Retry-After`. Default: 5 seconds.
    pub fn hash_wait(mut self, wait: std::time::Duration) -> Self {
        self.config.hash_wait = wait;
        self
    }

    /// Sets the sender of verification mail. Default:
    /// `jwt2fa <no-reply@localhost>`.
    pub fn mail_from(mut self, from: impl Into<String>) -> Self {
        self.config.mail_from = from.into();
        self
    }

    /// Sets the subject of verification mail. Default:
    /// `Your verification code`.
    pub fn mail_subject(mut self, subject: impl Into<String>) -> Self {
        self.config.mail_subject = subject.into();
        self
    }

    /// Sets the proxies whose `X-Forwarded-For` header is believed when
    /// finding the client address for rate limits. Default: none, so the
    /// peer address of the connection is used.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        self.config.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// Sets the per-client limit on registrations, or `None` for no limit.
    /// Default: 20 per hour.
    pub fn register_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.register_limit = limit;
        self
    }

    /// Sets the per-client limit on code requests, or `None` for no limit.
    /// Default: 30 per hour.
    pub fn send_code_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.send_code_limit = limit;
        self
    }

    /// Sets the per-client limit on code checks, or `None` for no limit.
    /// Default: 60 per hour.
    pub fn verify_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.verify_limit = limit;
        self
    }

    /// Sets the per-client limit on login attempts, or `None` for no limit.
    /// Default: 60 per 5 minutes.
    pub fn login_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.login_limit = limit;
        self
    }

    /// Sets every per-client limit to `None`, for tests that send many
    /// requests from one address.
    pub fn without_client_limits(self) -> Self {
        self.register_limit(None)
            .send_code_limit(None)
            .verify_limit(None)
            .login_limit(None)
    }

    /// Checks the settings and returns the configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError::SecretTooShort`] for a secret under 32 bytes, and
    /// [`ConfigError::Invalid`] for a zero lifetime, zero permits or zero
    /// tries.
    pub fn build(self) -> Result<AuthConfig, ConfigError> {
        let config = self.config;
        let secret_len = config.secret.expose_secret().len();
        if secret_len < MIN_SECRET_BYTES {
            return Err(ConfigError::SecretTooShort(secret_len));
        }
        let positive = [
            ("access_ttl", config.access_ttl),
            ("refresh_ttl", config.refresh_ttl),
            ("family_ttl", config.family_ttl),
            ("code_ttl", config.code_ttl),
        ];
        for (name, value) in positive {
            if value <= Duration::ZERO {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be positive".to_owned(),
                });
            }
        }
        if config.hash_permits == 0 {
            return Err(ConfigError::Invalid {
                name: "hash_permits",
                reason: "must be at least 1".to_owned(),
            });
        }
        if config.code_max_attempts == 0 {
            return Err(ConfigError::Invalid {
                name: "code_max_attempts",
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secret_is_rejected() {
        let error = AuthConfig::builder("too short").build().unwrap_err();
        assert_eq!(error, ConfigError::SecretTooShort(9));
    }

    #[test]
    fn defaults_match_docs() {
        let config = AuthConfig::builder("0123456789abcdef0123456789abcdef")
            .build()
            .unwrap();
        assert_eq!(config.access_ttl, Duration::minutes(5));
        assert_eq!(config.refresh_ttl, Duration::days(1));
        assert_eq!(config.code_ttl, Duration::minutes(10));
        assert_eq!(config.code_max_attempts, 5);
        assert_eq!(config.argon2, Argon2Params::default());
    }
}
