//! Idempotency keys: replays return the stored result, changes apply once, reuse is refused.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use serde_json::json;

use crate::support::{ADJUST, TestApp, adjust_input, codes};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_twenty_times_concurrently_applies_once() {
    let app = TestApp::spawn().await;
    app.create_item("IDEM").await;
    app.create_location("WH", false).await;

    let results = join_all((0..20).map(|_| app.adjust("IDEM", "WH", 7, Some("same-key-1")))).await;
    let first = &results[0];
    assert_eq!(codes(first), Vec::<String>::new(), "{first}");
    for payload in &results {
        assert_eq!(payload, first, "every caller gets the same result");
    }
    assert_eq!(app.level("IDEM", "WH").await["available"], 7);
    assert_eq!(app.movements(json!({ "sku": "IDEM" })).await.len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn replay_is_marked_and_mismatch_is_refused() {
    let app = TestApp::spawn().await;
    app.create_item("IDEM-2").await;
    app.create_location("WH", false).await;
    let vars = json!({ "input": adjust_input("IDEM-2", "WH", 3, None), "key": "k-42" });
    let send = || {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&app.key)
            .json(&json!({ "query": ADJUST, "variables": vars }))
            .send()
    };
    let first = send().await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first, second);

    // Same key, different input.
    let other = app
        .gql(
            ADJUST,
            json!({ "input": adjust_input("IDEM-2", "WH", 4, None), "key": "k-42" }),
        )
        .await
        .1;
    assert_eq!(
        codes(&other["data"]["adjustStock"]),
        vec!["IDEMPOTENCY_KEY_PARAMETER_MISMATCH"]
    );
    assert_eq!(app.level("IDEM-2", "WH").await["available"], 3);

    // Keys are per tenant: another tenant may use the same key for its own request.
    let other_key = app.other_tenant().await;
    let (_, body) = app
        .gql_as(
            &other_key,
            ADJUST,
            json!({ "input": adjust_input("IDEM-2", "WH", 3, None), "key": "k-42" }),
        )
        .await;
    assert_eq!(
        codes(&body["data"]["adjustStock"]),
        vec!["UNKNOWN_SKU", "UNKNOWN_LOCATION"],
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn business_failures_are_replayed_too() {
    let app = TestApp::spawn().await;
    app.create_item("IDEM-3").await;
    app.create_location("WH", false).await;
    let refused = app.adjust("IDEM-3", "WH", -5, Some("k-fail")).await;
    assert_eq!(codes(&refused), vec!["INSUFFICIENT_STOCK"]);
    app.adjust("IDEM-3", "WH", 10, None).await;
    // Stock is there now, but the key's answer is fixed: the same request is not re-run.
    let replay = app.adjust("IDEM-3", "WH", -5, Some("k-fail")).await;
    assert_eq!(replay, refused);
    assert_eq!(app.level("IDEM-3", "WH").await["available"], 10);
    app.shutdown().await;
}

#[tokio::test]
async fn item_creation_is_idempotent() {
    let app = TestApp::spawn().await;
    let query = "mutation($key: String) { createItem(input: {sku: \"ONCE\", name: \"Once\"}, idempotencyKey: $key) { item { id } userErrors { code } } }";
    let (_, a) = app.gql(query, json!({ "key": "create-once" })).await;
    let (_, b) = app.gql(query, json!({ "key": "create-once" })).await;
    assert_eq!(a, b);
    assert!(a["data"]["createItem"]["item"]["id"].is_string(), "{a}");
    let (_, c) = app.gql(query, json!({ "key": "create-twice" })).await;
    assert_eq!(codes(&c["data"]["createItem"]), vec!["ALREADY_EXISTS"]);
    // The refusal (a unique violation inside the transaction) is stored under its key too.
    let (_, again) = app.gql(query, json!({ "key": "create-twice" })).await;
    assert_eq!(again, c);
    app.shutdown().await;
}

#[tokio::test]
async fn expired_keys_are_swept_and_reusable() {
    let app = TestApp::spawn_with(|c| c.idempotency_ttl_hours = 0).await;
    app.create_item("IDEM-4").await;
    app.create_location("WH", false).await;
    app.adjust("IDEM-4", "WH", 1, Some("short-lived")).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let swept = twh_server::idempotency::sweep_expired(&app.state.db)
        .await
        .unwrap();
    assert!(swept >= 1);
    // With the key gone, the same key is a new request.
    app.adjust("IDEM-4", "WH", 1, Some("short-lived")).await;
    assert_eq!(app.level("IDEM-4", "WH").await["available"], 2);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_still_in_flight_is_refused_after_the_configured_wait() {
    let app = TestApp::spawn_with(|config| config.idempotency_wait_ms = 300).await;
    if !app.db_url.starts_with("postgres") {
        // SQLite runs one writer at a time: a second request with the key queues and replays.
        eprintln!("skipped: Postgres only");
        return;
    }
    app.create_item("IDEM-4").await;
    app.create_location("WH", false).await;

    // Another request holding the key: its key row inserted by a transaction not yet committed.
    let other = Database::connect(app.db_url.as_str()).await.unwrap();
    let in_flight = other.begin().await.unwrap();
    in_flight
        .execute_unprepared(&format!(
            "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, response, created_at, expires_at) \
             VALUES ('{}', 'k-busy', 'stock.adjust', 'other', '', now(), now() + interval '1 day')",
            app.tenant_id
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let refused = app.adjust("IDEM-4", "WH", 2, Some("k-busy")).await;
    let waited = started.elapsed();
    assert_eq!(
        codes(&refused),
        vec!["IDEMPOTENCY_CONCURRENT_REQUEST"],
        "{refused}"
    );
    // It waited for the other request, but for the configured 300 ms, not the 5 s default.
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );
    assert_eq!(app.level("IDEM-4", "WH").await["available"], 0);

    // Once the other request has gone without committing, the key is free.
    in_flight.rollback().await.unwrap();
    let applied = app.adjust("IDEM-4", "WH", 2, Some("k-busy")).await;
    assert_eq!(codes(&applied), Vec::<String>::new(), "{applied}");
    assert_eq!(app.level("IDEM-4", "WH").await["available"], 2);
    other.close().await.ok();
    app.shutdown().await;
}

/// A keyed adjust, move or set stores its answer in the statement that records its movements
/// (on Postgres: one round trip fewer than claiming, working and then storing), and every one
/// of them replays exactly what it answered.
#[tokio::test]
async fn keyed_stock_writes_store_their_answer_with_their_movements() {
    let app = TestApp::spawn().await;
    app.create_item("FOLD").await;
    app.create_location("A", false).await;
    app.create_location("B", false).await;
    // Warm: the key is cached, the level exists.
    app.adjust("FOLD", "A", 10, None).await;
    let (unkeyed, _) = app.statements_of(app.adjust("FOLD", "A", 1, None)).await;
    let (keyed, _) = app
        .statements_of(app.adjust("FOLD", "A", 1, Some("fold-adjust")))
        .await;
    // The claim, and on SQLite the store; on Postgres the store rides with the movements. (The
    // savepoint goes as unprepared text, which the counter does not see.)
    let extra = if app.state.is_postgres() { 1 } else { 2 };
    assert_eq!(keyed - unkeyed, extra, "{keyed} keyed, {unkeyed} unkeyed");

    let calls = [
        (
            "mutation($key: String) { moveStock(input: {changes: [{sku: \"FOLD\", quantity: 2, from: {locationCode: \"A\"}, to: {locationCode: \"B\"}}]}, idempotencyKey: $key) { groupId movements { id sequence quantityAfterChange } levels { locationCode available } userErrors { code } } }",
            "fold-move",
        ),
        (
            "mutation($key: String) { setStock(input: {changes: [{sku: \"FOLD\", locationCode: \"B\", quantity: 7}]}, idempotencyKey: $key) { groupId movements { id sequence quantityAfterChange } levels { locationCode available } userErrors { code } } }",
            "fold-set",
        ),
        (
            "mutation($key: String) { adjustStock(input: {reason: CORRECTION, changes: [{sku: \"FOLD\", locationCode: \"A\", delta: 1}]}, idempotencyKey: $key) { groupId movements { id sequence quantityAfterChange } levels { locationCode available } userErrors { code } } }",
            "fold-adjust-again",
        ),
    ];
    for (query, key) in calls {
        let first = app.gql(query, json!({ "key": key })).await.1;
        let again = app.gql(query, json!({ "key": key })).await.1;
        assert_eq!(first, again, "{key}");
        let payload = first["data"].as_object().unwrap().values().next().unwrap();
        assert_eq!(payload["userErrors"], json!([]), "{first}");
        assert!(payload["groupId"].is_string(), "{first}");
    }
    assert_eq!(app.level("FOLD", "A").await["available"], 11);
    assert_eq!(app.level("FOLD", "B").await["available"], 7);
    app.shutdown().await;
}
