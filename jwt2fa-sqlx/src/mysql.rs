//! The MySQL and MariaDB store.

use std::str::FromStr;

use async_trait::async_trait;
use jwt2fa_core::store::{
    CodeCheck, CodePurpose, CodeRecord, CodeStore, CounterState, CounterStore, CreateUser, NewUser,
    ProfileChanges, RefreshFamily, RefreshTokenRecord, RefreshTokenStore, Rotation, StoreResult,
    UserRecord, UserStore,
};
use jwt2fa_core::{redact_url, StoreError};
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{Connection, Executor, MySql, Row, Transaction};
use time::{Duration, OffsetDateTime};

use crate::common::{
    decide_spent, from_unix, is_unique_violation, migrate_error, pending_migrations, unix,
    user_columns, with_retry, AppliedMigration, CounterRow, SpentToken, SpentTokenRow, TokenRow,
    TxError, UserRow, CREATE_USER_TRIES,
};
use crate::{MigrateError, OpenError};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/mysql");

/// Seconds a migrator waits for another one to finish.
const MIGRATION_LOCK_TIMEOUT_SECONDS: i64 = 60;

/// The name of the `GET_LOCK` lock for the current database. Lock names are
/// server wide and at most 64 characters long, so the database name is
/// hashed into it.
const MIGRATION_LOCK_NAME: &str = "CONCAT('jwt2fa_migrations:', MD5(DATABASE()))";

/// Storage on MySQL or MariaDB with InnoDB tables. The test suite runs on
/// MariaDB 10.11.
///
/// Transactions run at the server's isolation level (REPEATABLE READ by
/// default). Each race is settled by a row lock, taken by a conditional
/// `UPDATE`, an `INSERT ... ON DUPLICATE KEY UPDATE` or a
/// `SELECT ... FOR UPDATE`, or by a unique key, and a deadlock is retried.
/// Keys are `VARBINARY`, so they compare byte for byte.
#[derive(Debug, Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
}

