//! The OpenAPI 3.1 document, generated from the route table and the GraphQL types, so the
//! contract cannot drift from the code that serves it.

use serde_json::{Map, Value, json};

use crate::handler::{Prepared, connection_node};
use crate::routes::{Method, Shape, Source};
use crate::types::Types;

mod order;

/// The contract version (`info.version`); bump it with a CHANGELOG entry.
pub const VERSION: &str = "1.1.0";

fn problem_ref(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

fn problem_schema(codes: &[(&'static str, u16)]) -> Value {
    json!({
        "type": "object",
        "description": "An RFC 9457 problem document; `code` is the stable machine-readable code, the same as GraphQL's extensions.code or userErrors.code.",
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
            "code": { "type": "string", "enum": codes.iter().map(|(c, _)| *c).collect::<Vec<_>>() },
            "requestId": { "type": "string" },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "code": { "type": "string" },
                        "field": { "type": ["array", "null"], "items": { "type": "string" } },
                        "message": { "type": "string" }
                    },
                    "required": ["code", "message"]
                }
            }
        },
        "required": ["type", "title", "status", "code"]
    })
}

fn error_responses(
    route_method: Method,
    versioned_write: bool,
    shape: Shape,
    codes: &[(&'static str, u16)],
    query_args: bool,
) -> Map<String, Value> {
    let mut statuses: Vec<u16> = vec![400, 401, 403, 413, 429, 500];
    match shape {
        // A look-up by path is found or not; one that takes query parameters (a search) may
        // also refuse their values.
        Shape::Object => {
            statuses.push(404);
            if query_args {
                statuses.push(422);
            }
        }
        Shape::List => statuses.push(422),
        Shape::Payload(_) | Shape::WholePayload => {
            statuses.extend(
                codes
                    .iter()
                    .map(|(_, s)| *s)
                    .filter(|s| *s != 500 && *s != 428),
            );
        }
    }
    if versioned_write {
        statuses.push(428);
    }
    if route_method == Method::Get {
        statuses.retain(|s| *s != 413);
    }
    statuses.sort_unstable();
    statuses.dedup();
    statuses
        .into_iter()
        .map(|s| {
            let names: Vec<&str> = codes
                .iter()
                .filter(|(_, cs)| *cs == s)
                .map(|(c, _)| *c)
                .collect();
            (
                s.to_string(),
                problem_ref(&format!(
                    "Problem: {}",
                    if names.is_empty() {
                        "see code".to_owned()
                    } else {
                        names.join(", ")
                    }
                )),
            )
        })
        .collect()
}

/// The IETF rate-limit fields every metered response carries (when limits are enforced).
fn rate_limit_headers() -> Map<String, Value> {
    let mut headers = Map::new();
    headers.insert("RateLimit-Policy".into(), json!({ "description": "The tenant's quota policies (IETF RateLimit fields): the token bucket, `\"burst\";q=<size>;w=<seconds to refill>`, and the month's calls, `\"month\";q=<calls>;w=<seconds>`.", "schema": { "type": "string" } }));
    headers.insert("RateLimit".into(), json!({ "description": "What is left of each policy and in how many seconds it is back: `\"burst\";r=<units>;t=<seconds>, \"month\";r=<calls>;t=<seconds>`.", "schema": { "type": "string" } }));
    headers
}

fn named_ref(name: &str) -> crate::types::TypeRef {
    crate::types::TypeRef {
        kind: "OBJECT".into(),
        name: Some(name.to_owned()),
        of_type: None,
    }
}

/// OpenAPI links from a create's response to the operations on what it created (read it,
/// update it with the ETag it came back with), so clients and stateful test tools can follow.
fn links_to(location: &str, prepared: &[Prepared]) -> Value {
    let mut links = Map::new();
    let on_created = |path: &str| {
        path == location
            || path
                .strip_prefix(location)
                .is_some_and(|action| action.starts_with('/') && !action[1..].contains('/'))
    };
    for target in prepared
        .iter()
        .map(|p| p.route)
        .filter(|r| on_created(r.path))
    {
        let mut parameters = Map::new();
        for (_, source) in target.args {
            match source {
                Source::Path(param) => {
                    parameters.insert(format!("path.{param}"), json!("$response.body#/id"));
                }
                Source::IfMatch => {
                    parameters.insert("header.If-Match".into(), json!("$response.header.ETag"));
                }
                _ => {}
            }
        }
        links.insert(
            target.operation_id.to_owned(),
            json!({ "operationId": target.operation_id, "parameters": parameters }),
        );
    }
    Value::Object(links)
}

/// The whole document.
pub fn document(types: &Types, prepared: &[Prepared], codes: &[(&'static str, u16)]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    let mut roots: Vec<String> = Vec::new();
    for (index, p) in prepared.iter().enumerate() {
        let route = p.route;
        let mut parameters = Vec::new();
        let mut request_body = None;
        let mut body_fields = Map::new();
        let mut body_required: Vec<Value> = Vec::new();
        for (name, source) in route.args {
            let arg = p.field.args.iter().find(|a| a.name == *name);
            match source {
                Source::Path(param) => parameters.push(json!({
                    "name": param, "in": "path", "required": true, "schema": { "type": "string" }
                })),
                Source::Query(param) => {
                    let mut schema = arg.map(|a| types.schema_of(&a.ty)).unwrap_or(json!({ "type": "string" }));
                    if *param == "first" {
                        schema = json!({ "type": "integer", "minimum": 1, "maximum": 250, "default": 50 });
                    }
                    if *param == "days" {
                        schema = json!({ "type": "integer", "minimum": 1, "maximum": 31, "default": 7 });
                    }
                    parameters.push(json!({ "name": param, "in": "query", "required": false, "schema": schema }));
                }
                Source::QueryObject(fields) => {
                    let input = arg.map(|a| a.ty.named().to_owned()).unwrap_or_default();
                    for (param, field) in *fields {
                        let ty = types
                            .get(&input)
                            .and_then(|t| t.input_fields.as_ref())
                            .and_then(|f| f.iter().find(|f| f.name == *field));
                        let schema = ty.map(|f| types.schema_of(&f.ty)).unwrap_or(json!({ "type": "string" }));
                        if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
                            roots.push(r.rsplit('/').next().unwrap_or_default().to_owned());
                        }
                        parameters.push(json!({ "name": param, "in": "query", "required": false, "schema": schema }));
                    }
                }
                Source::Body => {
                    let ty = arg.map(|a| a.ty.clone());
                    if let Some(ty) = ty {
                        roots.push(ty.named().to_owned());
                        let example = route
                            .example
                            .and_then(|e| serde_json::from_str(e).ok())
                            .unwrap_or_else(|| types.example(&ty, 0));
                        request_body = Some(json!({
                            "required": true,
                            "content": { "application/json": {
                                "schema": types.schema_of(&ty),
                                "example": example
                            } }
                        }));
                    }
                }
                Source::IdempotencyKey => parameters.push(json!({
                    "name": "Idempotency-Key", "in": "header", "required": false,
                    "description": "Makes the request safe to retry: a replay returns the stored response with Idempotent-Replayed: true; the same key with another body is refused (422). A token, or a quoted string (a structured-field string, as the Idempotency-Key draft sends it).",
                    "schema": { "type": "string", "pattern": r#"^([!#-~]{1,255}|"([ !#-\[\]-~]|\\.){1,255}")$"# }
                })),
                Source::IfMatch => parameters.push(json!({
                    "name": "If-Match", "in": "header", "required": true,
                    "description": "The ETag from reading the resource; stale gives 412, missing gives 428.",
                    "schema": { "type": "string", "pattern": "^\"[0-9]{1,18}\"$" }
                })),
                Source::IfMatchOptional => parameters.push(json!({
                    "name": "If-Match", "in": "header", "required": false,
                    "example": "\"1\"",
                    "description": "The ETag from reading the document: the transition happens only at that version (412 otherwise). Without it the transition is unconditional.",
                    "schema": { "type": "string" }
                })),
                Source::BodyField(field) => {
                    if let Some(arg) = arg {
                        roots.push(arg.ty.named().to_owned());
                        body_fields.insert(
                            (*field).to_owned(),
                            types.nullable_schema_of(&arg.ty),
                        );
                        if arg.ty.non_null() && arg.default_value.is_none() {
                            body_required.push(json!(field));
                        }
                    }
                }
            }
        }
        if !body_fields.is_empty() {
            let example = route
                .example
                .and_then(|e| serde_json::from_str::<Value>(e).ok())
                .unwrap_or_else(|| json!({}));
            request_body = Some(json!({
                "required": !body_required.is_empty(),
                "content": { "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": body_fields,
                        "required": body_required,
                        "additionalProperties": false,
                    },
                    "example": example
                } }
            }));
        }
        let result_type = p.field.ty.named().to_owned();
        let (body_schema, body_type) = match route.shape {
            Shape::Object => (
                json!({ "$ref": format!("#/components/schemas/{result_type}") }),
                result_type.clone(),
            ),
            Shape::WholePayload => {
                // The payload without `userErrors`: those become a problem response instead.
                let mut schema = types.component(&result_type).unwrap_or(json!({}));
                if let Some(props) = schema["properties"].as_object_mut() {
                    props.remove("userErrors");
                }
                if let Some(required) = schema["required"].as_array_mut() {
                    required.retain(|r| r != "userErrors");
                }
                (schema, result_type.clone())
            }
            Shape::Payload(f) => {
                let inner = types
                    .field(&result_type, f)
                    .map(|f| f.ty.named().to_owned())
                    .unwrap_or_default();
                (
                    json!({ "$ref": format!("#/components/schemas/{inner}") }),
                    inner,
                )
            }
            Shape::List => {
                let node = connection_node(types, &result_type).unwrap_or_default();
                (
                    json!({
                        "type": "object",
                        "properties": {
                            "data": { "type": "array", "items": { "$ref": format!("#/components/schemas/{node}") } },
                            "pageInfo": {
                                "type": "object",
                                "properties": {
                                    "hasNextPage": { "type": "boolean" },
                                    "endCursor": { "type": ["string", "null"] }
                                },
                                "required": ["hasNextPage", "endCursor"]
                            }
                        },
                        "required": ["data", "pageInfo"]
                    }),
                    node,
                )
            }
        };
        let example = {
            let named = |name: &str| types.example(&named_ref(name), 0);
            match route.shape {
                Shape::List => json!({
                    "data": [named(&body_type)],
                    "pageInfo": { "hasNextPage": false, "endCursor": null }
                }),
                Shape::WholePayload => {
                    let mut payload = named(&body_type);
                    if let Some(object) = payload.as_object_mut() {
                        object.remove("userErrors");
                    }
                    payload
                }
                _ => named(&body_type),
            }
        };
        roots.push(body_type);
        let mut success_headers = Map::new();
        if route.versioned {
            success_headers.insert("ETag".into(), json!({ "description": "Strong entity tag of the document's version.", "schema": { "type": "string" } }));
        }
        if route.shape == Shape::List {
            success_headers.insert("Link".into(), json!({ "description": "rel=\"next\" link to the next page, when there is one.", "schema": { "type": "string" } }));
        }
        if route.location.is_some() {
            success_headers.insert("Location".into(), json!({ "description": "Where the created resource is.", "schema": { "type": "string" } }));
        }
        if route.args.iter().any(|(_, s)| *s == Source::IdempotencyKey) {
            success_headers.insert("Idempotent-Replayed".into(), json!({ "description": "true when this is the stored response to an earlier request with the same key.", "schema": { "type": "string", "enum": ["true"] } }));
        }
        success_headers.extend(rate_limit_headers());
        let mut responses = error_responses(
            route.method,
            route.args.iter().any(|(_, s)| *s == Source::IfMatch),
            route.shape,
            codes,
            route
                .args
                .iter()
                .any(|(_, s)| matches!(s, Source::Query(_) | Source::QueryObject(_))),
        );
        if let Some(throttled) = responses.get_mut("429") {
            let mut headers = rate_limit_headers();
            headers.insert("Retry-After".into(), json!({ "description": "Seconds to wait before the request can succeed.", "schema": { "type": "integer" } }));
            throttled["headers"] = Value::Object(headers);
        }
        let mut success = json!({
            "description": route.summary,
            "headers": success_headers,
            "content": { "application/json": { "schema": body_schema, "example": example } }
        });
        if let Some(location) = route.location {
            success["links"] = links_to(location, prepared);
        }
        responses.insert(route.status.to_string(), success);
        if route.method == Method::Get && route.versioned {
            parameters.push(json!({
                "name": "If-None-Match", "in": "header", "required": false,
                "description": "An ETag; 304 when the document still has it.",
                "schema": { "type": "string" }
            }));
            responses.insert("304".into(), json!({ "description": "Not modified", "headers": { "ETag": { "schema": { "type": "string" } } } }));
        }
        let mut operation = json!({
            "operationId": route.operation_id,
            "summary": route.summary,
            "description": format!("Runs the GraphQL field `{}` through the same schema as POST /graphql.", route.field),
            "tags": [route.tag],
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(mut body) = request_body {
            if !route.unique.is_empty() {
                // For collection runs: these fields are made unique on each run.
                body["x-unique-per-run"] = json!(route.unique);
            }
            operation["requestBody"] = body;
        }
        // The route table's order: a collection runs a document's transitions in it.
        operation["x-run-order"] = json!(index);
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str()] = operation;
    }
    let mut schemas: Map<String, Value> = types
        .referenced(&roots)
        .into_iter()
        .filter_map(|name| types.component(&name).map(|schema| (name, schema)))
        .collect();
    schemas.insert("Problem".into(), problem_schema(codes));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "The Warehouse Hub REST API",
            "version": VERSION,
            "description": "Ledger-first inventory API. Every route runs the GraphQL operation of the same name through the same schema: authentication, validation, idempotency and error codes are identical.",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearerAuth": [] }],
        "tags": [
            { "name": "Items" }, { "name": "Locations" }, { "name": "Stock" },
            { "name": "Purchase orders" }, { "name": "Sales orders" }, { "name": "Reservations" },
            { "name": "Transfers" }, { "name": "Returns" }
        ],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearerAuth": { "type": "http", "scheme": "bearer", "description": "An API key: twh_test_… (sandbox) or twh_live_…" } },
            "schemas": schemas,
        }
    })
}

/// The document as YAML in the conventional key order, as checked in at `openapi.yaml`.
pub fn to_yaml(document: &Value) -> String {
    serde_norway::to_string(&order::document(document)).unwrap_or_default()
}

/// The document as JSON in the same order, as served at `/v1/openapi.json`.
pub fn to_json(document: &Value) -> String {
    serde_json::to_string(&order::document(document)).unwrap_or_default()
}
