//! Tenant isolation, generated: tenant A builds one of everything (catalog, stock, every order
//! document, a webhook endpoint and a delivery, an API key, idempotency keys); tenant B then
//! runs every query and mutation of the schema and every REST route of the route table with
//! each of A's ids (and A's SKUs, location codes and idempotency keys) in every place an id
//! goes. Nothing of A's may come back (A's names are marked), and A's data, audit log and event
//! log must be exactly as they were. A new operation or route is covered without a change here.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Map, Value, json};
use twh_rest::routes::ROUTES;
use twh_rest::types::{TypeRef, Types};
use twh_server::auth::guards::{self, Needs};

use crate::support::TestApp;

/// Every name tenant A gives its things carries this; B must never see it.
const MARK: &str = "ISO-SECRET";
const A_KEY: &str = "iso-a-idempotency-key";

async fn ok(app: &TestApp, field: &str, query: &str, variables: Value) -> Value {
    let (_, body) = app.gql(query, variables).await;
    let payload = &body["data"][field];
    assert!(
        payload["userErrors"]
            .as_array()
            .is_none_or(|e| e.is_empty())
            && body["errors"].is_null(),
        "{field}: {body}"
    );
    payload.clone()
}

/// Tenant A's world; returns its ids.
async fn build_a(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    let mut id = |v: &Value| {
        let s = v
            .as_str()
            .unwrap_or_else(|| panic!("an id: {v}"))
            .to_owned();
        ids.push(s.clone());
        s
    };
    for code in ["ISO-WH-1", "ISO-WH-2"] {
        let loc = ok(
            app,
            "createLocation",
            "mutation($c: String!, $n: String!) { createLocation(input: {code: $c, name: $n}) { location { id } userErrors { code } } }",
            json!({ "c": code, "n": format!("{MARK} location {code}") }),
        )
        .await;
        id(&loc["location"]["id"]);
    }
    let item = ok(
        app,
        "createItem",
        "mutation($n: String!) { createItem(input: {sku: \"ISO-SKU\", name: $n}) { item { id } userErrors { code } } }",
        json!({ "n": format!("{MARK} item") }),
    )
    .await;
    id(&item["item"]["id"]);
    let adjusted = ok(
        app,
        "adjustStock",
        "mutation($k: String) { adjustStock(input: {reason: RECEIVED, changes: [{sku: \"ISO-SKU\", locationCode: \"ISO-WH-1\", delta: 50}]}, idempotencyKey: $k) { groupId movements { id } userErrors { code } } }",
        json!({ "k": A_KEY }),
    )
    .await;
    id(&adjusted["groupId"]);
    id(&adjusted["movements"][0]["id"]);

    let po = ok(
        app,
        "createPurchaseOrder",
        "mutation($s: String!) { createPurchaseOrder(input: {supplier: $s, lines: [{sku: \"ISO-SKU\", locationCode: \"ISO-WH-1\", quantity: 5}]}) { purchaseOrder { id } userErrors { code } } }",
        json!({ "s": format!("{MARK} supplier") }),
    )
    .await;
    let po = id(&po["purchaseOrder"]["id"]);
    ok(
        app,
        "submitPurchaseOrder",
        "mutation($id: ID!) { submitPurchaseOrder(id: $id) { purchaseOrder { id } userErrors { code } } }",
        json!({ "id": po }),
    )
    .await;
    let so = ok(
        app,
        "createSalesOrder",
        "mutation($c: String!) { createSalesOrder(input: {customer: $c, lines: [{sku: \"ISO-SKU\", locationCode: \"ISO-WH-1\", quantity: 2}]}) { salesOrder { id } userErrors { code } } }",
        json!({ "c": format!("{MARK} customer") }),
    )
    .await;
    let so = id(&so["salesOrder"]["id"]);
    for step in ["allocateSalesOrder", "shipSalesOrder"] {
        ok(
            app,
            step,
            &format!("mutation($id: ID!) {{ {step}(id: $id) {{ salesOrder {{ id }} userErrors {{ code }} }} }}"),
            json!({ "id": so }),
        )
        .await;
    }
    let reservation = ok(
        app,
        "createReservation",
        "mutation { createReservation(input: {sku: \"ISO-SKU\", locationCode: \"ISO-WH-1\", quantity: 1, expiresInSeconds: 3600}) { reservation { id } userErrors { code } } }",
        json!({}),
    )
    .await;
    id(&reservation["reservation"]["id"]);
    let transfer = ok(
        app,
        "createTransfer",
        "mutation($n: String) { createTransfer(input: {fromLocationCode: \"ISO-WH-1\", toLocationCode: \"ISO-WH-2\", notes: $n, lines: [{sku: \"ISO-SKU\", quantity: 1}]}) { transfer { id } userErrors { code } } }",
        json!({ "n": format!("{MARK} transfer") }),
    )
    .await;
    let transfer = id(&transfer["transfer"]["id"]);
    ok(
        app,
        "shipTransfer",
        "mutation($id: ID!) { shipTransfer(id: $id) { transfer { id } userErrors { code } } }",
        json!({ "id": transfer }),
    )
    .await;
    let ret = ok(
        app,
        "createReturnOrder",
        "mutation($so: ID, $n: String) { createReturnOrder(input: {salesOrderId: $so, notes: $n, lines: [{sku: \"ISO-SKU\", locationCode: \"ISO-WH-1\", quantity: 1, disposition: RESTOCK}]}) { returnOrder { id } userErrors { code } } }",
        json!({ "so": so, "n": format!("{MARK} return") }),
    )
    .await;
    id(&ret["returnOrder"]["id"]);
    let endpoint = ok(
        app,
        "createWebhookEndpoint",
        "mutation($d: String) { createWebhookEndpoint(input: {url: \"https://iso-secret.example.com/hook\", description: $d, eventTypes: [\"job.completed\"]}) { endpoint { id } userErrors { code } } }",
        json!({ "d": format!("{MARK} endpoint") }),
    )
    .await;
    let endpoint = id(&endpoint["endpoint"]["id"]);
    let delivery = ok(
        app,
        "sendTestWebhook",
        "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { delivery { id } userErrors { code } } }",
        json!({ "id": endpoint }),
    )
    .await;
    id(&delivery["delivery"]["id"]);
    let key = ok(
        app,
        "createApiKey",
        "mutation($n: String!) { createApiKey(input: {role: VIEWER, name: $n}) { apiKey { id } userErrors { code } } }",
        json!({ "n": format!("{MARK} key") }),
    )
    .await;
    id(&key["apiKey"]["id"]);
    let (_, audit) = app
        .gql(
            "{ auditEvents(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    id(&audit["data"]["auditEvents"]["edges"][0]["node"]["id"]);
    ids
}

/// Everything A can read about itself, with versions: equal before and after B's run means B
/// changed nothing of A's.
async fn snapshot(app: &TestApp) -> Value {
    let lists = [
        "items(first: 250) { edges { node { id sku name version } } }",
        "locations(first: 250) { edges { node { id code version } } }",
        "stockLevels(first: 250) { edges { node { sku locationCode onHand available committed reserved incoming version } } }",
        "movements(first: 250) { edges { node { id } } }",
        "purchaseOrders(first: 250) { edges { node { id status version } } }",
        "salesOrders(first: 250) { edges { node { id status version } } }",
        "reservations(first: 250) { edges { node { id status version } } }",
        "transfers(first: 250) { edges { node { id status version } } }",
        "returnOrders(first: 250) { edges { node { id status version } } }",
        "webhookEndpoints(first: 250) { edges { node { id status version } } }",
        // Ids only: the dispatcher works A's test delivery meanwhile (its status moves).
        "webhookDeliveries(first: 250) { edges { node { id } } }",
        "apiKeys(first: 250) { edges { node { id revokedAt } } }",
        "auditEvents(first: 250) { edges { node { id } } }",
        "events(first: 250) { edges { cursor } }",
    ];
    let (_, body) = app
        .gql(&format!("{{ {} }}", lists.join(" ")), json!({}))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"].clone()
}

/// A value for an argument of type `ty` that puts `candidate` wherever an id goes.
fn value_for(types: &Types, name: &str, ty: &TypeRef, candidate: &str) -> Value {
    if ty.named() == "ID" {
        return if ty.is_list() {
            json!([candidate])
        } else {
            json!(candidate)
        };
    }
    if name == "idempotencyKey" {
        return json!(A_KEY);
    }
    let mut value = types.example(ty, 0);
    aim(&mut value, candidate);
    value
}

/// Points an example input at A's things: ids, SKUs, location codes, versions.
fn aim(value: &mut Value, candidate: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match key.as_str() {
                    "sku" => *v = json!("ISO-SKU"),
                    "locationCode" | "fromLocationCode" => *v = json!("ISO-WH-1"),
                    "toLocationCode" => *v = json!("ISO-WH-2"),
                    k if k.ends_with("Ids") => *v = json!([candidate]),
                    k if k.ends_with("Id") || k == "id" => *v = json!(candidate),
                    _ => aim(v, candidate),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| aim(v, candidate)),
        _ => {}
    }
}

