//! The storage conformance suite and the PostgreSQL-specific behaviour of
//! `PgStore`, each test on a fresh database of the server named by
//! `JWT2FA_TEST_POSTGRES_URL`.

mod common;

use std::sync::Arc;

use jwt2fa_core::redact_url;
use jwt2fa_core::testing::StoreFixture;
use jwt2fa_sqlx::{PgStore, MIGRATIONS_TABLE};
use sqlx::{Connection, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn server_url() -> String {
    common::server_url("JWT2FA_TEST_POSTGRES_URL", DEFAULT_URL)
}

async fn admin_connection(server: &str) -> PgConnection {
    PgConnection::connect(server).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the PostgreSQL test server at {} (set JWT2FA_TEST_POSTGRES_URL): {e}",
            redact_url(server)
        )
    })
}

/// A fresh database, dropped by [`TestDatabase::drop_database`].
struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create() -> Self {
        let server = server_url();
        let mut admin = admin_connection(&server).await;
        if common::first_sweep() {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'jwt2fa\\_test\\_%'",
            )
            .fetch_all(&mut admin)
            .await
            .expect("listing databases failed");
            for name in names.into_iter().filter(|name| common::is_stale(name)) {
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("dropping leftover {name} failed: {e}"));
            }
        }
        let name = common::unique_database_name();
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating database {name} failed: {e}"));
        let _ = admin.close().await;
        let url = common::database_url(&server, &name);
        Self { server, name, url }
    }

    async fn drop_database(self) {
        let mut admin = admin_connection(&self.server).await;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("dropping database {} failed: {e}", self.name));
        let _ = admin.close().await;
    }

    async fn store(&self) -> PgStore {
        PgStore::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", redact_url(&self.url)))
    }
}

async fn pg_fixture() -> StoreFixture {
    let db = TestDatabase::create().await;
    let store = db.store().await;
    store.migrate().await.expect("migrations failed");
    let pool = store.pool().clone();
    StoreFixture::new(Arc::new(store)).with_teardown(async move {
        pool.close().await;
        db.drop_database().await;
    })
}

jwt2fa_core::conformance_tests!(pg_fixture);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrate_applies_each_migration_once() {
    let db = TestDatabase::create().await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(db.store().await);
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
    stores[0].migrate().await.expect("a later migrate failed");

    let versions: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version"
    ))
    .fetch_all(stores[0].pool())
    .await
    .expect("reading the migrations table failed");
    assert_eq!(versions, vec![1]);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name LIKE '%migrations'",
    )
    .fetch_all(stores[0].pool())
    .await
    .expect("listing tables failed");
    assert_eq!(tables, vec!["jwt2fa_migrations".to_owned()]);

    for store in stores {
        store.pool().close().await;
    }
    db.drop_database().await;
}

#[tokio::test]
async fn open_accepts_postgresql_scheme() {
    let db = TestDatabase::create().await;
    let url = db.url.replacen("postgres://", "postgresql://", 1);
    assert!(url.starts_with("postgresql://"), "{}", redact_url(&url));
    let store = jwt2fa_sqlx::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open {} failed: {e}", redact_url(&url)));
    let found = store.user_by_id(1).await.expect("user_by_id failed");
    assert!(found.is_none());
    drop(store);
    db.drop_database().await;
}
