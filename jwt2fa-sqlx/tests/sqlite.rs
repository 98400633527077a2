//! The storage conformance suite and the SQLite-specific behaviour of
//! `SqliteStore`, each test on its own database file on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jwt2fa_core::store::{CreateUser, NewUser, UserStore};
use jwt2fa_core::testing::StoreFixture;
use jwt2fa_core::Store;
use jwt2fa_sqlx::{MigrateError, SqliteStore, MIGRATIONS_TABLE};
use time::OffsetDateTime;

/// A database file under the system temporary directory, removed with its
/// WAL files on drop.
struct TempDb {
    path: PathBuf,
}

impl TempDb {
    fn new() -> Self {
        let name = format!(
            "jwt2fa-test-{}-{:016x}.db",
            std::process::id(),
            rand::random::<u64>()
        );
        Self {
            path: std::env::temp_dir().join(name),
        }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(Path::new(&file));
        }
    }
}

async fn sqlite_fixture() -> StoreFixture {
    let db = TempDb::new();
    let store = SqliteStore::connect(&db.url())
        .await
        .unwrap_or_else(|e| panic!("could not open {}: {e}", db.url()));
    store.migrate().await.expect("migrations failed");
    let pool = store.pool().clone();
    StoreFixture::new(Arc::new(store)).with_teardown(async move {
        pool.close().await;
        drop(db);
    })
}

jwt2fa_core::conformance_tests!(sqlite_fixture);

fn new_user(key: &str) -> NewUser {
    NewUser {
        username: key.to_owned(),
        username_key: key.to_owned(),
        email: format!("{key}@example.com"),
        email_key: format!("{key}@example.com"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        date_joined: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
    }
}

async fn applied_versions(store: &SqliteStore) -> Vec<(i64, i64)> {
    sqlx::query_as(&format!(
        "SELECT version, applied_at FROM {MIGRATIONS_TABLE} ORDER BY version"
    ))
    .fetch_all(store.pool())
    .await
    .expect("reading the migrations table failed")
}

#[tokio::test]
async fn open_twice_runs_migrations_once() {
    let db = TempDb::new();
    assert!(!db.path.exists());
    let first: Arc<dyn Store> = jwt2fa_sqlx::open(&db.url())
        .await
        .expect("first open failed");
    assert!(db.path.exists(), "open must create the missing file");
    let created = first
        .create_user(new_user("ana"))
        .await
        .expect("create_user failed");
    assert!(matches!(created, CreateUser::Created(_)));

    let second = SqliteStore::connect(&db.url())
        .await
        .expect("second connect failed");
    let before = applied_versions(&second).await;
    assert_eq!(
        before.len(),
        1,
        "one shipped migration, recorded once: {before:?}"
    );
    assert_eq!(before[0].0, 1);
    second.migrate().await.expect("second migrate failed");
    second.migrate().await.expect("third migrate failed");
    jwt2fa_sqlx::open(&db.url())
        .await
        .expect("second open failed");
    assert_eq!(
        applied_versions(&second).await,
        before,
        "a later run must not record or re-apply a migration"
    );

    let found = second
        .user_by_username_key("ana")
        .await
        .expect("user_by_username_key failed");
    assert!(found.is_some(), "the second open lost the data");

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%migrations'",
    )
    .fetch_all(second.pool())
    .await
    .expect("listing tables failed");
    assert_eq!(tables, vec![MIGRATIONS_TABLE.to_owned()]);
    assert_eq!(MIGRATIONS_TABLE, "jwt2fa_migrations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrate_applies_each_migration_once() {
    let db = TempDb::new();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            SqliteStore::connect(&db.url())
                .await
                .expect("connect failed"),
        );
    }
    let handles: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| tokio::spawn(async move { store.migrate().await }))
        .collect();
    for handle in handles {
        handle
            .await
            .expect("migrate task panicked")
            .expect("a concurrent migrate failed");
    }
    let versions: Vec<i64> = applied_versions(&stores[0])
        .await
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    assert_eq!(versions, vec![1]);
    for store in stores {
        store.pool().close().await;
    }
}

#[tokio::test]
async fn connect_sets_wal_busy_timeout_and_foreign_keys() {
    let db = TempDb::new();
    let store = SqliteStore::connect(&db.url())
        .await
        .expect("connect failed");
    let mut conn = store.pool().acquire().await.expect("acquire failed");
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(journal.to_lowercase(), "wal");
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(busy, 5000);
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL");
}

#[tokio::test]
async fn migrate_rejects_edited_or_unknown_migration() {
    let db = TempDb::new();
    let store = SqliteStore::connect(&db.url())
        .await
        .expect("connect failed");
    store.migrate().await.expect("migrate failed");

    sqlx::query(&format!(
        "UPDATE {MIGRATIONS_TABLE} SET checksum = x'00' WHERE version = 1"
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let error = store
        .migrate()
        .await
        .expect_err("an edited migration must be rejected");
    assert!(
        matches!(error, MigrateError::ChecksumMismatch { version: 1 }),
        "{error:?}"
    );

    sqlx::query(&format!("DELETE FROM {MIGRATIONS_TABLE}"))
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query(&format!(
        "INSERT INTO {MIGRATIONS_TABLE} (version, description, checksum, applied_at) \
         VALUES (999999, 'from the future', x'00', 0)"
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let error = store
        .migrate()
        .await
        .expect_err("an unknown migration must be rejected");
    assert!(
        matches!(error, MigrateError::UnknownVersion { version: 999999 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn in_memory_database_keeps_its_data_across_calls() {
    let store = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("connect failed");
    store.migrate().await.expect("migrate failed");
    let created = store
        .create_user(new_user("ana"))
        .await
        .expect("create_user failed");
    let CreateUser::Created(user) = created else {
        panic!("expected Created, got {created:?}");
    };
    let found = store.user_by_id(user.id).await.expect("user_by_id failed");
    assert_eq!(found.map(|u| u.id), Some(user.id));
}