/// No marked name and no id of A's other than the one sent.
fn assert_clean(what: &str, text: &str, a_ids: &[String], sent: &str) {
    assert!(!text.contains(MARK), "{what} showed A's data: {text}");
    for id in a_ids {
        if id != sent {
            assert!(
                !text.contains(id.as_str()),
                "{what} showed A's id {id}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn another_tenants_ids_reach_nothing_on_any_operation_or_route() {
    let app = TestApp::spawn().await;
    let a_ids = build_a(&app).await;
    // A's last events reach its log through the relay, a moment after their writes: take the
    // picture once it has settled.
    let mut before = snapshot(&app).await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let again = snapshot(&app).await;
        if again == before {
            break;
        }
        before = again;
    }
    // The marks are there to be seen by A: a leak to B would show them the same way.
    assert!(before.to_string().contains(MARK));
    let b_key = app.other_tenant().await;
    let (types, _, _) = twh_server::http::rest::contract(&twh_server::graphql::bare())
        .await
        .unwrap();

    let mut covered = BTreeSet::new();
    for (root, keyword) in [(&types.query, "query"), (&types.mutation, "mutation")] {
        for field in types.root_fields(root) {
            if guards::needs(root, &field.name) == Some(Needs::PlatformOperator) {
                continue;
            }
            let definitions: Vec<String> = field
                .args
                .iter()
                .map(|a| format!("${}: {}", a.name, a.ty.render()))
                .collect();
            let arguments: Vec<String> = field
                .args
                .iter()
                .map(|a| format!("{0}: ${0}", a.name))
                .collect();
            let wrap = |items: &[String]| {
                if items.is_empty() {
                    String::new()
                } else {
                    format!("({})", items.join(", "))
                }
            };
            // Select everything scalar the result has, two levels down, so a leak would show.
            let selection = select(&types, &field.ty, 0);
            let document = format!(
                "{keyword}{} {{ {}{} {} }}",
                wrap(&definitions),
                field.name,
                wrap(&arguments),
                selection
            );
            for candidate in &a_ids {
                let variables: Map<String, Value> = field
                    .args
                    .iter()
                    .map(|a| (a.name.clone(), value_for(&types, &a.name, &a.ty, candidate)))
                    .collect();
                let (_, body) = app
                    .gql_as(&b_key, &document, Value::Object(variables))
                    .await;
                // The document itself must be valid, or the check would prove nothing.
                for error in body["errors"].as_array().into_iter().flatten() {
                    let code = error["extensions"]["code"].as_str().unwrap_or_default();
                    assert!(
                        !code.starts_with("GRAPHQL_") && code != "FORBIDDEN",
                        "{root}.{}: {document}: {body}",
                        field.name
                    );
                }
                assert_clean(
                    &format!("{root}.{} with {candidate}", field.name),
                    &body.to_string(),
                    &a_ids,
                    candidate,
                );
            }
            covered.insert(format!("{root}.{}", field.name));
        }
    }

    for route in ROUTES {
        for candidate in &a_ids {
            let path = route.path.replace("{id}", candidate);
            let method =
                Method::from_bytes(route.method.as_str().to_uppercase().as_bytes()).unwrap();
            let mut body = route
                .example
                .map(|e| serde_json::from_str::<Value>(e).unwrap())
                .unwrap_or(json!({}));
            aim(&mut body, candidate);
            let mut request = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(&b_key)
                .header("idempotency-key", A_KEY)
                .header("if-match", "*");
            if method != Method::GET {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            let what = format!("{} {path}", route.method.as_str());
            assert!(status.as_u16() < 500, "{what}: {status} {text}");
            if method == Method::GET
                && route.path.contains("{id}")
                && route.shape == twh_rest::routes::Shape::Object
            {
                assert_eq!(status.as_u16(), 404, "{what} found A's thing: {text}");
            }
            assert_clean(&what, &text, &a_ids, candidate);
        }
        covered.insert(route.operation_id.to_owned());
    }

    // B got nowhere: everything of A's, its audit log and its event log included, is as it was.
    assert_eq!(snapshot(&app).await, before);
    assert!(
        covered.len() > 100,
        "only {} operations and routes",
        covered.len()
    );
    println!(
        "{} operations and routes, each with {} of A's ids",
        covered.len(),
        a_ids.len()
    );
}

/// A selection of every argument-free field of the type, nested `depth` levels at most.
fn select(types: &Types, ty: &TypeRef, depth: usize) -> String {
    let Some(def) = types.get(ty.named()) else {
        return String::new();
    };
    let Some(fields) = def.fields.as_ref() else {
        return String::new();
    };
    if depth > 3 {
        return "{ __typename }".into();
    }
    let mut parts = vec!["__typename".to_owned()];
    for field in fields {
        if field.args.iter().any(|a| a.ty.non_null()) {
            continue;
        }
        match types.get(field.ty.named()) {
            Some(inner) if inner.kind == "UNION" || inner.kind == "INTERFACE" => {
                parts.push(format!("{} {{ __typename }}", field.name));
            }
            Some(inner) if inner.fields.is_some() => {
                if depth < 2 {
                    parts.push(format!(
                        "{} {}",
                        field.name,
                        select(types, &field.ty, depth + 1)
                    ));
                }
            }
            _ => parts.push(field.name.clone()),
        }
    }
    format!("{{ {} }}", parts.join(" "))
}
