//! Metering, rate limits and quotas: every call counted once (replays and retried executions
//! included), the durable daily record, the token bucket with its headers and `extensions.cost`,
//! Free refused past its quota while paid plans go into overage, the plan's webhook-endpoint
//! cap, and requests still served when Redis is out of reach.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::support::{ADJUST, TestApp, adjust_input};

const TOKEN: &str = "operator-token-for-limits-0123456789";

async fn limited() -> TestApp {
    TestApp::spawn_with(|c| {
        c.admin_token = Some(TOKEN.into());
        c.limits.enforce = true;
        // A check that outwaits this decides in process, against a second bucket: the exact
        // arithmetic below holds only with one (CI's loaded machine outwaited the 250 ms default).
        c.limits.redis_timeout_ms = 10_000;
    })
    .await
}

/// Moves a tenant to `plan` with `overrides` as the platform operator.
async fn set_plan(app: &TestApp, tenant_id: &str, plan: &str, overrides: Value) {
    let (_, body) = app
        .gql_as(
            TOKEN,
            "mutation($t: ID!, $p: String!, $o: JSON) { updateTenantPlan(input: {tenantId: $t, plan: $p, overrides: $o}) { tenant { plan } userErrors { code message } } }",
            json!({ "t": tenant_id, "p": plan, "o": overrides }),
        )
        .await;
    assert_eq!(
        body["data"]["updateTenantPlan"]["tenant"]["plan"], plan,
        "{body}"
    );
}

/// A new tenant (through the operator) and its key.
async fn new_tenant(app: &TestApp, plan: &str) -> (String, String) {
    let (_, body) = app
        .gql_as(
            TOKEN,
            "mutation($p: String) { createTenant(input: {name: \"Limits\", plan: $p}) { tenant { id } apiKey } }",
            json!({ "p": plan }),
        )
        .await;
    let created = &body["data"]["createTenant"];
    (
        created["tenant"]["id"].as_str().expect("tenant").to_owned(),
        created["apiKey"].as_str().expect("key").to_owned(),
    )
}

async fn durable_calls(app: &TestApp, tenant_id: &str) -> (i64, i64, i64) {
    let backend = app.state.db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) AS calls, CAST(COALESCE(SUM(overage_calls), 0) AS BIGINT) AS overage, CAST(COALESCE(SUM(refused_calls), 0) AS BIGINT) AS refused FROM usage_daily WHERE tenant_id = $1"
        }
        _ => {
            "SELECT COALESCE(SUM(calls), 0) AS calls, COALESCE(SUM(overage_calls), 0) AS overage, COALESCE(SUM(refused_calls), 0) AS refused FROM usage_daily WHERE tenant_id = ?"
        }
    };
    let row = app
        .state
        .db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [tenant_id.into()],
        ))
        .await
        .expect("read usage_daily")
        .expect("a row");
    (
        row.try_get("", "calls").unwrap(),
        row.try_get("", "overage").unwrap(),
        row.try_get("", "refused").unwrap(),
    )
}

