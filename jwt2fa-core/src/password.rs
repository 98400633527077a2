//! Argon2id password hashing on a dedicated pool of low-priority threads,
//! one per permit, each with its own reused Argon2 memory.
//!
//! Reusing the memory keeps the resident size at about `permits x m` however
//! many logins arrive at once, because the allocator never has to find 19 MiB
//! anew. The low priority lets request handling preempt hashing, so a login
//! flood cannot starve the async executor.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{oneshot, Semaphore};

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

/// Length of a new hash's output, in bytes.
const OUTPUT_LEN: usize = 32;

/// Result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified {
    pub matches: bool,
    /// The stored hash uses weaker parameters than the policy and should be
    /// replaced now that the password is known.
    pub needs_rehash: bool,
}

/// Argon2 memory of one worker, sized for the policy's parameters.
struct Workspace {
    policy: Argon2Params,
    blocks: Vec<Block>,
}

type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

pub(crate) struct Hasher {
    permits: Arc<Semaphore>,
    wait: std::time::Duration,
    jobs: mpsc::Sender<Job>,
    dummy_hash: Arc<str>,
    verifications: AtomicU64,
}

fn params(params: Argon2Params, output_len: usize) -> Result<Params, AuthError> {
    Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(output_len),
    )
    .map_err(|e| AuthError::Internal(format!("invalid Argon2 parameters: {e}")))
}

impl Workspace {
    fn new(policy: Argon2Params) -> Result<Self, AuthError> {
        let count = params(policy, OUTPUT_LEN)?.block_count();
        Ok(Self {
            policy,
            blocks: vec![Block::default(); count],
        })
    }

    /// Runs Argon2 into `out`, in the reused memory when it is large enough
    /// and in a temporary buffer otherwise (stored hashes with other
    /// parameters).
    fn hash_into(
        &mut self,
        argon2: &Argon2<'_>,
        params: &Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        if params.block_count() <= self.blocks.len() {
            argon2.hash_password_into_with_memory(password, salt, out, &mut self.blocks)
        } else {
            let mut blocks = vec![Block::default(); params.block_count()];
            argon2.hash_password_into_with_memory(password, salt, out, &mut blocks)
        }
    }

    /// Hashes a password with the policy's parameters into a PHC string.
    fn hash(&mut self, password: &Secret) -> Result<String, AuthError> {
        let policy = self.policy;
        let params = params(policy, OUTPUT_LEN)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|e| AuthError::Internal(format!("salt encoding failed: {e}")))?;
        let mut out = [0u8; OUTPUT_LEN];
        self.hash_into(
            &argon2,
            &params,
            password.expose_secret().as_bytes(),
            salt_bytes,
            &mut out,
        )
        .map_err(|e| AuthError::Internal(format!("Argon2 hashing failed: {e}")))?;
        let output = Output::new(&out)
            .map_err(|e| AuthError::Internal(format!("hash encoding failed: {e}")))?;
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            policy.memory_kib,
            policy.iterations,
            policy.parallelism,
            salt.as_str(),
            output
        ))
    }

    /// Checks a password against a parsed PHC string whose parameters are
    /// within bounds. Returns `None` when the string cannot be used.
    fn check(&mut self, password: &Secret, hash: &PasswordHash<'_>) -> Option<bool> {
        let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
        let version = hash
            .version
            .map_or(Some(Version::V0x13), |v| Version::try_from(v).ok())?;
        let params = Params::try_from(hash).ok()?;
        let expected = hash.hash?;
        let salt = hash.salt?;
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).ok()?;

        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        self.hash_into(
            &argon2,
            &params,
            password.expose_secret().as_bytes(),
            salt_bytes,
            &mut out,
        )
        .ok()?;
        Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
    }

    fn verify(&mut self, password: &Secret, stored: &str, dummy: &str) -> Verified {
        let parsed = PasswordHash::new(stored).ok();
        let bounded = parsed
            .as_ref()
            .and_then(|hash| Some((hash, stored_params(hash)?)));
        let outcome = bounded.and_then(|(hash, (algorithm, params))| {
            Some((self.check(password, hash)?, algorithm, params))
        });

        let Some((matches, algorithm, params)) = outcome else {
            // Unusable or out of bounds: spend the same work on the dummy
            // hash so that this path takes as long as a wrong password.
            if let Ok(dummy) = PasswordHash::new(dummy) {
                let _ = self.check(password, &dummy);
            }
            return Verified {
                matches: false,
                needs_rehash: false,
            };
        };

        let policy = self.policy;
        let needs_rehash = algorithm != Algorithm::Argon2id
            || params.memory_kib < policy.memory_kib
            || params.iterations < policy.iterations
            || params.parallelism < policy.parallelism;
        Verified {
            matches,
            needs_rehash,
        }
    }
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

