//! The generic REST handler: builds each route's GraphQL operation once from the schema, then
//! per request gathers the variables from exactly one place each, executes through the backend
//! and turns the result into a REST response (status, ETag, Location, Link, problem+json).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::RawPathParams;
use axum::extract::RawQuery;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use serde_json::{Map, Value, json};

use crate::routes::{Method, Route, Shape, Source};
use crate::types::{Field, TypeRef, Types};
use crate::{Backend, Failure};

/// A route with its generated GraphQL operation.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub route: &'static Route,
    pub document: String,
    pub field: Field,
    /// For a route that takes `If-Match`: the GET of the same resource, read when the header
    /// names no single version (`*`, or a list) to learn the current one.
    pub current: Option<Box<Prepared>>,
}

/// Generates every route's operation; fails if the table names a field or argument the schema
/// does not have.
pub fn prepare(types: &Types, routes: &'static [Route]) -> Result<Vec<Prepared>, String> {
    let mut prepared = routes
        .iter()
        .map(|route| prepare_one(types, route))
        .collect::<Result<Vec<_>, _>>()?;
    let reads: Vec<Prepared> = prepared
        .iter()
        .filter(|p| p.route.method == Method::Get)
        .cloned()
        .collect();
    for p in &mut prepared {
        if p.route
            .args
            .iter()
            .any(|(_, s)| matches!(s, Source::IfMatch | Source::IfMatchOptional))
        {
            // The resource itself, or, for an action (`…/{id}/submit`), the resource it acts on.
            let resource = match p.route.path.rsplit_once('/') {
                Some((parent, action)) if !action.starts_with('{') => parent,
                _ => p.route.path,
            };
            let read = reads
                .iter()
                .find(|r| r.route.path == resource && r.route.versioned)
                .ok_or_else(|| {
                    format!("{}: If-Match needs a GET of the same path", p.route.path)
                })?;
            p.current = Some(Box::new(read.clone()));
        }
    }
    Ok(prepared)
}

fn prepare_one(types: &Types, route: &'static Route) -> Result<Prepared, String> {
    let (root, keyword) = match route.method {
        Method::Get => (&types.query, "query"),
        _ => (&types.mutation, "mutation"),
    };
    let field = types
        .root_field(root, route.field)
        .ok_or_else(|| format!("{}: no root field {}", route.path, route.field))?
        .clone();
    let mut declared = Vec::new();
    let mut passed = Vec::new();
    for (name, _) in route.args {
        let arg = field
            .args
            .iter()
            .find(|a| a.name == *name)
            .ok_or_else(|| format!("{}: {} has no argument {name}", route.path, route.field))?;
        // An argument with a default keeps it when the request leaves the variable out.
        match &arg.default_value {
            Some(default) => declared.push(format!("${name}: {} = {default}", arg.ty.render())),
            None => declared.push(format!("${name}: {}", arg.ty.render())),
        }
        passed.push(format!("{name}: ${name}"));
    }
    let result_type = field.ty.named().to_owned();
    let selection = match route.shape {
        Shape::Object | Shape::WholePayload => types.selection(&result_type),
        Shape::Payload(f) => {
            let inner = types
                .field(&result_type, f)
                .ok_or_else(|| format!("{}: {result_type} has no field {f}", route.path))?;
            format!(
                "{f} {{ {} }} userErrors {{ code field message }}",
                types.selection(inner.ty.named())
            )
        }
        Shape::List => {
            let node = connection_node(types, &result_type)
                .ok_or_else(|| format!("{}: {result_type} is not a connection", route.path))?;
            format!(
                "edges {{ cursor node {{ {} }} }} pageInfo {{ hasNextPage endCursor }}",
                types.selection(&node)
            )
        }
    };
    let vars = if declared.is_empty() {
        String::new()
    } else {
        format!("({})", declared.join(", "))
    };
    let args = if passed.is_empty() {
        String::new()
    } else {
        format!("({})", passed.join(", "))
    };
    Ok(Prepared {
        route,
        document: format!(
            "{keyword} {}{vars} {{ {}{args} {{ {selection} }} }}",
            route.operation_id, route.field
        ),
        field,
        current: None,
    })
}

