//! Bad input gets a clear, structured error and changes nothing.

use serde_json::{Value, json};

use crate::support::{ADJUST, TestApp, adjust_input, codes};

async fn ledger_snapshot(app: &TestApp) -> (Value, usize) {
    (
        app.level("VAL", "WH").await,
        app.movements(json!({})).await.len(),
    )
}

#[tokio::test]
async fn invalid_stock_changes_are_refused_with_codes_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.create_item("VAL").await;
    app.create_location("WH", false).await;
    app.adjust("VAL", "WH", 10, None).await;
    let before = ledger_snapshot(&app).await;

    let many: Vec<Value> = (0..251)
        .map(|_| json!({ "sku": "VAL", "locationCode": "WH", "delta": 1 }))
        .collect();
    let cases: Vec<(&str, Value, &str, Value)> = vec![
        (
            "zero delta",
            adjust_input("VAL", "WH", 0, None),
            "INVALID_INPUT",
            json!(["input", "changes", "0", "delta"]),
        ),
        (
            "huge delta",
            adjust_input("VAL", "WH", 10_000_000_000_000, None),
            "INVALID_INPUT",
            json!(["input", "changes", "0", "delta"]),
        ),
        (
            "unknown sku",
            adjust_input("NOPE", "WH", 1, None),
            "UNKNOWN_SKU",
            json!(["input", "changes", "0", "sku"]),
        ),
        (
            "unknown location",
            adjust_input("VAL", "NOWHERE", 1, None),
            "UNKNOWN_LOCATION",
            json!(["input", "changes", "0", "locationCode"]),
        ),
        (
            "insufficient",
            adjust_input("VAL", "WH", -11, None),
            "INSUFFICIENT_STOCK",
            json!(["input", "changes", "0", "delta"]),
        ),
        (
            "stale compare-and-set",
            adjust_input("VAL", "WH", 1, Some(9)),
            "CHANGE_FROM_QUANTITY_STALE",
            json!(["input", "changes", "0", "changeFromQuantity"]),
        ),
        (
            "empty list",
            json!({ "reason": "OTHER", "changes": [] }),
            "INVALID_INPUT",
            json!(["input", "changes"]),
        ),
        (
            "oversized list",
            json!({ "reason": "OTHER", "changes": many }),
            "INVALID_INPUT",
            json!(["input", "changes"]),
        ),
        (
            "long uri",
            json!({ "reason": "OTHER", "referenceDocumentUri": format!("x:{}", "a".repeat(3000)), "changes": [{ "sku": "VAL", "locationCode": "WH", "delta": 1 }] }),
            "INVALID_INPUT",
            json!(["input", "referenceDocumentUri"]),
        ),
        (
            "not a uri",
            json!({ "reason": "OTHER", "referenceDocumentUri": "just words", "changes": [{ "sku": "VAL", "locationCode": "WH", "delta": 1 }] }),
            "INVALID_INPUT",
            json!(["input", "referenceDocumentUri"]),
        ),
    ];
    for (name, input, code, field) in cases {
        let (status, body) = app.gql(ADJUST, json!({ "input": input })).await;
        assert_eq!(status, 200, "{name}: {body}");
        let payload = &body["data"]["adjustStock"];
        assert_eq!(codes(payload), vec![code.to_owned()], "{name}: {body}");
        assert_eq!(payload["userErrors"][0]["field"], field, "{name}");
        assert!(
            payload["movements"].as_array().unwrap().is_empty(),
            "{name}"
        );
    }

    // A group is atomic: one bad change rejects the good ones with it.
    let mixed = json!({ "reason": "OTHER", "changes": [
        { "sku": "VAL", "locationCode": "WH", "delta": 5 },
        { "sku": "VAL", "locationCode": "WH", "delta": -100 }
    ]});
    let (_, body) = app.gql(ADJUST, json!({ "input": mixed })).await;
    assert_eq!(
        codes(&body["data"]["adjustStock"]),
        vec!["INSUFFICIENT_STOCK"]
    );
    assert_eq!(
        body["data"]["adjustStock"]["userErrors"][0]["field"],
        json!(["input", "changes", "1", "delta"])
    );

    assert_eq!(
        ledger_snapshot(&app).await,
        before,
        "a refused change altered the ledger"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_4xx_with_codes() {
    let app = TestApp::spawn().await;
    app.create_item("VAL").await;
    app.create_location("WH", false).await;
    let before = ledger_snapshot(&app).await;
    let post = |body: Vec<u8>, accept: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(body)
            .send()
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("malformed json", b"{\"query\": ".to_vec(), 400, "BAD_REQUEST"),
        ("not an object", b"42".to_vec(), 400, "BAD_REQUEST"),
        ("batch", b"[{\"query\": \"{ items { edges { cursor } } }\"}]".to_vec(), 400, "BAD_REQUEST"),
        ("no query", json!({ "qeury": "{ items { edges { cursor } } }" }).to_string().into_bytes(), 400, "BAD_REQUEST"),
        ("query not a string", json!({ "query": 7 }).to_string().into_bytes(), 400, "BAD_REQUEST"),
        ("syntax error", json!({ "query": "mutation { adjustStock(" }).to_string().into_bytes(), 400, "GRAPHQL_PARSE_FAILED"),
        ("unknown field", json!({ "query": "{ nope }" }).to_string().into_bytes(), 400, "GRAPHQL_VALIDATION_FAILED"),
        ("wrong variable type", json!({ "query": ADJUST, "variables": { "input": { "reason": "OTHER", "changes": [{ "sku": "VAL", "locationCode": "WH", "delta": "five" }] } } }).to_string().into_bytes(), 400, "GRAPHQL_VALIDATION_FAILED"),
        ("overflowing integer", json!({ "query": ADJUST, "variables": { "input": { "reason": "OTHER", "changes": [{ "sku": "VAL", "locationCode": "WH", "delta": 99999999999999999999u128 as f64 }] } } }).to_string().into_bytes(), 400, "GRAPHQL_VALIDATION_FAILED"),
        ("unknown enum", json!({ "query": ADJUST, "variables": { "input": { "reason": "THEFT", "changes": [] } } }).to_string().into_bytes(), 400, "GRAPHQL_VALIDATION_FAILED"),
        ("too large", json!({ "query": "{ items { edges { cursor } } }", "pad": "x".repeat(2 * 1024 * 1024) }).to_string().into_bytes(), 413, "PAYLOAD_TOO_LARGE"),
    ];
    for (name, body, status, code) in cases {
        // application/graphql-response+json: the status is the error's. application/json: a
        // well-formed request whose document the schema refuses is a 200 (GraphQL over HTTP);
        // a body that is no GraphQL request at all stays a 4xx. Neither carries `data`.
        for accept in ["application/graphql-response+json", "application/json"] {
            let response = post(body.clone(), accept).await.unwrap();
            let document_refused = code.starts_with("GRAPHQL_");
            let expected = if document_refused && accept == "application/json" {
                200
            } else {
                status
            };
            assert_eq!(response.status().as_u16(), expected, "{name} ({accept})");
            assert_eq!(response.headers()["content-type"], accept, "{name}");
            let body: Value = response
                .json()
                .await
                .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
            assert_eq!(
                body["errors"][0]["extensions"]["code"], code,
                "{name}: {body}"
            );
            assert!(
                body.get("data").is_none(),
                "{name}: a request error has no data: {body}"
            );
        }
    }
    // A body that is not declared JSON is refused before it is read.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/json; charset=latin1"),
    ] {
        let mut request = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&app.key)
            .body(json!({ "query": "{ items { edges { cursor } } }" }).to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "UNSUPPORTED_MEDIA_TYPE"
        );
    }
    assert_eq!(ledger_snapshot(&app).await, before);
    app.shutdown().await;
}