/// Lowers the calling thread's scheduling priority, so that request
/// handling wins the CPU when both want it. Failure only costs latency
/// under load, so it is logged and ignored.
fn lower_priority() {
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::debug!(error = ?e, "lowering the priority of a hashing thread failed");
    }
}

/// Starts `count` hashing threads that take jobs from one queue.
fn start_workers(count: usize, policy: Argon2Params) -> Result<mpsc::Sender<Job>, AuthError> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for index in 0..count {
        let receiver = receiver.clone();
        let mut workspace = Workspace::new(policy)?;
        std::thread::Builder::new()
            .name(format!("jwt2fa-argon2-{index}"))
            .spawn(move || {
                lower_priority();
                loop {
                    let job = {
                        let queue = receiver
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        queue.recv()
                    };
                    // The queue closes when the last `Hasher` is dropped.
                    let Ok(job) = job else { return };
                    job(&mut workspace);
                }
            })
            .map_err(|e| AuthError::Internal(format!("starting a hashing thread failed: {e}")))?;
    }
    Ok(sender)
}

impl Hasher {
    /// Starts the hashing threads and makes the dummy hash, which costs
    /// one hash now.
    pub(crate) fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let dummy_hash: Arc<str> = Workspace::new(config.argon2)?
            .hash(&Secret::new("jwt2fa dummy password for unknown users"))?
            .into();
        Ok(Self {
            permits: Arc::new(Semaphore::new(config.hash_permits)),
            wait: config.hash_wait,
            jobs: start_workers(config.hash_permits, config.argon2)?,
            dummy_hash,
            verifications: AtomicU64::new(0),
        })
    }

    /// Runs `work` on a hashing thread. The semaphore has one permit per
    /// thread, so the queue never holds more jobs than there are threads.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| AuthError::Busy {
                retry_after: BUSY_RETRY_AFTER,
            })?
            .map_err(|_| AuthError::Internal("hashing semaphore closed".to_owned()))?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |workspace| {
            let _ = done.send(work(workspace));
            drop(permit);
        });
        self.jobs
            .send(job)
            .map_err(|_| AuthError::Internal("hashing threads stopped".to_owned()))?;
        result
            .await
            .map_err(|_| AuthError::Internal("hashing job failed".to_owned()))
    }

    /// Hashes a new password with the policy's parameters.
    pub(crate) async fn hash(&self, password: Secret) -> Result<String, AuthError> {
        self.run(move |workspace| workspace.hash(&password)).await?
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when `stored` is `None`, so every path runs one Argon2 verification.
    pub(crate) async fn verify(
        &self,
        password: Secret,
        stored: Option<String>,
    ) -> Result<Verified, AuthError> {
        let dummy = Arc::clone(&self.dummy_hash);
        let has_user = stored.is_some();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verified = self
            .run(move |workspace| {
                let stored = stored.as_deref().unwrap_or(&dummy);
                workspace.verify(&password, stored, &dummy)
            })
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
        let hash = Workspace::new(weak)
            .unwrap()
            .hash(&Secret::new("pw"))
            .unwrap();
        let hasher = Hasher::new(&config()).unwrap();
        let verified = hasher.verify(Secret::new("pw"), Some(hash)).await.unwrap();
        assert!(verified.matches);
        assert!(verified.needs_rehash);
    }

    #[tokio::test]
    async fn oversized_parameters_are_not_run() {
        let hasher = Hasher::new(&config()).unwrap();
        let huge = "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$Rq7w6Pq3z0R2VbXq5yQdJw";
        // Running these parameters would take 4 GiB; the test finishing at
        // all shows they were not run.
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

#[cfg(test)]
mod compatibility {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    #[test]
    fn hashes_match_the_argon2_crate() {
        let policy = Argon2Params::default();
        let mut workspace = Workspace::new(policy).unwrap();

        let ours = workspace.hash(&Secret::new("correct horse")).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());

        let params = Params::new(
            policy.memory_kib,
            policy.iterations,
            policy.parallelism,
            None,
        )
        .unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(
                b"correct horse",
                &SaltString::generate(&mut rand::rngs::OsRng),
            )
            .unwrap()
            .to_string();
        let verified = workspace.verify(&Secret::new("correct horse"), &theirs, &ours);
        assert!(verified.matches);
        let wrong = workspace.verify(&Secret::new("wrong horse"), &theirs, &ours);
        assert!(!wrong.matches);
    }
}