/// The node type of a Relay connection type.
pub fn connection_node(types: &Types, connection: &str) -> Option<String> {
    let edge = types.field(connection, "edges")?.ty.named().to_owned();
    Some(types.field(&edge, "node")?.ty.named().to_owned())
}

/// The axum router serving every prepared route.
pub fn router<B: Backend>(backend: B, types: Arc<Types>, prepared: Vec<Prepared>) -> Router {
    let mut by_path: BTreeMap<&'static str, MethodRouter> = BTreeMap::new();
    for p in prepared {
        let p = Arc::new(p);
        let (backend, types) = (backend.clone(), types.clone());
        let method = p.route.method;
        let path = p.route.path;
        let handler = move |params: RawPathParams,
                            RawQuery(query): RawQuery,
                            headers: HeaderMap,
                            body: Result<Bytes, BytesRejection>| {
            let (backend, types, p) = (backend.clone(), types.clone(), p.clone());
            let params: HashMap<String, String> = params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            async move {
                handle(
                    &backend,
                    &types,
                    &p,
                    params,
                    query.unwrap_or_default(),
                    headers,
                    body,
                )
                .await
            }
        };
        let filter = match method {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Patch => MethodFilter::PATCH,
            Method::Delete => MethodFilter::DELETE,
        };
        let entry = by_path.remove(path).unwrap_or_default();
        by_path.insert(path, entry.on(filter, handler));
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
}

/// An RFC 9457 problem response with our `code` extension member.
pub fn problem<B: Backend>(
    backend: &B,
    code: &str,
    detail: &str,
    request_id: &str,
    errors: Option<Value>,
) -> Response {
    let (status, problem_type) = backend.describe(code);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = json!({
        "type": problem_type,
        "title": title(code),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
        "requestId": request_id,
    });
    if let Some(errors) = errors {
        body["errors"] = errors;
    }
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Unavailable for the moment: say when to come back (RFC 9110, section 10.2.3).
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// A response with the headers the execution set (rate limits, `Idempotent-Replayed`).
fn with_headers(mut response: Response, headers: &HeaderMap) -> Response {
    for (name, value) in headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// A problem the REST layer itself decided (credentials, parameters, a missing document), and
/// so counts; failures that come out of executing the operation are counted by the backend.
fn refuse<B: Backend>(backend: &B, code: &str, detail: &str, request_id: &str) -> Response {
    backend.record_failure(code);
    problem(backend, code, detail, request_id, None)
}

/// `VERSION_CONFLICT` → `Version conflict`.
pub fn title(code: &str) -> String {
    let lower = code.replace('_', " ").to_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

struct Reject(&'static str, String);

fn coerce(types: &Types, type_name: &str, raw: &str, param: &str) -> Result<Value, Reject> {
    match type_name {
        "Int" => raw.parse::<i64>().map(Value::from).map_err(|_| {
            Reject(
                "BAD_REQUEST",
                format!("query parameter {param} must be an integer"),
            )
        }),
        "Boolean" => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(Reject(
                "BAD_REQUEST",
                format!("query parameter {param} must be true or false"),
            )),
        },
        other => {
            if let Some(def) = types.get(other).filter(|d| d.kind == "ENUM")
                && !def.enum_values.iter().flatten().any(|v| v.name == raw)
            {
                return Err(Reject(
                    "BAD_REQUEST",
                    format!("query parameter {param} has no value {raw:?}"),
                ));
            }
            Ok(Value::String(raw.to_owned()))
        }
    }
}

/// A query parameter as its argument's type reads it: every repetition for a list
/// (`?type=ITEM&type=LOCATION`), else its one value (a repeated one is refused).
fn coerce_param(
    types: &Types,
    ty: Option<&TypeRef>,
    values: &[String],
    param: &str,
) -> Result<Value, Reject> {
    let name = ty.map(|t| t.named()).unwrap_or("String");
    if ty.is_some_and(TypeRef::is_list) {
        return values
            .iter()
            .map(|raw| coerce(types, name, raw, param))
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    match values {
        [raw] => coerce(types, name, raw, param),
        _ => Err(Reject(
            "BAD_REQUEST",
            format!("query parameter {param} is given more than once"),
        )),
    }
}

/// JSON does not tell `3` from `3.0`; GraphQL's Int does. Whole numbers sent as floats are
/// read as the integers they are.
fn integral_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
                Value::from(f as i64)
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integral_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Parses the `Idempotency-Key` header: a bare token or a structured-field string.
pub fn idempotency_key(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.starts_with('"') {
        let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => return None,
                c => out.push(c),
            }
        }
        return (!out.is_empty()).then_some(out);
    }
    let token = !raw.is_empty() && raw.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"');
    token.then(|| raw.to_owned())
}

/// The version in a strong entity tag `"7"`.
pub fn etag_version(raw: &str) -> Option<i64> {
    raw.trim()
        .strip_prefix('"')?
        .strip_suffix('"')?
        .parse()
        .ok()
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A version no document has (versions start at 1): what a condition that cannot hold sends.
const NO_VERSION: i64 = 0;

/// What an `If-Match` header asks (RFC 9110, section 13.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version.
    Any,
    /// The versions named by strong entity tags of ours; tags that cannot be one of our
    /// versions (weak ones, other opaque values) can never match and are left out.
    Versions(Vec<i64>),
}

/// Parses `If-Match`; `None` when it is not `*` or a list of entity tags.
pub fn if_match(raw: &str) -> Option<IfMatch> {
    let raw = raw.trim();
    if raw == "*" {
        return Some(IfMatch::Any);
    }
    let mut versions = Vec::new();
    let mut rest = raw;
    loop {
        rest = rest.trim_start();
        let weak = rest.starts_with("W/");
        let tag = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"')?;
        let end = tag.find('"')?;
        let opaque = &tag[..end];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        if !weak && let Ok(version) = opaque.parse::<i64>() {
            versions.push(version);
        }
        rest = tag[end + 1..].trim_start();
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None if rest.is_empty() => return Some(IfMatch::Versions(versions)),
            None => return None,
        }
    }
}

/// A condition that needs the resource's current version before the update can be sent.
type Precondition = Option<(&'static str, IfMatch)>;

fn variables(
    types: &Types,
    p: &Prepared,
    params: &HashMap<String, String>,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
    precondition: &mut Precondition,
) -> Result<Map<String, Value>, Reject> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| Reject("BAD_REQUEST", "the query string is malformed".into()))?;
    // A parameter may repeat only where it fills a list (`?status=ORDERED&status=RECEIVED`).
    let mut query_params: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        query_params.entry(k).or_default().push(v);
    }
    let mut used: Vec<&str> = Vec::new();
    let mut vars = Map::new();
    // Routes whose arguments come from fields of the body (a transition's lines and flags):
    // the body is one JSON object (or empty) whose every field is one of those arguments.
    let body_fields: Vec<&str> = p
        .route
        .args
        .iter()
        .filter_map(|(_, s)| match s {
            Source::BodyField(f) => Some(*f),
            _ => None,
        })
        .collect();
    let takes_body = p.route.args.iter().any(|(_, s)| *s == Source::Body);
    let fields = if takes_body || p.route.method == Method::Get {
        Map::new()
    } else {
        body_object(body)?
    };
    if let Some(unknown) = fields.keys().find(|k| !body_fields.contains(&k.as_str())) {
        return Err(Reject(
            "BAD_REQUEST",
            if body_fields.is_empty() {
                format!("this request takes no body (it has a field {unknown})")
            } else {
                format!(
                    "unknown body field {unknown} - Hint: the body takes {}",
                    body_fields.join(", ")
                )
            },
        ));
    }
    for (name, source) in p.route.args {
        let arg = p.field.args.iter().find(|a| a.name == *name);
        let arg_type = arg.map(|a| a.ty.named()).unwrap_or("String");
        match source {
            Source::Path(param) => {
                let value = params.get(*param).cloned().unwrap_or_default();
                vars.insert((*name).into(), Value::String(value));
            }
            Source::Query(param) => {
                if let Some(values) = query_params.get(*param) {
                    let value = coerce_param(types, arg.map(|a| &a.ty), values, param)?;
                    vars.insert((*name).into(), value);
                    used.push(param);
                }
            }
            Source::QueryObject(fields) => {
                let mut object = Map::new();
                for (param, field) in *fields {
                    if let Some(values) = query_params.get(*param) {
                        let field_ref = types
                            .get(arg_type)
                            .and_then(|t| t.input_fields.as_ref())
                            .and_then(|f| f.iter().find(|f| f.name == *field))
                            .map(|f| &f.ty);
                        let value = coerce_param(types, field_ref, values, param)?;
                        object.insert((*field).into(), value);
                        used.push(param);
                    }
                }
                if !object.is_empty() {
                    vars.insert((*name).into(), Value::Object(object));
                }
            }
            Source::Body => {
                let value: Value = serde_json::from_slice(body)
                    .map_err(|e| Reject("BAD_REQUEST", format!("the body is not JSON: {e}")))?;
                if !value.is_object() {
                    return Err(Reject(
                        "BAD_REQUEST",
                        "the body must be a JSON object".into(),
                    ));
                }
                if let Some(arg) = arg {
                    json_as_declared(types, &arg.ty, &value, "the body")?;
                }
                vars.insert((*name).into(), integral_numbers(value));
            }
            Source::BodyField(field) => match fields.get(*field) {
                Some(value) => {
                    if let Some(arg) = arg {
                        json_as_declared(types, &arg.ty, value, field)?;
                    }
                    vars.insert((*name).into(), integral_numbers(value.clone()));
                }
                None if arg.is_some_and(|a| a.ty.non_null() && a.default_value.is_none()) => {
                    return Err(Reject(
                        "BAD_REQUEST",
                        format!("the body lacks the field {field}"),
                    ));
                }
                None => {}
            },
            Source::IdempotencyKey => {
                if let Some(raw) = headers.get("idempotency-key") {
                    let key = raw.to_str().ok().and_then(idempotency_key).ok_or_else(|| {
                        Reject(
                            "BAD_REQUEST",
                            "Idempotency-Key must be a token or a quoted string".into(),
                        )
                    })?;
                    vars.insert((*name).into(), Value::String(key));
                }
            }
            Source::IfMatch | Source::IfMatchOptional => {
                let Some(raw) = headers.get(header::IF_MATCH) else {
                    if *source == Source::IfMatchOptional {
                        continue;
                    }
                    return Err(Reject(
                        "PRECONDITION_REQUIRED",
                        "this update needs If-Match - Hint: send the ETag from GET of this resource".into(),
                    ));
                };
                // RFC 9110 13.2.1: a request that would fail without its precondition (an
                // unknown document, a malformed body) fails that way, not with 412. So a
                // condition no version can meet is sent on as a version no document has (0):
                // the operation then answers 404, 400 or VERSION_CONFLICT (412) as it should.
                let condition = match raw.to_str().ok().and_then(if_match) {
                    Some(condition) => condition,
                    // An unreadable condition on a transition cannot hold.
                    None if *source == Source::IfMatchOptional => IfMatch::Versions(Vec::new()),
                    None => {
                        return Err(Reject(
                            "BAD_REQUEST",
                            "If-Match must be `*` or entity tags such as \"3\"".into(),
                        ));
                    }
                };
                match condition {
                    // `*` on a transition: it happens at whatever version the document has,
                    // which is what no expectedVersion says (and a retry with the same
                    // Idempotency-Key then sends the same arguments).
                    IfMatch::Any if *source == Source::IfMatchOptional => {}
                    IfMatch::Versions(versions) if versions.len() == 1 => {
                        vars.insert((*name).into(), Value::from(versions[0]));
                    }
                    IfMatch::Versions(versions) if versions.is_empty() => {
                        vars.insert((*name).into(), Value::from(NO_VERSION));
                    }
                    condition => *precondition = Some((*name, condition)),
                }
            }
        }
    }
    if let Some(unknown) = query_params.keys().find(|k| !used.contains(&k.as_str())) {
        return Err(Reject(
            "BAD_REQUEST",
            format!("unknown query parameter {unknown}"),
        ));
    }
    Ok(vars)
}

