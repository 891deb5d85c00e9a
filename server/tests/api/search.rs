//! Search: one suite for every engine. It runs on the built-in engine over SQLite by default,
//! over Postgres with TWH_TEST_DATABASE_URL, and on Meilisearch with
//! TWH_TEST_MEILISEARCH_URL (see the harness). Each test waits for the index to catch up
//! (relay drained, indexer round done, lag zero) before it searches.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use twh_server::search::indexer;

use crate::support::{ADJUST, TestApp, adjust_input};

const SEARCH: &str = "query($q: String!, $types: [SearchType!], $filter: SearchFilter, $first: Int, $after: String) { search(query: $q, types: $types, filter: $filter, first: $first, after: $after) { totalCount hits { type id code title status exactMatch inStock available locationCodes highlights { field snippet } node { __typename ... on Item { sku } ... on Location { code } ... on PurchaseOrder { number status } } } facets { field values { value count } } pageInfo { hasNextPage endCursor } } }";

/// Relays and indexes everything written so far; the lag then reads zero.
async fn settle(app: &TestApp) {
    indexer::catch_up(&app.state)
        .await
        .expect("index catches up");
    let lag = indexer::lag_seconds(&app.state).await.expect("lag");
    assert_eq!(lag, 0.0, "nothing left to index");
}

async fn search_as(app: &TestApp, key: &str, q: &str, extra: Value) -> Value {
    let mut vars = json!({ "q": q });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            vars[k] = v;
        }
    }
    let (status, body) = app.gql_as(key, SEARCH, vars).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["search"].clone()
}

async fn search(app: &TestApp, q: &str, extra: Value) -> Value {
    search_as(app, &app.key, q, extra).await
}

