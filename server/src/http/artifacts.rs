//! `POST /v1/artifacts` (an upload, streamed to the store, size-limited, its media type checked)
//! and `GET /v1/artifacts/{id}` (a download, streamed). Files move as bytes, not through
//! GraphQL, so these two routes are served here; they authenticate, meter and answer problems
//! exactly as the route table's do.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::RequestId;
use super::rest::RestBackend;
use crate::artifacts::{self, NewArtifact, StoreError};
use crate::auth::{Caller, Principal};
use crate::error::ErrorCode;
use crate::tenancy::limits::Refusal;

fn problem(backend: &RestBackend, code: ErrorCode, detail: &str, request_id: &str) -> Response {
    metrics::counter!("twh_errors_total", "code" => code.as_str()).increment(1);
    twh_rest::handler::problem(backend, code.as_str(), detail, request_id, None)
}

/// The caller, if a tenant key of at least `write` ability when `write` (uploads).
async fn tenant(
    backend: &RestBackend,
    headers: &HeaderMap,
    request_id: &str,
    write: bool,
) -> Result<Principal, Response> {
    let caller = super::graphql::caller(&backend.state, headers)
        .await
        .map_err(|(code, message)| problem(backend, code, message, request_id))?;
    let principal = match caller {
        Caller::Tenant(principal) => principal,
        Caller::Operator => {
            return Err(problem(
                backend,
                ErrorCode::Forbidden,
                "the platform operator credential runs operator operations only; artifacts belong to a tenant's API key",
                request_id,
            ));
        }
    };
    if write && !principal.role.can_write() {
        return Err(problem(
            backend,
            ErrorCode::Forbidden,
            &format!(
                "uploading needs the operator role or above; this key is {}",
                principal.role.as_str()
            ),
            request_id,
        ));
    }
    // A file transfer is a call like any other: metered, and refused over the rate.
    match backend
        .state
        .limiter
        .check(&backend.state.background_db, &principal.tenant_id, 1)
        .await
    {
        Ok(decision) => match decision.refused {
            None => Ok(principal),
            Some(refusal) => {
                let code = match refusal {
                    Refusal::Rate => ErrorCode::RateLimited,
                    Refusal::Quota => ErrorCode::QuotaExceeded,
                };
                let mut response = problem(
                    backend,
                    code,
                    "over the plan's limits - Hint: retry after Retry-After seconds",
                    request_id,
                );
                if let Ok(value) = HeaderValue::from_str(&decision.retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                Err(response)
            }
        },
        Err(err) => {
            tracing::warn!(error = %err, "metering failed; the call is not counted");
            Ok(principal)
        }
    }
}

#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
}

fn valid_name(raw: &str) -> bool {
    !raw.is_empty()
        && raw.chars().count() <= artifacts::MAX_NAME_LEN
        && !raw
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\' || c == '"')
}

/// `POST /v1/artifacts?name=`: the body is the file.
pub async fn upload(
    State(backend): State<RestBackend>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let principal = match tenant(&backend, &headers, &request_id, true).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let config = &backend.state.config.artifacts;
    let Some(content_type) = artifacts::acceptable_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    ) else {
        return problem(
            &backend,
            ErrorCode::UnsupportedMediaType,
            &format!(
                "send the file with Content-Type one of: {}",
                artifacts::UPLOAD_TYPES.join(", ")
            ),
            &request_id,
        );
    };
    let name = query.name.unwrap_or_else(|| "upload.csv".to_owned());
    // Checked as sent: trimming first would hide a leading or trailing control character
    // (CR, LF, tab), which the contract refuses.
    if !valid_name(&name) || name.trim().is_empty() {
        return problem(
            &backend,
            ErrorCode::InvalidInput,
            &format!(
                "name is 1 to {} characters without slashes, quotes or control characters",
                artifacts::MAX_NAME_LEN
            ),
            &request_id,
        );
    }
    let too_large = |limit: u64| {
        problem(
            &backend,
            ErrorCode::PayloadTooLarge,
            &format!(
                "the file is larger than the upload limit of {limit} bytes (TWH_ARTIFACT_MAX_BYTES); nothing was stored - Hint: split it into smaller files"
            ),
            &request_id,
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_upload_bytes) {
        return too_large(config.max_upload_bytes);
    }
    let created_by = principal.actor();
    let stored = artifacts::store_stream(
        &backend.state.artifacts,
        &backend.state.db,
        NewArtifact {
            tenant_id: &principal.tenant_id,
            name: name.trim(),
            content_type: &content_type,
            purpose: "upload",
            job_id: None,
            created_by: &created_by,
        },
        body.into_data_stream(),
        config.max_upload_bytes,
        config.retention_days,
    )
    .await;
    match stored {
        Ok(artifact) => {
            let location = artifact.url.clone();
            let mut response = (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string(&artifact).unwrap_or_default(),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Err(StoreError::TooLarge { limit }) => too_large(limit),
        Err(StoreError::Body(reason)) => problem(
            &backend,
            ErrorCode::BadRequest,
            &format!("the upload was cut short: {reason}"),
            &request_id,
        ),
        Err(err) => {
            tracing::error!(error = %err, request.id = %request_id, "storing an upload failed");
            problem(
                &backend,
                ErrorCode::Unavailable,
                "the file store is not available; nothing was stored - Hint: retry shortly",
                &request_id,
            )
        }
    }
}

/// `GET /v1/artifacts/{id}`: the file, streamed.
pub async fn download(
    State(backend): State<RestBackend>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let principal = match tenant(&backend, &headers, &request_id, false).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let not_found = || {
        problem(
            &backend,
            ErrorCode::NotFound,
            &format!("no artifact {id:?} (files are kept for a retention period)"),
            &request_id,
        )
    };
    let stored = match artifacts::get(&backend.state.db, &principal.tenant_id, &id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return not_found(),
        Err(err) => {
            tracing::error!(error = %err, request.id = %request_id, "reading an artifact row failed");
            return problem(
                &backend,
                ErrorCode::Unavailable,
                "the database is not available",
                &request_id,
            );
        }
    };
    let stream = match artifacts::open(&backend.state.artifacts, &stored).await {
        Ok(stream) => stream,
        Err(object_store::Error::NotFound { .. }) => return not_found(),
        Err(err) => {
            tracing::error!(error = %err, request.id = %request_id, "opening an artifact failed");
            return problem(
                &backend,
                ErrorCode::Unavailable,
                "the file store is not available - Hint: retry shortly",
                &request_id,
            );
        }
    };
    let artifact = &stored.artifact;
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, artifact.content_type.clone());
    set(header::CONTENT_LENGTH, artifact.size_bytes.to_string());
    set(
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{}\"", artifact.name),
    );
    set(header::ETAG, format!("\"{}\"", artifact.sha256));
    set(
        header::HeaderName::from_static("x-content-type-options"),
        "nosniff".to_owned(),
    );
    response
}

