//! API keys (issue with a role, list, revoke on every replica) and the audit log.

use std::time::Duration;

use serde_json::{Value, json};
use twh_server::config::Config;

use crate::support::TestApp;

const CREATE: &str = "mutation($role: Role!, $name: String!, $key: String) { createApiKey(input: {role: $role, name: $name}, idempotencyKey: $key) { apiKey { id name role prefix secret revokedAt } userErrors { code field message } } }";
const REVOKE: &str = "mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id revokedAt secret } userErrors { code message } } }";
const READ: &str = "{ items(first: 1) { edges { cursor } } }";

async fn create_key(app: &TestApp, as_key: &str, role: &str) -> Value {
    let (_, body) = app
        .gql_as(
            as_key,
            CREATE,
            json!({ "role": role.to_uppercase(), "name": format!("{role} key") }),
        )
        .await;
    body["data"]["createApiKey"].clone()
}

async fn status_with(app: &TestApp, base: &str, key: &str) -> u16 {
    app.client
        .post(format!("{base}/graphql"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(json!({ "query": READ }).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn keys_carry_roles_and_never_show_their_secret_twice() {
    let app = TestApp::spawn().await;
    let payload = create_key(&app, &app.key, "viewer").await;
    let key = &payload["apiKey"];
    let secret = key["secret"].as_str().expect("the secret, once").to_owned();
    assert!(secret.starts_with(key["prefix"].as_str().unwrap()), "{key}");
    assert_eq!(key["role"], "VIEWER");
    // A viewer reads but does not write or manage keys.
    let (status, body) = app.gql_as(&secret, READ, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = app
        .gql_as(
            &secret,
            "mutation { createLocation(input: {code: \"V\", name: \"V\"}) { userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let (_, body) = app
        .gql_as(&secret, CREATE, json!({ "role": "VIEWER", "name": "x" }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("developer"),
        "the refusal names the role needed: {body}"
    );
    // A developer issues up to developer keys, not admin ones.
    let developer = create_key(&app, &app.key, "developer").await["apiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = create_key(&app, &developer, "admin").await;
    assert_eq!(refused["userErrors"][0]["code"], "FORBIDDEN", "{refused}");
    assert!(create_key(&app, &developer, "operator").await["apiKey"]["id"].is_string());
    // Listing shows prefixes, never secrets; a replay does not repeat the secret.
    let (_, body) = app
        .gql(
            "{ apiKeys(first: 50) { edges { node { id prefix role secret } } } }",
            json!({}),
        )
        .await;
    let listed = body["data"]["apiKeys"]["edges"].as_array().unwrap();
    assert_eq!(
        listed.len(),
        4,
        "owner, viewer, developer, operator: {body}"
    );
    assert!(
        listed.iter().all(|e| e["node"]["secret"].is_null()),
        "{body}"
    );
    let args = json!({ "role": "VIEWER", "name": "replayed", "key": "issue-once" });
    let (_, first) = app.gql(CREATE, args.clone()).await;
    let (_, again) = app.gql(CREATE, args).await;
    assert!(first["data"]["createApiKey"]["apiKey"]["secret"].is_string());
    assert_eq!(
        first["data"]["createApiKey"]["apiKey"]["id"],
        again["data"]["createApiKey"]["apiKey"]["id"]
    );
    assert!(
        again["data"]["createApiKey"]["apiKey"]["secret"].is_null(),
        "{again}"
    );
    // Another tenant's key cannot be revoked or read from here.
    let other = app.other_tenant().await;
    let (_, body) = app
        .gql_as(
            &other,
            "mutation($id: ID!) { revokeApiKey(id: $id) { userErrors { code } } }",
            json!({ "id": key["id"] }),
        )
        .await;
    assert_eq!(
        body["data"]["revokeApiKey"]["userErrors"][0]["code"], "NOT_FOUND",
        "{body}"
    );
    let (_, body) = app
        .gql_as(
            &other,
            "query($id: ID!) { apiKey(id: $id) { id } }",
            json!({ "id": key["id"] }),
        )
        .await;
    assert!(body["data"]["apiKey"].is_null(), "{body}");
    // Secrets stay out of the event log and the audit log.
    let (_, log) = app
        .gql(
            "{ events(filter: {types: [\"api_key.*\"]}, first: 50) { edges { node { data } } } }",
            json!({}),
        )
        .await;
    let (_, audit) = app
        .gql(
            "{ auditEvents(first: 100) { edges { node { data } } } }",
            json!({}),
        )
        .await;
    assert!(!log.to_string().contains(&secret) && !audit.to_string().contains(&secret));
    app.shutdown().await;
}

#[tokio::test]
async fn a_revoked_key_stops_working_here_at_once_and_on_another_replica_within_a_second() {
    let app = TestApp::spawn_with(|c| c.events.relay_poll_ms = 50).await;
    let key = create_key(&app, &app.key, "operator").await["apiKey"].clone();
    let secret = key["secret"].as_str().unwrap().to_owned();
    // A second replica on the same database, its key cache warmed with the key.
    let mut config = Config::for_database(&app.db_url);
    config.redis_url = std::env::var("TWH_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let replica_state = twh_server::server::prepare(config).await.unwrap();
    let mut replica_events = replica_state.bus.all();
    let replica = twh_server::server::spawn(replica_state).await.unwrap();
    let replica_base = format!("http://{}", replica.addr);
    assert_eq!(status_with(&app, &replica_base, &secret).await, 200);
    assert_eq!(status_with(&app, &app.base, &secret).await, 200);

    let (_, body) = app.gql(REVOKE, json!({ "id": key["id"] })).await;
    assert!(
        body["data"]["revokeApiKey"]["apiKey"]["revokedAt"].is_string(),
        "{body}"
    );
    assert_eq!(
        status_with(&app, &app.base, &secret).await,
        401,
        "refused here at once"
    );
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let e = replica_events.recv().await.unwrap();
            if e.event_type == "api_key.revoked" {
                return e;
            }
        }
    })
    .await
    .expect("the replica's bus carries the revocation");
    assert_eq!(seen.aggregate_id, key["id"].as_str().unwrap());
    let started = std::time::Instant::now();
    loop {
        if status_with(&app, &replica_base, &secret).await == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the replica still accepts the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("the replica refused the key after {:?}", started.elapsed());
    let (_, again) = app.gql(REVOKE, json!({ "id": key["id"] })).await;
    assert_eq!(
        again["data"]["revokeApiKey"]["userErrors"][0]["code"],
        "INVALID_TRANSITION"
    );
    replica.shutdown().await.unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn the_audit_log_names_who_did_what() {
    let app = TestApp::spawn().await;
    app.create_item("AU-1").await;
    let viewer = create_key(&app, &app.key, "viewer").await["apiKey"].clone();
    let (_, body) = app
        .gql(
            "{ auditEvents(first: 10) { edges { node { actor action targetType targetId requestId createdAt } } } }",
            json!({}),
        )
        .await;
    let entries: Vec<&Value> = body["data"]["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(
        entries[0]["action"], "api_key.created",
        "newest first: {body}"
    );
    assert_eq!(entries[0]["targetId"], viewer["id"]);
    assert!(
        entries[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("api_key:key_")
    );
    assert!(entries[0]["requestId"].is_string());
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "item.create" || e["targetType"] == "item"),
        "{body}"
    );
    let (_, filtered) = app
        .gql(
            "{ auditEvents(filter: {targetType: \"api_key\"}) { edges { node { action } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        filtered["data"]["auditEvents"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{filtered}"
    );
    let (_, refused) = app
        .gql_as(
            viewer["secret"].as_str().unwrap(),
            "{ auditEvents { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    app.shutdown().await;
}

const SESSION: &str = "mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id token role expiresAt } userErrors { code field message } } }";

#[tokio::test]
async fn console_sessions_act_as_their_key_and_end_with_it() {
    let app = TestApp::spawn().await;
    let operator = create_key(&app, &app.key, "operator").await;
    let key_id = operator["apiKey"]["id"].as_str().unwrap().to_owned();
    let secret = operator["apiKey"]["secret"].as_str().unwrap().to_owned();

    // A session with the key's own role: it reads and writes as the key, and the audit trail
    // names both.
    let (_, body) = app
        .gql_as(&secret, SESSION, json!({ "input": { "ttlSeconds": 600 } }))
        .await;
    let session = body["data"]["createSession"]["session"].clone();
    assert_eq!(session["role"], "OPERATOR", "{body}");
    let token = session["token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    assert_eq!(status_with(&app, &app.base, &token).await, 200);
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { createItem(input: {sku: \"SESSION-1\", name: \"Made in a session\"}) { item { id } userErrors { code } } }",
            json!({}),
        )
        .await;
    let item_id = body["data"]["createItem"]["item"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let (_, audit) = app
        .gql(
            "query($t: String) { auditEvents(filter: {targetId: $t}) { edges { node { actor action } } } }",
            json!({ "t": item_id }),
        )
        .await;
    let actor = audit["data"]["auditEvents"]["edges"][0]["node"]["actor"]
        .as_str()
        .unwrap_or_else(|| panic!("{audit}"))
        .to_owned();
    let session_id = session["id"].as_str().unwrap();
    assert_eq!(actor, format!("api_key:{key_id}/session:{session_id}"));

    // A lower role: the viewer session reads but may not write.
    let (_, body) = app
        .gql_as(&secret, SESSION, json!({ "input": { "role": "VIEWER" } }))
        .await;
    let viewer = body["data"]["createSession"]["session"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .gql_as(
            &viewer,
            "mutation { createItem(input: {sku: \"SESSION-2\", name: \"No\"}) { item { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");

    // No escalation, no session from a session, no endless sessions.
    for (as_key, input, code) in [
        (&secret, json!({ "role": "ADMIN" }), "FORBIDDEN"),
        (&token, json!({}), "FORBIDDEN"),
        (&secret, json!({ "ttlSeconds": 86400 }), "INVALID_INPUT"),
        (&secret, json!({ "ttlSeconds": 5 }), "INVALID_INPUT"),
    ] {
        let (_, body) = app.gql_as(as_key, SESSION, json!({ "input": input })).await;
        assert_eq!(
            body["data"]["createSession"]["userErrors"][0]["code"], code,
            "{input}: {body}"
        );
        assert_eq!(body["data"]["createSession"]["session"], Value::Null);
    }

    // REST mints too.
    let (status, _, rest) = app
        .rest(
            reqwest::Method::POST,
            "/v1/sessions",
            Some(json!({ "role": "VIEWER", "ttlSeconds": 120 })),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{rest}");
    assert_eq!(rest["role"], "VIEWER");

    // Tampered, unsigned and unknown tokens are refused like a wrong key.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let tampered = parts.join(".");
    let unsigned = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIn0",
        token.split('.').nth(1).unwrap()
    );
    for bad in [tampered.as_str(), unsigned.as_str(), "a.b.c"] {
        assert_eq!(status_with(&app, &app.base, bad).await, 401, "{bad}");
    }

    // Revoking the key ends its sessions.
    let (_, body) = app.gql(REVOKE, json!({ "id": key_id })).await;
    assert_eq!(
        body["data"]["revokeApiKey"]["userErrors"],
        json!([]),
        "{body}"
    );
    assert_eq!(status_with(&app, &app.base, &token).await, 401);
    assert_eq!(status_with(&app, &app.base, &viewer).await, 401);
}