fn codes_of(result: &Value) -> Vec<String> {
    result["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn create_item(app: &TestApp, sku: &str, name: &str, barcode: Option<&str>) -> Value {
    app.create_item_with(json!({ "sku": sku, "name": name, "barcode": barcode }))
        .await
}

async fn catalog(app: &TestApp) {
    create_item(app, "MUG-BLU", "Blue Ceramic Mug", Some("4006381333931")).await;
    // Recency breaks ties between equal matches: keep the two mugs' times apart.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    create_item(app, "MUG-RED", "Red Ceramic Mug", None).await;
    create_item(app, "GLS-TMB", "Glass Tumbler", None).await;
    create_item(app, "TEE-BLK", "Black Cotton Tee", None).await;
}

#[tokio::test]
async fn typos_prefixes_and_exact_codes_find_items() {
    let app = TestApp::spawn().await;
    catalog(&app).await;
    settle(&app).await;

    // One typo in a word of six letters.
    let found = search(&app, "ceramc mug", json!({})).await;
    assert_eq!(sorted(codes_of(&found)), ["MUG-BLU", "MUG-RED"], "{found}");
    assert_eq!(found["totalCount"], 2);
    let hit = &found["hits"][0];
    assert_eq!(hit["type"], "ITEM");
    assert_eq!(hit["node"]["__typename"], "Item");
    assert_eq!(hit["node"]["sku"], hit["code"]);
    let title = hit["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["field"] == "title")
        .unwrap_or_else(|| panic!("a title highlight: {hit}"));
    assert!(
        title["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>Ceramic</mark>"),
        "{title}"
    );

    // The last word is a prefix; a swap of two letters is one typo.
    assert_eq!(
        codes_of(&search(&app, "tumb", json!({})).await),
        ["GLS-TMB"]
    );
    assert_eq!(
        codes_of(&search(&app, "cotton teee", json!({})).await),
        Vec::<String>::new(),
        "no typo in a word of four letters"
    );
    assert_eq!(
        sorted(codes_of(&search(&app, "cermaic", json!({})).await)),
        ["MUG-BLU", "MUG-RED"]
    );
    // Every word must match.
    assert_eq!(
        codes_of(&search(&app, "ceramic tumbler", json!({})).await),
        Vec::<String>::new()
    );

    // A scanned barcode and a typed SKU are exact matches, first.
    let scanned = search(&app, "4006381333931", json!({})).await;
    assert_eq!(codes_of(&scanned)[0], "MUG-BLU", "{scanned}");
    assert_eq!(scanned["hits"][0]["exactMatch"], true);
    let typed = search(&app, "mug-red", json!({})).await;
    assert_eq!(codes_of(&typed)[0], "MUG-RED", "{typed}");
    assert_eq!(typed["hits"][0]["exactMatch"], true);
    assert!(
        typed["hits"].as_array().unwrap()[1..]
            .iter()
            .all(|h| h["exactMatch"] == false)
    );

    // Among equally good matches the most recently changed comes first.
    assert_eq!(
        codes_of(&search(&app, "ceramic mug", json!({})).await),
        ["MUG-RED", "MUG-BLU"]
    );
    let blue = search(&app, "MUG-BLU", json!({})).await;
    let id = blue["hits"][0]["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .gql(
            "mutation($id: ID!) { updateItem(id: $id, expectedVersion: 1, input: { unit: \"piece\" }) { userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        body["data"]["updateItem"]["userErrors"],
        json!([]),
        "{body}"
    );
    settle(&app).await;
    assert_eq!(
        codes_of(&search(&app, "ceramic mug", json!({})).await),
        ["MUG-BLU", "MUG-RED"]
    );
}

#[tokio::test]
async fn filters_facets_and_documents() {
    let app = TestApp::spawn().await;
    catalog(&app).await;
    app.create_location("WH-A", false).await;
    app.create_location("ST-1", false).await;
    let adjusted = app.adjust("MUG-BLU", "WH-A", 5, None).await;
    assert_eq!(adjusted["userErrors"], json!([]));
    let (_, body) = app
        .gql(
            "mutation($input: CreatePurchaseOrderInput!) { createPurchaseOrder(input: $input) { purchaseOrder { id number } userErrors { code } } }",
            json!({ "input": { "supplier": "Acme Ceramics", "externalReference": "EXT-4471", "lines": [{ "sku": "MUG-RED", "locationCode": "ST-1", "quantity": 10 }] } }),
        )
        .await;
    let po = body["data"]["createPurchaseOrder"]["purchaseOrder"].clone();
    assert!(po["id"].is_string(), "{body}");
    settle(&app).await;

    let in_stock = search(&app, "mug", json!({ "filter": { "inStock": true } })).await;
    assert_eq!(codes_of(&in_stock), ["MUG-BLU"]);
    assert_eq!(in_stock["hits"][0]["available"], 5);
    assert_eq!(in_stock["hits"][0]["locationCodes"], json!(["WH-A"]));
    let at_store = search(
        &app,
        "mug",
        json!({ "types": ["ITEM"], "filter": { "locationCode": "ST-1" } }),
    )
    .await;
    assert_eq!(
        codes_of(&at_store),
        Vec::<String>::new(),
        "no mug is available at ST-1"
    );

    // Documents: the purchase order by its supplier and by its reference, with its status.
    let by_supplier = search(&app, "acme", json!({ "types": ["PURCHASE_ORDER"] })).await;
    assert_eq!(codes_of(&by_supplier), [po["number"].as_str().unwrap()]);
    assert_eq!(by_supplier["hits"][0]["status"], "DRAFT");
    assert_eq!(
        by_supplier["hits"][0]["node"]["__typename"],
        "PurchaseOrder"
    );
    let by_reference = search(&app, "EXT-4471", json!({})).await;
    assert_eq!(codes_of(&by_reference), [po["number"].as_str().unwrap()]);
    let by_location = search(
        &app,
        "",
        json!({ "types": ["PURCHASE_ORDER"], "filter": { "locationCode": "ST-1" } }),
    )
    .await;
    assert_eq!(by_location["totalCount"], 1);

    // A transition reaches the index.
    let (_, body) = app
        .gql(
            "mutation($id: ID!) { submitPurchaseOrder(id: $id) { userErrors { code } } }",
            json!({ "id": po["id"] }),
        )
        .await;
    assert_eq!(body["data"]["submitPurchaseOrder"]["userErrors"], json!([]));
    settle(&app).await;
    let ordered = search(
        &app,
        "acme",
        json!({ "filter": { "statuses": ["ORDERED"] } }),
    )
    .await;
    assert_eq!(codes_of(&ordered), [po["number"].as_str().unwrap()]);
    assert_eq!(
        search(&app, "acme", json!({ "filter": { "statuses": ["DRAFT"] } })).await["totalCount"],
        0
    );

    // Locations by name, and facets over everything a query matched.
    let stores = search(&app, "location st", json!({ "types": ["LOCATION"] })).await;
    assert_eq!(codes_of(&stores), ["ST-1"]);
    assert_eq!(stores["hits"][0]["node"]["code"], "ST-1");
    let ceramic = search(&app, "ceramic", json!({})).await;
    let facet = |field: &str| -> Value {
        ceramic["facets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == field)
            .map(|f| f["values"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        facet("type"),
        json!([{ "value": "ITEM", "count": 2 }, { "value": "PURCHASE_ORDER", "count": 1 }]),
        "{ceramic}"
    );
    assert_eq!(
        facet("status"),
        json!([{ "value": "ACTIVE", "count": 2 }, { "value": "ORDERED", "count": 1 }])
    );

    // Stock leaving a location takes the item out of the in-stock filter.
    let out = app.adjust("MUG-BLU", "WH-A", -5, None).await;
    assert_eq!(out["userErrors"], json!([]));
    settle(&app).await;
    assert_eq!(
        search(&app, "mug", json!({ "filter": { "inStock": true } })).await["totalCount"],
        0
    );
}

#[tokio::test]
async fn pages_walk_every_hit_once() {
    let app = TestApp::spawn().await;
    for n in 1..=7 {
        create_item(
            &app,
            &format!("WDG-{n}"),
            &format!("Widget number {n}"),
            None,
        )
        .await;
    }
    // Two exact hits ahead of the seven fuzzy ones: an item whose SKU is the query and a
    // location whose code is (its name, "Location widget", matches too, but it shows once,
    // as exact).
    create_item(&app, "WIDGET", "Spare sprocket", None).await;
    app.create_location("widget", false).await;
    settle(&app).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        let result = search(&app, "widget", json!({ "first": 3, "after": after })).await;
        assert_eq!(result["totalCount"], 9);
        if page == 0 {
            let exact: Vec<bool> = result["hits"]
                .as_array()
                .expect("hits")
                .iter()
                .map(|h| h["exactMatch"] == true)
                .collect();
            assert_eq!(exact, [true, true, false], "{result}");
        }
        seen.extend(codes_of(&result));
        if result["pageInfo"]["hasNextPage"] == false {
            assert_eq!(page, 2, "three pages of 3");
            break;
        }
        after = result["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 9);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 9, "no hit twice: {seen:?}");
    // A page that starts among the exact hits ends among the fuzzy ones, in the same order
    // as the walk above.
    let mid = search(&app, "widget", json!({ "first": 2, "after": "1" })).await;
    assert_eq!(codes_of(&mid), seen[1..3].to_vec());
    assert_eq!(mid["hits"][0]["exactMatch"], true);
    assert_eq!(mid["hits"][1]["exactMatch"], false);
    // An empty query lists everything, most recent first.
    let all = search(&app, "", json!({ "types": ["ITEM"] })).await;
    assert_eq!(codes_of(&all)[..2], ["WIDGET", "WDG-7"]);
}

#[tokio::test]
async fn a_tenant_only_ever_finds_its_own_documents() {
    let app = TestApp::spawn().await;
    catalog(&app).await;
    let other = app.other_tenant().await;
    // The same SKU and barcode in another tenant, and a word only it has.
    let (_, body) = app
        .gql_as(
            &other,
            "mutation { createItem(input: { sku: \"MUG-BLU\", name: \"Secret Ceramic Mug\", barcode: \"4006381333931\" }) { item { id } userErrors { code } } }",
            json!({}),
        )
        .await;
    let theirs = body["data"]["createItem"]["item"]["id"]
        .as_str()
        .expect("created")
        .to_owned();
    settle(&app).await;

    let ours = |result: &Value| {
        result["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["id"] != theirs.as_str())
    };
    for (q, extra) in [
        ("secret", json!({})),
        ("MUG-BLU", json!({})),
        ("4006381333931", json!({})),
        ("", json!({ "first": 250 })),
        (
            "ceramic mug",
            json!({ "types": ["ITEM"], "filter": { "statuses": ["ACTIVE"] } }),
        ),
        // Filter values are values, never filter syntax.
        (
            "mug",
            json!({ "filter": { "statuses": ["ACTIVE\" OR tenant_id != \"x"] } }),
        ),
        ("mug", json!({ "filter": { "locationCode": "%" } })),
        ("mug", json!({ "after": "0" })),
    ] {
        let result = search(&app, q, extra.clone()).await;
        assert!(ours(&result), "{q} {extra}: {result}");
    }
    assert_eq!(search(&app, "secret", json!({})).await["totalCount"], 0);
    assert_eq!(
        search(
            &app,
            "mug",
            json!({ "filter": { "statuses": ["ACTIVE\" OR tenant_id != \"x"] } })
        )
        .await["totalCount"],
        0
    );
    // The other tenant finds its own.
    let found = search_as(&app, &other, "secret", json!({})).await;
    assert_eq!(found["hits"][0]["id"], theirs.as_str());
    assert_eq!(found["totalCount"], 1);

    // REST: the same search, the same boundary.
    let (status, _, body) = app
        .rest(Method::GET, "/v1/search?q=secret", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totalCount"], 0);
    let (status, _, body) = app
        .rest(
            Method::GET,
            "/v1/search?q=4006381333931&type=ITEM",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hits"][0]["code"], "MUG-BLU");
    assert_ne!(body["hits"][0]["id"], theirs.as_str());
    assert_eq!(body["hits"][0]["exactMatch"], true);
    // A list parameter repeats.
    let (status, _, body) = app
        .rest(
            Method::GET,
            "/v1/search?q=mug&type=LOCATION&type=ITEM",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totalCount"], 2, "{body}");
}

#[tokio::test]
async fn malformed_searches_are_invalid_input_and_synonyms_apply() {
    let app = TestApp::spawn().await;
    catalog(&app).await;
    settle(&app).await;
    for (q, extra) in [
        ("x".repeat(300), json!({})),
        ("mug\u{0}".to_owned(), json!({})),
        ("mug".to_owned(), json!({ "first": 0 })),
        ("mug".to_owned(), json!({ "after": "not-a-cursor" })),
        ("mug".to_owned(), json!({ "after": "5000" })),
        (
            "mug".to_owned(),
            json!({ "filter": { "locationCode": "" } }),
        ),
    ] {
        let mut vars = json!({ "q": q });
        if let Value::Object(extra) = &extra {
            for (k, v) in extra {
                vars[k] = v.clone();
            }
        }
        let (_, body) = app.gql(SEARCH, vars).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "INVALID_INPUT",
            "{extra}: {body}"
        );
        assert!(
            body["data"].is_null() || body["data"]["search"].is_null(),
            "{body}"
        );
    }
    // Query syntax of any engine is just text here.
    let quoted = search(&app, "\"ceramic (mug)* -", json!({})).await;
    assert_eq!(
        sorted(codes_of(&quoted)),
        ["MUG-BLU", "MUG-RED"],
        "{quoted}"
    );
    let (status, _, body) = app
        .rest(
            Method::GET,
            &format!("/v1/search?q={}", "y".repeat(300)),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "INVALID_INPUT", "{body}");

    // Synonyms: "cup" finds mugs once the tenant says so; a bad group changes nothing.
    assert_eq!(search(&app, "cup", json!({})).await["totalCount"], 0);
    let update = "mutation($groups: [[String!]!]!) { updateSearchSynonyms(input: { groups: $groups }) { synonyms { groups } userErrors { code field } } }";
    let (_, body) = app.gql(update, json!({ "groups": [["mug", "Cup"]] })).await;
    assert_eq!(
        body["data"]["updateSearchSynonyms"]["userErrors"],
        json!([]),
        "{body}"
    );
    assert_eq!(
        body["data"]["updateSearchSynonyms"]["synonyms"]["groups"],
        json!([["cup", "mug"]])
    );
    settle(&app).await;
    assert_eq!(
        sorted(codes_of(&search(&app, "cup", json!({})).await)),
        ["MUG-BLU", "MUG-RED"]
    );
    let (_, body) = app.gql(update, json!({ "groups": [["lonely"]] })).await;
    assert_eq!(
        body["data"]["updateSearchSynonyms"]["userErrors"][0]["code"], "INVALID_INPUT",
        "{body}"
    );
    let (_, body) = app.gql("{ searchSynonyms { groups } }", json!({})).await;
    assert_eq!(
        body["data"]["searchSynonyms"]["groups"],
        json!([["cup", "mug"]])
    );
}

#[tokio::test]
async fn after_a_burst_of_writes_search_agrees_with_the_ledger() {
    let app = TestApp::spawn().await;
    app.create_location("WH-A", true).await;
    // 200 items, then 10,000 stock changes in calls of 250 changes.
    for n in 0..200 {
        create_item(
            &app,
            &format!("BRS-{n:03}"),
            &format!("Burst part {n}"),
            None,
        )
        .await;
    }
    let mut changes = Vec::new();
    for i in 0..10_000i64 {
        let n = (i * 7919) % 200;
        // Most end positive; every tenth item ends at zero or below.
        let delta = if n % 10 == 0 { -1 } else { 1 + i % 3 };
        changes
            .push(json!({ "sku": format!("BRS-{n:03}"), "locationCode": "WH-A", "delta": delta }));
    }
    for chunk in changes.chunks(250) {
        let mut input = adjust_input("BRS-000", "WH-A", 1, None);
        input["changes"] = json!(chunk);
        let (_, body) = app.gql(ADJUST, json!({ "input": input })).await;
        assert_eq!(
            body["data"]["adjustStock"]["userErrors"],
            json!([]),
            "{body}"
        );
    }
    settle(&app).await;
    let (_, body) = app
        .gql(
            "{ stockLevels(first: 250) { edges { node { sku available } } } }",
            json!({}),
        )
        .await;
    let ledger: std::collections::HashMap<String, i64> = body["data"]["stockLevels"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["sku"].as_str().unwrap().to_owned(),
                e["node"]["available"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ledger.len(), 200);
    let mut checked = 0;
    let mut after: Option<String> = None;
    loop {
        let page = search(&app, "burst part", json!({ "first": 100, "after": after })).await;
        for hit in page["hits"].as_array().unwrap() {
            let sku = hit["code"].as_str().unwrap();
            assert_eq!(hit["available"].as_i64(), ledger.get(sku).copied(), "{sku}");
            assert_eq!(hit["inStock"], ledger[sku] > 0, "{sku}");
            checked += 1;
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(checked, 200);
    let in_stock = search(
        &app,
        "burst",
        json!({ "filter": { "inStock": true }, "first": 1 }),
    )
    .await;
    assert_eq!(
        in_stock["totalCount"],
        ledger.values().filter(|a| **a > 0).count()
    );
}

#[tokio::test]
async fn a_reindex_rebuilds_the_index_from_the_database() {
    let app = TestApp::spawn().await;
    catalog(&app).await;
    settle(&app).await;
    if !app.state.is_postgres()
        && matches!(
            app.state.search.engine,
            twh_server::search::Engine::Embedded
        )
    {
        // Lose the built-in index's rows behind the indexer's back.
        use sea_orm::ConnectionTrait;
        app.state
            .db
            .execute_unprepared("DELETE FROM search_documents")
            .await
            .unwrap();
        assert_eq!(search(&app, "mug", json!({})).await["totalCount"], 0);
    }
    let written = indexer::reindex(&app.state, Some(&app.tenant_id))
        .await
        .expect("reindex");
    assert_eq!(written, 4);
    settle(&app).await;
    assert_eq!(
        sorted(codes_of(&search(&app, "mug", json!({})).await)),
        ["MUG-BLU", "MUG-RED"]
    );
    assert_eq!(search(&app, "", json!({})).await["totalCount"], 4);
}

/// A `twh serve` child process on its own port.
struct Served {
    child: std::process::Child,
    base: String,
}

/// A failed assertion must not leave the server running.
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db_url: &str, dir: &std::path::Path, prefix: &str) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut command = twh_command(db_url, dir, prefix);
    command
        .arg("serve")
        .env("TWH_BIND", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Served {
        child: command.spawn().expect("start twh serve"),
        base: format!("http://127.0.0.1:{port}"),
    }
}

fn twh_command(db_url: &str, dir: &std::path::Path, prefix: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_twh"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TWH_") || name.starts_with("MEILISEARCH_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
        .current_dir(dir)
        .env("DATABASE_URL", db_url)
        .env("TWH_DATA_DIR", dir)
        .env("TWH_RATE_LIMITS", "off")
        .env("TWH_RECONCILE_SCHEDULE", "off")
        .env("TWH_SEARCH_POLL_MS", "50");
    if let Ok(url) = std::env::var("TWH_TEST_MEILISEARCH_URL")
        && !url.is_empty()
    {
        command
            .env("MEILISEARCH_URL", url)
            .env("TWH_SEARCH_INDEX_PREFIX", prefix);
        if let Ok(key) = std::env::var("TWH_TEST_MEILISEARCH_KEY") {
            command.env("MEILISEARCH_API_KEY", key);
        }
    }
    command
}

async fn ready(client: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("twh serve at {base} did not come up");
}

async fn gql_at(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    query: &str,
    variables: Value,
) -> Value {
    let response = client
        .post(format!("{base}/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("send");
    response.json().await.expect("json")
}

/// Events written but not yet in the index (read from the database while no server runs).
async fn unindexed(db_url: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(db_url).await.expect("connect");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS n FROM outbox_events WHERE published_at IS NULL OR position > \
             (SELECT max(position) FROM relay_cursors WHERE name LIKE 'search:%')",
        ))
        .await
        .expect("count")
        .expect("a row");
    let n: i64 = row.try_get("", "n").expect("n");
    db.close().await.ok();
    n
}

#[tokio::test]
async fn a_server_killed_mid_indexing_converges_after_a_restart() {
    let db_url = crate::support::fresh_database().await;
    let dir = std::env::temp_dir().join(format!("twh-search-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let prefix = format!("k{}_", std::process::id());
    let created = twh_command(&db_url, &dir, &prefix)
        .args(["tenant", "create", "--name", "Killed", "--plan", "growth"])
        .output()
        .expect("twh tenant create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let tenant: Value = serde_json::from_slice(&created.stdout).expect("tenant JSON");
    let key = tenant["apiKey"].as_str().expect("key").to_owned();
    let client = reqwest::Client::new();

    let mut server = serve(&db_url, &dir, &prefix);
    ready(&client, &server.base).await;
    let body = gql_at(&client, &server.base, &key, "mutation { createLocation(input: { code: \"WH-A\", name: \"Main\", allowNegative: true }) { userErrors { code } } }", json!({})).await;
    assert_eq!(
        body["data"]["createLocation"]["userErrors"],
        json!([]),
        "{body}"
    );
    for n in 0..200 {
        let body = gql_at(
            &client,
            &server.base,
            &key,
            "mutation($sku: String!, $name: String!) { createItem(input: { sku: $sku, name: $name }) { userErrors { code } } }",
            json!({ "sku": format!("KIL-{n:03}"), "name": format!("Kill part {n}") }),
        )
        .await;
        assert_eq!(
            body["data"]["createItem"]["userErrors"],
            json!([]),
            "{body}"
        );
    }
    let batch = |round: i64| -> Value {
        let changes: Vec<Value> = (0..250i64)
            .map(|i| {
                let n = (round * 250 + i) * 7919 % 200;
                json!({ "sku": format!("KIL-{n:03}"), "locationCode": "WH-A", "delta": if n % 10 == 0 { -1 } else { 1 + i % 3 } })
            })
            .collect();
        let mut input = adjust_input("KIL-000", "WH-A", 1, None);
        input["changes"] = json!(changes);
        json!({ "input": input })
    };
    // One write first: it creates the 200 stock levels (the slow part), so the burst after
    // it commits within the time the kill leaves it.
    let first = gql_at(&client, &server.base, &key, ADJUST, batch(999)).await;
    assert_eq!(
        first["data"]["adjustStock"]["userErrors"],
        json!([]),
        "{first}"
    );
    // Writes in flight, then SIGKILL; again until a kill lands with events not yet indexed.
    let mut round = 0;
    let mut landed = false;
    for attempt in 0..12u64 {
        let mut inflight = Vec::new();
        for _ in 0..8 {
            let (client, base, key, vars) = (
                client.clone(),
                server.base.clone(),
                key.clone(),
                batch(round),
            );
            round += 1;
            inflight.push(tokio::spawn(async move {
                let _ = client
                    .post(format!("{base}/graphql"))
                    .bearer_auth(&key)
                    .json(&json!({ "query": ADJUST, "variables": vars }))
                    .send()
                    .await;
            }));
        }
        // Kill at different moments of the burst until one lands between commit and index.
        tokio::time::sleep(std::time::Duration::from_millis(20 + (attempt * 37) % 160)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        for task in inflight {
            let _ = task.await;
        }
        landed = unindexed(&db_url).await > 0;
        server = serve(&db_url, &dir, &prefix);
        ready(&client, &server.base).await;
        if landed {
            break;
        }
    }
    assert!(landed, "no kill landed while events waited for the index");

    // More writes after the restart, then the lag metric must reach zero.
    for _ in 0..4 {
        let body = gql_at(&client, &server.base, &key, ADJUST, batch(round)).await;
        round += 1;
        assert_eq!(
            body["data"]["adjustStock"]["userErrors"],
            json!([]),
            "{body}"
        );
    }
    let mut zero = false;
    for _ in 0..600 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let metrics = client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if metrics
            .lines()
            .any(|l| l.starts_with("twh_search_index_lag_seconds ") && l.ends_with(" 0"))
            && unindexed(&db_url).await == 0
        {
            zero = true;
            break;
        }
    }
    assert!(zero, "the index lag never read zero");

    let levels = gql_at(
        &client,
        &server.base,
        &key,
        "{ stockLevels(first: 250) { edges { node { sku available } } } }",
        json!({}),
    )
    .await;
    let ledger: std::collections::HashMap<String, i64> = levels["data"]["stockLevels"]["edges"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|e| {
            (
                e["node"]["sku"].as_str().unwrap().to_owned(),
                e["node"]["available"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut seen = 0;
    let mut after: Option<String> = None;
    loop {
        let page = gql_at(
            &client,
            &server.base,
            &key,
            SEARCH,
            json!({ "q": "kill part", "first": 100, "after": after }),
        )
        .await;
        let page = &page["data"]["search"];
        for hit in page["hits"].as_array().expect("hits") {
            let sku = hit["code"].as_str().unwrap();
            assert_eq!(
                hit["available"].as_i64(),
                Some(ledger.get(sku).copied().unwrap_or(0)),
                "{sku} is stale"
            );
            seen += 1;
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 200, "no document lost");
}

/// A TCP relay to Meilisearch that can be cut: "down" drops live connections and refuses new
/// ones, as a crashed or unreachable engine does.
struct Cut {
    addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cut {
    async fn to(target: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let live: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Default::default();
        let (flag, tasks) = (up.clone(), live.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task);
            }
        });
        Self { addr, up, live }
    }

    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.live.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn with_meilisearch_down_writes_go_on_and_the_index_catches_up() {
    // Only on Meilisearch: the built-in engine is the database itself.
    let Some(target) = std::env::var("TWH_TEST_MEILISEARCH_URL")
        .ok()
        .and_then(|u| {
            u.strip_prefix("http://")
                .map(|h| h.trim_end_matches('/').to_owned())
        })
    else {
        return;
    };
    let cut = Cut::to(target).await;
    let relay = format!("http://{}", cut.addr);
    let app = TestApp::spawn_with(move |config| config.search.meilisearch_url = Some(relay)).await;
    catalog(&app).await;
    settle(&app).await;
    assert_eq!(search(&app, "tumbler", json!({})).await["totalCount"], 1);

    cut.down();
    // Writes are not the index's business.
    create_item(&app, "KTL-ORG", "Orange Kettle", None).await;
    let adjusted = app.adjust("KTL-ORG", "WH-K", 1, None).await;
    assert_eq!(
        crate::support::codes(&adjusted),
        ["UNKNOWN_LOCATION"],
        "a write, refused on its merits"
    );
    // Searches fail cleanly, with no engine text.
    let (status, body) = app.gql(SEARCH, json!({ "q": "kettle" })).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{body}"
    );
    assert!(!body.to_string().to_lowercase().contains("meili"), "{body}");
    let (status, _, problem) = app
        .rest(Method::GET, "/v1/search?q=kettle", None, &[])
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    // Round after round: a failed round must not leave the cursor taken (on Postgres a
    // later round would then report nothing to do).
    for round in 0..5 {
        assert!(
            indexer::catch_up(&app.state).await.is_err(),
            "the indexer cannot write (round {round})"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(
        indexer::lag_seconds(&app.state).await.unwrap() >= 1.0,
        "the lag shows"
    );
    let readyz = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        readyz.status(),
        StatusCode::OK,
        "readiness does not depend on search"
    );
    assert!(
        readyz
            .text()
            .await
            .unwrap()
            .contains("Meilisearch is unreachable")
    );

    cut.restore();
    // The background indexer catches up on its own (its pause after failures is a few seconds).
    let mut found = false;
    for _ in 0..300 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, body) = app.gql(SEARCH, json!({ "q": "orange kettle" })).await;
        if body["data"]["search"]["totalCount"] == 1 {
            found = true;
            break;
        }
    }
    assert!(
        found,
        "the write made while the engine was down became searchable"
    );
    settle(&app).await;
}

/// An item indexed before its stock moved: stock changes alone (on Postgres a refresh of the
/// document's stock fields, not a rebuild) keep its quantity, stock flag and locations right as
/// levels fill and empty, and its text still finds it.
#[tokio::test]
async fn stock_changes_alone_keep_an_indexed_items_stock_fields_right() {
    let app = TestApp::spawn().await;
    app.create_location("WH-A", false).await;
    app.create_location("WH-B", false).await;
    create_item(&app, "KTL-01", "Copper Kettle", None).await;
    settle(&app).await;
    let hit = |r: &Value| {
        (
            r["hits"][0]["available"].as_i64(),
            r["hits"][0]["inStock"].as_bool(),
            r["hits"][0]["locationCodes"].clone(),
        )
    };
    assert_eq!(
        hit(&search(&app, "kettle", json!({})).await),
        (Some(0), Some(false), json!([]))
    );

    for (location, delta, available, in_stock, codes) in [
        ("WH-B", 3, 3, true, json!(["WH-B"])),
        ("WH-A", 2, 5, true, json!(["WH-A", "WH-B"])),
        ("WH-A", -2, 3, true, json!(["WH-B"])),
        ("WH-B", -3, 0, false, json!([])),
    ] {
        let adjusted = app.adjust("KTL-01", location, delta, None).await;
        assert_eq!(adjusted["userErrors"], json!([]), "{adjusted}");
        settle(&app).await;
        let found = search(&app, "copper kettle", json!({})).await;
        assert_eq!(codes_of(&found), ["KTL-01"]);
        assert_eq!(
            hit(&found),
            (Some(available), Some(in_stock), codes),
            "after {delta} at {location}"
        );
        let in_stock_only = search(&app, "kettle", json!({ "filter": { "inStock": true } })).await;
        assert_eq!(in_stock_only["totalCount"], i64::from(in_stock));
    }
}