/// Where GraphQL's input coercion is looser than the JSON body's schema, the schema wins (400):
/// GraphQL turns a single value into a one-element list, where the schema says array; and it
/// takes an integer for an `ID`, where the schema says string.
fn json_as_declared(types: &Types, ty: &TypeRef, value: &Value, path: &str) -> Result<(), Reject> {
    if value.is_null() {
        return Ok(());
    }
    let inner = if ty.non_null() {
        match &ty.of_type {
            Some(inner) => inner.as_ref(),
            None => return Ok(()),
        }
    } else {
        ty
    };
    if inner.kind == "SCALAR" && inner.named() == "ID" && !value.is_string() {
        return Err(Reject("BAD_REQUEST", format!("{path} must be a string")));
    }
    if inner.kind == "LIST" {
        let Value::Array(items) = value else {
            return Err(Reject("BAD_REQUEST", format!("{path} must be an array")));
        };
        if let Some(item_type) = &inner.of_type {
            for (i, item) in items.iter().enumerate() {
                json_as_declared(types, item_type, item, &format!("{path}[{i}]"))?;
            }
        }
        return Ok(());
    }
    if let (Value::Object(fields), Some(def)) = (value, types.get(inner.named()))
        && let Some(inputs) = &def.input_fields
    {
        for input in inputs {
            if let Some(field) = fields.get(&input.name) {
                json_as_declared(types, &input.ty, field, &format!("{path}.{}", input.name))?;
            }
        }
    }
    Ok(())
}

