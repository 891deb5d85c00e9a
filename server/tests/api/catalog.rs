//! Items and locations: versioned updates, lookups, lists, and tenant isolation.

use serde_json::{Value, json};

use crate::support::{TestApp, codes};

const UPDATE_ITEM: &str = "mutation($id: ID!, $v: Int!, $input: UpdateItemInput!) { updateItem(id: $id, expectedVersion: $v, input: $input) { item { id name barcode version } userErrors { code field message } } }";

#[tokio::test]
async fn stale_expected_version_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let item = app.create_item("VER-1").await;
    let id = item["id"].as_str().unwrap();
    assert_eq!(item["version"], 1);

    let (_, ok) = app
        .gql(
            UPDATE_ITEM,
            json!({ "id": id, "v": 1, "input": { "name": "Renamed", "barcode": "400123" } }),
        )
        .await;
    let updated = &ok["data"]["updateItem"];
    assert_eq!(codes(updated), Vec::<String>::new(), "{ok}");
    assert_eq!(updated["item"]["version"], 2);
    assert_eq!(updated["item"]["barcode"], "400123");

    let (_, stale) = app
        .gql(
            UPDATE_ITEM,
            json!({ "id": id, "v": 1, "input": { "name": "Lost update" } }),
        )
        .await;
    let stale = &stale["data"]["updateItem"];
    assert_eq!(codes(stale), vec!["VERSION_CONFLICT"]);
    assert!(
        stale["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("current version is 2")
    );
    assert!(stale["item"].is_null());

    let (_, read) = app
        .gql(
            "query($id: ID!) { item(id: $id) { name version barcode } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        read["data"]["item"],
        json!({ "name": "Renamed", "version": 2, "barcode": "400123" })
    );

    // null clears the barcode; leaving it out keeps it.
    let (_, cleared) = app
        .gql(
            UPDATE_ITEM,
            json!({ "id": id, "v": 2, "input": { "barcode": null } }),
        )
        .await;
    assert!(
        cleared["data"]["updateItem"]["item"]["barcode"].is_null(),
        "{cleared}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn skus_and_codes_are_unique_per_tenant() {
    let app = TestApp::spawn().await;
    app.create_item("DUP").await;
    let (_, again) = app.gql("mutation { createItem(input: {sku: \"DUP\", name: \"x\"}) { item { id } userErrors { code field } } }", json!({})).await;
    assert_eq!(codes(&again["data"]["createItem"]), vec!["ALREADY_EXISTS"]);
    assert_eq!(
        again["data"]["createItem"]["userErrors"][0]["field"],
        json!(["input", "sku"])
    );

    // Another tenant has its own namespace.
    let other = app.other_tenant().await;
    let (_, theirs) = app
        .gql_as(&other, "mutation { createItem(input: {sku: \"DUP\", name: \"x\"}) { item { sku } userErrors { code } } }", json!({}))
        .await;
    assert_eq!(
        theirs["data"]["createItem"]["item"]["sku"], "DUP",
        "{theirs}"
    );

    app.create_location("L1", false).await;
    let (_, loc) = app.gql("mutation { createLocation(input: {code: \"L1\", name: \"x\"}) { location { id } userErrors { code } } }", json!({})).await;
    assert_eq!(
        codes(&loc["data"]["createLocation"]),
        vec!["ALREADY_EXISTS"]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn other_tenants_ids_behave_like_unknown_ids() {
    let app = TestApp::spawn().await;
    let item = app.create_item("MINE").await;
    let location = app.create_location("MINE-WH", false).await;
    app.adjust("MINE", "MINE-WH", 5, None).await;
    let other = app.other_tenant().await;

    let id = item["id"].as_str().unwrap();
    let (_, read) = app
        .gql_as(
            &other,
            "query($id: ID!) { item(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(read["data"]["item"].is_null(), "{read}");
    let (_, read) = app
        .gql_as(
            &other,
            "query($id: ID!) { location(id: $id) { id } }",
            json!({ "id": location["id"] }),
        )
        .await;
    assert!(read["data"]["location"].is_null(), "{read}");
    let (_, bysku) = app.gql_as(&other, "{ item(sku: \"MINE\") { id } stockLevel(sku: \"MINE\", locationCode: \"MINE-WH\") { available } }", json!({})).await;
    assert!(bysku["data"]["item"].is_null());
    assert!(bysku["data"]["stockLevel"].is_null());

    let (_, upd) = app
        .gql_as(
            &other,
            UPDATE_ITEM,
            json!({ "id": id, "v": 1, "input": { "name": "hijack" } }),
        )
        .await;
    assert_eq!(codes(&upd["data"]["updateItem"]), vec!["NOT_FOUND"]);
    let (_, unknown) = app
        .gql(
            UPDATE_ITEM,
            json!({ "id": "itm_doesnotexist", "v": 1, "input": { "name": "x" } }),
        )
        .await;
    assert_eq!(codes(&unknown["data"]["updateItem"]), vec!["NOT_FOUND"]);

    let (_, lists) = app.gql_as(&other, "{ items { edges { node { id } } } movements { edges { node { id } } } stockLevels { edges { node { sku } } } }", json!({})).await;
    assert_eq!(lists["data"]["items"]["edges"], json!([]));
    assert_eq!(lists["data"]["movements"]["edges"], json!([]));
    assert_eq!(lists["data"]["stockLevels"]["edges"], json!([]));

    let (_, mine) = app.gql("{ item(sku: \"MINE\") { name } }", json!({})).await;
    assert_eq!(mine["data"]["item"]["name"], "Item MINE");
    app.shutdown().await;
}

#[tokio::test]
async fn lists_paginate_with_cursors_and_filter() {
    let app = TestApp::spawn().await;
    for i in 0..7 {
        app.create_item(&format!("PAGE-{i}")).await;
    }
    app.create_item("OTHER-1").await;
    let query = "query($after: String) { items(first: 3, after: $after, filter: {search: \"PAGE\"}) { edges { cursor node { sku } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..5 {
        let (_, body) = app.gql(query, json!({ "after": after })).await;
        let page = &body["data"]["items"];
        seen.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["sku"].as_str().unwrap().to_owned()),
        );
        if page["pageInfo"]["hasNextPage"] == json!(false) {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        seen,
        (0..7).map(|i| format!("PAGE-{i}")).collect::<Vec<_>>()
    );

    // A field error during execution: `data` is present (null), so GraphQL over HTTP answers
    // 200 whatever the media type; the code says what went wrong.
    let (status, body) = app
        .gql("{ items(first: 0) { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_INPUT");
    assert_eq!(body["errors"][0]["path"], json!(["items"]));
    assert!(body.get("data").is_some_and(Value::is_null), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn viewers_cannot_write() {
    let app = TestApp::spawn().await;
    let (_, key) = twh_server::tenancy::issue_key(
        &app.state.db,
        &app.tenant_id,
        twh_server::auth::Role::Viewer,
        "read only",
        twh_server::auth::ApiKeyKind::Test,
    )
    .await
    .unwrap();
    let (status, body) = app
        .gql_as(
            &key,
            "mutation { createItem(input: {sku: \"V\", name: \"v\"}) { item { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let (status, _) = app
        .gql_as(&key, "{ items { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(status, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn renaming_to_a_taken_sku_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_item("TAKEN").await;
    let item = app.create_item("FREE").await;
    let (status, body) = app
        .gql(
            UPDATE_ITEM,
            json!({ "id": item["id"], "v": 1, "input": { "sku": "TAKEN" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(codes(&body["data"]["updateItem"]), vec!["ALREADY_EXISTS"]);
    assert_eq!(
        body["data"]["updateItem"]["userErrors"][0]["field"],
        json!(["input", "sku"])
    );
    let (_, read) = app
        .gql(
            "query($id: ID!) { item(id: $id) { sku version } }",
            json!({ "id": item["id"] }),
        )
        .await;
    assert_eq!(read["data"]["item"], json!({ "sku": "FREE", "version": 1 }));
    app.shutdown().await;
}

#[tokio::test]
async fn a_keyed_rename_refused_by_the_unique_index_is_stored_and_replayed() {
    // The unique index refuses inside the transaction (on Postgres that aborts it); the key's
    // savepoint keeps the claimed key so the refusal itself is stored.
    let app = TestApp::spawn().await;
    app.create_item("TAKEN-K").await;
    let item = app.create_item("FREE-K").await;
    let rename = "mutation($id: ID!, $key: String) { updateItem(id: $id, expectedVersion: 1, input: {sku: \"TAKEN-K\"}, idempotencyKey: $key) { item { sku } userErrors { code field } } }";
    let vars = json!({ "id": item["id"], "key": "rename-1" });
    let (status, first) = app.gql(rename, vars.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(codes(&first["data"]["updateItem"]), vec!["ALREADY_EXISTS"]);
    let (_, replay) = app.gql(rename, vars).await;
    assert_eq!(replay, first);
    let (_, read) = app
        .gql(
            "query($id: ID!) { item(id: $id) { sku version } }",
            json!({ "id": item["id"] }),
        )
        .await;
    assert_eq!(
        read["data"]["item"],
        json!({ "sku": "FREE-K", "version": 1 })
    );
    app.shutdown().await;
}