impl MySqlStore {
    /// Wraps a pool the application already has. Run [`Self::migrate`]
    /// before first use.
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// Connects a new pool with sqlx's default pool settings. Does not run
    /// the migrations. `mysql:` and `mariadb:` URLs are both accepted.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidUrl`] or [`OpenError::Connect`].
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        let options =
            MySqlConnectOptions::from_str(url).map_err(|source| OpenError::InvalidUrl {
                url: redact_url(url),
                source,
            })?;
        let pool = MySqlPoolOptions::new()
            .connect_with(options)
            .await
            .map_err(|source| OpenError::Connect {
                url: redact_url(url),
                source,
            })?;
        Ok(Self::new(pool))
    }

    /// Returns the pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Applies the pending migrations, recorded in `jwt2fa_migrations`.
    ///
    /// The whole run holds a `GET_LOCK` lock named after the database, so
    /// concurrent migrators apply each migration once. A migrator waits up
    /// to 60 seconds for the lock. MySQL commits DDL implicitly, so a
    /// migration that fails half way stays half applied.
    ///
    /// # Errors
    ///
    /// See [`MigrateError`].
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(migrate_error("acquire a connection"))?;
        let locked: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT GET_LOCK({MIGRATION_LOCK_NAME}, {MIGRATION_LOCK_TIMEOUT_SECONDS})"
        ))
        .fetch_one(&mut *conn)
        .await
        .map_err(migrate_error("take the migration lock"))?;
        if locked != Some(1) {
            return Err(MigrateError::LockTimeout);
        }
        let outcome = migrate_locked(&mut conn).await;
        let released = sqlx::query(&format!("DO RELEASE_LOCK({MIGRATION_LOCK_NAME})"))
            .execute(&mut *conn)
            .await;
        if released.is_err() {
            // A connection that may still hold the lock must not go back
            // to the pool.
            conn.close_on_drop();
        }
        outcome?;
        released.map_err(migrate_error("release the migration lock"))?;
        Ok(())
    }

    async fn begin(&self) -> Result<Transaction<'static, MySql>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn taken_key(&self, user: &NewUser) -> StoreResult<Option<CreateUser>> {
        let username_taken: i64 =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jwt2fa_users WHERE username_key = ?)")
                .bind(&user.username_key)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::new("failed to look up a username key", e))?;
        if username_taken != 0 {
            return Ok(Some(CreateUser::UsernameTaken));
        }
        let email_taken: i64 =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jwt2fa_users WHERE email_key = ?)")
                .bind(&user.email_key)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::new("failed to look up an email key", e))?;
        Ok((email_taken != 0).then_some(CreateUser::EmailTaken))
    }

    async fn user_where(&self, sql: &'static str, key: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to look up a user", e))?;
        row.map(UserRow::into_record).transpose()
    }

    async fn update_profile_once(
        &self,
        id: i64,
        changes: &ProfileChanges,
    ) -> Result<Option<UserRow>, TxError> {
        let mut tx = self.begin().await?;
        // sqlx sets CLIENT_FOUND_ROWS, so rows_affected counts matched rows,
        // changed or not.
        let matched = sqlx::query(
            "UPDATE jwt2fa_users SET bio = COALESCE(?, bio), avatar = COALESCE(?, avatar) \
             WHERE id = ?",
        )
        .bind(changes.bio.as_deref())
        .bind(changes.avatar.as_deref())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if matched == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM jwt2fa_users WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn delete_user_once(&self, id: i64) -> Result<bool, TxError> {
        let mut tx = self.begin().await?;
        // Dependent rows are deleted explicitly, as in the other stores,
        // although the foreign keys cascade too.
        sqlx::query(
            "DELETE FROM jwt2fa_refresh_tokens WHERE user_id = ? OR family_id IN \
             (SELECT id FROM jwt2fa_refresh_families WHERE user_id = ?)",
        )
        .bind(id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM jwt2fa_refresh_families WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jwt2fa_verification_codes WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM jwt2fa_users WHERE id = ?")
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
             WHERE user_id = ? AND purpose = ? AND attempts < ? AND expires_at > ?",
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
             WHERE user_id = ? AND purpose = ? AND code_hash = ?",
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
             VALUES (?, ?, ?, ?)",
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

    /// Rotates with the token row and its family row locked first by
    /// `SELECT ... FOR UPDATE`. A conditional `UPDATE` first, as on the
    /// other backends, would leave shared locks on the family row that
    /// deadlock with the next locking read of each waiting rotation.
    async fn rotate_once(
        &self,
        jti: &str,
        successor: &RefreshTokenRecord,
        now: OffsetDateTime,
        grace: Duration,
    ) -> Result<Rotation, TxError> {
        let mut tx = self.begin().await?;
        let now_unix = unix(now);
        let row = sqlx::query(
            "SELECT t.family_id, t.user_id, t.expires_at, t.used_at, t.successor_jti, \
                    f.expires_at AS family_expires_at, f.revoked_at AS family_revoked_at \
             FROM jwt2fa_refresh_tokens t \
             JOIN jwt2fa_refresh_families f ON f.id = t.family_id \
             WHERE t.jti = ? FOR UPDATE",
        )
        .bind(jti)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(Rotation::Invalid);
        };
        let spent = spent_token_row(&row)?;
        let family_live = spent.family_revoked_at.is_none() && spent.family_expires_at > now_unix;
        if spent.used_at.is_none() && family_live && spent.expires_at > now_unix {
            sqlx::query(
                "UPDATE jwt2fa_refresh_tokens SET used_at = ?, successor_jti = ? \
                 WHERE jti = ? AND used_at IS NULL",
            )
            .bind(now_unix)
            .bind(&successor.jti)
            .bind(jti)
            .execute(&mut *tx)
            .await?;
            insert_token(&mut tx, successor).await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated);
        }

        let outcome = match decide_spent(spent, now, grace)? {
            SpentToken::Invalid => Rotation::Invalid,
            SpentToken::Replay { successor_jti } => {
                let row = sqlx::query(
                    "SELECT jti, family_id, user_id, issued_at, expires_at \
                     FROM jwt2fa_refresh_tokens WHERE jti = ?",
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
                    "UPDATE jwt2fa_refresh_families SET revoked_at = ? \
                     WHERE id = ? AND revoked_at IS NULL",
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
                 WHERE revoked_at IS NOT NULL OR expires_at <= ?)",
        )
        .bind(unix(now))
        .execute(&mut *tx)
        .await?;
        let purged = sqlx::query(
            "DELETE FROM jwt2fa_refresh_families WHERE revoked_at IS NOT NULL OR expires_at <= ?",
        )
        .bind(unix(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(purged)
    }

    async fn hit_once(
        &self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> Result<CounterRow, TxError> {
        let mut tx = self.begin().await?;
        let now_unix = unix(now);
        // MySQL evaluates the assignments left to right, each seeing the
        // columns already assigned. `count` is assigned first, so both
        // tests read the old `window_ends_at`.
        sqlx::query(
            "INSERT INTO jwt2fa_counters (`key`, count, window_ends_at, last_hit_at) \
             VALUES (?, 1, ?, ?) \
             ON DUPLICATE KEY UPDATE \
                 count = IF(window_ends_at <= ?, 1, count + 1), \
                 window_ends_at = IF(window_ends_at <= ?, ?, window_ends_at), \
                 last_hit_at = ?",
        )
        .bind(key)
        .bind(unix(now + window))
        .bind(now_unix)
        .bind(now_unix)
        .bind(now_unix)
        .bind(unix(now + window))
        .bind(now_unix)
        .execute(&mut *tx)
        .await?;

        let row = sqlx::query_as(
            "SELECT count, window_ends_at, last_hit_at FROM jwt2fa_counters \
             WHERE `key` = ? FOR UPDATE",
        )
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }
}

async fn migrate_locked(conn: &mut MySqlConnection) -> Result<(), MigrateError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS jwt2fa_migrations (\
            version BIGINT NOT NULL PRIMARY KEY, \
            description TEXT NOT NULL, \
            checksum VARBINARY(255) NOT NULL, \
            applied_at BIGINT NOT NULL\
         ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    )
    .execute(&mut *conn)
    .await
    .map_err(migrate_error("create the migrations table"))?;
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM jwt2fa_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(migrate_error("read the applied migrations"))?;
    let applied: Vec<AppliedMigration> = rows
        .into_iter()
        .map(|(version, checksum)| AppliedMigration { version, checksum })
        .collect();
    for migration in pending_migrations(&MIGRATOR, &applied)? {
        let context = format!("apply migration {}", migration.version);
        let mut tx = conn.begin().await.map_err(migrate_error(context.clone()))?;
        (&mut *tx)
            .execute(&*migration.sql)
            .await
            .map_err(migrate_error(context.clone()))?;
        sqlx::query(
            "INSERT INTO jwt2fa_migrations (version, description, checksum, applied_at) \
             VALUES (?, ?, ?, ?)",
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

async fn insert_token(
    tx: &mut MySqlConnection,
    token: &RefreshTokenRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO jwt2fa_refresh_tokens (jti, family_id, user_id, issued_at, expires_at) \
         VALUES (?, ?, ?, ?, ?)",
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

/// Reads a nullable `VARBINARY` id column as text. sqlx refuses to decode
/// binary columns as `String`; ids are stored from Rust strings, so they
/// are valid UTF-8 unless another writer stored the row.
fn optional_text_column(row: &MySqlRow, column: &str) -> StoreResult<Option<String>> {
    let bytes: Option<Vec<u8>> = row.try_get(column).map_err(read_error)?;
    bytes
        .map(|bytes| {
            String::from_utf8(bytes)
                .map_err(|e| StoreError::new(format!("stored {column} is not UTF-8"), e))
        })
        .transpose()
}

fn text_column(row: &MySqlRow, column: &str) -> StoreResult<String> {
    optional_text_column(row, column)?
        .ok_or_else(|| StoreError::msg(format!("stored {column} is NULL")))
}

fn read_error(error: sqlx::Error) -> StoreError {
    StoreError::new("failed to read a refresh token", error)
}

fn token_row(row: &MySqlRow) -> StoreResult<TokenRow> {
    Ok(TokenRow {
        jti: text_column(row, "jti")?,
        family_id: text_column(row, "family_id")?,
        user_id: row.try_get("user_id").map_err(read_error)?,
        issued_at: row.try_get("issued_at").map_err(read_error)?,
        expires_at: row.try_get("expires_at").map_err(read_error)?,
    })
}

fn spent_token_row(row: &MySqlRow) -> StoreResult<SpentTokenRow> {
    Ok(SpentTokenRow {
        family_id: text_column(row, "family_id")?,
        user_id: row.try_get("user_id").map_err(read_error)?,
        expires_at: row.try_get("expires_at").map_err(read_error)?,
        used_at: row.try_get("used_at").map_err(read_error)?,
        successor_jti: optional_text_column(row, "successor_jti")?,
        family_expires_at: row.try_get("family_expires_at").map_err(read_error)?,
        family_revoked_at: row.try_get("family_revoked_at").map_err(read_error)?,
    })
}

#[async_trait]
impl UserStore for MySqlStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<CreateUser> {
        for _ in 0..CREATE_USER_TRIES {
            let inserted = sqlx::query(
                "INSERT INTO jwt2fa_users (username, username_key, email, email_key, \
                 password_hash, is_verified, is_active, bio, avatar, date_joined) \
                 VALUES (?, ?, ?, ?, ?, FALSE, TRUE, '', '', ?)",
            )
            .bind(&user.username)
            .bind(&user.username_key)
            .bind(&user.email)
            .bind(&user.email_key)
            .bind(&user.password_hash)
            .bind(unix(user.date_joined))
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(result) => {
                    let id = i64::try_from(result.last_insert_id())
                        .map_err(|e| StoreError::new("user id out of range", e))?;
                    // The record is built from the inserted values, as MySQL
                    // has no RETURNING.
                    return Ok(CreateUser::Created(UserRecord {
                        id,
                        username: user.username,
                        email: user.email,
                        password_hash: user.password_hash,
                        is_verified: false,
                        is_active: true,
                        bio: String::new(),
                        avatar: String::new(),
                        // Whole seconds, as a later read returns it.
                        date_joined: from_unix(unix(user.date_joined), "date_joined")?,
                    }));
                }
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
            " FROM jwt2fa_users WHERE id = ?"
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
                " FROM jwt2fa_users WHERE username_key = ?"
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
                " FROM jwt2fa_users WHERE email_key = ?"
            ),
            email_key,
        )
        .await
    }

    async fn mark_verified(&self, id: i64) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE jwt2fa_users SET is_verified = TRUE WHERE id = ?")
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
        let row = with_retry("failed to update a profile", || {
            self.update_profile_once(id, &changes)
        })
        .await?;
        row.map(UserRow::into_record).transpose()
    }

    async fn set_password_hash(&self, id: i64, password_hash: &str) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE jwt2fa_users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to set a password hash", e))?;
        Ok(result.rows_affected() == 1)
    }

    async fn set_active(&self, id: i64, active: bool) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE jwt2fa_users SET is_active = ? WHERE id = ?")
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
impl CodeStore for MySqlStore {
    async fn put_code(&self, code: CodeRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO jwt2fa_verification_codes \
                 (user_id, purpose, code_hash, attempts, created_at, expires_at) \
             VALUES (?, ?, ?, 0, ?, ?) \
             ON DUPLICATE KEY UPDATE \
                 code_hash = ?, attempts = 0, created_at = ?, expires_at = ?",
        )
        .bind(code.user_id)
        .bind(code.purpose.as_str())
        .bind(&code.code_hash)
        .bind(unix(code.created_at))
        .bind(unix(code.expires_at))
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
        let result = sqlx::query("DELETE FROM jwt2fa_verification_codes WHERE expires_at <= ?")
            .bind(unix(now))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to purge expired codes", e))?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl RefreshTokenStore for MySqlStore {
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
             WHERE t.jti = ? AND f.revoked_at IS NULL AND f.expires_at > ?",
        )
        .bind(jti)
        .bind(unix(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to look up a refresh token", e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        token_row(&row)?.into_record().map(Some)
    }

    async fn revoke_family(&self, family_id: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE jwt2fa_refresh_families SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
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
            "UPDATE jwt2fa_refresh_families SET revoked_at = ? \
             WHERE user_id = ? AND revoked_at IS NULL",
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
impl CounterStore for MySqlStore {
    async fn hit(
        &self,
        key: &str,
        now: OffsetDateTime,
        window: Duration,
    ) -> StoreResult<CounterState> {
        with_retry("failed to count a hit", || self.hit_once(key, now, window))
            .await?
            .into_state()
    }

    async fn peek(&self, key: &str, now: OffsetDateTime) -> StoreResult<Option<CounterState>> {
        let row: Option<CounterRow> = sqlx::query_as(
            "SELECT count, window_ends_at, last_hit_at FROM jwt2fa_counters \
             WHERE `key` = ? AND window_ends_at > ?",
        )
        .bind(key)
        .bind(unix(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::new("failed to read a counter", e))?;
        row.map(CounterRow::into_state).transpose()
    }

    async fn reset(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM jwt2fa_counters WHERE `key` = ?")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to reset a counter", e))?;
        Ok(())
    }

    async fn purge_expired_counters(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM jwt2fa_counters WHERE window_ends_at <= ?")
            .bind(unix(now))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::new("failed to purge expired counters", e))?;
        Ok(result.rows_affected())
    }
}
