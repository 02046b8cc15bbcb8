//! Waiting in the mirror's tests: a condition polled until it holds (or the test fails), and a
//! plain connection to the test's PostgreSQL.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Client;

/// Polls `done` every 50 ms until it holds; fails the test, naming `what`, after `timeout`.
#[allow(dead_code)] // each test binary compiles this module; not every one waits
pub async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain-text connection to the database at `url`, its driver running on the test's runtime
/// until the client is dropped.
#[allow(dead_code)] // each test binary compiles this module; not every one connects
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to Postgres");
    tokio::spawn(connection);
    client
}
