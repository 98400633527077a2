//! Fresh databases for HTTP tests on PostgreSQL and MariaDB, each under a
//! unique name and dropped when the server stops.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor};

/// Prefix of every database these tests create; leftovers of earlier runs
/// are dropped the first time this process creates one.
const PREFIX: &str = "jwt2fa_http_";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// The database server behind a test server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Sqlite,
    Postgres,
    MariaDb,
}

fn server_url(database: Database) -> String {
    let (variable, default) = match database {
        Database::Postgres => (
            "JWT2FA_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        Database::MariaDb => ("JWT2FA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
        Database::Sqlite => unreachable!("SQLite needs no server"),
    };
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

fn url_with_database(server: &str, name: &str) -> String {
    let mut url = url::Url::parse(server).expect("database server URL");
    url.set_path(name);
    url.to_string()
}

async fn run_admin(database: Database, statements: &[String]) -> Vec<String> {
    let server = server_url(database);
    let unreachable = |e: sqlx::Error| -> ! {
        panic!(
            "cannot reach the {database:?} test server at {}: {e}",
            jwt2fa_core::redact_url(&server)
        )
    };
    match database {
        Database::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&server)
                .await
                .unwrap_or_else(|e| unreachable(e));
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'jwt2fa\\_http\\_%'",
            )
            .fetch_all(&mut connection)
            .await
            .expect("list databases");
            for statement in statements {
                connection
                    .execute(statement.as_str())
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
            names
        }
        Database::MariaDb => {
            let mut connection = sqlx::MySqlConnection::connect(&server)
                .await
                .unwrap_or_else(|e| unreachable(e));
            let names: Vec<String> = sqlx::query_scalar("SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE 'jwt2fa\\_http\\_%'")
                .fetch_all(&mut connection)
                .await
                .expect("list databases");
            for statement in statements {
                connection
                    .execute(statement.as_str())
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
            names
        }
        Database::Sqlite => Vec::new(),
    }
}

fn drop_statement(database: Database, name: &str) -> String {
    match database {
        Database::Postgres => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        _ => format!("DROP DATABASE IF EXISTS `{name}`"),
    }
}

/// A database created for one test server.
pub struct TestDatabase {
    pub database: Database,
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a fresh database; SQLite files go into `dir`.
    pub async fn create(database: Database, dir: &std::path::Path) -> Self {
        if database == Database::Sqlite {
            let url = format!("sqlite://{}", dir.join("jwt2fa.sqlite3").display());
            return Self {
                database,
                url,
                name: String::new(),
            };
        }
        SWEPT
            .get_or_init(|| async {
                for database in [Database::Postgres, Database::MariaDb] {
                    let leftovers = run_admin(database, &[]).await;
                    let drops: Vec<String> = leftovers
                        .iter()
                        .map(|name| drop_statement(database, name))
                        .collect();
                    run_admin(database, &drops).await;
                }
            })
            .await;
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let create = match database {
            Database::Postgres => format!("CREATE DATABASE \"{name}\""),
            _ => format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        };
        run_admin(database, &[create]).await;
        Self {
            database,
            url: url_with_database(&server_url(database), &name),
            name,
        }
    }

    /// Drops the database.
    pub async fn drop_database(&self) {
        if self.database != Database::Sqlite {
            run_admin(self.database, &[drop_statement(self.database, &self.name)]).await;
        }
    }
}