#[tokio::test]
async fn deep_and_wide_queries_are_refused_before_running() {
    let app = TestApp::spawn().await;
    let aliases: String = (0..200)
        .map(|i| format!("a{i}: movements(first: 250) {{ edges {{ node {{ id sku delta }} }} }} "))
        .collect();
    let (status, body) = app.gql(&format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );

    // Data fields 13 deep (TWH_GRAPHQL_MAX_DEPTH is 12), also when hidden in a fragment.
    let deep = format!(
        "{{ items {{ edges {{ node {{ {}id{} }} }} }} }}",
        "a { ".repeat(10),
        " }".repeat(10)
    );
    let via_fragment = format!(
        "{{ items {{ ...E }} }} fragment E on ItemConnection {{ edges {{ node {{ {}id{} }} }} }}",
        "a { ".repeat(10),
        " }".repeat(10)
    );
    // A runaway introspection query (its own bound is 24 levels).
    let deep_introspection = format!(
        "{{ __schema {{ types {{ fields {{ type {}name{} }} }} }} }}",
        "ofType { ".repeat(22),
        " }".repeat(22)
    );
    // Schema-sized lists nested three deep: an answer that grows with the schema's cube.
    let lists =
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
            .to_owned();
    for query in [&deep, &via_fragment, &deep_introspection, &lists] {
        let (status, body) = app.gql(query, json!({})).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Query is nested too deep")),
            "{body}"
        );
    }
    app.shutdown().await;
}

