//! The storage conformance suite against the in-memory store, once per case
//! and once as a whole through `run_conformance`.

use std::sync::Arc;

use jwt2fa_core::testing::{run_conformance, CASE_NAMES};
use jwt2fa_core::{MemoryStore, Store};

fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

jwt2fa_core::conformance_tests!(|| async { memory_store() });

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_conformance_runs_every_case() {
    let mut stores_made = 0;
    run_conformance(|| {
        stores_made += 1;
        async { memory_store() }
    })
    .await;
    assert_eq!(stores_made, CASE_NAMES.len(), "one fresh store per case");
}
