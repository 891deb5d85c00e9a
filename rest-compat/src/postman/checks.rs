//! Each request's test script, from its operation in the OpenAPI document: the documented
//! success status and the body's required fields, the values its links hand on, and a failing
//! test for anything the collection could not build.

use serde_json::Value;

use super::links::Flow;
use super::{Operation, js_string};

/// The operation's documented success status (its first 2xx response).
pub fn success_status(operation: &Operation<'_>) -> Option<u16> {
    operation.spec["responses"]
        .as_object()?
        .keys()
        .filter(|s| s.starts_with('2'))
        .find_map(|s| s.parse().ok())
}

/// A schema with its `$ref` followed, and the name it was referred to by.
fn resolve<'a>(openapi: &'a Value, schema: &'a Value) -> (&'a Value, Option<&'a str>) {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => (&openapi["components"]["schemas"][name], Some(name)),
        None => (schema, None),
    }
}

/// The lines of the request's `test` script. `blockers` are why the request as generated
/// cannot pass; each becomes a failing test rather than a silently skipped route.
pub fn script(
    openapi: &Value,
    operation: &Operation<'_>,
    flow: &Flow,
    blockers: &[String],
) -> Vec<String> {
    let mut lines = Vec::new();
    match success_status(operation) {
        Some(status) => {
            let content = &operation.spec["responses"][status.to_string()]["content"];
            // A body that may come in several media types (a file download: CSV, JSON, any
            // bytes) is not checked as JSON.
            let several = content.as_object().is_some_and(|types| types.len() > 1);
            let documented = if several {
                &Value::Null
            } else {
                &content["application/json"]["schema"]
            };
            lines.extend(status_and_body(
                openapi, operation, flow, status, documented,
            ));
        }
        None => lines.push(failing("the document gives no success (2xx) status")),
    }
    for capture in flow.captures.get(operation.id).into_iter().flatten() {
        let variable = js_string(&capture.variable);
        lines.extend([
            format!(
                "pm.test({}, function () {{",
                js_string(&format!(
                    "hands {} to {}",
                    capture.variable,
                    capture.targets.join(", ")
                ))
            ),
            format!("    pm.collectionVariables.unset({variable});"),
            format!("    const value = {};", capture.expression.javascript()),
            format!("    pm.expect(value, {variable}).to.be.ok;"),
            format!("    pm.collectionVariables.set({variable}, String(value));"),
            "});".to_owned(),
        ]);
    }
    lines.extend(blockers.iter().map(|b| failing(b)));
    lines
}

fn status_and_body(
    openapi: &Value,
    operation: &Operation<'_>,
    flow: &Flow,
    status: u16,
    documented: &Value,
) -> Vec<String> {
    let (schema, name) = resolve(openapi, documented);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let what = match (name, documented.is_null()) {
        (_, true) => "no JSON body".to_owned(),
        (Some(name), _) => name.to_owned(),
        (None, _) if !required.is_empty() => required.join(", "),
        (None, _) => "a JSON body".to_owned(),
    };
    // The body goes into the message, so a failure says what the server answered.
    let mut lines = vec![
        format!(
            "pm.test({}, function () {{",
            js_string(&format!("answers {status} with {what}"))
        ),
        format!("    pm.expect(pm.response.code, pm.response.text()).to.equal({status});"),
    ];
    if !documented.is_null() {
        lines.push("    const body = pm.response.json();".to_owned());
        if required.is_empty() {
            let kind = match schema["type"].as_str() {
                Some("array") => "array",
                _ => "object",
            };
            lines.push(format!(
                "    pm.expect(body).to.be.an({});",
                js_string(kind)
            ));
        } else {
            let keys: Vec<String> = required.iter().map(|k| js_string(k)).collect();
            lines.push(format!(
                "    pm.expect(body).to.include.all.keys({});",
                keys.join(", ")
            ));
        }
        // A document read or changed by id is the one asked for (a 201 made another one).
        let bindings = flow
            .bindings
            .get(operation.id)
            .into_iter()
            .flatten()
            .filter(|_| status != 201);
        for binding in bindings {
            if binding.location == "path" && !schema["properties"][&binding.name].is_null() {
                lines.push(format!(
                    "    pm.expect(body[{}]).to.equal(pm.variables.get({}));",
                    js_string(&binding.name),
                    js_string(&binding.variable)
                ));
            }
        }
    }
    lines.push("});".to_owned());
    lines
}

fn failing(reason: &str) -> String {
    format!(
        "pm.test({}, function () {{ throw new Error({}); }});",
        js_string("the collection can build this request"),
        js_string(reason)
    )
}
