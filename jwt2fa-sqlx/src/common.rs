//! Pieces shared by the backends: time conversion, row types, error
//! helpers, the rotation decision and the migration bookkeeping.

use std::future::Future;

use jwt2fa_core::store::{CounterState, RefreshTokenRecord, StoreResult, UserRecord};
use jwt2fa_core::StoreError;
use sqlx::migrate::{Migration, Migrator};
use time::{Duration, OffsetDateTime};

use crate::MigrateError;

/// Columns of `jwt2fa_users` in the order of [`UserRow`].
macro_rules! user_columns {
    () => {
        "id, username, email, password_hash, is_verified, is_active, bio, avatar, date_joined"
    };
}
pub(crate) use user_columns;

/// How often a transaction that hit a deadlock or a serialization failure
/// is tried in all.
pub(crate) const MAX_TRIES: u32 = 5;

/// How often an insert that hit a unique violation, whose conflicting user
/// was then deleted before the follow-up query, is tried in all.
pub(crate) const CREATE_USER_TRIES: u32 = 3;

pub(crate) fn unix(time: OffsetDateTime) -> i64 {
    time.unix_timestamp()
}

pub(crate) fn from_unix(seconds: i64, column: &str) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| StoreError::new(format!("stored {column} is out of range"), e))
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Returns `true` for errors after which the whole transaction may simply
/// run again: deadlocks and serialization failures, by SQLSTATE (MySQL
/// reports its deadlock error 1213 as SQLSTATE 40001).
pub(crate) fn is_retryable(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40001" || code == "40P01")
}

/// Failure inside a transaction: a database error, which may be retried,
/// or a [`StoreError`] such as a stored value out of range, which is final.
pub(crate) enum TxError {
    Database(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for TxError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

impl From<StoreError> for TxError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Runs `operation` until it succeeds, fails with an error that is not
/// retryable, or was tried [`MAX_TRIES`] times. A database error is mapped
/// to a [`StoreError`] with `context`.
pub(crate) async fn with_retry<T, F, Fut>(context: &'static str, mut operation: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TxError>>,
{
    let mut tries = 1;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(TxError::Database(e)) if tries < MAX_TRIES && is_retryable(&e) => {
                tracing::debug!(context, tries, "retrying a transaction after a deadlock");
                tries += 1;
            }
            Err(TxError::Database(e)) => return Err(StoreError::new(context, e)),
            Err(TxError::Store(e)) => return Err(e),
        }
    }
}

/// A row of `jwt2fa_users`, selected with [`user_columns!`].
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub is_verified: bool,
    pub is_active: bool,
    pub bio: String,
    pub avatar: String,
    pub date_joined: i64,
}

impl UserRow {
    pub(crate) fn into_record(self) -> StoreResult<UserRecord> {
        Ok(UserRecord {
            id: self.id,
            username: self.username,
            email: self.email,
            password_hash: self.password_hash,
            is_verified: self.is_verified,
            is_active: self.is_active,
            bio: self.bio,
            avatar: self.avatar,
            date_joined: from_unix(self.date_joined, "date_joined")?,
        })
    }
}

/// The stored fields of a refresh token.
pub(crate) struct TokenRow {
    pub jti: String,
    pub family_id: String,
    pub user_id: i64,
    pub issued_at: i64,
    pub expires_at: i64,
}

impl TokenRow {
    pub(crate) fn into_record(self) -> StoreResult<RefreshTokenRecord> {
        Ok(RefreshTokenRecord {
            jti: self.jti,
            family_id: self.family_id,
            user_id: self.user_id,
            issued_at: from_unix(self.issued_at, "issued_at")?,
            expires_at: from_unix(self.expires_at, "expires_at")?,
        })
    }
}

/// A row of `jwt2fa_counters` without its key.
#[derive(sqlx::FromRow)]
pub(crate) struct CounterRow {
    pub count: i64,
    pub window_ends_at: i64,
    pub last_hit_at: i64,
}

impl CounterRow {
    pub(crate) fn into_state(self) -> StoreResult<CounterState> {
        let count = u32::try_from(self.count)
            .map_err(|e| StoreError::new("stored counter is out of range", e))?;
        Ok(CounterState {
            count,
            window_ends_at: from_unix(self.window_ends_at, "window_ends_at")?,
            last_hit_at: from_unix(self.last_hit_at, "last_hit_at")?,
        })
    }
}

/// A refresh token that could not be rotated, joined with its family.
pub(crate) struct SpentTokenRow {
    pub family_id: String,
    pub user_id: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub successor_jti: Option<String>,
    pub family_expires_at: i64,
    pub family_revoked_at: Option<i64>,
}

