//! A Postman collection (v2.1) generated from the OpenAPI document.

use serde_json::{Value, json};

pub fn collection(openapi: &Value) -> Value {
    let mut folders: Vec<(String, Vec<Value>)> = Vec::new();
    let paths = openapi["paths"].as_object().cloned().unwrap_or_default();
    for (path, methods) in paths {
        for (method, op) in methods.as_object().cloned().unwrap_or_default() {
            let tag = op["tags"][0].as_str().unwrap_or("Other").to_owned();
            let mut headers = vec![json!({ "key": "Authorization", "value": "Bearer {{apiKey}}" })];
            let mut query = Vec::new();
            for p in op["parameters"].as_array().cloned().unwrap_or_default() {
                let name = p["name"].as_str().unwrap_or_default();
                match p["in"].as_str() {
                    Some("header") => headers.push(json!({
                        "key": name,
                        "value": match name { "If-Match" => "\"1\"", "Idempotency-Key" => "{{$guid}}", _ => "" },
                        "disabled": p["required"] != json!(true) && name != "Idempotency-Key",
                    })),
                    Some("query") => query.push(json!({ "key": name, "value": "", "disabled": true })),
                    _ => {}
                }
            }
            let postman_path: Vec<String> = path
                .trim_start_matches('/')
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(var) => format!(":{var}"),
                        None => s.to_owned(),
                    },
                )
                .collect();
            let variables: Vec<Value> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(|var| json!({ "key": var, "value": "" }))
                .collect();
            let mut request = json!({
                "method": method.to_uppercase(),
                "header": headers,
                "url": {
                    "raw": format!("{{{{baseUrl}}}}/{}", postman_path.join("/")),
                    "host": ["{{baseUrl}}"],
                    "path": postman_path,
                    "query": query,
                    "variable": variables,
                },
                "description": op["summary"],
            });
            if let Some(example) =
                op["requestBody"]["content"]["application/json"]["example"].as_object()
            {
                request["body"] = json!({
                    "mode": "raw",
                    "raw": serde_json::to_string_pretty(example).unwrap_or_default(),
                    "options": { "raw": { "language": "json" } }
                });
                if let Some(headers) = request["header"].as_array_mut() {
                    headers.push(json!({ "key": "Content-Type", "value": "application/json" }));
                }
            }
            let item = json!({ "name": op["operationId"], "request": request });
            match folders.iter_mut().find(|(name, _)| *name == tag) {
                Some((_, items)) => items.push(item),
                None => folders.push((tag, vec![item])),
            }
        }
    }
    json!({
        "info": {
            "name": openapi["info"]["title"],
            "description": format!("Generated from openapi.yaml {}", openapi["info"]["version"].as_str().unwrap_or_default()),
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
        },
        "variable": [
            { "key": "baseUrl", "value": "http://127.0.0.1:8080" },
            { "key": "apiKey", "value": "twh_test_..." }
        ],
        "item": folders.into_iter().map(|(name, items)| json!({ "name": name, "item": items })).collect::<Vec<_>>(),
    })
}
