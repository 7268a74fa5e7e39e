//! The store conformance suite, run against the Redis backend on a `redis-server` this test starts itself.

use std::sync::Arc;

use vexil_store::conformance::{self, Guard, RedisServer};
use vexil_store::{RedisStore, Store};

async fn open(retention: u64) -> (Arc<dyn Store>, Guard) {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), &conformance::environments(), retention).await.expect("the store connects");
    store.prepare().await.expect("the environments are registered");
    (Arc::new(store), Box::new(server))
}

vexil_store::conformance_tests!(open);