/// Waits for the flushes to write `(calls, overage, refused)` (making no calls itself).
async fn wait_durable(app: &TestApp, tenant_id: &str, expected: (i64, i64, i64)) {
    let mut seen = (0, 0, 0);
    for _ in 0..100 {
        seen = durable_calls(app, tenant_id).await;
        if seen == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("usage_daily holds (calls, overage, refused) {seen:?}, expected {expected:?}");
}

async fn calls_this_period(app: &TestApp, key: &str) -> i64 {
    let (_, body) = app
        .gql_as(key, "{ usage { callsThisPeriod } }", json!({}))
        .await;
    body["data"]["usage"]["callsThisPeriod"]
        .as_i64()
        .unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test]
async fn every_call_is_metered_once_and_written_durably() {
    let app = TestApp::spawn().await;
    app.create_location("WH1", false).await; // 1
    let item = app.create_item("MUG").await; // 2
    let item_id = item["id"].as_str().unwrap_or_else(|| panic!("{item}"));

    // A REST write and its replay: one call.
    let body = json!({"reason": "RECEIVED", "changes": [{"sku": "MUG", "locationCode": "WH1", "delta": 5}]});
    for _ in 0..2 {
        let (status, _, _) = app
            .rest(
                Method::POST,
                "/v1/stock/adjustments",
                Some(body.clone()),
                &[("idempotency-key", "meter-rest-1")],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    } // 3
    // A GraphQL write and its replay: one call.
    for _ in 0..2 {
        let (_, body) = app
            .gql(
                ADJUST,
                json!({"input": adjust_input("MUG", "WH1", 1, None), "key": "meter-gql-1"}),
            )
            .await;
        assert_eq!(
            body["data"]["adjustStock"]["userErrors"],
            json!([]),
            "{body}"
        );
    } // 4
    // `If-Match: *` reads the version and then updates: two executions, one call.
    let (status, _, _) = app
        .rest(
            Method::PATCH,
            &format!("/v1/items/{item_id}"),
            Some(json!({"name": "Mug, large"})),
            &[("if-match", "*")],
        )
        .await; // 5
    assert_eq!(status, StatusCode::OK);
    // A document that does not parse is no operation and is not counted.
    let (status, _) = app.gql("{ items(first: ", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The usage query counts itself.
    assert_eq!(calls_this_period(&app, &app.key).await, 6);
    let (status, _, usage) = app.rest(Method::GET, "/v1/usage", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["callsThisPeriod"], 7, "{usage}");
    assert_eq!(usage["plan"], "free");
    assert_eq!(usage["callLimit"], 10_000);
    assert_eq!(usage["webhookEndpointLimit"], 2);
    assert!(usage["projectedCalls"].as_i64().unwrap() >= 7, "{usage}");

    // Every process adds what it counted to the durable daily record.
    wait_durable(&app, &app.tenant_id, (7, 0, 0)).await;
    let (status, _, records) = app.rest(Method::GET, "/v1/usage/records", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{records}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(records["data"][0]["day"], today, "{records}");
    assert_eq!(records["data"][0]["calls"], 7, "{records}");
    let (status, _, bad) = app
        .rest(Method::GET, "/v1/usage/records?from=yesterday", None, &[])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["code"], "INVALID_INPUT");
}

#[tokio::test]
async fn the_bucket_refuses_bursts_with_headers_and_costly_queries_spend_more() {
    let app = limited().await;
    set_plan(
        &app,
        &app.tenant_id,
        "developer",
        json!({"burst": 5, "requestsPerSecond": 0.2}),
    )
    .await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let (status, headers, body) = app.rest(Method::GET, "/v1/items", None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body} {headers:?}");
        assert_eq!(
            headers["ratelimit-policy"].to_str().unwrap(),
            format!("\"burst\";q=5;w=25, \"month\";q=100000;w={}", month_secs()),
        );
        let current = headers["ratelimit"].to_str().unwrap().to_owned();
        remaining.push(current.split(';').nth(1).unwrap().to_owned());
    }
    assert_eq!(remaining, ["r=4", "r=3", "r=2", "r=1", "r=0"]);

    // REST: 429, a problem document, Retry-After and the fields.
    let (status, headers, problem) = app.rest(Method::GET, "/v1/items", None, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(problem["code"], "RATE_LIMITED");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "Retry-After: {retry}");
    assert!(
        headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with(&format!("\"burst\";r=0;t={retry}")),
        "{headers:?}"
    );
    // GraphQL: 429 with extensions.code; nothing ran.
    let (status, body) = app
        .gql(
            ADJUST,
            json!({"input": adjust_input("NOPE", "NOWHERE", 1, None)}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(
        body.get("data").is_none() || body["data"].is_null(),
        "{body}"
    );

    // A plan with room: a lookup costs 1, a page of 250 rows costs more, and the bucket says so.
    let (tenant, key) = new_tenant(&app, "scale").await;
    set_plan(&app, &tenant, "scale", json!({"requestsPerSecond": 0.01})).await;
    let (_, cheap) = app.gql_as(&key, "{ usage { plan } }", json!({})).await;
    let cost = &cheap["extensions"]["cost"];
    assert_eq!(cost["requestedQueryCost"], 1, "{cheap}");
    assert_eq!(cost["throttleStatus"]["maximumAvailable"], 2500);
    let before = cost["throttleStatus"]["currentlyAvailable"]
        .as_f64()
        .unwrap();
    let (_, costly) = app
        .gql_as(
            &key,
            "{ items(first: 250) { edges { cursor node { id sku name barcode unit version createdAt updatedAt } } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    let cost = &costly["extensions"]["cost"];
    let requested = cost["requestedQueryCost"].as_f64().unwrap();
    assert!(requested >= 3.0, "{costly}");
    let after = cost["throttleStatus"]["currentlyAvailable"]
        .as_f64()
        .unwrap();
    assert!(
        (before - after - requested).abs() < 1.0,
        "the bucket went from {before} to {after} for a query costing {requested}"
    );
    assert!(app.metrics().await.contains("twh_rate_limited_total"));
}

fn month_secs() -> i64 {
    let (start, end) = twh_server::tenancy::limits::period_bounds(chrono::Utc::now());
    (end - start).num_seconds()
}

#[tokio::test]
async fn free_stops_at_its_quota_while_a_paid_plan_goes_into_overage() {
    let app = limited().await;
    set_plan(&app, &app.tenant_id, "free", json!({"callLimit": 3})).await;
    let (paid, paid_key) = new_tenant(&app, "developer").await;
    set_plan(&app, &paid, "developer", json!({"callLimit": 3})).await;

    for n in 1..=3 {
        let (status, _, _) = app.rest(Method::GET, "/v1/items", None, &[]).await;
        assert_eq!(status, StatusCode::OK, "call {n}");
    }
    let (status, headers, problem) = app.rest(Method::GET, "/v1/items", None, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(problem["code"], "QUOTA_EXCEEDED");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(
        headers["ratelimit"]
            .to_str()
            .unwrap()
            .contains("\"month\";r=0;"),
        "{headers:?}"
    );
    let (status, body) = app.gql("{ usage { callsThisPeriod } }", json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["errors"][0]["extensions"]["code"], "QUOTA_EXCEEDED");

    for n in 1..=5 {
        let (status, _) = app
            .gql_as(
                &paid_key,
                "{ items(first: 1) { edges { cursor } } }",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "paid call {n}");
    }
    let (_, body) = app
        .gql_as(
            &paid_key,
            "{ usage { callsThisPeriod callLimit overageCalls overageAllowed } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["usage"],
        json!({"callsThisPeriod": 6, "callLimit": 3, "overageCalls": 3, "overageAllowed": true}),
        "{body}"
    );
    // The durable record: the free tenant's 3 calls and 2 refusals; the paid one's overage.
    wait_durable(&app, &app.tenant_id, (3, 0, 2)).await;
    wait_durable(&app, &paid, (6, 3, 0)).await;

    // The operator sees usage across tenants.
    let (_, body) = app
        .gql_as(
            TOKEN,
            "{ tenants(first: 10) { edges { node { id usage { plan callsThisPeriod } } } } }",
            json!({}),
        )
        .await;
    let paid_row = body["data"]["tenants"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == paid.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        paid_row["node"]["usage"],
        json!({"plan": "developer", "callsThisPeriod": 6})
    );
}

#[tokio::test]
async fn plans_cap_webhook_endpoints_and_overrides_are_checked() {
    let app = limited().await;
    let create = "mutation($url: String!) { createWebhookEndpoint(input: {url: $url, eventTypes: [\"stock.changed\"]}) { endpoint { id } userErrors { code message } } }";
    for n in 0..2 {
        let (_, body) = app
            .gql(
                create,
                json!({"url": format!("https://hooks.example.com/{n}")}),
            )
            .await;
        assert_eq!(
            body["data"]["createWebhookEndpoint"]["userErrors"],
            json!([]),
            "{body}"
        );
    }
    let (_, body) = app
        .gql(create, json!({"url": "https://hooks.example.com/third"}))
        .await;
    let error = &body["data"]["createWebhookEndpoint"]["userErrors"][0];
    assert_eq!(error["code"], "LIMIT_EXCEEDED", "{body}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("free plan allows 2")
    );

    // A deal with a typo is refused, never half applied.
    let (_, body) = app
        .gql_as(
            TOKEN,
            "mutation($t: ID!) { updateTenantPlan(input: {tenantId: $t, plan: \"growth\", overrides: {callLimt: 5}}) { tenant { plan } userErrors { code field message } } }",
            json!({ "t": app.tenant_id }),
        )
        .await;
    let payload = &body["data"]["updateTenantPlan"];
    assert_eq!(payload["tenant"], Value::Null, "{body}");
    assert_eq!(payload["userErrors"][0]["code"], "INVALID_INPUT");
    assert_eq!(
        payload["userErrors"][0]["field"],
        json!(["input", "overrides"])
    );
    let (_, usage) = app.gql("{ usage { plan } }", json!({})).await;
    assert_eq!(usage["data"]["usage"]["plan"], "free");
}

#[tokio::test]
async fn requests_are_served_when_redis_is_out_of_reach() {
    // Nothing listens on port 1: every Redis call fails at once.
    let app = TestApp::spawn_with(|c| {
        c.redis_url = Some("redis://127.0.0.1:1".into());
        c.limits.enforce = true;
    })
    .await;
    for _ in 0..3 {
        let (status, _, _) = app.rest(Method::GET, "/v1/items", None, &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Limits and counts ran in process.
    assert_eq!(calls_this_period(&app, &app.key).await, 4);
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    let detail = ready.text().await.unwrap();
    assert!(
        detail.contains("degraded") && detail.contains("Redis"),
        "{detail}"
    );
    // The metrics are the test process's, shared with tests that reach Redis, so the gauge
    // (twh_redis_up) may read 1 here; the failures counter only grows. The gauge is checked per
    // process in tests/suites/limits.test.mjs.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("twh_redis_failures_total{during="),
        "{metrics}"
    );
}

#[tokio::test]
async fn recent_errors_count_request_errors_and_user_errors_by_code() {
    let app = TestApp::spawn().await;
    app.create_location("WH1", false).await;
    for _ in 0..2 {
        let payload = app.adjust("NO-SUCH-SKU", "WH1", 1, None).await;
        assert_eq!(payload["userErrors"][0]["code"], "UNKNOWN_SKU", "{payload}");
    }
    let (status, body) = app
        .gql("{ recentErrors(days: 0) { since } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_INPUT");

    // Counted in memory, written with the usage flush: read until it lands.
    let query =
        "{ recentErrors { since errors { code count lastMessage lastRequestId lastSeenAt } } }";
    let mut errors = json!(null);
    for _ in 0..100 {
        let (_, body) = app.gql(query, json!({})).await;
        errors = body["data"]["recentErrors"]["errors"].clone();
        let count_of = |code: &str| {
            errors
                .as_array()
                .and_then(|all| all.iter().find(|e| e["code"] == code))
                .map(|e| e["count"].as_i64().unwrap_or(0))
        };
        if count_of("UNKNOWN_SKU") == Some(2) && count_of("INVALID_INPUT") == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        errors[0]["code"], "UNKNOWN_SKU",
        "most frequent first: {errors}"
    );
    assert_eq!(errors[0]["count"], 2, "{errors}");
    assert!(
        errors[0]["lastMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{errors}"
    );
    assert!(
        errors[0]["lastRequestId"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{errors}"
    );
    assert_eq!(errors[1]["code"], "INVALID_INPUT", "{errors}");
    assert_eq!(errors[1]["count"], 1, "{errors}");

    // The REST twin answers the same.
    let (status, _, rest) = app
        .rest(Method::GET, "/v1/usage/errors?days=7", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!(rest["errors"][0]["code"], "UNKNOWN_SKU", "{rest}");

    // Another tenant's errors are its own.
    let other = app.other_tenant().await;
    let (_, body) = app.gql_as(&other, query, json!({})).await;
    assert_eq!(body["data"]["recentErrors"]["errors"], json!([]), "{body}");
}
