//! GraphQL over HTTP: authentication, body parsing with clear errors, content negotiation
//! (`application/graphql-response+json`), and status codes for request-level failures.

use async_graphql::parser::types::OperationType;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::RequestId;
use crate::app::AppState;
use crate::auth::{Caller, Principal, RequestMeta};
use crate::error::ErrorCode;
use crate::graphql::TwhSchema;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

type AppStateWithSchema = (AppState, TwhSchema);

fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(GRAPHQL_RESPONSE))
}

/// A request-level failure as a GraphQL response body with `extensions.code`.
pub fn error_response(
    headers: &HeaderMap,
    code: ErrorCode,
    message: &str,
    request_id: &str,
) -> Response {
    metrics::counter!("twh_errors_total", "code" => code.as_str()).increment(1);
    let body = serde_json::json!({
        "errors": [{
            "message": message,
            "extensions": { "code": code.as_str(), "requestId": request_id }
        }]
    });
    let content_type = if wants_graphql_response(headers) {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    };
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response();
    if code == ErrorCode::Unavailable {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    if code == ErrorCode::Unauthenticated {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    error_response(&HeaderMap::new(), ErrorCode::Internal, "internal error", "")
}

/// The caller: the platform operator when the bearer is `TWH_ADMIN_TOKEN`, else a tenant's key
/// (or a session it minted); with no `Authorization` header, the console's cookie session.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, (ErrorCode, &'static str)> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or("")
                .trim()
        });
    match presented {
        None => super::console::cookie_caller(state, headers).await,
        Some(token) if super::console::is_admin_token(state, token) => Ok(Caller::Operator),
        Some(token) => tenant(state, token).await.map(Caller::Tenant),
    }
}

/// The tenant principal of a bearer token (an API key or a session JWT).
pub async fn tenant(state: &AppState, token: &str) -> Result<Principal, (ErrorCode, &'static str)> {
    if token.is_empty() {
        return Err((ErrorCode::Unauthenticated, crate::auth::MISSING_CREDENTIALS));
    }
    found(crate::auth::verify(state, token).await)
}

/// The outcome of a credential look-up as the caller or the refusal: unknown is
/// `UNAUTHENTICATED`, a database outage `UNAVAILABLE` (retry), anything else `INTERNAL`.
pub fn found(
    lookup: anyhow::Result<Option<Principal>>,
) -> Result<Principal, (ErrorCode, &'static str)> {
    match lookup {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err((ErrorCode::Unauthenticated, crate::auth::MISSING_CREDENTIALS)),
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "authentication lookup failed");
            if crate::db::outage_in(&err).is_some() {
                Err((ErrorCode::Unavailable, crate::error::UNAVAILABLE_MESSAGE))
            } else {
                Err((ErrorCode::Internal, "internal error"))
            }
        }
    }
}

/// Authenticates the caller and runs the request through the schema: the one path every
/// GraphQL and REST call takes.
pub async fn run(
    state: &AppState,
    schema: &TwhSchema,
    headers: &HeaderMap,
    request_id: &str,
    mut request: async_graphql::Request,
) -> Result<async_graphql::Response, (ErrorCode, &'static str)> {
    // The schema is public (schema.graphql, the OpenAPI document): a request with no
    // credentials at all may introspect it, so GraphiQL's docs and code generators work
    // before a key is pasted. It reaches no resolver of ours; those all need a principal.
    if !headers.contains_key(header::AUTHORIZATION) {
        state.documents.attach(&mut request);
        if introspection_only(&mut request) {
            return Ok(schema.execute(request).await);
        }
    }
    let caller = caller(state, headers).await?;
    run_as(state, schema, caller, RequestMeta::new(request_id), request).await
}