/// Next step of a rotation whose conditional update matched no row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SpentToken {
    /// Unknown, expired or revoked: `Rotation::Invalid`.
    Invalid,
    /// Used within the grace window: return the stored successor.
    Replay { successor_jti: String },
    /// Used before the grace window: revoke the family.
    Revoke { family_id: String, user_id: i64 },
}

/// Decides a rotation whose conditional update matched no row, with the
/// same rules as the in-memory store: a dead family or an expired token is
/// invalid, a use within `grace` replays, any other use revokes.
pub(crate) fn decide_spent(
    row: SpentTokenRow,
    now: OffsetDateTime,
    grace: Duration,
) -> StoreResult<SpentToken> {
    let now_unix = unix(now);
    let family_live = row.family_revoked_at.is_none() && row.family_expires_at > now_unix;
    if !family_live || row.expires_at <= now_unix {
        return Ok(SpentToken::Invalid);
    }
    let Some(used_at) = row.used_at else {
        // NOTE: the update skipped a live, unused token. Only a concurrent
        // insert of the same jti between the update and this read can do
        // that, and such a token is reported as invalid, not rotated.
        return Ok(SpentToken::Invalid);
    };
    match row.successor_jti {
        Some(successor_jti) if now - from_unix(used_at, "used_at")? <= grace => {
            Ok(SpentToken::Replay { successor_jti })
        }
        _ => Ok(SpentToken::Revoke {
            family_id: row.family_id,
            user_id: row.user_id,
        }),
    }
}

/// A row of `jwt2fa_migrations`.
pub(crate) struct AppliedMigration {
    pub version: i64,
    pub checksum: Vec<u8>,
}

/// Checks the applied migrations against the shipped ones and returns the
/// shipped migrations still to apply, in version order.
pub(crate) fn pending_migrations<'m>(
    migrator: &'m Migrator,
    applied: &[AppliedMigration],
) -> Result<Vec<&'m Migration>, MigrateError> {
    for row in applied {
        match migrator.iter().find(|m| m.version == row.version) {
            Some(shipped) if *shipped.checksum == *row.checksum => {}
            Some(_) => {
                return Err(MigrateError::ChecksumMismatch {
                    version: row.version,
                })
            }
            None => {
                return Err(MigrateError::UnknownVersion {
                    version: row.version,
                })
            }
        }
    }
    let mut pending: Vec<&Migration> = migrator
        .iter()
        .filter(|m| applied.iter().all(|row| row.version != m.version))
        .collect();
    pending.sort_by_key(|m| m.version);
    Ok(pending)
}

/// Maps a database error of the migration runner.
pub(crate) fn migrate_error(
    context: impl Into<String>,
) -> impl FnOnce(sqlx::Error) -> MigrateError {
    let context = context.into();
    move |source| MigrateError::Database { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent(used_at: Option<i64>, successor: Option<&str>) -> SpentTokenRow {
        SpentTokenRow {
            family_id: "fam".to_owned(),
            user_id: 7,
            expires_at: 1_000,
            used_at,
            successor_jti: successor.map(str::to_owned),
            family_expires_at: 2_000,
            family_revoked_at: None,
        }
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn decide_spent_replays_within_grace_and_revokes_after() {
        let grace = Duration::seconds(10);
        assert_eq!(
            decide_spent(spent(Some(100), Some("next")), at(110), grace).unwrap(),
            SpentToken::Replay {
                successor_jti: "next".to_owned()
            }
        );
        assert_eq!(
            decide_spent(spent(Some(100), Some("next")), at(111), grace).unwrap(),
            SpentToken::Revoke {
                family_id: "fam".to_owned(),
                user_id: 7
            }
        );
        assert_eq!(
            decide_spent(spent(Some(100), None), at(101), grace).unwrap(),
            SpentToken::Revoke {
                family_id: "fam".to_owned(),
                user_id: 7
            }
        );
    }

    #[test]
    fn decide_spent_rejects_dead_family_and_expired_token() {
        let grace = Duration::seconds(10);
        let mut revoked = spent(Some(100), Some("next"));
        revoked.family_revoked_at = Some(105);
        assert_eq!(
            decide_spent(revoked, at(105), grace).unwrap(),
            SpentToken::Invalid
        );
        assert_eq!(
            decide_spent(spent(Some(100), Some("next")), at(1_000), grace).unwrap(),
            SpentToken::Invalid,
            "token at its expires_at"
        );
        let mut ended = spent(Some(100), Some("next"));
        ended.expires_at = 5_000;
        assert_eq!(
            decide_spent(ended, at(2_000), grace).unwrap(),
            SpentToken::Invalid
        );
    }
}
