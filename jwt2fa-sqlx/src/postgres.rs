//! The PostgreSQL store.

use std::str::FromStr;

use async_trait::async_trait;
use jwt2fa_core::store::{
    CodeCheck, CodePurpose, CodeRecord, CodeStore, CounterState, CounterStore, CreateUser, NewUser,
    ProfileChanges, RefreshFamily, RefreshTokenRecord, RefreshTokenStore, Rotation, StoreResult,
    UserRecord, UserStore,
};
use jwt2fa_core::{redact_url, StoreError};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, Postgres, Row, Transaction};
use time::{Duration, OffsetDateTime};

use crate::common::{
    decide_spent, is_unique_violation, migrate_error, pending_migrations, unix, user_columns,
    with_retry, AppliedMigration, CounterRow, SpentToken, SpentTokenRow, TokenRow, TxError,
    UserRow, CREATE_USER_TRIES,
};
use crate::{MigrateError, OpenError};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Key of the transaction advisory lock that serializes migrators of one
/// database: the ASCII bytes of "jwt2fami".
const MIGRATION_LOCK_KEY: i64 = 0x6a77_7432_6661_6d69;

/// Storage on PostgreSQL.
///
/// Transactions run at the default READ COMMITTED level: each race is
/// settled by a row lock taken by a conditional `UPDATE` or by a unique
/// constraint, and a deadlock is retried.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Wraps a pool the application already has. Run [`Self::migrate`]
    /// before first use.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects a new pool with sqlx's default pool settings. Does not run
    /// the migrations.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidUrl`] or [`OpenError::Connect`].
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        let options = PgConnectOptions::from_str(url).map_err(|source| OpenError::InvalidUrl {
            url: redact_url(url),
            source,
        })?;
        let pool = PgPoolOptions::new()
            .connect_with(options)
            .await
            .map_err(|source| OpenError::Connect {
                url: redact_url(url),
                source,
            })?;
        Ok(Self::new(pool))
    }

    /// Returns the pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the pending migrations, recorded in `jwt2fa_migrations`.
    ///
    /// Each migration runs in its own transaction that first takes a
    /// transaction advisory lock and re-reads the applied versions, so
    /// concurrent migrators apply each migration once.
    ///
    /// # Errors
    ///
    /// See [`MigrateError`].
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        let applied = {
            let mut tx = self.begin_migration().await?;
            let applied = applied_migrations(&mut tx).await?;
            tx.commit()
                .await
                .map_err(migrate_error("commit the migrations table"))?;
            applied
        };
        for migration in pending_migrations(&MIGRATOR, &applied)? {
            let mut tx = self.begin_migration().await?;
            let applied = applied_migrations(&mut tx).await?;
            if pending_migrations(&MIGRATOR, &applied)?
                .iter()
                .all(|m| m.version != migration.version)
            {
                // Another process applied it since the first read.
                continue;
            }
            let context = format!("apply migration {}", migration.version);
            (&mut *tx)
                .execute(&*migration.sql)
                .await
                .map_err(migrate_error(context.clone()))?;
            sqlx::query(
                "INSERT INTO jwt2fa_migrations (version, description, checksum, applied_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .bind(unix(OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await
            .map_err(migrate_error(context.clone()))?;
            tx.commit().await.map_err(migrate_error(context))?;
            tracing::info!(version = migration.version, "applied jwt2fa migration");
        }
        Ok(())
    }

    async fn begin_migration(&self) -> Result<Transaction<'static, Postgres>, MigrateError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(migrate_error("begin a migration transaction"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(migrate_error("take the migration lock"))?;
        // Checking first keeps PostgreSQL from logging a "relation already
        // exists, skipping" notice at every start.
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass('jwt2fa_migrations') IS NOT NULL")
                .fetch_one(&mut *tx)
                .await
                .map_err(migrate_error("look for the migrations table"))?;
        if exists {
            return Ok(tx);
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS jwt2fa_migrations (\
                version BIGINT NOT NULL PRIMARY KEY, \
                description TEXT NOT NULL, \
                checksum BYTEA NOT NULL, \
                applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(migrate_error("create the migrations table"))?;
        Ok(tx)
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn taken_key(&self, user: &NewUser) -> StoreResult<Option<CreateUser>> {
        let username_taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM jwt2fa_users WHERE username_key = $1)",
        )
        .bind(&user.username_key)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to look up a username key", e))?;
        if username_taken {
            return Ok(Some(CreateUser::UsernameTaken));
        }
        let email_taken: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jwt2fa_users WHERE email_key = $1)")
                .bind(&user.email_key)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::new("failed to look up an email key", e))?;
        Ok(email_taken.then_some(CreateUser::EmailTaken))
    }

    async fn user_where(&self, sql: &'static str, key: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to look up a user", e))?;
        row.map(UserRow::into_record).transpose()
    }

    async fn delete_user_once(&self, id: i64) -> Result<bool, TxError> {
        let mut tx = self.begin().await?;
        // Dependent rows are deleted explicitly, as in the other stores,
        // although the foreign keys cascade too.
        sqlx::query(
            "DELETE FROM jwt2fa_refresh_tokens WHERE user_id = $1 OR family_id IN \
             (SELECT id FROM jwt2fa_refresh_families WHERE user_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM jwt2fa_refresh_families WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jwt2fa_verification_codes WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM jwt2fa_users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted == 1)
    }

    async fn check_code_once(
        &self,
        user_id: i64,
        purpose: CodePurpose,
        code_hash: &[u8],
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<CodeCheck, TxError> {
        let mut tx = self.begin().await?;
        let counted = sqlx::query(
            "UPDATE jwt2fa_verification_codes SET attempts = attempts + 1 \
             WHERE user_id = $1 AND purpose = $2 AND attempts < $3 AND expires_at > $4",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(i64::from(max_attempts))
        .bind(unix(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();

        if counted == 0 {
            tx.rollback().await?;
            return Ok(CodeCheck::NoLiveCode);
        }

        let consumed = sqlx::query(
            "DELETE FROM jwt2fa_verification_codes \
             WHERE user_id = $1 AND purpose = $2 AND code_hash = $3",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(code_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(if consumed == 1 {
            CodeCheck::Accepted
        } else {
            CodeCheck::Rejected
        })
    }

    async fn create_family_once(
        &self,
        family: &RefreshFamily,
        first: &RefreshTokenRecord,
    ) -> Result<(), TxError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO jwt2fa_refresh_families (id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&family.id)
        .bind(family.user_id)
        .bind(unix(family.created_at))
        .bind(unix(family.expires_at))
        .execute(&mut *tx)
        .await?;
        insert_token(&mut tx, first).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_once(
        &self,
        jti: &str,
        successor: &RefreshTokenRecord,
        now: OffsetDateTime,
        grace: Duration,
    ) -> Result<Rotation, TxError> {
        let mut tx = self.begin().await?;
        let now_unix = unix(now);
        let rotated = sqlx::query(
            "UPDATE jwt2fa_refresh_tokens SET used_at = $1, successor_jti = $2 \
             WHERE jti = $3 AND used_at IS NULL AND expires_at > $1 AND EXISTS (\
                 SELECT 1 FROM jwt2fa_refresh_families f \
                 WHERE f.id = jwt2fa_refresh_tokens.family_id \
                 AND f.revoked_at IS NULL AND f.expires_at > $1)",
        )
        .bind(now_unix)
        .bind(&successor.jti)
        .bind(jti)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if rotated == 1 {
            insert_token(&mut tx, successor).await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated);
        }

        let row = sqlx::query(
            "SELECT t.family_id, t.user_id, t.expires_at, t.used_at, t.successor_jti, \
                    f.expires_at AS family_expires_at, f.revoked_at AS family_revoked_at \
             FROM jwt2fa_refresh_tokens t \
             JOIN jwt2fa_refresh_families f ON f.id = t.family_id \
             WHERE t.jti = $1",
        )
        .bind(jti)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(Rotation::Invalid);
        };
        let outcome = match decide_spent(spent_token_row(&row)?, now, grace)? {
            SpentToken::Invalid => Rotation::Invalid,
            SpentToken::Replay { successor_jti } => {
                let row = sqlx::query(
                    "SELECT jti, family_id, user_id, issued_at, expires_at \
                     FROM jwt2fa_refresh_tokens WHERE jti = $1",
                )
                .bind(&successor_jti)
                .fetch_optional(&mut *tx)
                .await?;
                match row {
                    Some(row) => Rotation::Replayed(token_row(&row)?.into_record()?),
                    None => Rotation::Invalid,
                }
            }
            SpentToken::Revoke { family_id, user_id } => {
                sqlx::query(
                    "UPDATE jwt2fa_refresh_families SET revoked_at = $1 \
                     WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now_unix)
                .bind(&family_id)
                .execute(&mut *tx)
                .await?;
                Rotation::ReuseDetected { family_id, user_id }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn purge_tokens_once(&self, now: OffsetDateTime) -> Result<u64, TxError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM jwt2fa_refresh_tokens WHERE family_id IN (\
                 SELECT id FROM jwt2fa_refresh_families \
                 WHERE revoked_at IS NOT NULL OR expires_at <= $1)",
        )
        .bind(unix(now))
        .execute(&mut *tx)
        .await?;
        let purged = sqlx::query(
            "DELETE FROM jwt2fa_refresh_families WHERE revoked_at IS NOT NULL OR expires_at <= $1",
        )
        .bind(unix(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(purged)
    }
}

async fn applied_migrations(tx: &mut PgConnection) -> Result<Vec<AppliedMigration>, MigrateError> {
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM jwt2fa_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await
            .map_err(migrate_error("read the applied migrations"))?;
    Ok(rows
        .into_iter()
        .map(|(version, checksum)| AppliedMigration { version, checksum })
        .collect())
}

async fn insert_token(
    tx: &mut PgConnection,
    token: &RefreshTokenRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO jwt2fa_refresh_tokens (jti, family_id, user_id, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.jti)
    .bind(&token.family_id)
    .bind(token.user_id)
    .bind(unix(token.issued_at))
    .bind(unix(token.expires_at))
    .execute(tx)
    .await?;
    Ok(())
}

fn token_row(row: &PgRow) -> Result<TokenRow, sqlx::Error> {
    Ok(TokenRow {
        jti: row.try_get("jti")?,
        family_id: row.try_get("family_id")?,
        user_id: row.try_get("user_id")?,
        issued_at: row.try_get("issued_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn spent_token_row(row: &PgRow) -> Result<SpentTokenRow, sqlx::Error> {
    Ok(SpentTokenRow {
        family_id: row.try_get("family_id")?,
        user_id: row.try_get("user_id")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        successor_jti: row.try_get("successor_jti")?,
        family_expires_at: row.try_get("family_expires_at")?,
        family_revoked_at: row.try_get("family_revoked_at")?,
    })
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<CreateUser> {
        for _ in 0..CREATE_USER_TRIES {
            let inserted: Result<UserRow, sqlx::Error> = sqlx::query_as(concat!(
                "INSERT INTO jwt2fa_users (username, username_key, email, email_key, \
                 password_hash, is_verified, is_active, bio, avatar, date_joined) \
                 VALUES ($1, $2, $3, $4, $5, FALSE, TRUE, '', '', $6) RETURNING ",
                user_columns!()
            ))
            .bind(&user.username)
            .bind(&user.username_key)
            .bind(&user.email)
            .bind(&user.email_key)
            .bind(&user.password_hash)
            .bind(unix(user.date_joined))
            .fetch_one(&self.pool)
            .await;
            match inserted {
                Ok(row) => return row.into_record().map(CreateUser::Created),
                Err(e) if is_unique_violation(&e) => {
                    if let Some(taken) = self.taken_key(&user).await? {
                        return Ok(taken);
                    }
                    // The conflicting user was deleted in between: insert again.
                }
                Err(e) => return Err(StoreError::new("failed to insert a user", e)),
            }
        }
        Err(StoreError::msg(
            "failed to insert a user: every try hit a unique violation, \
             yet no user has its username or email key",
        ))
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM jwt2fa_users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to look up a user", e))?;
        row.map(UserRow::into_record).transpose()
    }

    async fn user_by_username_key(&self, username_key: &str) -> StoreResult<Option<UserRecord>> {
        self.user_where(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM jwt2fa_users WHERE username_key = $1"
            ),
            username_key,
        )
        .await
    }

    async fn user_by_email_key(&self, email_key: &str) -> StoreResult<Option<UserRecord>> {
        self.user_where(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM jwt2fa_users WHERE email_key = $1"
            ),
            email_key,
        )
        .await
    }

    async fn mark_verified(&self, id: i64) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE jwt2fa_users SET is_verified = TRUE WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to mark a user verified", e))?;
        Ok(result.rows_affected() == 1)
    }

    async fn update_profile(
        &self,
        id: i64,
        changes: ProfileChanges,
    ) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "UPDATE jwt2fa_users SET bio = COALESCE($1, bio), avatar = COALESCE($2, avatar) \
             WHERE id = $3 RETURNING ",
            user_columns!()
        ))
        .bind(changes.bio)
        .bind(changes.avatar)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to update a profile", e))?;
        row.map(UserRow::into_record).transpose()
    }

    async fn set_password_hash(&self, id: i64, password_hash: &str) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE jwt2fa_users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to set a password hash", e))?;
        Ok(result.rows_affected() == 1)
    }

    async fn set_active(&self, id: i64, active: bool) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE jwt2fa_users SET is_active = $1 WHERE id = $2")
            .bind(active)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to set a user active or inactive", e))?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_user(&self, id: i64) -> StoreResult<bool> {
        with_retry("failed to delete a user", || self.delete_user_once(id)).await
    }
}

#[async_trait]
impl CodeStore for PgStore {
    async fn put_code(&self, code: CodeRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO jwt2fa_verification_codes \
                 (user_id, purpose, code_hash, attempts, created_at, expires_at) \
             VALUES ($1, $2, $3, 0, $4, $5) \
             ON CONFLICT (user_id, purpose) DO UPDATE SET \
                 code_hash = excluded.code_hash, attempts = 0, \
                 created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(code.user_id)
        .bind(code.purpose.as_str())
        .bind(&code.code_hash)
        .bind(unix(code.created_at))
        .bind(unix(code.expires_at))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to store a verification code", e))?;
        Ok(())
    }

    async fn check_code(
        &self,
        user_id: i64,
        purpose: CodePurpose,
        code_hash: &[u8],
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> StoreResult<CodeCheck> {
        with_retry("failed to check a verification code", || {
            self.check_code_once(user_id, purpose, code_hash, now, max_attempts)
        })
        .await
    }

    async fn purge_expired_codes(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM jwt2fa_verification_codes WHERE expires_at <= $1")
            .bind(unix(now))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to purge expired codes", e))?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl RefreshTokenStore for PgStore {
    async fn create_family(
        &self,
        family: RefreshFamily,
        first: RefreshTokenRecord,
    ) -> StoreResult<()> {
        with_retry("failed to create a refresh-token family", || {
            self.create_family_once(&family, &first)
        })
        .await
    }

    async fn rotate(
        &self,
        jti: &str,
        successor: RefreshTokenRecord,
        now: OffsetDateTime,
        grace: Duration,
    ) -> StoreResult<Rotation> {
        with_retry("failed to rotate a refresh token", || {
            self.rotate_once(jti, &successor, now, grace)
        })
        .await
    }

    async fn live_token(
        &self,
        jti: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<RefreshTokenRecord>> {
        let row = sqlx::query(
            "SELECT t.jti, t.family_id, t.user_id, t.issued_at, t.expires_at \
             FROM jwt2fa_refresh_tokens t \
             JOIN jwt2fa_refresh_families f ON f.id = t.family_id \
             WHERE t.jti = $1 AND f.revoked_at IS NULL AND f.expires_at > $2",
        )
        .bind(jti)
        .bind(unix(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to look up a refresh token", e))?;
        row.map(|row| {
            token_row(&row)
                .map_err(|e| StoreError::new("failed to read a refresh token", e))?
                .into_record()
        })
        .transpose()
    }

    async fn revoke_family(&self, family_id: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE jwt2fa_refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(unix(now))
        .bind(family_id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to revoke a refresh-token family", e))?;
        Ok(result.rows_affected() == 1)
    }

    async fn revoke_user_families(&self, user_id: i64, now: OffsetDateTime) -> StoreResult<u64> {
        let result = sqlx::query(
            "UPDATE jwt2fa_refresh_families SET revoked_at = $1 \
             WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(unix(now))
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to revoke a user's refresh-token families", e))?;
        Ok(result.rows_affected())
    }

    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> StoreResult<u64> {
        with_retry("failed to purge refresh-token families", || {
            self.purge_tokens_once(now)
        })
        .await
    }
}

#[async_trait]
impl CounterStore for PgStore {
    async fn hit(
        &self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> StoreResult<CounterState> {
        // SET expressions read the row as it was before the update, so the
        // window test is the same in every assignment.
        let row: CounterRow = sqlx::query_as(
            "INSERT INTO jwt2fa_counters (\"key\", count, window_ends_at, last_hit_at) \
             VALUES ($1, 1, $2, $3) \
             ON CONFLICT (\"key\") DO UPDATE SET \
                 count = CASE WHEN jwt2fa_counters.window_ends_at <= $3 \
                     THEN 1 ELSE jwt2fa_counters.count + 1 END, \
                 window_ends_at = CASE WHEN jwt2fa_counters.window_ends_at <= $3 \
                     THEN $2 ELSE jwt2fa_counters.window_ends_at END, \
                 last_hit_at = $3 \
             RETURNING count, window_ends_at, last_hit_at",
        )
        .bind(key)
        .bind(unix(now + window))
        .bind(unix(now))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to count a hit", e))?;
        row.into_state()
    }

    async fn peek(&self, key: &str, now: OffsetDateTime) -> StoreResult<Option<CounterState>> {
        let row: Option<CounterRow> = sqlx::query_as(
            "SELECT count, window_ends_at, last_hit_at FROM jwt2fa_counters \
             WHERE \"key\" = $1 AND window_ends_at > $2",
        )
        .bind(key)
        .bind(unix(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to read a counter", e))?;
        row.map(CounterRow::into_state).transpose()
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM jwt2fa_counters WHERE \"key\" = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to reset a counter", e))?;
        Ok(())
    }

    async fn purge_expired_counters(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM jwt2fa_counters WHERE window_ends_at <= $1")
            .bind(unix(now))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to purge expired counters", e))?;
        Ok(result.rows_affected())
    }
}
