//! The HTTP surface: `/graphql` (POST, GET and GraphiQL), `/v1`, `/console`, `/healthz`, `/readyz`, `/metrics`,
//! with request ids, authentication, body limits, timeouts and metrics on every request.

pub mod artifacts;
pub mod console;
pub mod graphiql;
pub mod graphql;
pub mod rest;
pub mod ws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sea_orm::ConnectionTrait;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use crate::app::AppState;
use crate::observability;

/// The id of the request being served, set by the request-id middleware.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

pub async fn router(state: AppState) -> anyhow::Result<Router> {
    let schema = crate::graphql::build(state.clone());
    let limit = state.config.http.max_body_bytes;
    let timeout = Duration::from_secs(state.config.http.request_timeout_secs);
    let (types, prepared, openapi) = rest::contract(&schema).await?;
    // Rendered once, in the same key order as the checked-in openapi.yaml.
    let openapi = axum::body::Bytes::from(twh_rest::openapi::to_json(&openapi));
    let backend = rest::RestBackend {
        state: state.clone(),
        schema: schema.clone(),
    };
    let artifact_routes = Router::new()
        .route("/v1/artifacts", axum::routing::post(artifacts::upload))
        .route("/v1/artifacts/{id}", get(artifacts::download))
        .layer(DefaultBodyLimit::disable())
        .with_state(backend.clone());
    let rest_routes = twh_rest::handler::router(backend, Arc::new(types), prepared).route(
        "/v1/openapi.json",
        get(move || {
            let openapi = openapi.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    openapi,
                )
            }
        }),
    );
    let state_for_console = state.clone();
    Ok(Router::new()
        .route("/graphql", get(graphql_get).post(graphql::post_handler))
        .route("/graphql/ws", get(graphql_ws))
        .route("/graphiql/{file}", get(graphiql::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route(
            "/docs/errors",
            get(|| async { axum::response::Html(crate::error::ErrorCode::reference_html()) }),
        )
        .with_state((state, schema))
        .merge(rest_routes)
        .merge(artifact_routes)
        .merge(console::routes(state_for_console))
        .layer(DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(graphql::panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(middleware::from_fn(request_context)))
}

/// `GET /graphql`: a WebSocket upgrade (subscriptions), else a query in the URL or GraphiQL.
async fn graphql_get(
    State((state, schema)): State<(AppState, crate::graphql::TwhSchema)>,
    req: Request,
) -> Response {
    let upgrade = req
        .headers()
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        use axum::handler::Handler;
        return graphql::get_handler.call(req, (state, schema)).await;
    }
    let (mut parts, _) = req.into_parts();
    match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws::upgrade(state, schema, &parts.headers, ws),
        Err(rejection) => rejection.into_response(),
    }
}

/// `GET /graphql/ws`: GraphQL over WebSocket (`graphql-transport-ws`).
async fn graphql_ws(
    State((state, schema)): State<(AppState, crate::graphql::TwhSchema)>,
    headers: axum::http::HeaderMap,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    ws::upgrade(state, schema, &headers, ws)
}

fn valid_request_id(raw: &HeaderValue) -> Option<String> {
    let s = raw.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then(|| s.to_owned())
}

/// Gives each request an id (the caller's `X-Request-Id` if sane), a log span and metrics.
async fn request_context(mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(valid_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert("x-request-id", value);
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        request.id = %request_id,
        http.method = %method,
        http.route = %route,
        tenant.id = tracing::field::Empty
    );
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    observability::record_request(&route, status, elapsed);
    span.in_scope(|| {
        tracing::info!(
            http.status = status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request served"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn readyz(State((state, _)): State<(AppState, crate::graphql::TwhSchema)>) -> Response {
    match state.db.execute_unprepared("SELECT 1").await {
        // Requests are served without Redis (limits and counts fall back to each process),
        // so an outage degrades readiness instead of failing it; the detail says so.
        Ok(_) => {
            let mut degraded = Vec::new();
            if state.limiter.ping_redis().await == Some(false) {
                degraded.push("Redis is unreachable; rate limits and usage counts run per process until it returns".to_owned());
            }
            // Search never blocks readiness: writes go on and the index catches up.
            if let crate::search::Engine::Meilisearch(meili) = &state.search.engine
                && !meili.healthy().await
            {
                degraded.push("Meilisearch is unreachable; search fails and the index catches up when it returns".to_owned());
            }
            match crate::search::indexer::lag_seconds(&state).await {
                Ok(lag) if lag > 5.0 => degraded.push(format!(
                    "the {} search index is {lag:.1} s behind the event log",
                    state.search.engine_name()
                )),
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "reading the search index lag failed"),
            }
            if degraded.is_empty() {
                (StatusCode::OK, "ready").into_response()
            } else {
                (
                    StatusCode::OK,
                    format!("ready (degraded: {})", degraded.join("; ")),
                )
                    .into_response()
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn metrics_handler() -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        observability::render(),
    )
        .into_response()
}

/// A page or file the server serves itself (the console, GraphiQL), with the headers such
/// responses carry: its Content-Security-Policy, no MIME sniffing, no referrer, and with
/// `deny_framing` no framing either.
pub(crate) fn own_page(mut response: Response, csp: &'static str, deny_framing: bool) -> Response {
    use axum::http::header;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if deny_framing {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
