//! Reads in one statement: the point-of-sale look-up (`stockLevel` by SKU and location) and a
//! page of `stockLevels` each cost one round trip to the database, and on Postgres their plans
//! walk the indexes whether or not the tables have statistics.

use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use twh_server::ledger::query::{StockLevelFilter, level_statement, levels_statement};
use twh_server::ledger::write::{
    lock_deltas_statement, lock_levels_statement, resolve_statement, set_levels_statement,
};

use crate::support::TestApp;

/// The fewest statements the query cost over a few runs (a background worker may send one of
/// its own during any single run).
async fn statements_of(app: &TestApp, query: &str) -> (u64, Value) {
    let mut fewest = u64::MAX;
    let mut last = Value::Null;
    for _ in 0..5 {
        let (count, (_, body)) = app.statements_of(app.gql(query, json!({}))).await;
        fewest = fewest.min(count);
        last = body;
    }
    (fewest, last)
}

#[tokio::test]
async fn a_level_and_a_page_of_levels_cost_one_statement_each() {
    let app = TestApp::spawn().await;
    app.create_location("WH1", false).await;
    app.create_location("WH2", false).await;
    for sku in ["A", "B", "C"] {
        app.create_item(sku).await;
        app.adjust(sku, "WH1", 3, None).await;
    }
    app.adjust("B", "WH2", 2, None).await;

    let (count, body) = statements_of(
        &app,
        r#"{ stockLevel(sku: "B", locationCode: "WH2") { sku locationCode available onHand version } }"#,
    )
    .await;
    assert_eq!(
        body["data"]["stockLevel"],
        json!({ "sku": "B", "locationCode": "WH2", "available": 2, "onHand": 2, "version": 1 })
    );
    assert_eq!(count, 1, "the point look-up is one statement");
    // An item that never moved at a known location reads as zeros; unknown names as null.
    let (count, body) = statements_of(
        &app,
        r#"{ never: stockLevel(sku: "A", locationCode: "WH2") { available version } unknownSku: stockLevel(sku: "Z", locationCode: "WH1") { available } unknownLocation: stockLevel(sku: "A", locationCode: "NOPE") { available } }"#,
    )
    .await;
    assert_eq!(
        body["data"],
        json!({ "never": { "available": 0, "version": 0 }, "unknownSku": null, "unknownLocation": null })
    );
    assert_eq!(count, 3, "three look-ups, one statement each");

    let page = "{ stockLevels(first: 3) { nodes { sku locationCode available } pageInfo { hasNextPage endCursor } } }";
    let (count, body) = statements_of(&app, page).await;
    assert_eq!(count, 1, "a page of levels is one statement: {body}");
    let nodes = &body["data"]["stockLevels"]["nodes"];
    assert_eq!(nodes.as_array().map(Vec::len), Some(3), "{body}");
    assert_eq!(body["data"]["stockLevels"]["pageInfo"]["hasNextPage"], true);
    let cursor = body["data"]["stockLevels"]["pageInfo"]["endCursor"].clone();
    let (_, rest) = app
        .gql(
            "query($after: String) { stockLevels(first: 10, after: $after) { nodes { sku locationCode } pageInfo { hasNextPage } } }",
            json!({ "after": cursor }),
        )
        .await;
    let mut seen: Vec<(String, String)> = nodes
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"]["stockLevels"]["nodes"].as_array().unwrap())
        .map(|n| {
            (
                n["sku"].as_str().unwrap().to_owned(),
                n["locationCode"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 4, "every level once across the pages: {rest}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        rest["data"]["stockLevels"]["pageInfo"]["hasNextPage"],
        false
    );

    let (count, body) = statements_of(
        &app,
        r#"{ bySku: stockLevels(filter: {sku: "B"}) { nodes { locationCode available } } byLocation: stockLevels(filter: {locationCode: "WH2"}) { nodes { sku } } nothing: stockLevels(filter: {sku: "Z"}) { nodes { sku } } }"#,
    )
    .await;
    assert_eq!(
        body["data"]["bySku"]["nodes"],
        json!([{ "locationCode": "WH1", "available": 3 }, { "locationCode": "WH2", "available": 2 }])
    );
    assert_eq!(body["data"]["byLocation"]["nodes"], json!([{ "sku": "B" }]));
    assert_eq!(body["data"]["nothing"]["nodes"], json!([]));
    assert_eq!(count, 3, "three filtered pages, one statement each");
    app.shutdown().await;
}

/// The plan Postgres chose for a statement, one line per node.
async fn plan(db: &impl ConnectionTrait, statement: Statement) -> String {
    let explain = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("EXPLAIN {}", statement.sql),
        statement.values.map(|v| v.0).unwrap_or_default(),
    );
    db.query_all_raw(explain)
        .await
        .expect("explain")
        .iter()
        .map(|row| {
            row.try_get::<String>("", "QUERY PLAN")
                .expect("a plan line")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn level_reads_use_the_indexes_on_tables_without_statistics() {
    let app = TestApp::spawn().await;
    if !app.db_url.starts_with("postgres") {
        return; // the plans are Postgres'; SQLite's planner follows the indexes it is given
    }
    app.create_location("WH1", false).await;
    app.create_location("WH2", false).await;
    let skus: Vec<String> = (0..400).map(|i| format!("SKU-{i:04}")).collect();
    for chunk in skus.chunks(50) {
        join_all(chunk.iter().map(|sku| app.create_item(sku))).await;
    }
    for chunk in skus.chunks(125) {
        let changes: Vec<Value> = chunk
            .iter()
            .flat_map(|sku| {
                ["WH1", "WH2"].map(|code| json!({ "sku": sku, "locationCode": code, "delta": 5 }))
            })
            .collect();
        let (_, body) = app
            .gql(
                "mutation($input: AdjustStockInput!) { adjustStock(input: $input) { userErrors { code message } } }",
                json!({ "input": { "reason": "RECEIVED", "changes": changes } }),
            )
            .await;
        assert_eq!(
            body["data"]["adjustStock"]["userErrors"],
            json!([]),
            "{body}"
        );
    }
    let db = Database::connect(app.db_url.as_str())
        .await
        .expect("connect");
    let tenant = app.tenant_id.as_str();
    let pg = DbBackend::Postgres;

    // The write path's lock of a group of changes (an order's lines): one primary-key look-up
    // per level, never the tenant's levels joined against the changes.
    let ids = db
        .query_all_raw(Statement::from_sql_and_values(
            pg,
            "SELECT item_id, location_id FROM stock_levels WHERE tenant_id = $1 LIMIT 3",
            [tenant.into()],
        ))
        .await
        .expect("levels");
    let ids: Vec<(String, String)> = ids
        .iter()
        .map(|r| {
            (
                r.try_get("", "item_id").unwrap(),
                r.try_get("", "location_id").unwrap(),
            )
        })
        .collect();
    let levels: Vec<(&str, &str)> = ids.iter().map(|(i, l)| (i.as_str(), l.as_str())).collect();
    let locking = plan(&db, lock_deltas_statement(tenant, &levels)).await;
    for scan in ["Seq Scan", "Bitmap", "Hash", "Sort", "Join Filter"] {
        assert!(
            !locking.contains(scan),
            "locking a group's levels plans a {scan}:\n{locking}"
        );
    }
    assert!(locking.contains("Index Scan"), "{locking}");
    // A recount of existing levels (setStock, a stock-count import): the same for the lock of
    // whole rows, and its UPDATE finds each row by key, then writes it by address.
    let recount = [
        (
            "locking levels to set them",
            plan(&db, lock_levels_statement(tenant, &levels).expect("lock")).await,
        ),
        (
            "setting locked levels",
            plan(
                &db,
                set_levels_statement(
                    tenant,
                    "available",
                    &levels.iter().map(|&(i, l)| (i, l, 5)).collect::<Vec<_>>(),
                    chrono::Utc::now(),
                )
                .expect("set"),
            )
            .await,
        ),
    ];
    for (what, plan) in &recount {
        for scan in ["Seq Scan", "Bitmap", "Sort"] {
            assert!(!plan.contains(scan), "{what} plans a {scan}:\n{plan}");
        }
        assert!(plan.contains("Index Scan"), "{what}:\n{plan}");
    }
    assert!(recount[1].1.contains("Tid Scan"), "{}", recount[1].1);
    // Every write's look-up of its SKUs and location codes: a unique-index look-up per key.
    let resolving = plan(
        &db,
        resolve_statement(
            tenant,
            vec!["SKU-0001".into(), "SKU-0300".into(), "SKU-0001".into()],
            vec!["WH1".into()],
        ),
    )
    .await;
    for scan in ["Seq Scan", "Bitmap", "Hash Join", "Merge Join"] {
        assert!(
            !resolving.contains(scan),
            "resolving SKUs plans a {scan}:\n{resolving}"
        );
    }
    assert!(resolving.contains("Index Scan"), "{resolving}");
    let filter = |sku: Option<&str>, code: Option<&str>| StockLevelFilter {
        sku: sku.map(str::to_owned),
        location_code: code.map(str::to_owned),
    };
    let cases = [
        (
            "the point look-up",
            level_statement(pg, tenant, "SKU-0123", "WH2"),
        ),
        (
            "a page",
            levels_statement(pg, tenant, &filter(None, None), None, 50),
        ),
        (
            "a page after a cursor",
            levels_statement(pg, tenant, &filter(None, None), Some("itm_0/loc_0"), 50),
        ),
        (
            "a page at one location",
            levels_statement(pg, tenant, &filter(None, Some("WH2")), None, 50),
        ),
        (
            "a page of one SKU",
            levels_statement(pg, tenant, &filter(Some("SKU-0123"), None), None, 50),
        ),
        (
            "a page of one SKU at one location",
            levels_statement(pg, tenant, &filter(Some("SKU-0123"), Some("WH2")), None, 50),
        ),
    ];
    for (name, statement) in cases {
        let plan = plan(&db, statement).await;
        for table in ["stock_levels", "items", "locations"] {
            assert!(
                !plan.contains(&format!("Seq Scan on {table}")),
                "{name} reads every row of {table}:\n{plan}"
            );
        }
        assert!(
            !plan.contains("Sort"),
            "{name} sorts instead of walking an index in order:\n{plan}"
        );
        // Every join condition is an index condition: nothing fetched to be thrown away.
        assert!(
            !plan.contains("Join Filter"),
            "{name} filters joined rows:\n{plan}"
        );
    }
    db.close().await.ok();
    app.shutdown().await;
}

/// On Postgres the look-up and the level pages run on connections the server keeps: after a
/// read its connection goes back on the server's own list, not to sqlx's pool (whose return
/// costs a ping, a second round trip per read). A kept connection found dead (here: every one
/// of them terminated) is shed and the read runs again on a fresh one, so no read fails.
#[tokio::test]
async fn reads_run_on_kept_connections_and_outlive_their_loss() {
    let app = TestApp::spawn().await;
    if app.state.reads.idle().is_none() {
        return; // SQLite: reads run on the shared pool.
    }
    app.create_location("WH1", false).await;
    for sku in ["A", "B"] {
        app.create_item(sku).await;
        app.adjust(sku, "WH1", 4, None).await;
    }
    let look_up = r#"{ stockLevel(sku: "B", locationCode: "WH1") { sku onHand } stockLevels(first: 5) { nodes { sku } } item(sku: "A") { sku } locations { nodes { code } } }"#;
    let expected = json!({
        "stockLevel": { "sku": "B", "onHand": 4 },
        "stockLevels": { "nodes": [{ "sku": "A" }, { "sku": "B" }] },
        "item": { "sku": "A" },
        "locations": { "nodes": [{ "code": "WH1" }] },
    });
    let answers = join_all((0..24).map(|_| app.gql(look_up, json!({})))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["data"], expected, "{body}");
    }
    let (kept, in_sqlx) = app.state.reads.idle().unwrap();
    let size = app.state.config.database.read_pool_size as usize;
    assert!(
        (1..=size).contains(&kept),
        "{kept} connections kept (at most {size})"
    );
    assert_eq!(in_sqlx, 0, "no read handed its connection back to sqlx");

    // Every kept connection terminated, as a restart or an administrator would.
    let admin = Database::connect(&app.db_url).await.unwrap();
    let terminated = admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = '{}'",
                twh_server::db::held::APPLICATION_NAME
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(
        terminated as usize, kept,
        "the kept connections are the server's"
    );
    for _ in 0..=size {
        let (status, body) = app.gql(look_up, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["data"], expected,
            "a read outlives its dead connection: {body}"
        );
    }
    let (kept, _) = app.state.reads.idle().unwrap();
    assert!(kept >= 1, "fresh connections are kept again");
    app.shutdown().await;
}
