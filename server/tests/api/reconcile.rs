//! `twh reconcile`: zero mismatches after real traffic; a tampered snapshot is caught.

use std::process::Command;

use futures_util::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::support::TestApp;

fn reconcile(db_url: &str) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_twh"))
        .arg("reconcile")
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run twh reconcile");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_is_clean_after_traffic_and_catches_tampering() {
    let app = TestApp::spawn().await;
    app.create_item("REC").await;
    app.create_location("A", false).await;
    app.create_location("B", true).await;
    join_all((0..40).map(|i| app.adjust("REC", if i % 2 == 0 { "A" } else { "B" }, 3, None))).await;
    join_all((0..30).map(|_| app.adjust("REC", "A", -2, None))).await;
    app.gql(
        "mutation { moveStock(input: {changes: [{sku: \"REC\", quantity: 5, from: {locationCode: \"B\"}, to: {locationCode: \"B\", state: DAMAGED}}]}) { userErrors { code } } }",
        json!({}),
    )
    .await;
    app.gql(
        "mutation { setStock(input: {changes: [{sku: \"REC\", locationCode: \"B\", quantity: 100}]}) { userErrors { code } } }",
        json!({}),
    )
    .await;

    let (code, report) = reconcile(&app.db_url);
    assert_eq!(report["mismatches"], 0, "{report}");
    assert_eq!(code, 0);
    assert!(report["levelsChecked"].as_u64().unwrap() >= 2);

    app.state
        .db
        .execute_unprepared("UPDATE stock_levels SET available = available + 1 WHERE location_id IN (SELECT id FROM locations WHERE code = 'A')")
        .await
        .unwrap();
    let (code, report) = reconcile(&app.db_url);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["mismatches"], 1, "{report}");
    assert_eq!(report["rows"][0]["field"], "available");
    assert_eq!(
        report["rows"][0]["snapshot"].as_i64().unwrap()
            - report["rows"][0]["ledger"].as_i64().unwrap(),
        1
    );
    app.shutdown().await;
}
