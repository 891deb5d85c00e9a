//! The audit log: every mutation request of every tenant operation leaves exactly one record
//! naming its caller, whether it changed something (the change audits itself, in its own
//! transaction), was refused, or was a replay answered from the stored result. Generated from
//! the schema, so a new mutation that forgets its record fails here.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Map, Value, json};
use twh_entity::audit_event;
use twh_server::auth::guards::{self, Needs};

use crate::support::TestApp;

async fn records(app: &TestApp, request_id: &str) -> Vec<audit_event::Model> {
    audit_event::Entity::find()
        .filter(audit_event::Column::RequestId.eq(request_id))
        .all(&app.state.db)
        .await
        .expect("read the audit log")
}

#[tokio::test]
async fn every_mutation_request_leaves_exactly_one_record_with_its_actor() {
    let app = TestApp::spawn().await;
    let (_, keys) = app
        .gql(
            "{ apiKeys(first: 10) { edges { node { id role } } } }",
            json!({}),
        )
        .await;
    let owner = keys["data"]["apiKeys"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{keys}"))
        .to_owned();
    let actor = format!("api_key:{owner}");

    let (types, _, _) = twh_server::http::rest::contract(&twh_server::graphql::bare())
        .await
        .unwrap();
    let mut checked = 0;
    for field in types.root_fields(&types.mutation) {
        // The platform operator's mutations are audited on the tenant they change (see the
        // operator tests); a tenant key cannot run them.
        if guards::needs(&types.mutation, &field.name) == Some(Needs::PlatformOperator) {
            continue;
        }
        let mut definitions = Vec::new();
        let mut arguments = Vec::new();
        let mut variables = Map::new();
        let mut keyed = false;
        for arg in &field.args {
            definitions.push(format!("${}: {}", arg.name, arg.ty.render()));
            arguments.push(format!("{0}: ${0}", arg.name));
            let value = if arg.name == "idempotencyKey" {
                keyed = true;
                json!(format!("audit-{}", field.name))
            } else {
                types.example(&arg.ty, 0)
            };
            variables.insert(arg.name.clone(), value);
        }
        let document = format!(
            "mutation({}) {{ {}({}) {{ __typename }} }}",
            definitions.join(", "),
            field.name,
            arguments.join(", ")
        );
        // A keyed mutation is sent twice: the second is a replay (or, if the first was
        // refused, refused again); each request has its own record.
        for attempt in 0..if keyed { 2 } else { 1 } {
            let request_id = format!("audit-{}-{attempt}", field.name);
            let response = app
                .client
                .post(app.url("/graphql"))
                .bearer_auth(&app.key)
                .header("x-request-id", &request_id)
                .json(&json!({ "query": document, "variables": Value::Object(variables.clone()) }))
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            assert!(body["errors"].is_null(), "{}: {body}", field.name);
            let found = records(&app, &request_id).await;
            assert_eq!(
                found.len(),
                1,
                "{} (attempt {attempt}) left {} audit records: {found:?}; answer {body}",
                field.name,
                found.len()
            );
            assert_eq!(found[0].actor, actor, "{}", field.name);
            if keyed {
                assert_eq!(
                    found[0].data["idempotencyKey"],
                    json!(format!("audit-{}", field.name)),
                    "{} (attempt {attempt}): the record names the idempotency key: {:?}",
                    field.name,
                    found[0]
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 40,
        "only {checked} mutation requests were checked"
    );
    println!("{checked} mutation requests checked");
}

#[tokio::test]
async fn the_command_line_audits_the_tenants_it_creates() {
    let url = crate::support::fresh_database().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_twh"))
        .args([
            "tenant",
            "create",
            "--name",
            "From the CLI",
            "--plan",
            "startup",
        ])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run twh tenant create");
    assert!(output.status.success(), "{output:?}");
    let created: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let tenant = created["tenantId"].as_str().unwrap();
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let found = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].actor.as_str(), found[0].action.as_str()),
        ("cli", "tenant.created")
    );
    assert_eq!(found[0].data["plan"], "startup");
}
