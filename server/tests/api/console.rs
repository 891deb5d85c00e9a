//! The console's sessions: an API key (or the operator's admin token) exchanged for an
//! HttpOnly, SameSite=Strict cookie; requests the cookie authenticates must repeat the session's
//! CSRF token; the session ends with its key; an operator's session is nobody's tenant.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

const TOKEN: &str = "console-admin-token-0123456789abcdef";

struct Signed {
    cookie: String,
    csrf: String,
    set_cookie: String,
    body: Value,
}

async fn sign_in(
    app: &TestApp,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, Value, Option<String>) {
    let mut request = app.client.post(app.url("/console/session")).json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.json().await.expect("json"), set_cookie)
}

async fn signed_in(app: &TestApp, body: Value) -> Signed {
    let (status, body, set_cookie) = sign_in(app, body, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let set_cookie = set_cookie.expect("a session cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    Signed {
        cookie,
        csrf: body["csrfToken"].as_str().expect("a CSRF token").to_owned(),
        set_cookie,
        body,
    }
}

/// A GraphQL request with the cookie (and the CSRF header when given), no Authorization.
async fn gql_cookie(
    app: &TestApp,
    cookie: &str,
    csrf: Option<&str>,
    query: &str,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .header("cookie", cookie)
        .json(&json!({ "query": query }));
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    let response = request.send().await.expect("send");
    (response.status(), response.json().await.expect("json"))
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

#[tokio::test]
async fn an_api_key_signs_in_to_an_http_only_strict_cookie_that_needs_its_csrf_token() {
    let app = TestApp::spawn().await;
    app.create_location("WH1", false).await;
    app.create_item("SKU-1").await;
    app.adjust("SKU-1", "WH1", 4, None).await;
    let signed = signed_in(&app, json!({ "apiKey": app.key })).await;
    let flags: Vec<&str> = signed.set_cookie.split(';').map(str::trim).collect();
    assert!(flags.contains(&"HttpOnly"), "{}", signed.set_cookie);
    assert!(flags.contains(&"SameSite=Strict"), "{}", signed.set_cookie);
    assert!(flags.contains(&"Path=/"), "{}", signed.set_cookie);
    assert!(
        !flags.contains(&"Secure"),
        "plain HTTP: {}",
        signed.set_cookie
    );
    assert_eq!(signed.body["kind"], "tenant");
    assert_eq!(signed.body["tenantId"], app.tenant_id.as_str());
    assert_eq!(signed.body["role"], "owner");
    assert!(
        !signed.set_cookie.contains(&app.key),
        "the key itself is never in the cookie"
    );
    let (_, audit) = app
        .gql(
            "{ auditEvents(first: 5, filter: { action: \"console.sign_in\" }) { nodes { actor targetType } } }",
            json!({}),
        )
        .await;
    let signed_in_records = &audit["data"]["auditEvents"]["nodes"];
    assert_eq!(
        signed_in_records.as_array().map(Vec::len),
        Some(1),
        "{audit}"
    );
    assert!(
        signed_in_records[0]["actor"]
            .as_str()
            .unwrap()
            .contains("/session:ses"),
        "{audit}"
    );

    let query = "{ stockLevel(sku: \"SKU-1\", locationCode: \"WH1\") { available } }";
    let (status, body) = gql_cookie(&app, &signed.cookie, Some(&signed.csrf), query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["stockLevel"]["available"], 4);

    // The cookie alone, as a page of another site could make the browser send it: refused.
    let (status, body) = gql_cookie(&app, &signed.cookie, None, query).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "FORBIDDEN"),
        "{body}"
    );
    let (status, body) = gql_cookie(&app, &signed.cookie, Some("not-the-token"), query).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "FORBIDDEN"),
        "{body}"
    );
    // A write refused for want of the token changed nothing.
    let adjust = "mutation { adjustStock(input: { reason: CORRECTION, changes: [{ sku: \"SKU-1\", locationCode: \"WH1\", delta: 1 }] }) { userErrors { code } } }";
    let (status, _) = gql_cookie(&app, &signed.cookie, None, adjust).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, body) = gql_cookie(&app, &signed.cookie, Some(&signed.csrf), query).await;
    assert_eq!(body["data"]["stockLevel"]["available"], 4);

    // REST through the route table takes the same session and the same rule.
    let rest = |csrf: Option<&str>| {
        let mut request = app
            .client
            .get(app.url("/v1/stock/levels?sku=SKU-1"))
            .header("cookie", &signed.cookie);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf.to_owned());
        }
        request.send()
    };
    assert_eq!(
        rest(Some(&signed.csrf)).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(rest(None).await.unwrap().status(), StatusCode::FORBIDDEN);

    // After a reload the console reads its session (and token) back; signing out clears it.
    let current: Value = app
        .client
        .get(app.url("/console/session"))
        .header("cookie", &signed.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["csrfToken"], signed.csrf.as_str());
    let out = app
        .client
        .delete(app.url("/console/session"))
        .header("cookie", &signed.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("twh_console=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn behind_tls_the_cookie_is_secure() {
    let app = TestApp::spawn().await;
    let (status, _, set_cookie) = sign_in(
        &app,
        json!({ "apiKey": app.key }),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let set_cookie = set_cookie.unwrap();
    assert!(
        set_cookie.split(';').any(|f| f.trim() == "Secure"),
        "{set_cookie}"
    );
}

#[tokio::test]
async fn bad_sign_ins_are_refused_with_codes() {
    let app = TestApp::spawn_with(|c| c.admin_token = Some(TOKEN.into())).await;
    for (body, status, expected) in [
        (
            json!({ "apiKey": "twh_test_nope" }),
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
        ),
        (
            json!({ "adminToken": "wrong" }),
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        (
            json!({ "apiKey": app.key, "adminToken": TOKEN }),
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
        (
            json!({ "apiKey": 12 }),
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
        (
            json!({ "apiKey": app.key, "role": "owner" }),
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
    ] {
        let (got, answer, set_cookie) = sign_in(&app, body.clone(), &[]).await;
        assert_eq!(
            (got, code(&answer)),
            (status, expected),
            "{body} -> {answer}"
        );
        assert!(set_cookie.is_none(), "{body}: no cookie on a refusal");
    }
    let malformed = app
        .client
        .post(app.url("/console/session"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    // A session is signed in with the key itself, never with another session's token.
    let (_, minted) = app
        .gql(
            "mutation { createSession(input: {}) { session { token } userErrors { code } } }",
            json!({}),
        )
        .await;
    let token = minted["data"]["createSession"]["session"]["token"]
        .as_str()
        .expect("a token");
    let (status, _, _) = sign_in(&app, json!({ "apiKey": token }), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nor is a session without a CSRF token (one minted by createSession) taken from a cookie.
    let (status, body) = gql_cookie(
        &app,
        &format!("twh_console={token}"),
        Some(""),
        "{ usage { plan } }",
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        "{body}"
    );
}

#[tokio::test]
async fn a_revoked_key_ends_its_console_sessions() {
    let app = TestApp::spawn().await;
    let (_, created) = app
        .gql(
            "mutation { createApiKey(input: { name: \"console\", role: DEVELOPER }) { apiKey { id secret } userErrors { code } } }",
            json!({}),
        )
        .await;
    let key = &created["data"]["createApiKey"]["apiKey"];
    let signed = signed_in(&app, json!({ "apiKey": key["secret"] })).await;
    assert_eq!(signed.body["role"], "developer");
    let (status, _) = gql_cookie(
        &app,
        &signed.cookie,
        Some(&signed.csrf),
        "{ usage { plan } }",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, revoked) = app
        .gql(
            "mutation($id: ID!) { revokeApiKey(id: $id) { userErrors { code } } }",
            json!({ "id": key["id"] }),
        )
        .await;
    assert_eq!(revoked["data"]["revokeApiKey"]["userErrors"], json!([]));
    let (status, body) = gql_cookie(
        &app,
        &signed.cookie,
        Some(&signed.csrf),
        "{ usage { plan } }",
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        "{body}"
    );
    let current = app
        .client
        .get(app.url("/console/session"))
        .header("cookie", &signed.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_operator_signs_in_with_the_admin_token_and_gets_operator_operations_only() {
    let app = TestApp::spawn_with(|c| c.admin_token = Some(TOKEN.into())).await;
    let signed = signed_in(&app, json!({ "adminToken": TOKEN })).await;
    assert_eq!(signed.body["kind"], "operator");
    assert_eq!(signed.body["tenantId"], Value::Null);
    assert!(
        !signed.set_cookie.contains(TOKEN),
        "the admin token is never in the cookie"
    );

    let (status, body) = gql_cookie(
        &app,
        &signed.cookie,
        Some(&signed.csrf),
        "{ tenants(first: 5) { nodes { id } } }",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["data"]["tenants"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == app.tenant_id.as_str())
    );
    let (status, body) = gql_cookie(
        &app,
        &signed.cookie,
        Some(&signed.csrf),
        "{ usage { plan } }",
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "FORBIDDEN"),
        "{body}"
    );

    // The platform's health across tenants: the last reconciliation is the tenant's own run.
    let (_, run) = app
        .gql(
            "mutation { runReconciliation { userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        run["data"]["runReconciliation"]["userErrors"],
        json!([]),
        "{run}"
    );
    let health = "{ platformHealth { outboxLagSeconds unrelayedEvents webhookBacklog webhookDeadLetters jobsQueued jobsRunning lastReconciliation { tenantId mismatches levelsChecked } } }";
    let (status, body) = gql_cookie(&app, &signed.cookie, Some(&signed.csrf), health).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let health_of = &body["data"]["platformHealth"];
    assert_eq!(
        health_of["lastReconciliation"]["tenantId"],
        app.tenant_id.as_str(),
        "{body}"
    );
    assert_eq!(health_of["lastReconciliation"]["mismatches"], 0, "{body}");
    assert!(
        health_of["outboxLagSeconds"]
            .as_f64()
            .is_some_and(|lag| lag >= 0.0),
        "{body}"
    );
    assert_eq!(health_of["webhookDeadLetters"], 0, "{body}");
    // Tenants never see it.
    let (status, body) = app.gql(health, json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "FORBIDDEN"),
        "{body}"
    );

    // The operator's session token is nobody's bearer credential.
    let token = signed.cookie.trim_start_matches("twh_console=");
    let (status, body) = app.gql_as(token, "{ usage { plan } }", json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        "{body}"
    );
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    for path in [
        "/console",
        "/console/",
        "/console/stock",
        "/console/webhooks/x",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        let html = response.text().await.unwrap();
        assert!(
            html.contains("/console/assets/console.js"),
            "{path}: {html}"
        );
    }
    let script = app
        .client
        .get(app.url("/console/assets/console.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let missing = app
        .client
        .get(app.url("/console/assets/other.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