/// A stock count file against the sandbox's sample data.
pub const UPLOAD_EXAMPLE: &str = "sku,location,quantity\nMUG-12OZ,WH-MAIN,40\n";

/// The two routes in the OpenAPI document, beside those the route table describes.
pub fn describe(document: &mut Value) {
    let problem = |description: &str| {
        json!({ "description": description, "content": { "application/problem+json": {
            "schema": { "$ref": "#/components/schemas/Problem" } } } })
    };
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let types: Vec<Value> = artifacts::UPLOAD_TYPES.iter().map(|t| json!(t)).collect();
    let mut content = serde_json::Map::new();
    for t in artifacts::UPLOAD_TYPES {
        // Bytes are stored as sent: a JSON file is any JSON document, anything else any bytes.
        let mut media = if *t == "application/json" {
            json!({ "schema": { "description": "Any JSON document, stored as sent." } })
        } else {
            json!({ "schema": { "type": "string", "format": "binary" } })
        };
        if *t == "text/csv" {
            media["example"] = json!(UPLOAD_EXAMPLE);
        }
        content.insert((*t).to_owned(), media);
    }
    // After every route of the table, upload then download.
    let last = paths
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|o| o.values()))
        .filter_map(|op| op["x-run-order"].as_u64())
        .max()
        .unwrap_or(0);
    let artifact = json!({ "$ref": "#/components/schemas/Artifact" });
    paths.insert(
        "/v1/artifacts".to_owned(),
        json!({ "post": {
            "operationId": "uploadArtifact",
            "summary": "Upload a file (an import's CSV); the body is the file",
            "tags": ["Jobs"],
            "description": format!("Streamed to the object store; at most TWH_ARTIFACT_MAX_BYTES. Content types: {}.", types.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")),
            "parameters": [{ "name": "name", "in": "query", "required": false,
                "description": "The file's name (default upload.csv)",
                "schema": { "type": "string", "minLength": 1, "maxLength": artifacts::MAX_NAME_LEN, "pattern": "^[^/\\\\\"\\x00-\\x1f\\x7f]+$" } }],
            "requestBody": { "required": true, "content": content },
            "responses": {
                "201": { "description": "Stored", "headers": { "Location": { "schema": { "type": "string" } } },
                    "content": { "application/json": { "schema": artifact, "example": {
                        "id": "art_01a218b5d9767121ace492ab1d5e3a1b", "name": "counts.csv",
                        "contentType": "text/csv", "sizeBytes": 41,
                        "sha256": "4204c8ddc4ee750db726cb866fe42bf4a676cec571cfd957697486b34afdc25b",
                        "purpose": "upload", "jobId": null,
                        "url": "/v1/artifacts/art_01a218b5d9767121ace492ab1d5e3a1b",
                        "createdAt": "2026-11-26T16:35:00Z", "expiresAt": "2026-12-26T16:35:00Z" } } },
                    "links": { "downloadArtifact": { "operationId": "downloadArtifact",
                        "parameters": { "path.id": "$response.body#/id" } } } },
                "400": problem("Bad request"),
                "401": problem("Unauthenticated"),
                "403": problem("Forbidden"),
                "413": problem("Larger than the upload limit; nothing stored"),
                "415": problem("Unsupported media type"),
                "422": problem("Invalid name"),
                "429": problem("Rate limited"),
                "503": problem("The store is unavailable"),
            },
            "x-run-order": last + 1,
        } }),
    );
    paths.insert(
        "/v1/artifacts/{id}".to_owned(),
        json!({ "get": {
            "operationId": "downloadArtifact",
            "summary": "Download a file (an upload, an export, a report or an error report)",
            "tags": ["Jobs"],
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": {
                "200": { "description": "The file", "content": {
                    "text/csv": { "schema": { "type": "string", "format": "binary" }, "example": UPLOAD_EXAMPLE },
                    // Reports and JSON uploads come back as the JSON they are.
                    "application/json": { "schema": { "description": "A JSON file, as stored." } },
                    "*/*": { "schema": { "type": "string", "format": "binary" } } } },
                "401": problem("Unauthenticated"),
                "403": problem("Forbidden"),
                "404": problem("No such artifact (or expired)"),
                "429": problem("Rate limited"),
                "503": problem("The store is unavailable"),
            },
            "x-run-order": last + 2,
        } }),
    );
}