/// Whether the operation the request selects reads nothing but `__schema`, `__type` and
/// `__typename` at its root.
fn introspection_only(request: &mut async_graphql::Request) -> bool {
    use async_graphql::parser::types::{Selection, SelectionSet};
    fn only_meta(set: &SelectionSet, fragments: &FragmentMap, depth: usize) -> bool {
        depth < 4
            && set.items.iter().all(|item| match &item.node {
                Selection::Field(field) => field.node.name.node.starts_with("__"),
                Selection::InlineFragment(inline) => {
                    only_meta(&inline.node.selection_set.node, fragments, depth + 1)
                }
                Selection::FragmentSpread(spread) => fragments
                    .get(&spread.node.fragment_name.node)
                    .is_some_and(|f| only_meta(&f.node.selection_set.node, fragments, depth + 1)),
            })
    }
    type FragmentMap = std::collections::HashMap<
        async_graphql::Name,
        async_graphql::Positioned<async_graphql::parser::types::FragmentDefinition>,
    >;
    let name = request.operation_name.clone();
    let Ok(doc) = request.parsed_query() else {
        return false;
    };
    selected_operation(doc, name.as_deref()).is_some_and(|op| {
        op.node.ty == OperationType::Query
            && only_meta(&op.node.selection_set.node, &doc.fragments, 0)
    })
}

/// The operation a request runs: the named one, or the only one.
fn selected_operation<'a>(
    doc: &'a async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a async_graphql::Positioned<async_graphql::parser::types::OperationDefinition>> {
    use async_graphql::parser::types::DocumentOperations;
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        // One named operation and no name asked for: that one runs.
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        _ => None,
    }
}

/// Runs the request for an already authenticated caller.
pub async fn run_as(
    state: &AppState,
    schema: &TwhSchema,
    caller: Caller,
    meta: RequestMeta,
    mut request: async_graphql::Request,
) -> Result<async_graphql::Response, (ErrorCode, &'static str)> {
    // Postgres text cannot hold NUL; refuse it here rather than fail in the database.
    if request.query.contains('\0') || request.variables.iter().any(|(_, v)| has_nul(v)) {
        return Err((
            ErrorCode::InvalidInput,
            "text may not contain NUL (U+0000) characters",
        ));
    }
    let principal = match caller {
        Caller::Tenant(principal) => principal,
        Caller::Operator => {
            tracing::Span::current().record("tenant.id", "platform_operator");
            state.documents.attach(&mut request);
            let request = request
                .data(crate::auth::Operator)
                .data(meta)
                .data(crate::graphql::loaders::Loaders::default());
            return Ok(schema.execute(request).await);
        }
    };
    tracing::Span::current().record("tenant.id", principal.tenant_id.as_str());
    state.documents.attach(&mut request);
    // A read that met a connection the database had dropped is run once more: the pool pings
    // its connections for a while after such a failure, so the second run gets a live one.
    // Writes are not re-run here; their transaction retries its BEGIN, which is safe.
    let retry = is_query(&mut request).then(|| {
        let mut again =
            async_graphql::Request::new(request.query.clone()).variables(request.variables.clone());
        again.operation_name = request.operation_name.clone();
        again
    });
    let mut response = schema
        .execute(for_caller(request, principal.clone(), meta.clone()))
        .await;
    let connection_lost = response
        .errors
        .first()
        .is_some_and(|e| e.source::<crate::error::ConnectionLost>().is_some());
    if let (true, Some(mut again)) = (connection_lost, retry) {
        state.documents.attach(&mut again);
        response = schema
            .execute(for_caller(again, principal.clone(), meta.clone()))
            .await;
    }
    crate::graphql::metering::report(state, &principal, &meta, &mut response).await;
    Ok(response)
}

/// The request with what resolvers read from it: the caller, the request's metadata and its
/// own (empty until used) batch loaders.
pub(crate) fn for_caller(
    request: async_graphql::Request,
    principal: Principal,
    meta: RequestMeta,
) -> async_graphql::Request {
    request
        .data(principal)
        .data(meta)
        .data(crate::graphql::loaders::Loaders::default())
}

/// Whether the operation the request selects is a query (reads only).
fn is_query(request: &mut async_graphql::Request) -> bool {
    let name = request.operation_name.clone();
    let Ok(doc) = request.parsed_query() else {
        return false;
    };
    selected_operation(doc, name.as_deref()).is_some_and(|op| op.node.ty == OperationType::Query)
}

