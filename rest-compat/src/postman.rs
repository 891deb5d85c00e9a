//! A Postman collection (v2.1) generated from the OpenAPI document that runs as a whole
//! (`newman run`): creates first, the values later requests need taken from earlier responses
//! as the document's links say, and a test of the status and the body on every request.

mod checks;
mod links;

use serde_json::{Map, Value, json};

use links::Flow;

/// The order of operations in a path item (the OpenAPI specification's).
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// An operation of the document.
pub(crate) struct Operation<'a> {
    pub path: &'a str,
    pub method: &'a str,
    pub id: &'a str,
    pub tag: &'a str,
    pub spec: &'a Value,
}

/// A string as a JavaScript literal.
pub(crate) fn js_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn operations(openapi: &Value) -> Vec<Operation<'_>> {
    let mut operations = Vec::new();
    for (path, item) in openapi["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let spec = &item[method];
            if spec.is_object() {
                operations.push(Operation {
                    path,
                    method,
                    id: spec["operationId"].as_str().unwrap_or(method),
                    tag: spec["tags"][0].as_str().unwrap_or("Other"),
                    spec,
                });
            }
        }
    }
    operations
}

/// The run order: folders in the document's tag order; in a folder, what needs no earlier
/// response first (writes before reads, so the reads show their effect), then what works on
/// a created document (reads before changes, so the ETag taken at creation is still current).
fn run_order<'a>(
    openapi: &Value,
    operations: Vec<Operation<'a>>,
    flow: &Flow,
) -> Vec<(String, Vec<Operation<'a>>)> {
    let mut folders: Vec<(String, Vec<Operation<'a>>)> = openapi["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .map(|name| (name.to_owned(), Vec::new()))
        .collect();
    for operation in operations {
        match folders.iter_mut().find(|(name, _)| name == operation.tag) {
            Some((_, items)) => items.push(operation),
            None => folders.push((operation.tag.to_owned(), vec![operation])),
        }
    }
    let method_rank = |m: &str| {
        ["post", "get", "put", "patch", "delete"]
            .iter()
            .position(|x| *x == m)
            .unwrap_or(5)
    };
    for (_, items) in &mut folders {
        // Then the route table's order (a create before its list, a read before an edit, a
        // document's transitions in their order), then writes before reads.
        items.sort_by_key(|o| {
            (
                flow.needs_earlier_response(o.id),
                o.spec["x-run-order"].as_u64().unwrap_or(u64::MAX),
                method_rank(o.method),
            )
        });
    }
    folders.retain(|(_, items)| !items.is_empty());
    folders
}

/// Appends the run's id to the body fields the document marks unique per run (a create's SKU,
/// code or name), so the collection can run again against the same tenant without a 409.
fn unique_per_run(fields: &Value, example: &mut Value) {
    for field in fields
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Some(Value::String(text)) = example.get_mut(field) {
            text.push_str("-{{runId}}");
        }
    }
}

