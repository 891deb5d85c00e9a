//! The role matrix: every role (and the platform operator) against every query and mutation of
//! the schema, allowed or FORBIDDEN exactly as the guard table says. Generated from the schema,
//! so a new operation without a guard fails here.

use serde_json::{Map, Value, json};
use twh_server::auth::Role;
use twh_server::auth::guards::{self, GUARDS};

use crate::support::TestApp;

const TOKEN: &str = "operator-token-for-the-role-matrix-01";

#[tokio::test]
async fn every_role_against_every_operation() {
    let app = TestApp::spawn_with(|c| c.admin_token = Some(TOKEN.into())).await;
    let mut callers: Vec<(Option<Role>, String)> = vec![(Some(Role::Owner), app.key.clone())];
    for (role, name) in [
        (Role::Admin, "ADMIN"),
        (Role::Developer, "DEVELOPER"),
        (Role::Operator, "OPERATOR"),
        (Role::Viewer, "VIEWER"),
    ] {
        let (_, body) = app
            .gql(
                "mutation($role: Role!) { createApiKey(input: {role: $role, name: \"matrix\"}) { apiKey { secret } } }",
                json!({ "role": name }),
            )
            .await;
        let secret = body["data"]["createApiKey"]["apiKey"]["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned();
        callers.push((Some(role), secret));
    }
    callers.push((None, TOKEN.to_owned()));

    let (types, _, _) = twh_server::http::rest::contract(&twh_server::graphql::bare())
        .await
        .unwrap();
    let mut checked = 0;
    for (root, keyword) in [(&types.query, "query"), (&types.mutation, "mutation")] {
        for field in types.root_fields(root) {
            assert!(
                guards::needs(root, &field.name).is_some(),
                "{root}.{} has no entry in the guard table",
                field.name
            );
            let mut definitions = Vec::new();
            let mut arguments = Vec::new();
            let mut variables = Map::new();
            for arg in &field.args {
                definitions.push(format!("${}: {}", arg.name, arg.ty.render()));
                arguments.push(format!("{0}: ${0}", arg.name));
                variables.insert(arg.name.clone(), types.example(&arg.ty, 0));
            }
            let wrap = |items: &[String]| {
                if items.is_empty() {
                    String::new()
                } else {
                    format!("({})", items.join(", "))
                }
            };
            let document = format!(
                "{keyword}{} {{ {}{} {{ __typename }} }}",
                wrap(&definitions),
                field.name,
                wrap(&arguments)
            );
            for (role, key) in &callers {
                let (_, body) = app
                    .gql_as(key, &document, Value::Object(variables.clone()))
                    .await;
                let forbidden = body["errors"].as_array().is_some_and(|errors| {
                    errors
                        .iter()
                        .any(|e| e["extensions"]["code"] == "FORBIDDEN")
                });
                let expected = guards::check(root, &field.name, *role, role.is_none()).is_err();
                assert_eq!(
                    forbidden,
                    expected,
                    "{root}.{} as {}: {body}",
                    field.name,
                    role.map_or("the platform operator", |r| r.as_str())
                );
                checked += 1;
            }
        }
    }
    // No stale entries: every guarded query and mutation exists.
    for (root, field, _) in GUARDS {
        if *root != "Subscription" {
            let known = if *root == "Query" {
                &types.query
            } else {
                &types.mutation
            };
            assert!(
                types.root_field(known, field).is_some(),
                "the guard table names {root}.{field}, which the schema lacks"
            );
        }
    }
    println!("{checked} (operation, caller) pairs checked");
    app.shutdown().await;
}
