//! The storage conformance suite and the MySQL-specific behaviour of
//! `MySqlStore`, each test on a fresh database of the server named by
//! `JWT2FA_TEST_MYSQL_URL` (MariaDB here).

mod common;

use std::sync::Arc;

use jwt2fa_core::redact_url;
use jwt2fa_core::testing::StoreFixture;
use jwt2fa_sqlx::{MySqlStore, OpenError, MIGRATIONS_TABLE};
use sqlx::{Connection, MySqlConnection};

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn server_url() -> String {
    common::server_url("JWT2FA_TEST_MYSQL_URL", DEFAULT_URL)
}

async fn admin_connection(server: &str) -> MySqlConnection {
    MySqlConnection::connect(server).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the MySQL test server at {} (set JWT2FA_TEST_MYSQL_URL): {e}",
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
                "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata \
                 WHERE schema_name LIKE 'jwt2fa\\_test\\_%'",
            )
            .fetch_all(&mut admin)
            .await
            .expect("listing databases failed");
            for name in names.into_iter().filter(|name| common::is_stale(name)) {
                sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("dropping leftover {name} failed: {e}"));
            }
        }
        let name = common::unique_database_name();
        sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating database {name} failed: {e}"));
        let _ = admin.close().await;
        let url = common::database_url(&server, &name);
        Self { server, name, url }
    }

    async fn drop_database(self) {
        let mut admin = admin_connection(&self.server).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("dropping database {} failed: {e}", self.name));
        let _ = admin.close().await;
    }

    async fn store(&self) -> MySqlStore {
        MySqlStore::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", redact_url(&self.url)))
    }
}

async fn mysql_fixture() -> StoreFixture {
    let db = TestDatabase::create().await;
    let store = db.store().await;
    store.migrate().await.expect("migrations failed");
    let pool = store.pool().clone();
    StoreFixture::new(Arc::new(store)).with_teardown(async move {
        pool.close().await;
        db.drop_database().await;
    })
}

jwt2fa_core::conformance_tests!(mysql_fixture);

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
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name LIKE '%migrations'",
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
async fn open_accepts_mariadb_scheme() {
    let db = TestDatabase::create().await;
    let url = db.url.replacen("mysql://", "mariadb://", 1);
    assert!(url.starts_with("mariadb://"), "{}", redact_url(&url));
    let store = jwt2fa_sqlx::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open {} failed: {e}", redact_url(&url)));
    let found = store.user_by_id(1).await.expect("user_by_id failed");
    assert!(found.is_none());
    drop(store);
    db.drop_database().await;
}

#[tokio::test]
async fn connect_error_hides_password() {
    let mut url = url::Url::parse(&server_url()).expect("invalid test server URL");
    url.set_password(Some("wrong-s3cret"))
        .expect("the URL takes a password");
    let url = url.to_string();
    let error = jwt2fa_sqlx::open(&url)
        .await
        .err()
        .expect("a wrong password must be rejected");
    assert!(matches!(error, OpenError::Connect { .. }), "{error:?}");
    let mut text = format!("{error} {error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    assert!(!text.contains("wrong-s3cret"), "{text}");
    assert!(text.contains("***"), "the redacted URL is named: {text}");
}
