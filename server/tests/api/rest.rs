//! The REST layer: header rules against a real socket, the contract files, and twin parity:
//! every route gives the same data and the same error code as its GraphQL operation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use twh_rest::routes::{EXCLUDED, ROUTES};

use crate::support::TestApp;

fn problem_code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn every_root_field_is_routed_or_excluded() {
    let (types, _, _) = twh_server::http::rest::contract(&twh_server::graphql::bare())
        .await
        .unwrap();
    for root in [&types.query, &types.mutation] {
        for field in types.root_fields(root) {
            let routed = ROUTES.iter().any(|r| r.field == field.name);
            let excluded = EXCLUDED.iter().any(|(name, _)| *name == field.name);
            assert!(
                routed ^ excluded,
                "root field {} must be routed or excluded (and not both)",
                field.name
            );
        }
    }
}

#[tokio::test]
async fn checked_in_openapi_and_postman_match_the_code() {
    let (_, _, document) = twh_server::http::rest::contract(&twh_server::graphql::bare())
        .await
        .unwrap();
    assert!(
        document["info"]["version"]
            .as_str()
            .unwrap()
            .starts_with("1.1.")
    );
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let yaml = std::fs::read_to_string(format!("{root}/openapi.yaml"))
        .expect("openapi.yaml is checked in");
    assert!(
        yaml == twh_rest::openapi::to_yaml(&document),
        "openapi.yaml is stale: run `cargo run --bin twh -- export-openapi > openapi.yaml`"
    );
    let postman = std::fs::read_to_string(format!("{root}/postman/twh.postman_collection.json"))
        .expect("postman collection is checked in");
    let expected =
        serde_json::to_string_pretty(&twh_rest::postman::collection(&document)).unwrap() + "\n";
    assert!(
        postman == expected,
        "the Postman collection is stale: run `cargo run --bin twh -- export-postman > postman/twh.postman_collection.json`"
    );
    let changelog = std::fs::read_to_string(format!("{root}/CHANGELOG.md")).expect("CHANGELOG.md");
    assert!(
        changelog.contains(document["info"]["version"].as_str().unwrap()),
        "CHANGELOG.md has no entry for the contract version"
    );
    for (_, methods) in document["paths"].as_object().unwrap() {
        for (_, op) in methods.as_object().unwrap() {
            assert!(op["operationId"].is_string());
            let has_example = op["responses"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(|r| r["content"].as_object())
                .flat_map(|content| content.values())
                .any(|media| !media["example"].is_null());
            assert!(has_example, "no response example: {op}");
            assert!(
                op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|s| s.starts_with('4')),
                "{op}"
            );
        }
    }
}

#[test]
fn checked_in_openapi_reads_in_the_conventional_order() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let yaml = std::fs::read_to_string(format!("{root}/openapi.yaml"))
        .expect("openapi.yaml is checked in");
    let top_level: Vec<&str> = yaml
        .lines()
        .filter(|line| !line.starts_with([' ', '-', '#']) && !line.is_empty())
        .filter_map(|line| line.split_once(':').map(|(key, _)| key))
        .collect();
    assert_eq!(
        top_level[..6],
        ["openapi", "info", "servers", "tags", "paths", "components"],
        "openapi.yaml's top-level keys: {top_level:?}"
    );
}

#[tokio::test]
async fn served_document_is_the_generated_one() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with(r#"{"openapi":"#),
        "served in the conventional order"
    );
    let served: Value = serde_json::from_str(&text).unwrap();
    let (_, _, document) = twh_server::http::rest::contract(&twh_server::graphql::bare())
        .await
        .unwrap();
    assert_eq!(served, document);
    app.shutdown().await;
}

