//! Storage traits, split by concern, and the records they exchange.
//!
//! Every trait is object safe and used as `Arc<dyn Store>`. Not-found is
//! `Ok(None)` (or `false`); `Err` means only that the infrastructure failed.
//! Each operation that a race could break is one atomic call, so the
//! database settles races, never process memory.

use std::fmt;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::error::StoreError;

/// Result type of every store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user account as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Primary key.
    pub id: i64,
    /// Username as entered (NFKC normalized, case kept).
    pub username: String,
    /// Email as entered (case kept).
    pub email: String,
    /// The PHC string of the Argon2id password hash.
    pub password_hash: String,
    /// Whether the email was verified with a code.
    pub is_verified: bool,
    /// Whether the account may log in. Deactivated accounts cannot.
    pub is_active: bool,
    /// Free text shown on the profile, `""` when unset.
    pub bio: String,
    /// Absolute http(s) URL of an avatar image, `""` when unset.
    pub avatar: String,
    /// Creation time.
    pub date_joined: OffsetDateTime,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash and the email stay out of logs.
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("is_verified", &self.is_verified)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

/// A user to create.
#[derive(Clone)]
pub struct NewUser {
    /// Username as entered (NFKC normalized, case kept).
    pub username: String,
    /// Unique key of the username: NFKC and case folded.
    pub username_key: String,
    /// Email as entered.
    pub email: String,
    /// Unique key of the email: lowercased.
    pub email_key: String,
    /// The PHC string of the password hash.
    pub password_hash: String,
    /// Creation time.
    pub date_joined: OffsetDateTime,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser").finish_non_exhaustive()
    }
}

/// Outcome of [`UserStore::create_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateUser {
    /// The user was created.
    Created(UserRecord),
    /// Another user has the same normalized username.
    UsernameTaken,
    /// Another user has the same normalized email.
    EmailTaken,
}

/// Fields of a profile update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    /// New bio.
    pub bio: Option<String>,
    /// New avatar URL.
    pub avatar: Option<String>,
}

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user unless its username key or email key is taken, in one
    /// atomic step (the database's unique constraints decide).
    async fn create_user(&self, user: NewUser) -> StoreResult<CreateUser>;
    /// Finds a user by id.
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<UserRecord>>;
    /// Finds a user by normalized username.
    async fn user_by_username_key(&self, username_key: &str) -> StoreResult<Option<UserRecord>>;
    /// Finds a user by normalized email.
    async fn user_by_email_key(&self, email_key: &str) -> StoreResult<Option<UserRecord>>;
    /// Marks the email verified. Returns `false` when the user is not found.
    async fn mark_verified(&self, id: i64) -> StoreResult<bool>;
    /// Applies profile changes and returns the updated user.
    async fn update_profile(
        &self,
        id: i64,
        changes: ProfileChanges,
    ) -> StoreResult<Option<UserRecord>>;
    /// Replaces the password hash. Returns `false` when the user is not found.
    async fn set_password_hash(&self, id: i64, password_hash: &str) -> StoreResult<bool>;
    /// Activates or deactivates a user. Returns `false` when not found.
    async fn set_active(&self, id: i64, active: bool) -> StoreResult<bool>;
    /// Deletes a user with its codes and refresh tokens. Returns `false`
    /// when not found.
    async fn delete_user(&self, id: i64) -> StoreResult<bool>;
}

/// What a verification code is for. A code checks only for its purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodePurpose {
    /// Verifying the email address after registration.
    VerifyEmail,
}

impl CodePurpose {
    /// Returns the stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
        }
    }
}