/// What GraphiQL, GraphQL Code Generator, Apollo, Postman and Insomnia send first: the
/// introspection query in the shape of graphql-js's `getIntrospectionQuery`, whose type
/// references nest past the data depth limit. (tests/suites runs the real one too.)
#[tokio::test]
async fn the_standard_introspection_query_passes_the_depth_limit() {
    let app = TestApp::spawn().await;
    let type_ref = format!(
        "kind name {}kind name{}",
        "ofType { kind name ".repeat(9),
        " }".repeat(9)
    );
    let query = format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} \
         subscriptionType {{ name }} types {{ ...FullType }} directives {{ name description \
         locations args {{ ...InputValue }} }} }} }} \
         fragment FullType on __Type {{ kind name description \
           fields(includeDeprecated: true) {{ name description args {{ ...InputValue }} \
             type {{ ...TypeRef }} isDeprecated deprecationReason }} \
           inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }} \
           enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }} \
           possibleTypes {{ ...TypeRef }} }} \
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }} \
         fragment TypeRef on __Type {{ {type_ref} }}"
    );
    let (status, body) = app.gql(&query, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let types = body["data"]["__schema"]["types"].as_array().expect("types");
    assert!(
        types.iter().any(|t| t["name"] == "StockLevel"),
        "the schema's own types are listed"
    );
    assert_eq!(body["data"]["__schema"]["mutationType"]["name"], "Mutation");
    app.shutdown().await;
}

#[tokio::test]
async fn credentials_are_checked() {
    let app = TestApp::spawn().await;
    let query = json!({ "query": "{ items { edges { cursor } } }" });
    let missing = app
        .client
        .post(app.url("/graphql"))
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    // Change the last character of the secret (to something it is not).
    let last = if app.key.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{last}", &app.key[..app.key.len() - 1]);
    assert_ne!(forged, app.key);
    for bad in ["nonsense", "twh_live_", forged.as_str()] {
        let (status, body) = app
            .gql_as(bad, "{ items { edges { cursor } } }", json!({}))
            .await;
        assert_eq!(status, 401, "{bad}: {body}");
    }
    let basic = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", format!("Basic {}", app.key))
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn over_long_and_blank_catalog_fields_are_refused() {
    let app = TestApp::spawn().await;
    let query = "mutation($input: CreateItemInput!) { createItem(input: $input) { item { id } userErrors { code field } } }";
    for (input, field) in [
        (
            json!({ "sku": "x".repeat(65), "name": "n" }),
            json!(["input", "sku"]),
        ),
        (
            json!({ "sku": "has space", "name": "n" }),
            json!(["input", "sku"]),
        ),
        (
            json!({ "sku": "OK", "name": "  " }),
            json!(["input", "name"]),
        ),
        (
            json!({ "sku": "OK", "name": "n".repeat(201) }),
            json!(["input", "name"]),
        ),
        (
            json!({ "sku": "OK", "name": "n", "attributes": [1, 2] }),
            json!(["input", "attributes"]),
        ),
    ] {
        let (_, body) = app.gql(query, json!({ "input": input })).await;
        let payload = &body["data"]["createItem"];
        assert_eq!(codes(payload), vec!["INVALID_INPUT"], "{body}");
        assert_eq!(payload["userErrors"][0]["field"], field);
    }
    let (_, list) = app.gql("{ items { edges { cursor } } }", json!({})).await;
    assert_eq!(list["data"]["items"]["edges"], json!([]));
    app.shutdown().await;
}

#[tokio::test]
async fn nul_characters_are_refused_everywhere() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .gql(
            "query($s: String!) { item(sku: $s) { id } }",
            json!({ "s": "A\u{0}B" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_INPUT");
    let (status, body) = app
        .gql(
            "mutation($i: CreateItemInput!) { createItem(input: $i) { item { id } } }",
            json!({ "i": { "sku": "OK", "name": "nul\u{0}" } }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    for path in ["/v1/items?sku=%00", "/v1/stock/movements?after=x%00"] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{path}");
    }
    let (_, list) = app.gql("{ items { edges { cursor } } }", json!({})).await;
    assert_eq!(list["data"]["items"]["edges"], json!([]));
    app.shutdown().await;
}