/// A body of fields: a JSON object, or nothing at all (`{}` then).
fn body_object(body: &Bytes) -> Result<Map<String, Value>, Reject> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Reject(
            "BAD_REQUEST",
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err(Reject("BAD_REQUEST", format!("the body is not JSON: {e}"))),
    }
}

/// The version the resource has now, read through its GET twin as the same caller.
async fn current_version<B: Backend>(
    backend: &B,
    types: &Types,
    read: &Prepared,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    caller: &B::Caller,
    request_id: &str,
) -> Result<Option<i64>, Failure> {
    let vars = variables(types, read, params, "", headers, &Bytes::new(), &mut None).map_err(
        |Reject(code, message)| Failure {
            code: code.to_owned(),
            message,
        },
    )?;
    let request = async_graphql::Request::new(read.document.clone())
        .variables(async_graphql::Variables::from_json(Value::Object(vars)));
    let response = backend.execute(caller.clone(), request_id, request).await?;
    if let Some(error) = response.errors.first() {
        return Err(Failure {
            code: error_code(error),
            message: error.message.clone(),
        });
    }
    let data = response.data.into_json().unwrap_or(Value::Null);
    Ok(data[read.route.field]["version"].as_i64())
}

/// The code of the first `userErrors` entry of a mutation's payload.
fn first_user_error<'a>(response: &'a async_graphql::Response, field: &str) -> Option<&'a str> {
    let async_graphql::Value::Object(data) = &response.data else {
        return None;
    };
    let async_graphql::Value::Object(payload) = data.get(field)? else {
        return None;
    };
    let async_graphql::Value::List(errors) = payload.get("userErrors")? else {
        return None;
    };
    let async_graphql::Value::Object(first) = errors.first()? else {
        return None;
    };
    match first.get("code")? {
        async_graphql::Value::Enum(code) => Some(code.as_str()),
        async_graphql::Value::String(code) => Some(code.as_str()),
        _ => None,
    }
}