/// A verification code as stored: only its keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// The user the code belongs to.
    pub user_id: i64,
    /// The purpose of the code.
    pub purpose: CodePurpose,
    /// HMAC-SHA-256 of the code, bound to user and purpose.
    pub code_hash: Vec<u8>,
    /// Issue time.
    pub created_at: OffsetDateTime,
    /// The code is dead at and after this time.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for CodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeRecord")
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Outcome of [`CodeStore::check_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code matched and is now consumed.
    Accepted,
    /// The code did not match; one try was counted.
    Rejected,
    /// There is no live code: none issued, expired, consumed or out of tries.
    NoLiveCode,
}

/// Verification codes, at most one live code per user and purpose.
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a code, replacing any earlier code of the same user and
    /// purpose, with its try count at zero.
    async fn put_code(&self, code: CodeRecord) -> StoreResult<()>;
    /// Counts one try and then compares, in one atomic step: when the code
    /// is live and has fewer than `max_attempts` tries counted, the try is
    /// counted, and a matching hash consumes the code. At most one caller
    /// ever gets `Accepted` for a code.
    async fn check_code(
        &self,
        user_id: i64,
        purpose: CodePurpose,
        code_hash: &[u8],
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> StoreResult<CodeCheck>;
    /// Deletes expired codes and returns how many went.
    async fn purge_expired_codes(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// A refresh token as stored. The token itself is a JWT; the store keeps
/// its `jti` and its place in the family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// The token's `jti`.
    pub jti: String,
    /// The family (one login) the token belongs to.
    pub family_id: String,
    /// The owner.
    pub user_id: i64,
    /// The token's `iat`.
    pub issued_at: OffsetDateTime,
    /// The token's `exp`.
    pub expires_at: OffsetDateTime,
}

/// A refresh-token family: every token rotated from one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    /// Family id.
    pub id: String,
    /// The owner.
    pub user_id: i64,
    /// Login time.
    pub created_at: OffsetDateTime,
    /// Absolute end of the family, set at login; rotation never extends it.
    pub expires_at: OffsetDateTime,
}

/// Outcome of [`RefreshTokenStore::rotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; it is now used and `successor` is stored.
    Rotated,
    /// The token was used within the grace window: here is the successor
    /// that the first use created, to be returned again.
    Replayed(RefreshTokenRecord),
    /// The token was used before the grace window, or an older ancestor was
    /// presented: the whole family is now revoked.
    ReuseDetected {
        /// The revoked family.
        family_id: String,
        /// Its owner.
        user_id: i64,
    },
    /// Unknown token, revoked or expired family, or expired token.
    Invalid,
}

/// Refresh-token families with rotation and reuse detection.
#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Creates a family with its first token.
    async fn create_family(
        &self,
        family: RefreshFamily,
        first: RefreshTokenRecord,
    ) -> StoreResult<()>;
    /// Rotates `jti` to `successor` in one atomic step. At most one
    /// successor of a token is ever stored, whatever the concurrency.
    async fn rotate(
        &self,
        jti: &str,
        successor: RefreshTokenRecord,
        now: OffsetDateTime,
        grace: Duration,
    ) -> StoreResult<Rotation>;
    /// Finds a token whose family is live (not revoked, not past its end).
    async fn live_token(
        &self,
        jti: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<RefreshTokenRecord>>;
    /// Revokes a family. Returns `false` when it was not found or already
    /// revoked.
    async fn revoke_family(&self, family_id: &str, now: OffsetDateTime) -> StoreResult<bool>;
    /// Revokes every family of a user and returns how many were live.
    async fn revoke_user_families(&self, user_id: i64, now: OffsetDateTime) -> StoreResult<u64>;
    /// Deletes families that ended or were revoked before `now`, with their
    /// tokens, and returns how many families went.
    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// State of a fixed-window counter after a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterState {
    /// Hits in the current window, this one included.
    pub count: u32,
    /// When the current window ends and the count restarts.
    pub window_ends_at: OffsetDateTime,
    /// Time of the latest hit.
    pub last_hit_at: OffsetDateTime,
}

/// Fixed-window counters for rate limits, throttling and send caps, kept in
/// the store so that every app instance reads the same counts.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Counts one hit on `key` in one atomic step. When the window ended,
    /// the count restarts at 1 with a new window of `window`.
    async fn hit(
        &self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> StoreResult<CounterState>;
    /// Reads a counter without counting. Returns `None` when it does not
    /// exist or its window ended.
    async fn peek(&self, key: &str, now: OffsetDateTime) -> StoreResult<Option<CounterState>>;
    /// Deletes a counter.
    async fn reset(&self, key: &str) -> StoreResult<()>;
    /// Deletes counters whose window ended and returns how many went.
    async fn purge_expired_counters(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// Everything the service stores, as one object.
pub trait Store: UserStore + CodeStore + RefreshTokenStore + CounterStore + 'static {}

impl<T> Store for T where T: UserStore + CodeStore + RefreshTokenStore + CounterStore + 'static {}
