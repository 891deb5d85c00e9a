//! The database going away under the server: connections that Postgres has closed are replaced
//! without failing the requests that next need them.

use reqwest::Method;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;

use crate::support::{ADJUST, TestApp, adjust_input, codes};

/// A running app with stock on one SKU and several warm pooled connections, or `None` on SQLite
/// (which has no server to drop connections).
async fn warm_app() -> Option<TestApp> {
    let app = TestApp::spawn().await;
    if !app.db_url.starts_with("postgres") {
        eprintln!("skipped: Postgres only (SQLite has no server to drop connections)");
        return None;
    }
    app.create_item("R-1").await;
    app.create_location("WH", false).await;
    // Several concurrent writes so several pooled connections are open and then reused.
    let warm =
        futures_util::future::join_all((0..8).map(|_| app.adjust("R-1", "WH", 1, None))).await;
    for payload in &warm {
        assert_eq!(codes(payload), Vec::<String>::new(), "{payload}");
    }
    Some(app)
}

/// A connection to the Postgres admin database (not the app's: that one may be made to refuse
/// connections) and the app database's name.
async fn admin(app: &TestApp) -> (DatabaseConnection, String) {
    let url = std::env::var("TWH_TEST_DATABASE_URL").expect("the Postgres admin URL");
    let admin = Database::connect(url.as_str()).await.expect("connect");
    let name = app.db_url.rsplit('/').next().expect("a database name");
    (admin, name.to_owned())
}

/// What a Postgres restart or failover does to the server's connections.
async fn drop_server_connections(app: &TestApp) {
    let (admin, name) = admin(app).await;
    let dropped = admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .expect("terminate the server's connections");
    assert!(
        dropped.rows_affected() >= 1,
        "no server connection was open"
    );
    admin.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_postgres_drops_every_connection_succeed() {
    let Some(app) = warm_app().await else { return };
    drop_server_connections(&app).await;

    // Straight away, before the pool's idle check would ping anything.
    for _ in 0..12 {
        let payload = app.adjust("R-1", "WH", 1, None).await;
        assert_eq!(codes(&payload), Vec::<String>::new(), "{payload}");
    }
    let level = app.level("R-1", "WH").await;
    assert_eq!(level["available"], json!(20), "{level}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_after_postgres_drops_every_connection_succeed() {
    let Some(app) = warm_app().await else { return };

    drop_server_connections(&app).await;
    let (status, _, body) = app
        .rest(Method::GET, "/v1/stock/levels?sku=R-1", None, &[])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["available"], json!(8), "{body}");

    drop_server_connections(&app).await;
    for _ in 0..4 {
        let level = app.level("R-1", "WH").await;
        assert_eq!(level["available"], json!(8), "{level}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_503_with_retry_after_and_recovers() {
    let Some(app) = warm_app().await else { return };
    let (admin, name) = admin(&app).await;
    // The database stops accepting connections and drops the server's open ones.
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
        ))
        .await
        .expect("refuse connections");
    drop_server_connections(&app).await;

    let write = json!({
        "query": ADJUST,
        "variables": { "input": adjust_input("R-1", "WH", 1, None) }
    });
    let (status, headers, body) = app.rest(Method::POST, "/graphql", Some(write), &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{body}"
    );
    let (status, headers, problem) = app
        .rest(Method::GET, "/v1/stock/levels?sku=R-1", None, &[])
        .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(problem["code"], "UNAVAILABLE", "{problem}");

    // Back again: the next calls succeed, and the refused write changed nothing.
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .expect("accept connections");
    admin.close().await.ok();
    let level = app.level("R-1", "WH").await;
    assert_eq!(level["available"], json!(8), "{level}");
    app.shutdown().await;
}

/// Every pooled connection to Postgres has Nagle's algorithm off: without it a statement bigger
/// than the socket's first send buffer waits for Postgres' delayed ACK (about 40 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_postgres_connections_send_without_delay() {
    let Some(app) = warm_app().await else { return };
    // Which connections answer: each tells its own client port.
    let ports = futures_util::future::join_all((0..8).map(|_| async {
        let row = app
            .state
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT inet_client_port() AS port, pg_sleep(0.05)::text AS slept",
            ))
            .await
            .expect("a query")
            .expect("a row");
        row.try_get::<i32>("", "port").expect("a client port")
    }))
    .await;
    let distinct: std::collections::BTreeSet<i32> = ports.into_iter().collect();
    assert!(
        distinct.len() > 1,
        "several pooled connections answered: {distinct:?}"
    );
    for port in distinct {
        let port = u16::try_from(port).expect("a TCP port");
        assert_eq!(
            twh_server::db::nodelay::is_on_for_local_port(port),
            Some(true),
            "the pooled connection on local port {port} still has Nagle's algorithm on"
        );
    }
}