fn error_code(error: &async_graphql::ServerError) -> String {
    match error.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(async_graphql::Value::String(code)) => code.clone(),
        _ => "BAD_REQUEST".to_owned(),
    }
}

fn next_link(path: &str, query: &str, cursor: &str) -> String {
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    pairs.retain(|(k, _)| k != "after");
    pairs.push(("after".into(), cursor.into()));
    let encoded = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("<{path}?{encoded}>; rel=\"next\"")
}

async fn handle<B: Backend>(
    backend: &B,
    types: &Types,
    p: &Prepared,
    params: HashMap<String, String>,
    query: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let caller = match backend.authenticate(&headers).await {
        Ok(caller) => caller,
        Err(Failure { code, message }) => {
            return refuse(backend, &code, &message, &request_id);
        }
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "PAYLOAD_TOO_LARGE"
            } else {
                "BAD_REQUEST"
            };
            return refuse(backend, code, &rejection.body_text(), &request_id);
        }
    };
    if p.route.method == Method::Get && !body.is_empty() {
        return refuse(
            backend,
            "BAD_REQUEST",
            "a GET request takes no body",
            &request_id,
        );
    }
    let mut precondition = None;
    let mut vars = match variables(
        types,
        p,
        &params,
        &query,
        &headers,
        &body,
        &mut precondition,
    ) {
        Ok(vars) => vars,
        Err(Reject(code, detail)) => return refuse(backend, code, &detail, &request_id),
    };
    // `If-Match: *` holds whatever the version is: a change that lands between reading the
    // version and updating is not a conflict, so read again (a few times, then give up).
    let attempts = match precondition {
        Some((_, IfMatch::Any)) => 3,
        _ => 1,
    };
    let mut attempt = 0;
    let response = loop {
        attempt += 1;
        if let (Some((name, condition)), Some(read)) = (&precondition, &p.current) {
            match current_version(
                backend,
                types,
                read,
                &params,
                &headers,
                &caller,
                &request_id,
            )
            .await
            {
                Ok(Some(version))
                    if matches!(condition, IfMatch::Any)
                        || matches!(condition, IfMatch::Versions(v) if v.contains(&version)) =>
                {
                    vars.insert((*name).into(), Value::from(version));
                }
                // Gone, or at another version: the operation itself says which (404 or 412).
                Ok(_) => {
                    vars.insert((*name).into(), Value::from(NO_VERSION));
                }
                Err(Failure { code, message }) => {
                    return refuse(backend, &code, &message, &request_id);
                }
            }
        }
        let request = async_graphql::Request::new(p.document.clone()).variables(
            async_graphql::Variables::from_json(Value::Object(vars.clone())),
        );
        let response = match backend.execute(caller.clone(), &request_id, request).await {
            Ok(response) => response,
            Err(Failure { code, message }) => {
                return refuse(backend, &code, &message, &request_id);
            }
        };
        if attempt < attempts
            && first_user_error(&response, p.route.field) == Some("VERSION_CONFLICT")
        {
            continue;
        }
        break response;
    };
    if !response.errors.is_empty()
        && (response.data == async_graphql::Value::Null || p.route.method == Method::Get)
    {
        let first = &response.errors[0];
        return with_headers(
            problem(
                backend,
                &error_code(first),
                &first.message,
                &request_id,
                None,
            ),
            &response.http_headers,
        );
    }
    let data = response.data.clone().into_json().unwrap_or(Value::Null);
    let value = data.get(p.route.field).cloned().unwrap_or(Value::Null);
    let mut status = StatusCode::from_u16(p.route.status).unwrap_or(StatusCode::OK);
    let mut link = None;
    let body = match p.route.shape {
        Shape::Object => {
            if value.is_null() {
                let detail = format!(
                    "no such resource: {}",
                    params.values().cloned().collect::<Vec<_>>().join("/")
                );
                return refuse(backend, "NOT_FOUND", &detail, &request_id);
            }
            value
        }
        Shape::List => {
            let nodes: Vec<Value> = value["edges"]
                .as_array()
                .map(|edges| edges.iter().map(|e| e["node"].clone()).collect())
                .unwrap_or_default();
            let page = value["pageInfo"].clone();
            if page["hasNextPage"] == json!(true)
                && let Some(cursor) = page["endCursor"].as_str()
            {
                link = Some(next_link(p.route.path, &query, cursor));
            }
            json!({ "data": nodes, "pageInfo": page })
        }
        Shape::Payload(_) | Shape::WholePayload => {
            if let Some(errors) = value["userErrors"].as_array().filter(|e| !e.is_empty()) {
                let code = errors[0]["code"]
                    .as_str()
                    .unwrap_or("BAD_REQUEST")
                    .to_owned();
                let detail = errors[0]["message"].as_str().unwrap_or_default().to_owned();
                return with_headers(
                    problem(
                        backend,
                        &code,
                        &detail,
                        &request_id,
                        Some(Value::Array(errors.clone())),
                    ),
                    &response.http_headers,
                );
            }
            match p.route.shape {
                Shape::Payload(f) => value[f].clone(),
                _ => {
                    let mut whole = value.clone();
                    if let Some(object) = whole.as_object_mut() {
                        object.remove("userErrors");
                    }
                    whole
                }
            }
        }
    };
    let version = p
        .route
        .versioned
        .then(|| body["version"].as_i64())
        .flatten();
    // If-None-Match uses the weak comparison (RFC 9110 13.1.2).
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok());
    if p.route.method == Method::Get
        && let (Some(v), Some(inm)) = (version, if_none_match)
    {
        let current = etag(v);
        if inm.trim() == "*"
            || inm
                .split(',')
                .any(|t| t.trim().trim_start_matches("W/") == current)
        {
            status = StatusCode::NOT_MODIFIED;
        }
    }
    let mut http = if status == StatusCode::NOT_MODIFIED {
        status.into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    let out = http.headers_mut();
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&etag(v)).ok()) {
        out.insert(header::ETAG, v);
    }
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        out.insert(header::LINK, l);
    }
    if let (Some(template), Some(id)) = (p.route.location, body["id"].as_str())
        && let Ok(v) = HeaderValue::from_str(&template.replace("{id}", id))
    {
        out.insert(header::LOCATION, v);
    }
    for (name, value) in response.http_headers.iter() {
        out.insert(name.clone(), value.clone());
    }
    http
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_accept_tokens_and_sf_strings() {
        assert_eq!(idempotency_key("abc-123").as_deref(), Some("abc-123"));
        assert_eq!(idempotency_key("\"abc 123\"").as_deref(), Some("abc 123"));
        assert_eq!(idempotency_key("\"a\\\"b\"").as_deref(), Some("a\"b"));
        assert_eq!(idempotency_key("\"\""), None);
        assert_eq!(idempotency_key("  "), None);
        assert_eq!(idempotency_key("\"unterminated"), None);
        assert_eq!(idempotency_key("has space"), None);
    }

    #[test]
    fn if_match_takes_any_or_a_list_of_tags() {
        assert_eq!(if_match("*"), Some(IfMatch::Any));
        assert_eq!(if_match("\"3\""), Some(IfMatch::Versions(vec![3])));
        assert_eq!(
            if_match("\"3\", W/\"4\" ,\"5\""),
            Some(IfMatch::Versions(vec![3, 5]))
        );
        // Well-formed tags that are no version of ours never match: 412, not 400.
        assert_eq!(if_match("\"stale-0\""), Some(IfMatch::Versions(vec![])));
        assert_eq!(if_match("W/\"3\""), Some(IfMatch::Versions(vec![])));
        for malformed in ["3", "\"3", "\"3\" \"4\"", "\"3\",", "", "\"a b\""] {
            assert_eq!(if_match(malformed), None, "{malformed}");
        }
    }

    #[test]
    fn etags_are_strong_versions() {
        assert_eq!(etag_version("\"7\""), Some(7));
        assert_eq!(etag_version("W/\"7\""), None);
        assert_eq!(etag_version("7"), None);
        assert_eq!(etag(3), "\"3\"");
    }

    #[test]
    fn whole_floats_become_integers() {
        assert_eq!(
            integral_numbers(json!({ "a": [2.0, 2.5, 3] })),
            json!({ "a": [2, 2.5, 3] })
        );
        let parsed: Value = serde_json::from_str("[2251799813685247.0, 8933161067.0]").unwrap();
        assert_eq!(
            integral_numbers(parsed),
            json!([2251799813685247_i64, 8933161067_i64])
        );
    }

    #[test]
    fn titles_read_like_words() {
        assert_eq!(title("VERSION_CONFLICT"), "Version conflict");
    }

    #[test]
    fn next_links_replace_the_cursor() {
        assert_eq!(
            next_link("/v1/items", "first=2&after=a", "b/c"),
            "</v1/items?first=2&after=b%2Fc>; rel=\"next\""
        );
    }
}
