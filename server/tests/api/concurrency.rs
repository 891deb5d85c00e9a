//! Racing writers: the ledger neither loses nor invents a unit, and sequences have no gaps.

use futures_util::future::join_all;
use serde_json::json;

use crate::support::{TestApp, codes};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_increments_on_one_sku_all_land() {
    let app = TestApp::spawn().await;
    app.create_item("HOT-1").await;
    app.create_location("WH", false).await;

    let results = join_all((0..200).map(|_| app.adjust("HOT-1", "WH", 1, None))).await;
    for payload in &results {
        assert_eq!(codes(payload), Vec::<String>::new(), "{payload}");
    }

    let level = app.level("HOT-1", "WH").await;
    assert_eq!(level["available"], 200);
    assert_eq!(level["onHand"], 200);
    assert_eq!(level["sequence"], 200);

    let movements = app
        .movements(json!({ "sku": "HOT-1", "locationCode": "WH" }))
        .await;
    assert_eq!(movements.len(), 200);
    let mut sequences: Vec<i64> = movements
        .iter()
        .map(|m| m["sequence"].as_i64().unwrap())
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=200).collect::<Vec<_>>());
    // Each movement saw the quantity its sequence implies: no two writers read the same value.
    for m in &movements {
        assert_eq!(m["quantityAfterChange"], m["sequence"], "{m}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decrements_never_oversell() {
    let app = TestApp::spawn().await;
    app.create_item("SCARCE").await;
    app.create_location("WH", false).await;
    assert_eq!(
        codes(&app.adjust("SCARCE", "WH", 50, None).await),
        Vec::<String>::new()
    );

    let results = join_all((0..100).map(|_| app.adjust("SCARCE", "WH", -1, None))).await;
    let ok = results.iter().filter(|p| codes(p).is_empty()).count();
    let refused = results
        .iter()
        .filter(|p| codes(p) == vec!["INSUFFICIENT_STOCK".to_owned()])
        .count();
    assert_eq!((ok, refused), (50, 50));
    for payload in results.iter().filter(|p| codes(p).is_empty()) {
        let after = payload["movements"][0]["quantityAfterChange"]
            .as_i64()
            .unwrap();
        assert!((0..50).contains(&after), "{payload}");
    }
    let level = app.level("SCARCE", "WH").await;
    assert_eq!(level["available"], 0);
    assert_eq!(app.movements(json!({ "sku": "SCARCE" })).await.len(), 51);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_moves_between_locations_conserve_stock() {
    let app = TestApp::spawn().await;
    app.create_item("MOVER").await;
    app.create_location("A", false).await;
    app.create_location("B", false).await;
    app.adjust("MOVER", "A", 30, None).await;
    app.adjust("MOVER", "B", 30, None).await;

    let query = "mutation($input: MoveStockInput!) { moveStock(input: $input) { movements { delta } userErrors { code } } }";
    let app_ref = &app;
    let moves = (0..60).map(|i| {
        let (from, to) = if i % 2 == 0 { ("A", "B") } else { ("B", "A") };
        let input = json!({ "changes": [{ "sku": "MOVER", "quantity": 1,
            "from": { "locationCode": from }, "to": { "locationCode": to } }] });
        async move { app_ref.gql(query, json!({ "input": input })).await }
    });
    let results = join_all(moves).await;
    for (status, body) in &results {
        assert!(status.is_success(), "{body}");
        assert!(body["errors"].is_null(), "{body}");
    }
    let a = app.level("MOVER", "A").await["available"].as_i64().unwrap();
    let b = app.level("MOVER", "B").await["available"].as_i64().unwrap();
    assert_eq!(a + b, 60, "stock was created or lost by moves");
    app.shutdown().await;
}