fn has_nul(value: &async_graphql::Value) -> bool {
    use async_graphql::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::List(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The code of a response's first error, if it has one we know.
pub fn first_error_code(response: &async_graphql::Response) -> Option<ErrorCode> {
    response.errors.first().and_then(crate::graphql::error_code)
}

/// A response to a request refused before execution: errors, no `data` entry.
#[derive(serde::Serialize)]
struct RequestErrors<'a> {
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

async fn execute(
    state: AppState,
    schema: TwhSchema,
    headers: HeaderMap,
    request_id: String,
    request: async_graphql::Request,
) -> Response {
    let response = match run(&state, &schema, &headers, &request_id, request).await {
        Ok(response) => response,
        Err((code, message)) => return error_response(&headers, code, message, &request_id),
    };

    // A request error (refused before execution: no data, no error with a path) has no `data`
    // entry at all. Its status follows the accepted media type (GraphQL over HTTP): with
    // `application/graphql-response+json` the code's own status; with `application/json`, a
    // document the schema refuses (parse, validation, variables) is a 200 like any other
    // well-formed request, while authentication, limits and outages keep their status.
    let graphql_response = wants_graphql_response(&headers);
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = if response.data == async_graphql::Value::Null && !response.errors.is_empty() {
        let code = first_error_code(&response).unwrap_or(ErrorCode::BadRequest);
        // Credentials, limits and the server's own failures keep their status whatever the
        // media type; otherwise a request that reached execution (its `data` is present,
        // even null) is a 200, and so is any refused document under application/json.
        let keeps_status = matches!(
            code,
            ErrorCode::Unauthenticated
                | ErrorCode::Forbidden
                | ErrorCode::RateLimited
                | ErrorCode::QuotaExceeded
                | ErrorCode::PayloadTooLarge
                | ErrorCode::Internal
                | ErrorCode::Unavailable
        );
        if keeps_status || (request_error && graphql_response) {
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
        } else {
            StatusCode::OK
        }
    } else {
        StatusCode::OK
    };
    let content_type = if graphql_response {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    };
    let serialised = if request_error {
        serde_json::to_vec(&RequestErrors {
            errors: &response.errors,
            extensions: &response.extensions,
        })
    } else {
        serde_json::to_vec(&response)
    };
    let body = match serialised {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(error = %err, "serialising a GraphQL response");
            return error_response(&headers, ErrorCode::Internal, "internal error", &request_id);
        }
    };
    let mut http = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        http.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    for (name, value) in response.http_headers.iter() {
        http.headers_mut().insert(name.clone(), value.clone());
    }
    http
}

pub async fn post_handler(
    State((state, schema)): State<AppStateWithSchema>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ErrorCode::PayloadTooLarge
            } else {
                ErrorCode::BadRequest
            };
            return error_response(&headers, code, &rejection.body_text(), &request_id);
        }
    };
    if let Err(message) = json_content_type(&headers) {
        return error_response(
            &headers,
            ErrorCode::UnsupportedMediaType,
            &message,
            &request_id,
        );
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return error_response(
            &headers,
            ErrorCode::BadRequest,
            "batched requests are not supported - Hint: send one operation per request",
            &request_id,
        );
    }
    let mut request = match serde_json::from_slice::<PostBody>(&body) {
        Ok(body) => match body.into_request() {
            Some(request) => request,
            None => {
                return error_response(
                    &headers,
                    ErrorCode::BadRequest,
                    "the body is not a GraphQL request: missing field `query` - Hint: send JSON {\"query\": \"…\", \"variables\": {…}}, or with extensions.persistedQuery the hash of a query sent before",
                    &request_id,
                );
            }
        },
        Err(err) => {
            return error_response(
                &headers,
                ErrorCode::BadRequest,
                &format!(
                    "the body is not a GraphQL request: {err} - Hint: send JSON {{\"query\": \"…\", \"variables\": {{…}}}}"
                ),
                &request_id,
            );
        }
    };
    if let Err(refusal) = state.documents.resolve_persisted(&mut request) {
        return persisted_refusal(&headers, refusal, &request_id);
    }
    execute(state, schema, headers, request_id, request).await
}