/// The request, and why it cannot pass when the document does not say how to fill it.
fn request(operation: &Operation<'_>, flow: &Flow) -> (Value, Vec<String>) {
    let mut blockers = Vec::new();
    let mut headers = vec![json!({ "key": "Authorization", "value": "Bearer {{apiKey}}" })];
    let mut query = Vec::new();
    let mut path_values = Map::new();
    for parameter in operation.spec["parameters"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = parameter["name"].as_str().unwrap_or_default();
        let location = parameter["in"].as_str().unwrap_or_default();
        let required = parameter["required"] == json!(true);
        let bound = flow
            .binding(operation.id, location, name)
            .map(|b| format!("{{{{{}}}}}", b.variable));
        let known = parameter
            .get("example")
            .or_else(|| parameter["schema"].get("default"))
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            });
        let value = match (bound, location, name) {
            (Some(variable), _, _) => Some(variable),
            (None, "header", "Idempotency-Key") => Some("{{$guid}}".to_owned()),
            (None, _, _) if required => {
                if known.is_none() {
                    blockers.push(format!(
                        "nothing supplies the required {location} parameter {name}: no link gives it and it has no example"
                    ));
                }
                Some(known.unwrap_or_default())
            }
            _ => None,
        };
        let entry = json!({
            "key": name,
            "value": value.clone().unwrap_or_default(),
            "disabled": value.is_none(),
        });
        match location {
            "header" => headers.push(entry),
            "query" => query.push(entry),
            "path" => {
                path_values.insert(name.to_owned(), json!(value.unwrap_or_default()));
            }
            _ => {}
        }
    }
    let segments: Vec<String> = operation
        .path
        .trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(var) => format!(":{var}"),
                None => s.to_owned(),
            },
        )
        .collect();
    let variables: Vec<Value> = segments
        .iter()
        .filter_map(|s| s.strip_prefix(':'))
        .map(|var| {
            json!({ "key": var, "value": path_values.get(var).cloned().unwrap_or(json!("")) })
        })
        .collect();
    if variables.len() > path_values.len() {
        blockers.push(format!(
            "{} has a path parameter the document does not describe",
            operation.path
        ));
    }
    let mut request = json!({
        "method": operation.method.to_uppercase(),
        "header": headers,
        "url": {
            "raw": format!("{{{{baseUrl}}}}/{}", segments.join("/")),
            "host": ["{{baseUrl}}"],
            "path": segments,
            "query": query,
            "variable": variables,
        },
        "description": operation.spec["summary"],
    });
    let content = &operation.spec["requestBody"]["content"]["application/json"];
    match content.get("example") {
        Some(example) => {
            let mut example = example.clone();
            unique_per_run(
                &operation.spec["requestBody"]["x-unique-per-run"],
                &mut example,
            );
            request["body"] = json!({
                "mode": "raw",
                "raw": serde_json::to_string_pretty(&example).unwrap_or_default(),
                "options": { "raw": { "language": "json" } }
            });
            if let Some(headers) = request["header"].as_array_mut() {
                headers.push(json!({ "key": "Content-Type", "value": "application/json" }));
            }
        }
        // A file upload: its example is sent as it is, with its media type.
        None if operation.spec["requestBody"]["content"]["text/csv"]["example"].is_string() => {
            let example = &operation.spec["requestBody"]["content"]["text/csv"]["example"];
            request["body"] = json!({ "mode": "raw", "raw": example });
            if let Some(headers) = request["header"].as_array_mut() {
                headers.push(json!({ "key": "Content-Type", "value": "text/csv" }));
            }
        }
        None if operation.spec["requestBody"]["required"] == json!(true) => {
            blockers.push("the request body has no JSON example to send".to_owned());
        }
        None => {}
    }
    (request, blockers)
}

