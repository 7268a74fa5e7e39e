//! The store conformance suite, run against the embedded SQLite backend.

use std::sync::Arc;

use vexil_store::conformance::{self, Guard};
use vexil_store::{SqliteStore, Store};

async fn open(retention: u64) -> (Arc<dyn Store>, Guard) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open_with_retention(directory.path(), &conformance::environments(), retention).expect("store opens");
    (Arc::new(store), Box::new(directory))
}

vexil_store::conformance_tests!(open);
