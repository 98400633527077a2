//! Argon2id password hashing on the blocking pool, with a bounded number of
//! hashes in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::{Argon2Params, AuthConfig};
use crate::error::AuthError;
use crate::secret::Secret;

/// Stored hashes above these bounds are not run: a login against them
/// fails, so a tampered row cannot make the server spend minutes or
/// gigabytes on one request.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ITERATIONS: u32 = 10;
const MAX_PARALLELISM: u32 = 8;

/// `Retry-After` seconds sent when every hashing slot stays busy.
const BUSY_RETRY_AFTER: u64 = 1;

/// Result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified {
    pub matches: bool,
    /// The stored hash uses weaker parameters than the policy and should be
    /// replaced now that the password is known.
    pub needs_rehash: bool,
}

pub(crate) struct Hasher {
    params: Argon2Params,
    permits: Arc<Semaphore>,
    wait: std::time::Duration,
    dummy_hash: String,
    verifications: AtomicU64,
}

fn argon2(params: Argon2Params) -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| AuthError::Internal(format!("invalid Argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(params: Argon2Params, password: &Secret) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2(params)?
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Internal(format!("Argon2 hashing failed: {e}")))
}

/// Parameters of a PHC string, when it is an Argon2 hash within bounds.
fn stored_params(hash: &PasswordHash<'_>) -> Option<(Algorithm, Argon2Params)> {
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let params = Params::try_from(hash).ok()?;
    let params = Argon2Params {
        memory_kib: params.m_cost(),
        iterations: params.t_cost(),
        parallelism: params.p_cost(),
    };
    let within_bounds = params.memory_kib <= MAX_MEMORY_KIB
        && params.iterations <= MAX_ITERATIONS
        && params.parallelism <= MAX_PARALLELISM;
    within_bounds.then_some((algorithm, params))
}

fn verify_blocking(policy: Argon2Params, password: &Secret, stored: &str, dummy: &str) -> Verified {
    let parsed = PasswordHash::new(stored).ok();
    let checked = parsed
        .as_ref()
        .and_then(|hash| Some((hash, stored_params(hash)?)));

    let Some((hash, (algorithm, params))) = checked else {
        // Unparsable or out of bounds: spend the same work on the dummy hash
        // so that this path takes as long as a wrong password.
        if let Ok(dummy) = PasswordHash::new(dummy) {
            let _ = Argon2::default().verify_password(password.expose_secret().as_bytes(), &dummy);
        }
        return Verified {
            matches: false,
            needs_rehash: false,
        };
    };

    let matches = Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), hash)
        .is_ok();
    let needs_rehash = algorithm != Algorithm::Argon2id
        || params.memory_kib < policy.memory_kib
        || params.iterations < policy.iterations
        || params.parallelism < policy.parallelism;
    Verified {
        matches,
        needs_rehash,
    }
}

impl Hasher {
    /// Creates the hasher and its dummy hash, which costs one hash now.
    pub(crate) fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let dummy_hash = hash_blocking(
            config.argon2,
            &Secret::new("jwt2fa dummy password for unknown users"),
        )?;
        Ok(Self {
            params: config.argon2,
            permits: Arc::new(Semaphore::new(config.hash_permits)),
            wait: config.hash_wait,
            dummy_hash,
            verifications: AtomicU64::new(0),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| AuthError::Busy {
                retry_after: BUSY_RETRY_AFTER,
            })?
            .map_err(|_| AuthError::Internal("hashing semaphore closed".to_owned()))?;
        let result = tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))?;
        Ok(result)
    }

    /// Hashes a new password with the policy's parameters.
    pub(crate) async fn hash(&self, password: Secret) -> Result<String, AuthError> {
        let params = self.params;
        self.run(move || hash_blocking(params, &password)).await?
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when `stored` is `None`, so every path runs one Argon2 verification.
    pub(crate) async fn verify(
        &self,
        password: Secret,
        stored: Option<String>,
    ) -> Result<Verified, AuthError> {
        let policy = self.params;
        let dummy = self.dummy_hash.clone();
        let has_user = stored.is_some();
        let stored = stored.unwrap_or_else(|| dummy.clone());
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verified = self
            .run(move || verify_blocking(policy, &password, &stored, &dummy))
            .await?;
        Ok(Verified {
            matches: verified.matches && has_user,
            needs_rehash: verified.needs_rehash && has_user,
        })
    }

    /// Returns how many password verifications ran since start.
    pub(crate) fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig::builder("0123456789abcdef0123456789abcdef")
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = Hasher::new(&config()).unwrap();
        let hash = hasher.hash(Secret::new("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let right = hasher
            .verify(Secret::new("correct horse"), Some(hash.clone()))
            .await
            .unwrap();
        assert!(right.matches);
        assert!(!right.needs_rehash);
        let wrong = hasher
            .verify(Secret::new("wrong"), Some(hash))
            .await
            .unwrap();
        assert!(!wrong.matches);
    }

    #[tokio::test]
    async fn weak_hash_needs_rehash() {
        let weak = Argon2Params {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        };
        let hash = hash_blocking(weak, &Secret::new("pw")).unwrap();
        let hasher = Hasher::new(&config()).unwrap();
        let verified = hasher.verify(Secret::new("pw"), Some(hash)).await.unwrap();
        assert!(verified.matches);
        assert!(verified.needs_rehash);
    }

    #[tokio::test]
    async fn oversized_parameters_are_not_run() {
        let hasher = Hasher::new(&config()).unwrap();
        let huge = "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$Rq7w6Pq3z0R2VbXq5yQdJw";
        let verified = hasher
            .verify(Secret::new("pw"), Some(huge.to_owned()))
            .await
            .unwrap();
        assert!(!verified.matches);
    }

    #[tokio::test]
    async fn saturated_pool_returns_busy() {
        let config = AuthConfig::builder("0123456789abcdef0123456789abcdef")
            .hash_permits(1)
            .hash_wait(std::time::Duration::from_millis(1))
            .build()
            .unwrap();
        let hasher = Arc::new(Hasher::new(&config).unwrap());
        let held = hasher.permits.clone().acquire_owned().await.unwrap();
        let result = hasher.hash(Secret::new("pw")).await;
        assert!(matches!(result, Err(AuthError::Busy { retry_after: 1 })));
        drop(held);
        assert!(hasher.hash(Secret::new("pw")).await.is_ok());
    }
}
