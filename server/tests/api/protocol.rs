//! GraphQL over HTTP details, health, metrics, and the stock mutations' semantics.

use serde_json::{Value, json};

use crate::support::{TestApp, codes};

#[tokio::test]
async fn get_queries_content_types_and_graphiql() {
    let app = TestApp::spawn().await;
    app.create_item("GET-1").await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ item(sku: \"GET-1\") { sku } }")])
        .bearer_auth(&app.key)
        .header("accept", "application/graphql-response+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/graphql-response+json"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["item"]["sku"], "GET-1");

    let mutation = app
        .client
        .get(app.url("/graphql"))
        .query(&[(
            "query",
            "mutation { createItem(input: {sku: \"G\", name: \"g\"}) { item { id } } }",
        )])
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.status(), 405);

    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql"));
    // Everything the page loads is served by the binary itself, production builds only.
    let sources: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/graphiql/"))
        .collect();
    assert!(sources.len() >= 5, "{html}");
    assert!(
        !html.contains("://"),
        "the page refers to another origin: {html}"
    );
    for source in sources {
        let asset = app.client.get(app.url(source)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{source}");
        let body = asset.text().await.unwrap();
        assert!(!body.contains("react.development"), "{source}");
        assert!(!body.is_empty(), "{source}");
    }
    let missing = app
        .client
        .get(app.url("/graphiql/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    app.shutdown().await;
}

/// The schema is public: introspection alone needs no key (GraphiQL's docs, code generators);
/// anything else without credentials is 401, and a wrong key is 401 even for introspection.
#[tokio::test]
async fn introspection_alone_needs_no_key() {
    let app = TestApp::spawn().await;
    let post = |query: &str, key: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .json(&json!({ "query": query }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    for query in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Item\") { name } __typename }",
        "query Q { ...S } fragment S on Query { __schema { types { name } } }",
    ] {
        let response = post(query, None).await.unwrap();
        assert_eq!(response.status(), 200, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body.get("errors").is_none(), "{query}: {body}");
    }
    for query in [
        "{ __typename items { edges { cursor } } }",
        "query Q { ...S } fragment S on Query { items { edges { cursor } } }",
        "mutation { __typename }",
    ] {
        let response = post(query, None).await.unwrap();
        assert_eq!(response.status(), 401, "{query}");
    }
    let response = post(
        "{ __schema { queryType { name } } }",
        Some("twh_live_wrong"),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    app.create_item("MET").await;
    app.create_location("WH", false).await;
    app.adjust("MET", "WH", 1, None).await;
    app.adjust("MET", "WH", -5, None).await;
    let text = app.metrics().await;
    for needle in [
        "twh_http_requests_total",
        "twh_http_request_duration_seconds_bucket",
        "twh_ledger_movements_total",
        "twh_errors_total{code=\"INSUFFICIENT_STOCK\"}",
        "twh_mutations_total",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    app.shutdown().await;
}

const MOVE: &str = "mutation($input: MoveStockInput!) { moveStock(input: $input) { groupId movements { sku locationCode state delta quantityAfterChange counterparty counterpartyLocationCode counterpartyState } levels { locationCode available committed damaged onHand } userErrors { code field message } } }";
const SET: &str = "mutation($input: SetStockInput!) { setStock(input: $input) { movements { delta quantityAfterChange reason } levels { available } userErrors { code field message } } }";

#[tokio::test]
async fn move_between_states_and_locations() {
    let app = TestApp::spawn().await;
    app.create_item("MV").await;
    app.create_location("A", false).await;
    app.create_location("B", false).await;
    app.adjust("MV", "A", 10, None).await;

    // State move inside a location: on hand is unchanged.
    let (_, body) = app
        .gql(MOVE, json!({ "input": { "changes": [{ "sku": "MV", "quantity": 3,
            "from": { "locationCode": "A", "state": "AVAILABLE" }, "to": { "locationCode": "A", "state": "DAMAGED" } }] } }))
        .await;
    let payload = &body["data"]["moveStock"];
    assert_eq!(codes(payload), Vec::<String>::new(), "{body}");
    assert_eq!(
        payload["levels"],
        json!([{ "locationCode": "A", "available": 7, "committed": 0, "damaged": 3, "onHand": 10 }])
    );
    assert_eq!(payload["movements"][0]["counterparty"], "BUCKET");
    assert_eq!(payload["movements"][0]["counterpartyState"], "DAMAGED");

    // Location move: two entries, each naming the other side.
    let (_, body) = app
        .gql(
            MOVE,
            json!({ "input": { "changes": [{ "sku": "MV", "quantity": 4,
            "from": { "locationCode": "A" }, "to": { "locationCode": "B" } }] } }),
        )
        .await;
    let payload = &body["data"]["moveStock"];
    let movements = payload["movements"].as_array().unwrap();
    assert_eq!(movements.len(), 2);
    assert_eq!(movements[0]["delta"], -4);
    assert_eq!(movements[0]["counterpartyLocationCode"], "B");
    assert_eq!(movements[1]["delta"], 4);
    assert_eq!(app.level("MV", "A").await["available"], 3);
    assert_eq!(app.level("MV", "B").await["available"], 4);

    // Not enough at the source: nothing moves.
    let (_, body) = app
        .gql(
            MOVE,
            json!({ "input": { "changes": [{ "sku": "MV", "quantity": 50,
            "from": { "locationCode": "A" }, "to": { "locationCode": "B" } }] } }),
        )
        .await;
    assert_eq!(
        codes(&body["data"]["moveStock"]),
        vec!["INSUFFICIENT_STOCK"]
    );
    assert_eq!(
        body["data"]["moveStock"]["userErrors"][0]["field"],
        json!(["input", "changes", "0", "from", "quantity"])
    );
    assert_eq!(app.level("MV", "B").await["available"], 4);
    app.shutdown().await;
}

#[tokio::test]
async fn set_records_the_difference_and_honours_compare_and_set() {
    let app = TestApp::spawn().await;
    app.create_item("CNT").await;
    app.create_location("WH", false).await;
    app.adjust("CNT", "WH", 10, None).await;

    let (_, body) = app.gql(SET, json!({ "input": { "changes": [{ "sku": "CNT", "locationCode": "WH", "quantity": 7, "changeFromQuantity": 10 }] } })).await;
    let payload = &body["data"]["setStock"];
    assert_eq!(codes(payload), Vec::<String>::new(), "{body}");
    assert_eq!(
        payload["movements"],
        json!([{ "delta": -3, "quantityAfterChange": 7, "reason": "CYCLE_COUNT" }])
    );

    let (_, stale) = app.gql(SET, json!({ "input": { "changes": [{ "sku": "CNT", "locationCode": "WH", "quantity": 1, "changeFromQuantity": 10 }] } })).await;
    assert_eq!(
        codes(&stale["data"]["setStock"]),
        vec!["CHANGE_FROM_QUANTITY_STALE"]
    );
    assert!(
        stale["data"]["setStock"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("is 7")
    );
    assert_eq!(app.level("CNT", "WH").await["available"], 7);

    // Setting the quantity it already has records no movement.
    let (_, same) = app.gql(SET, json!({ "input": { "changes": [{ "sku": "CNT", "locationCode": "WH", "quantity": 7 }] } })).await;
    assert_eq!(same["data"]["setStock"]["movements"], json!([]));
    assert_eq!(
        same["data"]["setStock"]["levels"],
        json!([{ "available": 7 }])
    );
    app.shutdown().await;
}

/// A recount of levels that exist, two states of one level among them: each state is written
/// after the other on the same row (on Postgres found again by key for each, never by a scan),
/// and every movement carries the level's next sequence.
#[tokio::test]
async fn a_recount_sets_two_states_of_one_level_and_another_level_in_one_call() {
    let app = TestApp::spawn().await;
    app.create_item("RC1").await;
    app.create_item("RC2").await;
    app.create_location("WH", false).await;
    app.adjust("RC1", "WH", 10, None).await;
    app.adjust("RC2", "WH", 4, None).await;

    let set = "mutation($input: SetStockInput!) { setStock(input: $input) { movements { sku state delta quantityAfterChange sequence } userErrors { code } } }";
    let (_, body) = app
        .gql(
            set,
            json!({ "input": { "changes": [
                { "sku": "RC1", "locationCode": "WH", "quantity": 6, "changeFromQuantity": 10 },
                { "sku": "RC1", "locationCode": "WH", "state": "DAMAGED", "quantity": 3 },
                { "sku": "RC2", "locationCode": "WH", "quantity": 9 },
            ] } }),
        )
        .await;
    let payload = &body["data"]["setStock"];
    assert_eq!(codes(payload), Vec::<String>::new(), "{body}");
    let mut movements: Vec<Value> = payload["movements"].as_array().expect("movements").clone();
    movements.sort_by_key(|m| (m["sku"].to_string(), m["sequence"].as_i64()));
    assert_eq!(
        movements,
        json!([
            { "sku": "RC1", "state": "AVAILABLE", "delta": -4, "quantityAfterChange": 6, "sequence": 2 },
            { "sku": "RC1", "state": "DAMAGED", "delta": 3, "quantityAfterChange": 3, "sequence": 3 },
            { "sku": "RC2", "state": "AVAILABLE", "delta": 5, "quantityAfterChange": 9, "sequence": 2 },
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let level = app.level("RC1", "WH").await;
    assert_eq!(
        (level["available"].clone(), level["damaged"].clone()),
        (json!(6), json!(3)),
        "{level}"
    );
    assert_eq!(app.level("RC2", "WH").await["available"], 9);
    app.assert_reconciled().await;
    app.shutdown().await;
}

#[tokio::test]
async fn negative_available_only_where_the_location_allows_it() {
    let app = TestApp::spawn().await;
    app.create_item("NEG").await;
    app.create_location("STRICT", false).await;
    app.create_location("LOOSE", true).await;
    assert_eq!(
        codes(&app.adjust("NEG", "STRICT", -1, None).await),
        vec!["INSUFFICIENT_STOCK"]
    );
    let loose = app.adjust("NEG", "LOOSE", -2, None).await;
    assert_eq!(codes(&loose), Vec::<String>::new(), "{loose}");
    assert_eq!(loose["movements"][0]["quantityAfterChange"], -2);
    // The same rules once the level rows exist (the first change of a bucket creates its row).
    let again = app.adjust("NEG", "LOOSE", -3, None).await;
    assert_eq!(again["movements"][0]["quantityAfterChange"], -5, "{again}");
    assert_eq!(
        codes(&app.adjust("NEG", "STRICT", 1, None).await),
        Vec::<String>::new()
    );
    assert_eq!(
        codes(&app.adjust("NEG", "STRICT", -2, None).await),
        vec!["INSUFFICIENT_STOCK"]
    );
    assert_eq!(app.level("NEG", "STRICT").await["available"], 1);
    // Other states never go negative, even there.
    let (_, body) = app
        .gql(
            "mutation { adjustStock(input: {reason: DAMAGED, changes: [{sku: \"NEG\", locationCode: \"LOOSE\", state: DAMAGED, delta: -1}]}) { userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        codes(&body["data"]["adjustStock"]),
        vec!["INSUFFICIENT_STOCK"]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn movements_filter_by_state_reason_group_and_time() {
    let app = TestApp::spawn().await;
    app.create_item("FLT").await;
    app.create_location("WH", false).await;
    let first = app.adjust("FLT", "WH", 5, None).await;
    let start = chrono::Utc::now();
    app.gql(
        "mutation { adjustStock(input: {reason: RECEIVED, changes: [{sku: \"FLT\", locationCode: \"WH\", state: INCOMING, delta: 9}]}) { userErrors { code } } }",
        json!({}),
    )
    .await;
    assert_eq!(app.movements(json!({ "state": "INCOMING" })).await.len(), 1);
    assert_eq!(
        app.movements(json!({ "reason": "CORRECTION" })).await.len(),
        1
    );
    assert_eq!(
        app.movements(json!({ "groupId": first["groupId"] }))
            .await
            .len(),
        1
    );
    assert_eq!(
        app.movements(json!({ "since": start.to_rfc3339() }))
            .await
            .len(),
        1
    );
    assert_eq!(
        app.movements(json!({ "until": start.to_rfc3339() }))
            .await
            .len(),
        1
    );
    assert_eq!(app.movements(json!({ "sku": "NOPE" })).await.len(), 0);
    let level = app.level("FLT", "WH").await;
    assert_eq!(
        (level["onHand"].as_i64(), level["incoming"].as_i64()),
        (Some(5), Some(9))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn problem_types_resolve_to_the_error_reference() {
    let app = TestApp::spawn().await;
    let page = app
        .client
        .get(app.url("/docs/errors"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for code in twh_server::error::ErrorCode::ALL {
        let anchor = code.problem_type();
        let id = anchor.rsplit('#').next().unwrap();
        assert!(
            page.contains(&format!("id=\"{id}\"")),
            "no entry for {}",
            code.as_str()
        );
    }
    app.shutdown().await;
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Automatic persisted queries (Apollo's protocol) over POST and GET, and GET answers a client
/// revalidates with `If-None-Match`.
#[tokio::test]
async fn persisted_queries_by_hash_and_get_revalidation() {
    let app = TestApp::spawn().await;
    app.create_item("APQ-1").await;
    app.create_location("WH", false).await;
    let query = "query Level($sku: String!) { stockLevel(sku: $sku, locationCode: \"WH\") { sku available } }";
    let hash = sha256_hex(query);
    let extension = |hash: &str| json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let post = |body: Value, accept: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&app.key)
            .header("accept", accept)
            .json(&body)
            .send()
    };

    // The hash alone, before the server has seen the text: PERSISTED_QUERY_NOT_FOUND, in the
    // shape Apollo's clients recognise (a 200 under application/json, a 400 otherwise).
    let unknown = json!({ "variables": { "sku": "APQ-1" }, "extensions": extension(&hash) });
    let response = post(unknown.clone(), "application/json").await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    let response = post(unknown.clone(), "application/graphql-response+json")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // A hash that is not the text's, or a version the server does not speak: 400, nothing kept.
    for bad in [
        json!({ "query": query, "variables": { "sku": "APQ-1" }, "extensions": extension(&sha256_hex("{ __typename }")) }),
        json!({ "query": query, "variables": { "sku": "APQ-1" }, "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } }),
        json!({ "query": query, "extensions": { "persistedQuery": "yes" } }),
        json!({ "variables": {} }),
    ] {
        let response = post(bad.clone(), "application/json").await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{body}"
        );
    }
    let response = post(unknown.clone(), "application/json").await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );

    // The text with its hash runs and is remembered; then the hash alone is enough.
    let full =
        json!({ "query": query, "variables": { "sku": "APQ-1" }, "extensions": extension(&hash) });
    let body: Value = post(full, "application/json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["stockLevel"]["available"], 0, "{body}");
    let body: Value = post(unknown, "application/json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["stockLevel"]["sku"], "APQ-1", "{body}");

    // Over GET, by hash: the answer carries an ETag and may only be kept privately.
    let get = |etag: Option<String>| {
        let mut request = app
            .client
            .get(app.url("/graphql"))
            .query(&[
                ("variables", json!({ "sku": "APQ-1" }).to_string()),
                ("extensions", extension(&hash).to_string()),
            ])
            .bearer_auth(&app.key);
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.send()
    };
    let first = get(None).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "private, no-cache");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["data"]["stockLevel"]["available"], 0, "{body}");
    // Unchanged: 304 and no body.
    let again = get(Some(etag.clone())).await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.text().await.unwrap(), "");
    // The stock moved: the same tag no longer matches.
    assert_eq!(
        codes(&app.adjust("APQ-1", "WH", 3, None).await),
        Vec::<String>::new()
    );
    let changed = get(Some(etag.clone())).await.unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["data"]["stockLevel"]["available"], 3, "{body}");

    // A mutation registered by hash still may not run over GET.
    let mutation =
        "mutation { createItem(input: {sku: \"APQ-GET\", name: \"g\"}) { item { id } } }";
    let body: Value = post(
        json!({ "query": mutation, "extensions": extension(&sha256_hex(mutation)) }),
        "application/json",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(
        body["data"]["createItem"]["item"]["id"].is_string(),
        "{body}"
    );
    let refused = app
        .client
        .get(app.url("/graphql"))
        .query(&[("extensions", extension(&sha256_hex(mutation)).to_string())])
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 405);
    app.shutdown().await;
}