#[tokio::test]
async fn etags_conditional_requests_and_locations() {
    let app = TestApp::spawn().await;
    let (status, headers, item) = app
        .rest(
            Method::POST,
            "/v1/items",
            Some(json!({ "sku": "R-1", "name": "Rest item" })),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{item}");
    let id = item["id"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/v1/items/{id}").as_str());
    assert_eq!(headers["etag"], "\"1\"");

    let path = format!("/v1/items/{id}");
    let (status, headers, body) = app.rest(Method::GET, &path, None, &[]).await;
    assert_eq!(
        (status, body["sku"].as_str()),
        (StatusCode::OK, Some("R-1"))
    );
    assert_eq!(headers["etag"], "\"1\"");
    let (status, _, body) = app
        .rest(Method::GET, &path, None, &[("if-none-match", "\"1\"")])
        .await;
    assert_eq!(status, 304);
    assert!(body.is_null());
    let (status, _, _) = app
        .rest(Method::GET, &path, None, &[("if-none-match", "\"0\"")])
        .await;
    assert_eq!(status, 200);

    let patch = Some(json!({ "name": "Renamed" }));
    let (status, headers, body) = app.rest(Method::PATCH, &path, patch.clone(), &[]).await;
    assert_eq!(status, 428, "{body}");
    assert_eq!(problem_code(&body), "PRECONDITION_REQUIRED");
    assert_eq!(headers["content-type"], "application/problem+json");
    let (status, _, body) = app
        .rest(
            Method::PATCH,
            &path,
            patch.clone(),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&body)),
        (412, "VERSION_CONFLICT"),
        "{body}"
    );
    // RFC 9110 13.1.1: a well-formed tag that does not match is 412 (a weak one never
    // matches: If-Match compares strongly); only a malformed header is 400.
    for stale in ["W/\"1\"", "\"stale-0\"", "\"0\", \"7\""] {
        let (status, _, body) = app
            .rest(Method::PATCH, &path, patch.clone(), &[("if-match", stale)])
            .await;
        assert_eq!(
            (status.as_u16(), problem_code(&body)),
            (412, "VERSION_CONFLICT"),
            "{stale}: {body}"
        );
    }
    for malformed in ["1", "\"1", "\"1\" \"2\""] {
        let (status, _, body) = app
            .rest(
                Method::PATCH,
                &path,
                patch.clone(),
                &[("if-match", malformed)],
            )
            .await;
        assert_eq!(
            (status.as_u16(), problem_code(&body)),
            (400, "BAD_REQUEST"),
            "{malformed}: {body}"
        );
    }
    let (_, _, unchanged) = app.rest(Method::GET, &path, None, &[]).await;
    assert_eq!(
        (unchanged["name"].as_str(), unchanged["version"].as_i64()),
        (Some("Rest item"), Some(1))
    );
    let (status, headers, body) = app
        .rest(Method::PATCH, &path, patch, &[("if-match", "\"1\"")])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["etag"], "\"2\"");
    assert_eq!(body["name"], "Renamed");
    // A list matches when any of its tags is the current version.
    let (status, headers, body) = app
        .rest(
            Method::PATCH,
            &path,
            Some(json!({ "name": "Listed" })),
            &[("if-match", "\"9\", \"2\"")],
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["name"].as_str()),
        (200, Some("Listed")),
        "{body}"
    );
    assert_eq!(headers["etag"], "\"3\"");
    // `*` matches whatever version exists, and nothing that does not exist.
    let (status, headers, body) = app
        .rest(
            Method::PATCH,
            &path,
            Some(json!({ "name": "Starred" })),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["name"].as_str()),
        (200, Some("Starred")),
        "{body}"
    );
    assert_eq!(headers["etag"], "\"4\"");
    let (status, _, body) = app
        .rest(
            Method::PATCH,
            "/v1/items/itm_nope",
            Some(json!({ "name": "Ghost" })),
            &[("if-match", "*")],
        )
        .await;
    // RFC 9110 13.2.1: what would be a 404 without the precondition stays a 404 with it, and
    // a malformed body stays a 400 whatever the If-Match.
    assert_eq!(
        (status.as_u16(), problem_code(&body)),
        (404, "NOT_FOUND"),
        "{body}"
    );
    let (status, _, body) = app
        .rest(
            Method::PATCH,
            &path,
            Some(json!({ "name": 7 })),
            &[("if-match", "\"99\"")],
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let (status, _, body) = app.rest(Method::GET, "/v1/items/itm_nope", None, &[]).await;
    assert_eq!((status.as_u16(), problem_code(&body)), (404, "NOT_FOUND"));
    for key in ["type", "title", "status", "detail", "code"] {
        assert!(body.get(key).is_some(), "problem lacks {key}: {body}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn idempotency_key_header_rules() {
    let app = TestApp::spawn().await;
    app.create_item("RI").await;
    app.create_location("WH", false).await;
    let body = json!({ "reason": "RECEIVED", "changes": [{ "sku": "RI", "locationCode": "WH", "delta": 4 }] });
    let (s1, h1, b1) = app
        .rest(
            Method::POST,
            "/v1/stock/adjustments",
            Some(body.clone()),
            &[("idempotency-key", "rk-1")],
        )
        .await;
    assert_eq!(s1, 201, "{b1}");
    assert!(h1.get("idempotent-replayed").is_none());
    // The structured-field string form names the same key.
    let (s2, h2, b2) = app
        .rest(
            Method::POST,
            "/v1/stock/adjustments",
            Some(body.clone()),
            &[("idempotency-key", "\"rk-1\"")],
        )
        .await;
    assert_eq!(s2, 201);
    assert_eq!(h2["idempotent-replayed"], "true");
    assert_eq!(b1, b2);
    let other = json!({ "reason": "RECEIVED", "changes": [{ "sku": "RI", "locationCode": "WH", "delta": 5 }] });
    let (s3, _, b3) = app
        .rest(
            Method::POST,
            "/v1/stock/adjustments",
            Some(other),
            &[("idempotency-key", "rk-1")],
        )
        .await;
    assert_eq!(
        (s3.as_u16(), problem_code(&b3)),
        (422, "IDEMPOTENCY_KEY_PARAMETER_MISMATCH")
    );
    assert_eq!(app.level("RI", "WH").await["available"], 4);

    let (s4, _, b4) = app
        .rest(
            Method::POST,
            "/v1/stock/adjustments",
            Some(body),
            &[("idempotency-key", "\"unterminated")],
        )
        .await;
    assert_eq!(s4, 400, "{b4}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_key_in_flight_is_refused_with_409() {
    // Only Postgres can show a key in flight: SQLite queues writers, so a second request with
    // the same key always finds the first one finished.
    let app = TestApp::spawn_with(|c| c.idempotency_wait_ms = 300).await;
    if !app.state.is_postgres() {
        app.shutdown().await;
        return;
    }
    use sea_orm::{ConnectionTrait, TransactionTrait};
    app.create_item("FLY").await;
    app.create_location("WH", false).await;
    let holder = app.state.db.begin().await.unwrap();
    holder
        .execute_unprepared(&format!(
            "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, response, created_at, expires_at) VALUES ('{}', 'held', 'adjustStock', 'x', '', now(), now() + interval '1 day')",
            app.tenant_id
        ))
        .await
        .unwrap();
    let body = json!({ "reason": "RECEIVED", "changes": [{ "sku": "FLY", "locationCode": "WH", "delta": 1 }] });
    let (status, _, problem) = app
        .rest(
            Method::POST,
            "/v1/stock/adjustments",
            Some(body),
            &[("idempotency-key", "held")],
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&problem)),
        (409, "IDEMPOTENCY_CONCURRENT_REQUEST"),
        "{problem}"
    );
    holder.rollback().await.unwrap();
    assert_eq!(app.level("FLY", "WH").await["available"], 0);
    app.shutdown().await;
}

#[tokio::test]
async fn pagination_links_and_parameter_errors() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.create_item(&format!("PG-{i}")).await;
    }
    let mut path = "/v1/items?first=2".to_owned();
    let mut seen = Vec::new();
    loop {
        let (status, headers, body) = app.rest(Method::GET, &path, None, &[]).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["sku"].as_str().unwrap().to_owned()),
        );
        match headers.get("link") {
            Some(link) => {
                let link = link.to_str().unwrap();
                assert!(link.ends_with("rel=\"next\""), "{link}");
                path = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen, (0..5).map(|i| format!("PG-{i}")).collect::<Vec<_>>());

    for (bad, code) in [
        ("/v1/items?first=abc", "BAD_REQUEST"),
        ("/v1/items?first=0", "INVALID_INPUT"),
        ("/v1/items?colour=red", "BAD_REQUEST"),
        ("/v1/items?status=GONE", "BAD_REQUEST"),
        ("/v1/items?sku=a&sku=b", "BAD_REQUEST"),
    ] {
        let (status, _, body) = app.rest(Method::GET, bad, None, &[]).await;
        assert!(status.is_client_error(), "{bad}: {status}");
        assert_eq!(problem_code(&body), code, "{bad}: {body}");
    }
    let response = app
        .client
        .post(app.url("/v1/items"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body("{\"sku\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = app.client.get(app.url("/v1/items")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    app.shutdown().await;
}

/// Drops fields that differ between two otherwise identical writes.
fn stable(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "id" | "itemId"
                            | "locationId"
                            | "groupId"
                            | "createdAt"
                            | "updatedAt"
                            | "recordedAt"
                            | "effectiveAt"
                            | "number"
                            | "referenceDocumentUri"
                            | "salesOrderId"
                            | "expiresAt"
                            | "shippedAt"
                    )
                })
                .map(|(k, v)| (k.clone(), stable(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(stable).collect()),
        other => other.clone(),
    }
}

/// A write's result with volatile fields dropped and the mirrored fixtures' names made equal.
fn mirrored(value: &Value) -> String {
    serde_json::to_string(&stable(value))
        .unwrap()
        .replace("TW-R", "TW")
        .replace("TW-G", "TW")
}

fn nodes(connection: &Value) -> Value {
    Value::Array(
        connection["edges"]
            .as_array()
            .map(|e| e.iter().map(|e| e["node"].clone()).collect())
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn every_route_matches_its_graphql_twin() {
    let app = TestApp::spawn().await;
    let (types, prepared, _) = twh_server::http::rest::contract(&twh_server::graphql::bare())
        .await
        .unwrap();
    let _ = types;
    let doc = |op: &str| {
        prepared
            .iter()
            .find(|p| p.route.operation_id == op)
            .unwrap()
            .document
            .clone()
    };
    let mut covered = Vec::new();

    // Writes: REST on one fixture, GraphQL on its mirror; same results, same error codes.
    let (s, _, rest_item) = app
        .rest(
            Method::POST,
            "/v1/items",
            Some(json!({ "sku": "TW-R", "name": "Twin" })),
            &[],
        )
        .await;
    assert_eq!(s, 201);
    let (_, gql) = app
        .gql(
            &doc("createItem"),
            json!({ "input": { "sku": "TW-G", "name": "Twin" } }),
        )
        .await;
    let gql_item = gql["data"]["createItem"]["item"].clone();
    assert_eq!(mirrored(&rest_item), mirrored(&gql_item));
    let (_, _, rest_err) = app
        .rest(
            Method::POST,
            "/v1/items",
            Some(json!({ "sku": "TW-R", "name": "Again" })),
            &[],
        )
        .await;
    let (_, gql_err) = app
        .gql(
            &doc("createItem"),
            json!({ "input": { "sku": "TW-G", "name": "Again" } }),
        )
        .await;
    assert_eq!(
        problem_code(&rest_err),
        gql_err["data"]["createItem"]["userErrors"][0]["code"]
            .as_str()
            .unwrap()
    );
    covered.push("createItem");

    let rid = rest_item["id"].as_str().unwrap();
    let gid = gql_item["id"].as_str().unwrap();
    let (_, _, rest_upd) = app
        .rest(
            Method::PATCH,
            &format!("/v1/items/{rid}"),
            Some(json!({ "name": "Twin 2" })),
            &[("if-match", "\"1\"")],
        )
        .await;
    let (_, gql_upd) = app
        .gql(
            &doc("updateItem"),
            json!({ "id": gid, "expectedVersion": 1, "input": { "name": "Twin 2" } }),
        )
        .await;
    assert_eq!(
        mirrored(&rest_upd),
        mirrored(&gql_upd["data"]["updateItem"]["item"])
    );
    let (_, _, rest_err) = app
        .rest(
            Method::PATCH,
            &format!("/v1/items/{rid}"),
            Some(json!({ "name": "x" })),
            &[("if-match", "\"1\"")],
        )
        .await;
    let (_, gql_err) = app
        .gql(
            &doc("updateItem"),
            json!({ "id": gid, "expectedVersion": 1, "input": { "name": "x" } }),
        )
        .await;
    assert_eq!(
        problem_code(&rest_err),
        gql_err["data"]["updateItem"]["userErrors"][0]["code"]
            .as_str()
            .unwrap()
    );
    covered.push("updateItem");

    let (_, _, rest_loc) = app
        .rest(
            Method::POST,
            "/v1/locations",
            Some(json!({ "code": "TW-R", "name": "Twin", "allowNegative": false })),
            &[],
        )
        .await;
    let (_, gql_loc) = app
        .gql(
            &doc("createLocation"),
            json!({ "input": { "code": "TW-G", "name": "Twin", "allowNegative": false } }),
        )
        .await;
    let gql_loc = gql_loc["data"]["createLocation"]["location"].clone();
    assert_eq!(mirrored(&rest_loc), mirrored(&gql_loc));
    let (_, _, rest_err) = app
        .rest(
            Method::POST,
            "/v1/locations",
            Some(json!({ "code": "TW-R", "name": "x" })),
            &[],
        )
        .await;
    let (_, gql_err) = app
        .gql(
            &doc("createLocation"),
            json!({ "input": { "code": "TW-G", "name": "x" } }),
        )
        .await;
    assert_eq!(
        problem_code(&rest_err),
        gql_err["data"]["createLocation"]["userErrors"][0]["code"]
            .as_str()
            .unwrap()
    );
    covered.push("createLocation");

    let rl = rest_loc["id"].as_str().unwrap();
    let gl = gql_loc["id"].as_str().unwrap();
    let (_, _, rest_upd) = app
        .rest(
            Method::PATCH,
            &format!("/v1/locations/{rl}"),
            Some(json!({ "allowNegative": true })),
            &[("if-match", "\"1\"")],
        )
        .await;
    let (_, gql_upd) = app
        .gql(
            &doc("updateLocation"),
            json!({ "id": gl, "expectedVersion": 1, "input": { "allowNegative": true } }),
        )
        .await;
    assert_eq!(
        mirrored(&rest_upd),
        mirrored(&gql_upd["data"]["updateLocation"]["location"])
    );
    let (_, _, rest_err) = app
        .rest(
            Method::PATCH,
            "/v1/locations/loc_nope",
            Some(json!({ "name": "x" })),
            &[("if-match", "\"1\"")],
        )
        .await;
    let (_, gql_err) = app
        .gql(
            &doc("updateLocation"),
            json!({ "id": "loc_nope", "expectedVersion": 1, "input": { "name": "x" } }),
        )
        .await;
    assert_eq!(
        problem_code(&rest_err),
        gql_err["data"]["updateLocation"]["userErrors"][0]["code"]
            .as_str()
            .unwrap()
    );
    covered.push("updateLocation");

    for (op, path, input_r, input_g) in [
        (
            "adjustStock",
            "/v1/stock/adjustments",
            json!({ "reason": "RECEIVED", "changes": [{ "sku": "TW-R", "locationCode": "TW-R", "delta": 10 }] }),
            json!({ "reason": "RECEIVED", "changes": [{ "sku": "TW-G", "locationCode": "TW-G", "delta": 10 }] }),
        ),
        (
            "moveStock",
            "/v1/stock/moves",
            json!({ "changes": [{ "sku": "TW-R", "quantity": 3, "from": { "locationCode": "TW-R" }, "to": { "locationCode": "TW-R", "state": "DAMAGED" } }] }),
            json!({ "changes": [{ "sku": "TW-G", "quantity": 3, "from": { "locationCode": "TW-G" }, "to": { "locationCode": "TW-G", "state": "DAMAGED" } }] }),
        ),
        (
            "setStock",
            "/v1/stock/sets",
            json!({ "changes": [{ "sku": "TW-R", "locationCode": "TW-R", "quantity": 2, "changeFromQuantity": 7 }] }),
            json!({ "changes": [{ "sku": "TW-G", "locationCode": "TW-G", "quantity": 2, "changeFromQuantity": 7 }] }),
        ),
    ] {
        let (status, _, rest_body) = app
            .rest(Method::POST, path, Some(input_r.clone()), &[])
            .await;
        assert_eq!(status, 201, "{op}: {rest_body}");
        let (_, gql) = app.gql(&doc(op), json!({ "input": input_g.clone() })).await;
        let mut gql_body = gql["data"][op].clone();
        gql_body.as_object_mut().unwrap().remove("userErrors");
        assert_eq!(mirrored(&rest_body), mirrored(&gql_body), "{op}");
        // The same request again is now refused the same way on both sides.
        let mut bad_r = input_r.clone();
        let mut bad_g = input_g.clone();
        bad_r["changes"][0]["sku"] = json!("NOPE");
        bad_g["changes"][0]["sku"] = json!("NOPE");
        let (_, _, rest_err) = app.rest(Method::POST, path, Some(bad_r), &[]).await;
        let (_, gql_err) = app.gql(&doc(op), json!({ "input": bad_g })).await;
        assert_eq!(
            problem_code(&rest_err),
            gql_err["data"][op]["userErrors"][0]["code"]
                .as_str()
                .unwrap(),
            "{op}"
        );
        assert_eq!(problem_code(&rest_err), "UNKNOWN_SKU");
        covered.push(op);
    }

    // Reads: the very same data.
    let (_, _, rest) = app
        .rest(Method::GET, &format!("/v1/items/{rid}"), None, &[])
        .await;
    let (_, gql) = app.gql(&doc("getItem"), json!({ "id": rid })).await;
    assert_eq!(rest, gql["data"]["item"]);
    let (_, _, rest_err) = app.rest(Method::GET, "/v1/items/itm_nope", None, &[]).await;
    assert_eq!(problem_code(&rest_err), "NOT_FOUND");
    covered.push("getItem");
    let (_, _, rest) = app
        .rest(Method::GET, &format!("/v1/locations/{rl}"), None, &[])
        .await;
    let (_, gql) = app.gql(&doc("getLocation"), json!({ "id": rl })).await;
    assert_eq!(rest, gql["data"]["location"]);
    covered.push("getLocation");
    for (op, path, field, vars) in [
        (
            "listItems",
            "/v1/items?search=TW",
            "items",
            json!({ "filter": { "search": "TW" } }),
        ),
        (
            "listLocations",
            "/v1/locations?kind=WAREHOUSE",
            "locations",
            json!({ "filter": { "kind": "WAREHOUSE" } }),
        ),
        (
            "listStockLevels",
            "/v1/stock/levels?sku=TW-R&location=TW-R",
            "stockLevels",
            json!({ "filter": { "sku": "TW-R", "locationCode": "TW-R" } }),
        ),
        (
            "listMovements",
            "/v1/stock/movements?location=TW-G&state=DAMAGED",
            "movements",
            json!({ "filter": { "locationCode": "TW-G", "state": "DAMAGED" } }),
        ),
    ] {
        let (status, _, rest) = app.rest(Method::GET, path, None, &[]).await;
        assert_eq!(status, 200, "{op}: {rest}");
        let (_, gql) = app.gql(&doc(op), vars).await;
        assert_eq!(rest["data"], nodes(&gql["data"][field]), "{op}");
        assert!(
            !rest["data"].as_array().unwrap().is_empty(),
            "{op} returned nothing to compare"
        );
        let (_, _, rest_err) = app
            .rest(
                Method::GET,
                &format!(
                    "{}{}first=0",
                    path,
                    if path.contains('?') { "&" } else { "?" }
                ),
                None,
                &[],
            )
            .await;
        let (_, gql_err) = app.gql(&doc(op), json!({ "first": 0 })).await;
        assert_eq!(
            problem_code(&rest_err),
            gql_err["errors"][0]["extensions"]["code"].as_str().unwrap(),
            "{op}"
        );
        covered.push(op);
    }
    // A draft purchase order edited through PATCH and through updatePurchaseOrder.
    let (_, _, rest_po) = app
        .rest(
            Method::POST,
            "/v1/purchase-orders",
            Some(json!({ "supplier": "Twin", "lines": [{ "sku": "TW-R", "locationCode": "TW-R", "quantity": 1 }] })),
            &[],
        )
        .await;
    let (_, gql) = app
        .gql(
            &doc("createPurchaseOrder"),
            json!({ "input": { "supplier": "Twin", "lines": [{ "sku": "TW-G", "locationCode": "TW-G", "quantity": 1 }] } }),
        )
        .await;
    let gql_po = gql["data"]["createPurchaseOrder"]["purchaseOrder"].clone();
    let (status, headers, rest_edit) = app
        .rest(
            Method::PATCH,
            &format!("/v1/purchase-orders/{}", rest_po["id"].as_str().unwrap()),
            Some(json!({ "notes": "Dock 2", "lines": [{ "sku": "TW-R", "locationCode": "TW-R", "quantity": 3 }] })),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(status, 200, "{rest_edit}");
    assert_eq!(headers["etag"], "\"2\"");
    let (_, gql) = app
        .gql(
            &doc("updatePurchaseOrder"),
            json!({ "id": gql_po["id"], "expectedVersion": 1, "input": { "notes": "Dock 2", "lines": [{ "sku": "TW-G", "locationCode": "TW-G", "quantity": 3 }] } }),
        )
        .await;
    assert_eq!(
        mirrored(&rest_edit),
        mirrored(&gql["data"]["updatePurchaseOrder"]["purchaseOrder"]),
        "{gql}"
    );
    covered.push("updatePurchaseOrder");

    // Order documents: the same flow on both sides, step by step.
    for code in ["TW-R2", "TW-G2"] {
        app.create_location(code, false).await;
    }
    for (kind, create, created, input_r, input_g, steps) in [
        (
            "purchase-orders",
            "createPurchaseOrder",
            "purchaseOrder",
            json!({ "supplier": "Twin", "lines": [{ "sku": "TW-R", "locationCode": "TW-R", "quantity": 4 }] }),
            json!({ "supplier": "Twin", "lines": [{ "sku": "TW-G", "locationCode": "TW-G", "quantity": 4 }] }),
            vec![
                ("submit", "submitPurchaseOrder", json!({}), json!({})),
                (
                    "receive",
                    "receivePurchaseOrder",
                    json!({ "lines": [{ "sku": "TW-R", "locationCode": "TW-R", "quantity": 1 }] }),
                    json!({ "lines": [{ "sku": "TW-G", "locationCode": "TW-G", "quantity": 1 }] }),
                ),
                ("cancel", "cancelPurchaseOrder", json!({}), json!({})),
            ],
        ),
        (
            "sales-orders",
            "createSalesOrder",
            "salesOrder",
            json!({ "customer": "Twin", "lines": [{ "sku": "TW-R", "locationCode": "TW-R", "quantity": 2 }] }),
            json!({ "customer": "Twin", "lines": [{ "sku": "TW-G", "locationCode": "TW-G", "quantity": 2 }] }),
            vec![
                (
                    "allocate",
                    "allocateSalesOrder",
                    json!({ "partial": true }),
                    json!({ "partial": true }),
                ),
                (
                    "ship",
                    "shipSalesOrder",
                    json!({ "lines": [{ "sku": "TW-R", "locationCode": "TW-R", "quantity": 1 }] }),
                    json!({ "lines": [{ "sku": "TW-G", "locationCode": "TW-G", "quantity": 1 }] }),
                ),
                ("cancel", "cancelSalesOrder", json!({}), json!({})),
            ],
        ),
        (
            "reservations",
            "createReservation",
            "reservation",
            json!({ "sku": "TW-R", "locationCode": "TW-R", "quantity": 1, "expiresInSeconds": 600 }),
            json!({ "sku": "TW-G", "locationCode": "TW-G", "quantity": 1, "expiresInSeconds": 600 }),
            vec![("release", "releaseReservation", json!({}), json!({}))],
        ),
        (
            "transfers",
            "createTransfer",
            "transfer",
            json!({ "fromLocationCode": "TW-R", "toLocationCode": "TW-R2", "lines": [{ "sku": "TW-R", "quantity": 2 }] }),
            json!({ "fromLocationCode": "TW-G", "toLocationCode": "TW-G2", "lines": [{ "sku": "TW-G", "quantity": 2 }] }),
            vec![
                ("ship", "shipTransfer", json!({}), json!({})),
                (
                    "receive",
                    "receiveTransfer",
                    json!({ "lines": [{ "sku": "TW-R", "quantity": 1 }] }),
                    json!({ "lines": [{ "sku": "TW-G", "quantity": 1 }] }),
                ),
                ("cancel", "cancelTransfer", json!({}), json!({})),
            ],
        ),
        (
            "returns",
            "createReturnOrder",
            "returnOrder",
            json!({ "customer": "Twin", "lines": [{ "sku": "TW-R", "locationCode": "TW-R", "quantity": 1, "disposition": "DAMAGED" }] }),
            json!({ "customer": "Twin", "lines": [{ "sku": "TW-G", "locationCode": "TW-G", "quantity": 1, "disposition": "DAMAGED" }] }),
            vec![("receive", "receiveReturnOrder", json!({}), json!({}))],
        ),
    ] {
        let (status, headers, rest_doc) = app
            .rest(Method::POST, &format!("/v1/{kind}"), Some(input_r), &[])
            .await;
        assert_eq!(status, 201, "{create}: {rest_doc}");
        let rid = rest_doc["id"].as_str().unwrap().to_owned();
        assert_eq!(headers["location"], format!("/v1/{kind}/{rid}").as_str());
        let (_, gql) = app.gql(&doc(create), json!({ "input": input_g })).await;
        let gql_doc = gql["data"][create][created].clone();
        assert_eq!(mirrored(&rest_doc), mirrored(&gql_doc), "{create}: {gql}");
        let gid = gql_doc["id"].as_str().unwrap().to_owned();
        covered.push(create);
        for (action, op, body_r, vars_g) in steps {
            let path = format!("/v1/{kind}/{rid}/{action}");
            let (status, _, rest_doc) = app.rest(Method::POST, &path, Some(body_r), &[]).await;
            assert_eq!(status, 200, "{op}: {rest_doc}");
            let mut vars = vars_g;
            vars["id"] = json!(gid);
            let (_, gql) = app.gql(&doc(op), vars.clone()).await;
            let gql_doc = &gql["data"][op][created];
            assert_eq!(mirrored(&rest_doc), mirrored(gql_doc), "{op}: {gql}");
            // Submitting, cancelling or releasing again is refused the same way on both sides.
            if ["submit", "cancel", "release"].contains(&action) {
                let (status, _, rest_err) = app.rest(Method::POST, &path, None, &[]).await;
                let (_, gql_err) = app.gql(&doc(op), json!({ "id": gid })).await;
                assert_eq!(
                    (status.as_u16(), problem_code(&rest_err)),
                    (409, "INVALID_TRANSITION"),
                    "{op}"
                );
                assert_eq!(
                    gql_err["data"][op]["userErrors"][0]["code"], "INVALID_TRANSITION",
                    "{op}"
                );
            }
            covered.push(op);
        }
        let singular = created;
        let get = format!("get{}{}", &singular[..1].to_uppercase(), &singular[1..]);
        let (_, _, rest) = app
            .rest(Method::GET, &format!("/v1/{kind}/{rid}"), None, &[])
            .await;
        let (_, gql) = app.gql(&doc(&get), json!({ "id": rid })).await;
        assert_eq!(rest, gql["data"][singular], "{get}");
        covered.push(
            ROUTES
                .iter()
                .find(|r| r.operation_id == get)
                .unwrap()
                .operation_id,
        );
        let list = ROUTES
            .iter()
            .find(|r| {
                r.path == format!("/v1/{kind}")
                    && r.field.ends_with('s')
                    && r.operation_id.starts_with("list")
            })
            .unwrap();
        let (status, _, rest) = app
            .rest(
                Method::GET,
                &format!("/v1/{kind}?sku=TW-R&status=CANCELLED&status=RELEASED&status=RECEIVED"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, 200, "a list parameter may repeat: {rest}");
        assert_eq!(rest["data"].as_array().unwrap().len(), 1, "{rest}");
        let (status, _, rest) = app
            .rest(
                Method::GET,
                &format!("/v1/{kind}?sku=TW-R&sku=TW-G"),
                None,
                &[],
            )
            .await;
        assert_eq!(
            status, 400,
            "a repeated single parameter is refused: {rest}"
        );
        let (status, _, rest) = app
            .rest(Method::GET, &format!("/v1/{kind}?sku=TW-R"), None, &[])
            .await;
        assert_eq!(status, 200, "{rest}");
        let (_, gql) = app
            .gql(
                &doc(list.operation_id),
                json!({ "filter": { "sku": "TW-R" } }),
            )
            .await;
        assert_eq!(
            rest["data"],
            nodes(&gql["data"][list.field]),
            "{}",
            list.operation_id
        );
        assert!(!rest["data"].as_array().unwrap().is_empty(), "{rest}");
        covered.push(list.operation_id);
    }
    // A transition takes only its own body fields.
    let (status, _, body) = app
        .rest(
            Method::POST,
            "/v1/purchase-orders/po_nope/submit",
            Some(json!({ "lines": [] })),
            &[],
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&body)),
        (400, "BAD_REQUEST"),
        "{body}"
    );
    let (status, _, body) = app
        .rest(
            Method::POST,
            "/v1/purchase-orders/po_nope/submit",
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&body)),
        (404, "NOT_FOUND"),
        "{body}"
    );

    // Webhook endpoints, deliveries and the event log.
    let (status, headers, endpoint) = app
        .rest(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": "https://hooks.example.com/r", "eventTypes": ["item.*"] })),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let eid = endpoint["id"].as_str().unwrap().to_owned();
    assert_eq!(
        headers["location"],
        format!("/v1/webhook-endpoints/{eid}").as_str()
    );
    assert_eq!(headers["etag"], "\"1\"");
    assert!(endpoint["secret"].as_str().unwrap().starts_with("whsec_"));
    let (_, gql) = app
        .gql(
            &doc("createWebhookEndpoint"),
            json!({ "input": { "url": "https://hooks.example.com/g", "eventTypes": ["item.*"] } }),
        )
        .await;
    let gql_endpoint = &gql["data"]["createWebhookEndpoint"]["endpoint"];
    assert_eq!(gql_endpoint["eventTypes"], endpoint["eventTypes"], "{gql}");
    let (status, _, refused) = app
        .rest(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": "http://127.0.0.1:9/x" })),
            &[],
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&refused)),
        (422, "INVALID_INPUT"),
        "{refused}"
    );
    let (_, gql) = app
        .gql(
            &doc("createWebhookEndpoint"),
            json!({ "input": { "url": "http://127.0.0.1:9/x" } }),
        )
        .await;
    assert_eq!(
        gql["data"]["createWebhookEndpoint"]["userErrors"][0]["code"],
        "INVALID_INPUT"
    );
    covered.push("createWebhookEndpoint");
    let path = format!("/v1/webhook-endpoints/{eid}");
    let (_, _, rest) = app.rest(Method::GET, &path, None, &[]).await;
    let (_, gql) = app
        .gql(&doc("getWebhookEndpoint"), json!({ "id": eid }))
        .await;
    assert_eq!(rest, gql["data"]["webhookEndpoint"]);
    covered.push("getWebhookEndpoint");
    let (_, _, rest) = app
        .rest(Method::GET, "/v1/webhook-endpoints", None, &[])
        .await;
    let (_, gql) = app.gql(&doc("listWebhookEndpoints"), json!({})).await;
    assert_eq!(rest["data"], nodes(&gql["data"]["webhookEndpoints"]));
    assert_eq!(rest["data"].as_array().unwrap().len(), 2, "{rest}");
    covered.push("listWebhookEndpoints");
    let disable = json!({ "enabled": false });
    let (status, _, _) = app
        .rest(Method::PATCH, &path, Some(disable.clone()), &[])
        .await;
    assert_eq!(status, 428);
    let (status, _, updated) = app
        .rest(
            Method::PATCH,
            &path,
            Some(disable),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (updated["status"].as_str(), updated["version"].as_i64()),
        (Some("DISABLED"), Some(2))
    );
    let gid = gql_endpoint["id"].as_str().unwrap();
    let (_, gql) = app
        .gql(
            &doc("updateWebhookEndpoint"),
            json!({ "id": gid, "expectedVersion": 1, "input": { "enabled": false } }),
        )
        .await;
    assert_eq!(
        gql["data"]["updateWebhookEndpoint"]["endpoint"]["status"],
        "DISABLED"
    );
    covered.push("updateWebhookEndpoint");
    let (status, _, rotated) = app
        .rest(
            Method::POST,
            &format!("{path}/rotate-secret"),
            Some(json!({ "overlapSeconds": 60 })),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["secret"], endpoint["secret"]);
    assert_eq!(rotated["version"], 3);
    let (_, gql) = app
        .gql(
            &doc("rotateWebhookEndpointSecret"),
            json!({ "id": gid, "overlapSeconds": 60 }),
        )
        .await;
    assert_eq!(
        gql["data"]["rotateWebhookEndpointSecret"]["endpoint"]["version"],
        3
    );
    covered.push("rotateWebhookEndpointSecret");
    // The endpoint is disabled, so the test delivery waits (PENDING) and reads are stable.
    let (status, headers, delivery) = app
        .rest(Method::POST, &format!("{path}/test"), None, &[])
        .await;
    assert_eq!(status, 201, "{delivery}");
    let did = delivery["id"].as_str().unwrap().to_owned();
    assert_eq!(
        headers["location"],
        format!("/v1/webhook-deliveries/{did}").as_str()
    );
    assert_eq!(
        (delivery["status"].as_str(), delivery["eventType"].as_str()),
        (Some("PENDING"), Some("webhook.test"))
    );
    let (_, gql) = app
        .gql(&doc("sendTestWebhook"), json!({ "endpointId": gid }))
        .await;
    assert_eq!(
        gql["data"]["sendTestWebhook"]["delivery"]["eventType"],
        "webhook.test"
    );
    covered.push("sendTestWebhook");
    let (_, _, rest) = app
        .rest(
            Method::GET,
            &format!("/v1/webhook-deliveries/{did}"),
            None,
            &[],
        )
        .await;
    let (_, gql) = app
        .gql(&doc("getWebhookDelivery"), json!({ "id": did }))
        .await;
    assert_eq!(rest, gql["data"]["webhookDelivery"]);
    assert_eq!(rest["payload"]["type"], "webhook.test");
    covered.push("getWebhookDelivery");
    let (_, _, rest) = app
        .rest(
            Method::GET,
            &format!("/v1/webhook-deliveries?endpointId={eid}&status=PENDING"),
            None,
            &[],
        )
        .await;
    let (_, gql) = app
        .gql(
            &doc("listWebhookDeliveries"),
            json!({ "filter": { "endpointId": eid, "status": "PENDING" } }),
        )
        .await;
    assert_eq!(rest["data"], nodes(&gql["data"]["webhookDeliveries"]));
    assert_eq!(rest["data"].as_array().unwrap().len(), 1, "{rest}");
    covered.push("listWebhookDeliveries");
    let (status, _, replayed) = app
        .rest(
            Method::POST,
            "/v1/webhook-deliveries/replay",
            Some(json!({ "deliveryIds": [did] })),
            &[],
        )
        .await;
    assert_eq!(
        (status.as_u16(), replayed["replayedCount"].as_i64()),
        (200, Some(1)),
        "{replayed}"
    );
    let (_, gql) = app
        .gql(
            &doc("replayWebhookDeliveries"),
            json!({ "input": { "deliveryIds": [did] } }),
        )
        .await;
    assert_eq!(
        gql["data"]["replayWebhookDeliveries"]["replayedCount"], 1,
        "{gql}"
    );
    let (status, _, refused) = app
        .rest(
            Method::POST,
            "/v1/webhook-deliveries/replay",
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&refused)),
        (422, "INVALID_INPUT"),
        "{refused}"
    );
    covered.push("replayWebhookDeliveries");
    // The log: both creates and updates of the endpoints, once relayed.
    let mut log = Value::Null;
    for _ in 0..100 {
        let (_, _, rest) = app
            .rest(
                Method::GET,
                "/v1/events?type=webhook_endpoint.*&first=50",
                None,
                &[],
            )
            .await;
        if rest["data"].as_array().is_some_and(|d| d.len() >= 6) {
            log = rest;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, gql) = app
        .gql(
            &doc("listEvents"),
            json!({ "filter": { "types": ["webhook_endpoint.*"] }, "first": 50 }),
        )
        .await;
    assert_eq!(log["data"], nodes(&gql["data"]["events"]), "{log}");
    let positions: Vec<i64> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["data"].get("secret").is_none()),
        "secrets stay out of events"
    );
    covered.push("listEvents");
    let (status, _, deleted) = app.rest(Method::DELETE, &path, None, &[]).await;
    assert_eq!(
        (status.as_u16(), deleted["deletedId"].as_str()),
        (200, Some(eid.as_str())),
        "{deleted}"
    );
    let (status, _, again) = app.rest(Method::DELETE, &path, None, &[]).await;
    assert_eq!(
        (status.as_u16(), problem_code(&again)),
        (404, "NOT_FOUND"),
        "{again}"
    );
    let (_, gql) = app
        .gql(&doc("deleteWebhookEndpoint"), json!({ "id": gid }))
        .await;
    assert_eq!(gql["data"]["deleteWebhookEndpoint"]["deletedId"], gid);
    covered.push("deleteWebhookEndpoint");

    // API keys and the audit log.
    let (status, headers, key) = app
        .rest(
            Method::POST,
            "/v1/api-keys",
            Some(json!({ "role": "VIEWER", "name": "Twin" })),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let kid = key["id"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/v1/api-keys/{kid}").as_str());
    assert!(key["secret"].as_str().unwrap().starts_with("twh_"), "{key}");
    let (_, gql) = app
        .gql(
            &doc("createApiKey"),
            json!({ "input": { "role": "VIEWER", "name": "Twin" } }),
        )
        .await;
    let gql_key = gql["data"]["createApiKey"]["apiKey"].clone();
    assert_eq!(
        (gql_key["role"].as_str(), key["role"].as_str()),
        (Some("VIEWER"), Some("VIEWER"))
    );
    covered.push("createApiKey");
    let (_, _, rest) = app
        .rest(Method::GET, &format!("/v1/api-keys/{kid}"), None, &[])
        .await;
    let (_, gql) = app.gql(&doc("getApiKey"), json!({ "id": kid })).await;
    assert_eq!(rest, gql["data"]["apiKey"]);
    assert!(
        rest["secret"].is_null(),
        "a read never shows the secret: {rest}"
    );
    covered.push("getApiKey");
    let (_, _, rest) = app.rest(Method::GET, "/v1/api-keys", None, &[]).await;
    let (_, gql) = app.gql(&doc("listApiKeys"), json!({})).await;
    assert_eq!(rest["data"], nodes(&gql["data"]["apiKeys"]));
    covered.push("listApiKeys");
    let (status, _, revoked) = app
        .rest(
            Method::POST,
            &format!("/v1/api-keys/{kid}/revoke"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revokedAt"].is_string());
    let (_, gql) = app
        .gql(&doc("revokeApiKey"), json!({ "id": gql_key["id"] }))
        .await;
    assert!(
        gql["data"]["revokeApiKey"]["apiKey"]["revokedAt"].is_string(),
        "{gql}"
    );
    let (status, _, again) = app
        .rest(
            Method::POST,
            &format!("/v1/api-keys/{kid}/revoke"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&again)),
        (409, "INVALID_TRANSITION")
    );
    covered.push("revokeApiKey");
    let (_, _, rest) = app
        .rest(
            Method::GET,
            "/v1/audit-events?targetType=api_key",
            None,
            &[],
        )
        .await;
    let (_, gql) = app
        .gql(
            &doc("listAuditEvents"),
            json!({ "filter": { "targetType": "api_key" } }),
        )
        .await;
    assert_eq!(rest["data"], nodes(&gql["data"]["auditEvents"]));
    assert_eq!(
        rest["data"].as_array().unwrap().len(),
        4,
        "two creates, two revokes: {rest}"
    );
    covered.push("listAuditEvents");

    // Usage: each read counts itself, so the twins differ by exactly that call.
    let (status, _, rest) = app.rest(Method::GET, "/v1/usage", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    let (_, gql) = app.gql(&doc("getUsage"), json!({})).await;
    let mut gql = gql["data"]["usage"].clone();
    let mut rest = rest;
    assert_eq!(
        gql["callsThisPeriod"].as_i64().unwrap(),
        rest["callsThisPeriod"].as_i64().unwrap() + 1
    );
    for moving in ["callsThisPeriod", "projectedCalls"] {
        gql.as_object_mut().unwrap().remove(moving);
        rest.as_object_mut().unwrap().remove(moving);
    }
    assert_eq!(rest, gql);
    covered.push("getUsage");
    let (_, _, rest) = app
        .rest(
            Method::GET,
            "/v1/usage/records?from=2026-01-01&to=2026-01-31",
            None,
            &[],
        )
        .await;
    let (_, gql) = app
        .gql(
            &doc("listUsageRecords"),
            json!({ "from": "2026-01-01", "to": "2026-01-31" }),
        )
        .await;
    assert_eq!(rest["data"], nodes(&gql["data"]["usageRecords"]), "{gql}");
    let (_, _, today) = app.rest(Method::GET, "/v1/usage/records", None, &[]).await;
    assert_eq!(
        today["data"][0]["day"],
        chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "{today}"
    );
    covered.push("listUsageRecords");
    // Recent errors: counts land with the usage flush, so compare once they have settled.
    let mut twins = None;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (status, _, rest) = app
            .rest(Method::GET, "/v1/usage/errors?days=2", None, &[])
            .await;
        assert_eq!(status, StatusCode::OK, "{rest}");
        let (_, gql) = app.gql(&doc("getRecentErrors"), json!({ "days": 2 })).await;
        if rest == gql["data"]["recentErrors"] {
            twins = Some(rest);
            break;
        }
    }
    let twins = twins.expect("the REST and GraphQL recent errors agree");
    assert!(twins["errors"].as_array().is_some(), "{twins}");
    covered.push("getRecentErrors");

    // A session from each surface: different tokens, the same role and shape.
    let (status, _, rest) = app
        .rest(
            Method::POST,
            "/v1/sessions",
            Some(json!({ "role": "VIEWER", "ttlSeconds": 600 })),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    let (_, gql) = app
        .gql(
            &doc("createSession"),
            json!({ "input": { "role": "VIEWER", "ttlSeconds": 600 } }),
        )
        .await;
    let gql = &gql["data"]["createSession"]["session"];
    assert_eq!(rest["role"], gql["role"]);
    assert_ne!(rest["token"], gql["token"]);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&rest), keys(gql));
    covered.push("createSession");

    // Jobs: an export started from each surface; once finished, each reads the same both ways.
    let (status, _, rest_job) = app
        .rest(
            Method::POST,
            "/v1/jobs",
            Some(json!({ "kind": "EXPORT_STOCK_LEVELS", "params": { "sku": "TW-R" } })),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rest_job}");
    let (_, gql) = app
        .gql(
            &doc("startJob"),
            json!({ "input": { "kind": "EXPORT_STOCK_LEVELS", "params": { "sku": "TW-G" } } }),
        )
        .await;
    let gql_job = gql["data"]["startJob"]["job"].clone();
    assert_eq!(
        (&rest_job["kind"], &rest_job["status"]),
        (&gql_job["kind"], &gql_job["status"]),
        "{gql}"
    );
    covered.push("startJob");
    let job_id = rest_job["id"].as_str().unwrap().to_owned();
    for id in [job_id.as_str(), gql_job["id"].as_str().unwrap()] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, _, job) = app
                .rest(Method::GET, &format!("/v1/jobs/{id}"), None, &[])
                .await;
            if job["status"] == "SUCCEEDED" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{job}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let (_, headers, rest) = app
        .rest(Method::GET, &format!("/v1/jobs/{job_id}"), None, &[])
        .await;
    let (_, gql) = app.gql(&doc("getJob"), json!({ "id": job_id })).await;
    assert_eq!(rest, gql["data"]["job"]);
    assert_eq!(headers["etag"], format!("\"{}\"", rest["version"]));
    covered.push("getJob");
    let (_, _, rest) = app
        .rest(Method::GET, "/v1/jobs?kind=EXPORT_STOCK_LEVELS", None, &[])
        .await;
    let (_, gql) = app
        .gql(
            &doc("listJobs"),
            json!({ "filter": { "kind": "EXPORT_STOCK_LEVELS" } }),
        )
        .await;
    assert_eq!(rest["data"], nodes(&gql["data"]["jobs"]));
    assert_eq!(rest["data"].as_array().unwrap().len(), 2, "{rest}");
    covered.push("listJobs");
    let (status, _, rest) = app
        .rest(
            Method::POST,
            &format!("/v1/jobs/{job_id}/cancel"),
            None,
            &[],
        )
        .await;
    let (_, gql) = app.gql(&doc("cancelJob"), json!({ "id": job_id })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{rest}");
    assert_eq!(
        problem_code(&rest),
        gql["data"]["cancelJob"]["userErrors"][0]["code"]
            .as_str()
            .unwrap()
    );
    covered.push("cancelJob");
    let (status, headers, rest) = app
        .rest(Method::POST, "/v1/reconciliation-runs", None, &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    assert_eq!(
        headers["location"],
        format!("/v1/reconciliation-runs/{}", rest["id"].as_str().unwrap())
    );
    let (_, gql) = app.gql(&doc("runReconciliation"), json!({})).await;
    let run = &gql["data"]["runReconciliation"]["run"];
    assert_eq!(
        (&rest["mismatches"], &rest["levelsChecked"]),
        (&run["mismatches"], &run["levelsChecked"])
    );
    assert_eq!(rest["mismatches"], 0, "{rest}");
    assert_ne!(rest["id"], run["id"]);
    covered.push("runReconciliation");
    // A clean run repairs nothing, from either surface.
    let run_id = rest["id"].as_str().unwrap().to_owned();
    let (status, _, rest) = app
        .rest(
            Method::POST,
            &format!("/v1/reconciliation-runs/{run_id}/repair"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!(
        (&rest["repairedLevels"], &rest["movements"]),
        (&json!(0), &json!([]))
    );
    let (_, gql) = app
        .gql(&doc("repairReconciliation"), json!({ "runId": run_id }))
        .await;
    assert_eq!(gql["data"]["repairReconciliation"]["repair"], rest);
    let (status, _, rest) = app
        .rest(
            Method::POST,
            "/v1/reconciliation-runs/rec_nope/repair",
            None,
            &[],
        )
        .await;
    let (_, gql) = app
        .gql(&doc("repairReconciliation"), json!({ "runId": "rec_nope" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{rest}");
    assert_eq!(
        problem_code(&rest),
        gql["data"]["repairReconciliation"]["userErrors"][0]["code"]
            .as_str()
            .unwrap()
    );
    covered.push("repairReconciliation");
    let (status, _, rest) = app
        .rest(
            Method::POST,
            "/v1/reorder-points",
            Some(json!({ "sku": "TW-R", "locationCode": "NOWHERE", "reorderPoint": 3 })),
            &[],
        )
        .await;
    let (_, gql) = app
        .gql(
            &doc("setReorderPoint"),
            json!({ "input": { "sku": "TW-G", "locationCode": "NOWHERE", "reorderPoint": 3 } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{rest}");
    assert_eq!(problem_code(&rest), "UNKNOWN_LOCATION");
    assert_eq!(
        gql["data"]["setReorderPoint"]["userErrors"][0]["code"],
        "UNKNOWN_LOCATION"
    );
    covered.push("setReorderPoint");

    // Search: the same page from both surfaces once the index has caught up.
    twh_server::search::indexer::catch_up(&app.state)
        .await
        .expect("index caught up");
    let (status, _, rest) = app
        .rest(Method::GET, "/v1/search?q=twin&type=ITEM", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    let (_, gql) = app
        .gql(
            &doc("search"),
            json!({ "query": "twin", "types": ["ITEM"] }),
        )
        .await;
    assert!(rest["totalCount"].as_i64().unwrap() >= 1, "{rest}");
    assert_eq!(rest, gql["data"]["search"]);
    covered.push("search");
    let groups = json!({ "groups": [["twin", "double"]] });
    let (status, _, rest) = app
        .rest(
            Method::POST,
            "/v1/search/synonyms",
            Some(groups.clone()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    let (_, gql) = app
        .gql(&doc("updateSearchSynonyms"), json!({ "input": groups }))
        .await;
    assert_eq!(rest, gql["data"]["updateSearchSynonyms"]["synonyms"]);
    assert_eq!(rest["groups"], json!([["double", "twin"]]));
    covered.push("updateSearchSynonyms");
    let (_, _, rest) = app
        .rest(Method::GET, "/v1/search/synonyms", None, &[])
        .await;
    let (_, gql) = app.gql(&doc("getSearchSynonyms"), json!({})).await;
    assert_eq!(rest, gql["data"]["searchSynonyms"]);
    covered.push("getSearchSynonyms");

    for route in ROUTES {
        assert!(
            covered.contains(&route.operation_id),
            "route {} has no twin test",
            route.operation_id
        );
    }
    app.shutdown().await;
}

fn counter(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_rest_business_failure_is_counted_once() {
    let app = TestApp::spawn().await;
    app.create_item("FULL").await;
    app.create_location("WH", false).await;
    let (status, _, _) = app
        .rest(
            Method::POST,
            "/v1/stock/sets",
            Some(json!({ "changes": [{ "sku": "FULL", "locationCode": "WH", "quantity": 1_000_000_000_000_000_i64 }] })),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    let metric = "twh_errors_total{code=\"QUANTITY_OUT_OF_RANGE\"}";
    let before = counter(&app.metrics().await, metric);
    let body = json!({ "reason": "RECEIVED", "changes": [{ "sku": "FULL", "locationCode": "WH", "delta": 1 }] });
    let (status, _, problem) = app
        .rest(Method::POST, "/v1/stock/adjustments", Some(body), &[])
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&problem)),
        (422, "QUANTITY_OUT_OF_RANGE")
    );
    assert_eq!(counter(&app.metrics().await, metric), before + 1);
    app.shutdown().await;
}

/// `If-Match: *` on a transition sends no version, so a retry with the same Idempotency-Key
/// is the same request and replays, even though the document's version moved on.
#[tokio::test]
async fn a_starred_transition_replays_under_its_key() {
    let app = TestApp::spawn().await;
    app.create_item("STAR").await;
    app.create_location("STAR-WH", false).await;
    let (status, _, po) = app
        .rest(
            Method::POST,
            "/v1/purchase-orders",
            Some(json!({ "supplier": "Star", "lines": [{ "sku": "STAR", "locationCode": "STAR-WH", "quantity": 2 }] })),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{po}");
    let path = format!("/v1/purchase-orders/{}/submit", po["id"].as_str().unwrap());
    let headers = [("if-match", "*"), ("idempotency-key", "star-submit")];
    let (first_status, _, first) = app.rest(Method::POST, &path, None, &headers).await;
    assert_eq!(first_status, 200, "{first}");
    let (again_status, again_headers, again) = app.rest(Method::POST, &path, None, &headers).await;
    assert_eq!((again_status.as_u16(), &again), (200, &first));
    assert_eq!(again_headers["idempotent-replayed"], "true");
    assert_eq!(app.level("STAR", "STAR-WH").await["incoming"], 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_number_where_the_body_takes_an_id_is_refused() {
    let app = TestApp::spawn().await;
    // GraphQL would take 858 as the ID "858"; the body's schema says string, so REST refuses it
    // (a fuzzed case once got 200 with nothing replayed).
    for (body, field) in [
        (json!({ "endpointId": 858 }), "endpointId"),
        (
            json!({ "deliveryIds": ["whd_1", 543641] }),
            "deliveryIds[1]",
        ),
    ] {
        let (status, _, answer) = app
            .rest(
                Method::POST,
                "/v1/webhook-deliveries/replay",
                Some(body),
                &[],
            )
            .await;
        assert_eq!(
            (status.as_u16(), problem_code(&answer)),
            (400, "BAD_REQUEST"),
            "{answer}"
        );
        let detail = answer["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("{field} must be a string")),
            "{detail}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_single_value_where_the_body_takes_a_list_is_refused() {
    let app = TestApp::spawn().await;
    // GraphQL would coerce 5 into [5]; the body's schema says array, so REST refuses it.
    let (status, _, body) = app
        .rest(
            Method::POST,
            "/v1/sales-orders/so_nope/allocate",
            Some(json!({ "reservationIds": 526765 })),
            &[("if-match", "W/\"B\"")],
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&body)),
        (400, "BAD_REQUEST"),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("reservationIds must be an array")
    );
    let (status, _, body) = app
        .rest(
            Method::POST,
            "/v1/stock/adjustments",
            Some(json!({ "reason": "RECEIVED", "changes": { "sku": "X", "locationCode": "Y", "delta": 1 } })),
            &[],
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem_code(&body)),
        (400, "BAD_REQUEST"),
        "{body}"
    );
    app.shutdown().await;
}
