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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_in_flight_writes_finish_and_leaves_nothing_half_written() {
    let app = TestApp::spawn().await;
    app.create_item("SHUT").await;
    app.create_location("WH", false).await;
    let db_url = app.db_url.clone();
    let writes: Vec<_> = (0..60)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/graphql");
            let key = app.key.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(key)
                    .json(&json!({ "query": crate::support::ADJUST, "variables": { "input": crate::support::adjust_input("SHUT", "WH", 1, None) } }))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let state = app.state.clone();
    app.shutdown().await;
    let mut answered = 0;
    for write in writes {
        if let Ok(Ok(status)) = write.await {
            assert_eq!(
                status, 200,
                "a request that was answered must have succeeded"
            );
            answered += 1;
        }
    }
    // Every answered write is in the ledger and the snapshot agrees with it.
    let level: i64 = {
        use sea_orm::{ConnectionTrait, Statement};
        let row = state
            .db
            .query_one_raw(Statement::from_string(
                state.db.get_database_backend(),
                "SELECT CAST(COALESCE(SUM(available), 0) AS BIGINT) AS a FROM stock_levels",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "a").unwrap()
    };
    assert!(
        level >= answered,
        "{answered} answered writes but only {level} units in the snapshot"
    );
    let (code, report) = reconcile(&db_url);
    assert_eq!(
        (code, report["mismatches"].as_u64()),
        (0, Some(0)),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_during_traffic_sees_one_consistent_moment() {
    let app = TestApp::spawn().await;
    for sku in ["LIVE-1", "LIVE-2", "LIVE-3"] {
        app.create_item(sku).await;
    }
    app.create_location("WH", false).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (client, url, key, stop) = (
                app.client.clone(),
                app.url("/graphql"),
                app.key.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let sku = format!("LIVE-{}", w % 3 + 1);
                let mut applied = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = json!({ "query": crate::support::ADJUST, "variables": {
                        "input": crate::support::adjust_input(&sku, "WH", 1, None) } });
                    let response = client.post(&url).bearer_auth(&key).json(&body).send().await;
                    if response.is_ok_and(|r| r.status().is_success()) {
                        applied += 1;
                    }
                }
                applied
            })
        })
        .collect();

    // The ledger and the snapshots are read as of one moment, so writes committing while the
    // check runs never show up as mismatches.
    for _ in 0..15 {
        let report = twh_server::ledger::reconcile::run(&app.state.db, None)
            .await
            .expect("reconcile");
        assert_eq!(report.mismatches, 0, "{:?}", report.rows);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let applied: i64 = join_all(writers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .sum();
    assert!(applied > 0, "no write landed during the checks");
    app.shutdown().await;
}

#[tokio::test]
async fn reconcile_reports_sequence_gaps_and_missing_level_rows() {
    let app = TestApp::spawn().await;
    app.create_item("GAP").await;
    app.create_item("LOST").await;
    app.create_location("WH", false).await;
    for _ in 0..3 {
        app.adjust("GAP", "WH", 5, None).await;
    }
    app.adjust("LOST", "WH", 4, None).await;
    let clean = twh_server::ledger::reconcile::run(&app.state.db, None)
        .await
        .expect("reconcile");
    assert_eq!(clean.mismatches, 0, "{:?}", clean.rows);
    assert_eq!(clean.levels_checked, 2);

    // A movement removed behind the ledger's back, and a level row lost.
    let db = &app.state.db;
    db.execute_unprepared(
        "DELETE FROM movements WHERE sequence = 2 AND item_id IN (SELECT id FROM items WHERE sku = 'GAP')",
    )
    .await
    .unwrap();
    db.execute_unprepared(
        "DELETE FROM stock_levels WHERE item_id IN (SELECT id FROM items WHERE sku = 'LOST')",
    )
    .await
    .unwrap();
    let report = twh_server::ledger::reconcile::run(&app.state.db, None)
        .await
        .expect("reconcile");
    let mut found: Vec<(String, i64, i64)> = report
        .rows
        .iter()
        .map(|m| (m.field.clone(), m.snapshot, m.ledger))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            // GAP: the snapshot says 15, the ledger now sums to 10 with 2 entries up to #3.
            ("available".to_owned(), 0, 4),
            ("available".to_owned(), 15, 10),
            ("sequence_gaps".to_owned(), 3, 2),
        ],
        "{:?}",
        report.rows
    );
    assert_eq!(report.mismatches, 3);
    assert_eq!(report.levels_checked, 1);
    app.shutdown().await;
}
