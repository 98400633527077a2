//! Test databases on a PostgreSQL or MySQL server: one fresh database per
//! test, named `jwt2fa_test_<unix seconds>_<pid>_<random>`, dropped after
//! the test passed. Databases of this form older than an hour are left
//! over from failed or killed runs and are dropped when a test starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jwt2fa_core::redact_url;

/// Prefix of every test database name.
pub const PREFIX: &str = "jwt2fa_test_";

/// Age after which a test database counts as left over.
const STALE_AFTER_SECONDS: u64 = 3600;

static SWEPT: AtomicBool = AtomicBool::new(false);

/// Returns the server URL from `variable`, or `default` when it is unset.
pub fn server_url(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// Returns a database name that no other test or test process uses.
pub fn unique_database_name() -> String {
    format!(
        "{PREFIX}{}_{}_{:08x}",
        unix_now(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Returns `true` for a test database created more than an hour ago.
pub fn is_stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let Some(Ok(created)) = rest.split('_').next().map(str::parse::<u64>) else {
        return false;
    };
    created + STALE_AFTER_SECONDS < unix_now()
}

/// Returns `true` once per test process, for the test that sweeps
/// leftovers.
pub fn first_sweep() -> bool {
    !SWEPT.swap(true, Ordering::SeqCst)
}

/// Returns `server_url` with its database replaced by `database`.
pub fn database_url(server_url: &str, database: &str) -> String {
    let mut url = url::Url::parse(server_url)
        .unwrap_or_else(|e| panic!("invalid test server URL {}: {e}", redact_url(server_url)));
    url.set_path(&format!("/{database}"));
    url.to_string()
}

#[test]
fn stale_names_are_old_test_databases_only() {
    let fresh = unique_database_name();
    assert!(!is_stale(&fresh), "{fresh}");
    assert!(is_stale("jwt2fa_test_1000_1_abcdef01"));
    assert!(!is_stale("jwt2fa_test_x_1_abcdef01"));
    assert!(!is_stale("app_production"));
}
