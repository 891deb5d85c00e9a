//! The platform operator: tenants, plans, suspension, and the line between its credential and
//! a tenant's.

use serde_json::json;

use crate::support::TestApp;

const TOKEN: &str = "operator-token-for-tests-0123456789";

#[tokio::test]
async fn the_operator_creates_moves_suspends_and_resumes_tenants() {
    let app = TestApp::spawn_with(|c| c.admin_token = Some(TOKEN.into())).await;
    let (_, body) = app
        .gql_as(
            TOKEN,
            "mutation { createTenant(input: {name: \"Acme\", plan: \"startup\"}) { tenant { id plan status } apiKey userErrors { code } } }",
            json!({}),
        )
        .await;
    let created = &body["data"]["createTenant"];
    let tenant = created["tenant"]["id"]
        .as_str()
        .expect("a tenant")
        .to_owned();
    let key = created["apiKey"].as_str().unwrap().to_owned();
    assert_eq!(created["tenant"]["plan"], "startup", "{body}");
    let read = "{ items(first: 1) { edges { cursor } } }";
    let (status, _) = app.gql_as(&key, read, json!({})).await;
    assert_eq!(status, 200);

    let (_, body) = app
        .gql_as(
            TOKEN,
            "mutation($t: ID!) { updateTenantPlan(input: {tenantId: $t, plan: \"enterprise\", overrides: {callLimit: 50000000}}) { tenant { plan planOverrides } userErrors { code field } } }",
            json!({ "t": tenant }),
        )
        .await;
    assert_eq!(
        body["data"]["updateTenantPlan"]["tenant"]["plan"], "enterprise",
        "{body}"
    );
    assert_eq!(
        body["data"]["updateTenantPlan"]["tenant"]["planOverrides"]["callLimit"],
        50000000
    );
    let (_, body) = app
        .gql_as(
            TOKEN,
            "mutation($t: ID!) { updateTenantPlan(input: {tenantId: $t, plan: \"platinum\"}) { userErrors { code field } } }",
            json!({ "t": tenant }),
        )
        .await;
    assert_eq!(
        body["data"]["updateTenantPlan"]["userErrors"][0]["code"],
        "INVALID_INPUT"
    );

    // Suspension: the tenant's key stops at once; its data stays; resume brings it back.
    let suspend = "mutation($t: ID!) { suspendTenant(tenantId: $t) { tenant { status } userErrors { code } } }";
    let (_, body) = app.gql_as(TOKEN, suspend, json!({ "t": tenant })).await;
    assert_eq!(
        body["data"]["suspendTenant"]["tenant"]["status"], "suspended",
        "{body}"
    );
    let (status, _) = app.gql_as(&key, read, json!({})).await;
    assert_eq!(status, 401, "a suspended tenant's key is refused");
    let (_, again) = app.gql_as(TOKEN, suspend, json!({ "t": tenant })).await;
    assert_eq!(
        again["data"]["suspendTenant"]["userErrors"][0]["code"],
        "INVALID_TRANSITION"
    );
    let (_, body) = app
        .gql_as(
            TOKEN,
            "mutation($t: ID!) { resumeTenant(tenantId: $t) { tenant { status } } }",
            json!({ "t": tenant }),
        )
        .await;
    assert_eq!(body["data"]["resumeTenant"]["tenant"]["status"], "active");
    let (status, _) = app.gql_as(&key, read, json!({})).await;
    assert_eq!(status, 200);

    let (_, body) = app
        .gql_as(
            TOKEN,
            "{ tenants(first: 10) { edges { node { id name status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["tenants"]["edges"].as_array().unwrap().len(),
        2,
        "{body}"
    );
    // Every operator action is on the tenant's audit log, by the operator.
    let (_, body) = app
        .gql_as(
            &key,
            "{ auditEvents(first: 10) { edges { node { actor action } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<&str> = body["data"]["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["actor"] == "platform_operator")
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "tenant.resumed",
            "tenant.suspended",
            "tenant.plan_changed",
            "tenant.created"
        ],
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_operator_and_tenants_stay_on_their_sides() {
    let app = TestApp::spawn_with(|c| c.admin_token = Some(TOKEN.into())).await;
    // A tenant key, even the owner's, cannot run operator operations.
    let (_, body) = app.gql("{ tenants { edges { cursor } } }", json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let (_, body) = app
        .gql(
            "mutation($t: ID!) { suspendTenant(tenantId: $t) { userErrors { code } } }",
            json!({ "t": app.tenant_id }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    // The operator's token reads no tenant's data.
    let (_, body) = app
        .gql_as(TOKEN, "{ items(first: 1) { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    // A wrong token is no one; without TWH_ADMIN_TOKEN there is no operator at all.
    let (status, _) = app
        .gql_as(
            "operator-token-for-tests-0123456780",
            "{ tenants { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 401);
    app.shutdown().await;
    let plain = TestApp::spawn().await;
    let (status, _) = plain
        .gql_as(TOKEN, "{ tenants { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(status, 401);
    plain.shutdown().await;
}

/// A tenant's name is text like any other: blanks, control characters (a NUL, which Postgres
/// cannot store, or a newline) and overlong names are INVALID_INPUT, and no tenant is made.
#[tokio::test]
async fn a_tenant_name_with_control_characters_is_refused_and_nothing_is_made() {
    let app = TestApp::spawn_with(|c| c.admin_token = Some(TOKEN.into())).await;
    let list = "{ tenants(first: 100) { edges { node { id } } } }";
    let count =
        |body: &serde_json::Value| body["data"]["tenants"]["edges"].as_array().map(Vec::len);
    let before = count(&app.gql_as(TOKEN, list, json!({})).await.1);
    assert!(before.is_some());
    for name in [
        "tab\tin",
        "Acme\nCorp",
        "bell\u{7}",
        "   ",
        &"x".repeat(201),
    ] {
        let (status, body) = app
            .gql_as(
                TOKEN,
                "mutation($n: String!) { createTenant(input: {name: $n}) { tenant { id } apiKey userErrors { code field } } }",
                json!({ "n": name }),
            )
            .await;
        assert_eq!(status, 200, "{name:?}: {body}");
        let payload = &body["data"]["createTenant"];
        assert_eq!(
            payload["userErrors"],
            json!([{ "code": "INVALID_INPUT", "field": ["input", "name"] }]),
            "{name:?}: {body}"
        );
        assert!(
            payload["tenant"].is_null() && payload["apiKey"].is_null(),
            "{body}"
        );
    }
    let after = count(&app.gql_as(TOKEN, list, json!({})).await.1);
    assert_eq!(before, after, "a refused name made a tenant");
    app.shutdown().await;
}