/// The parameters of a POST (GraphQL over HTTP): `query` must be a string and is required
/// unless `extensions.persistedQuery` stands for it, so a body without either is a malformed
/// request (400), not a document that fails to parse.
#[derive(serde::Deserialize)]
struct PostBody {
    query: Option<String>,
    #[serde(default, rename = "operationName")]
    operation_name: Option<String>,
    #[serde(default)]
    variables: async_graphql::Variables,
    /// A map or null; anything else is a malformed request.
    #[serde(default)]
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

impl PostBody {
    fn into_request(self) -> Option<async_graphql::Request> {
        let persisted = self
            .extensions
            .as_ref()
            .is_some_and(|e| e.contains_key("persistedQuery"));
        if self.query.is_none() && !persisted {
            return None;
        }
        let mut request =
            async_graphql::Request::new(self.query.unwrap_or_default()).variables(self.variables);
        request.operation_name = self.operation_name;
        for (name, value) in self.extensions.into_iter().flatten() {
            if let Ok(value) = async_graphql::Value::from_json(value) {
                request.extensions.insert(name, value);
            }
        }
        Some(request)
    }
}

/// A POST body must be declared JSON (`application/json`, any charset parameter being UTF-8).
fn json_content_type(headers: &HeaderMap) -> Result<(), String> {
    const HINT: &str = "Hint: send `Content-Type: application/json` with a JSON body";
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(format!("the request has no Content-Type - {HINT}"));
    };
    let value = value.to_str().unwrap_or_default();
    let mut parts = value.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or_default();
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => charset
            .trim()
            .trim_matches('"')
            .eq_ignore_ascii_case("utf-8"),
        _ => true,
    });
    if media_type.eq_ignore_ascii_case("application/json") && charset_ok {
        Ok(())
    } else {
        Err(format!("Content-Type `{value}` is not supported - {HINT}"))
    }
}

pub async fn get_handler(
    State((state, schema)): State<AppStateWithSchema>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if query.is_empty() && wants_html {
        return super::graphiql::page();
    }
    let mut request = match async_graphql::http::parse_query_string(&query) {
        Ok(r) => r,
        Err(err) => {
            return error_response(
                &headers,
                ErrorCode::BadRequest,
                &format!("invalid query string: {err}"),
                &request_id,
            );
        }
    };
    if let Err(refusal) = state.documents.resolve_persisted(&mut request) {
        return persisted_refusal(&headers, refusal, &request_id);
    }
    // Mutations over GET would let a link change data; GraphQL over HTTP forbids it.
    if let Ok(doc) = async_graphql::parser::parse_query(&request.query) {
        let is_mutation = doc.operations.iter().any(|(name, op)| {
            op.node.ty == OperationType::Mutation
                && (request.operation_name.is_none()
                    || name.map(|n| n.as_str()) == request.operation_name.as_deref())
        });
        if is_mutation {
            let mut response = error_response(
                &headers,
                ErrorCode::BadRequest,
                "mutations must be sent with POST",
                &request_id,
            );
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }
    }
    let response = execute(state, schema, headers.clone(), request_id, request).await;
    revalidated(&headers, response).await
}

/// A query answered over GET may be kept by the client (never by a shared cache: it is one
/// tenant's data) and must be revalidated: `Cache-Control: private, no-cache` and an `ETag` of
/// the body; an `If-None-Match` naming the same tag gets `304 Not Modified` without the body.
async fn revalidated(headers: &HeaderMap, response: Response) -> Response {
    use sha2::{Digest, Sha256};
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return error_response(headers, ErrorCode::Internal, "internal error", "");
    };
    let tag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
    let cache = [
        (header::CACHE_CONTROL, "private, no-cache"),
        (header::VARY, "Authorization, Cookie, Accept"),
    ];
    for (name, value) in cache {
        parts
            .headers
            .insert(name, header::HeaderValue::from_static(value));
    }
    if let Ok(value) = header::HeaderValue::from_str(&tag) {
        parts.headers.insert(header::ETAG, value);
    }
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == tag || t == "*")
        });
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A persisted query that could not be used: `PERSISTED_QUERY_NOT_FOUND` (with the message
/// Apollo's clients look for, as a 200 under `application/json` like any refused document) or
/// a malformed extension (400).
fn persisted_refusal(
    headers: &HeaderMap,
    refusal: crate::graphql::PersistedRefusal,
    request_id: &str,
) -> Response {
    match refusal {
        crate::graphql::PersistedRefusal::Invalid(message) => {
            error_response(headers, ErrorCode::BadRequest, message, request_id)
        }
        crate::graphql::PersistedRefusal::NotFound => {
            let mut response = error_response(
                headers,
                ErrorCode::PersistedQueryNotFound,
                "PersistedQueryNotFound",
                request_id,
            );
            if !wants_graphql_response(headers) {
                *response.status_mut() = StatusCode::OK;
            }
            response
        }
    }
}