pub fn collection(openapi: &Value) -> Value {
    let operations = operations(openapi);
    let flow = links::follow(&operations);
    let folders = run_order(openapi, operations, &flow);
    let position = |id: &str| {
        folders
            .iter()
            .flat_map(|(_, items)| items)
            .position(|o| o.id == id)
    };
    let mut items = Vec::new();
    for (name, operations) in &folders {
        let mut requests = Vec::new();
        for operation in operations {
            let (request, mut blockers) = request(operation, &flow);
            blockers.extend(
                flow.unfollowed
                    .get(operation.id)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            for binding in flow.bindings.get(operation.id).into_iter().flatten() {
                if position(&binding.source) >= position(operation.id) {
                    blockers.push(format!(
                        "{} runs before {}, which supplies {}",
                        operation.id, binding.source, binding.variable
                    ));
                }
            }
            requests.push(json!({
                "name": operation.id,
                "request": request,
                "event": [{
                    "listen": "test",
                    "script": {
                        "type": "text/javascript",
                        "exec": checks::script(openapi, operation, &flow, &blockers),
                    }
                }],
            }));
        }
        items.push(json!({ "name": name, "item": requests }));
    }
    let mut variables = vec![
        json!({ "key": "baseUrl", "value": "http://127.0.0.1:8080" }),
        json!({ "key": "apiKey", "value": "twh_test_..." }),
    ];
    for (source, captures) in &flow.captures {
        for capture in captures {
            variables.push(json!({
                "key": capture.variable,
                "value": "",
                "description": format!("Set by {source}'s tests from its response; used by {}.", capture.targets.join(", ")),
            }));
        }
    }
    json!({
        "info": {
            "name": openapi["info"]["title"],
            "description": format!(
                "Generated from openapi.yaml {}. Set baseUrl and apiKey (the sandbox key, twh_test_…) and run the whole collection: creates come first and hand the id and ETag of what they created to the requests after them; stock requests use the sandbox's sample items and locations.",
                openapi["info"]["version"].as_str().unwrap_or_default()
            ),
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "event": [{
            "listen": "prerequest",
            "script": {
                "type": "text/javascript",
                "exec": [
                    "// A fresh id for each request; creates append it to their SKU, code and name, so the",
                    "// collection runs again against the same tenant without a 409 on a taken SKU or code.",
                    "pm.variables.set(\"runId\", Date.now().toString(36) + Math.random().toString(36).slice(2, 6));",
                ],
            }
        }],
        "variable": variables,
        "item": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({
            "tags": [{ "name": "Things" }],
            "paths": {
                "/things": {
                    "get": { "operationId": "listThings", "tags": ["Things"], "responses": { "200": {} } },
                    "post": {
                        "operationId": "createThing", "tags": ["Things"],
                        "requestBody": { "required": true, "x-unique-per-run": ["code"], "content": { "application/json": {
                            "schema": { "type": "object", "required": ["code", "kind"], "properties": {
                                "code": { "type": "string" }, "kind": { "type": "string", "enum": ["A"] },
                                "note": { "type": "string" }
                            } },
                            "example": { "code": "T-1", "kind": "A", "note": "n" }
                        } } },
                        "responses": { "201": { "links": { "getThing": {
                            "operationId": "getThing", "parameters": { "path.id": "$response.body#/id" }
                        } } } }
                    }
                },
                "/things/{id}": {
                    "get": {
                        "operationId": "getThing", "tags": ["Things"],
                        "parameters": [{ "name": "id", "in": "path", "required": true }],
                        "responses": { "200": {} }
                    }
                },
                "/orphans/{id}": {
                    "get": {
                        "operationId": "getOrphan", "tags": ["Orphans"],
                        "parameters": [{ "name": "id", "in": "path", "required": true }],
                        "responses": { "200": {} }
                    }
                }
            }
        })
    }

    fn names(collection: &Value) -> Vec<&str> {
        collection["item"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f["item"].as_array().unwrap())
            .map(|i| i["name"].as_str().unwrap())
            .collect()
    }

    fn request<'a>(collection: &'a Value, name: &str) -> &'a Value {
        collection["item"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f["item"].as_array().unwrap())
            .find(|i| i["name"] == name)
            .unwrap()
    }

    fn script(item: &Value) -> String {
        item["event"][0]["script"]["exec"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn creates_run_first_and_hand_their_id_on() {
        let collection = collection(&document());
        assert_eq!(
            names(&collection),
            ["createThing", "listThings", "getThing", "getOrphan"]
        );
        let create = request(&collection, "createThing");
        assert!(script(create).contains(r#"pm.collectionVariables.set("createThing.id""#));
        let body = create["request"]["body"]["raw"].as_str().unwrap();
        assert!(body.contains(r#""T-1-{{runId}}""#), "{body}");
        assert!(body.contains(r#""kind": "A""#), "{body}");
        assert!(body.contains(r#""note": "n""#), "{body}");
        let get = request(&collection, "getThing");
        assert_eq!(
            get["request"]["url"]["variable"][0]["value"],
            "{{createThing.id}}"
        );
        assert!(!script(get).contains("throw"));
    }

    #[test]
    fn a_request_the_collection_cannot_fill_fails_a_test() {
        let collection = collection(&document());
        let orphan = script(request(&collection, "getOrphan"));
        assert!(
            orphan.contains("throw new Error(\"nothing supplies the required path parameter id"),
            "{orphan}"
        );
    }

    #[test]
    fn every_request_has_a_test_of_its_status() {
        let collection = collection(&document());
        for name in names(&collection) {
            let script = script(request(&collection, name));
            assert!(script.contains("pm.response.code"), "{name}: {script}");
        }
    }
}
