//! The web console at `/console`: its assets, built from `console/` and embedded at compile time
//! (`cargo run --bin twh` needs no Node), and its sessions.
//!
//! Signing in (`POST /console/session` with a tenant's API key, or the platform operator's
//! `TWH_ADMIN_TOKEN`) sets a session JWT in an HttpOnly, SameSite=Strict cookie (Secure when the
//! console is reached over TLS) and answers with the session's CSRF token. Every HTTP request the
//! cookie authenticates must repeat that token in `X-CSRF-Token` (a page of another site can make
//! the browser send the cookie, never the header), and a WebSocket it authenticates must come
//! from this server's own origin. The key or token typed in is never stored in the browser.
//!
//! The page and its assets are the sign-in page: they hold no data, and every datum they show
//! comes from the API, which answers nothing without a session.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::RequestId;
use super::graphql::error_response;
use crate::app::AppState;
use crate::auth::jwt::Claims;
use crate::auth::{Caller, Role};
use crate::error::ErrorCode;

/// The cookie that carries a console session.
pub const COOKIE: &str = "twh_console";
/// The header that repeats a cookie session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a console session lives: a working day, then the console asks to sign in again.
pub const SESSION_SECS: u64 = 8 * 3600;

const INDEX_HTML: &str = include_str!("../../../console/dist/index.html");
/// The built assets, by file name under `/console/assets/`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/dist/assets/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../../console/dist/assets/console.css"),
    ),
];

/// Scripts, styles and connections from this origin only; never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

pub fn routes<S: Clone + Send + Sync + 'static>(state: AppState) -> Router<S> {
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/assets/{file}", get(asset))
        .route(
            "/console/session",
            get(current).post(sign_in).delete(sign_out),
        )
        .route("/console/{*screen}", get(page))
        .with_state(state)
}

/// The console's pages and files: its policy, and never in a frame.
fn hardened(response: Response) -> Response {
    super::own_page(response, CONTENT_SECURITY_POLICY, true)
}

/// Every screen is the one page; the app routes in the browser.
async fn page() -> Response {
    hardened(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            INDEX_HTML,
        )
            .into_response(),
    )
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => hardened(
            (
                [
                    (header::CONTENT_TYPE, *content_type),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *body,
            )
                .into_response(),
        ),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignIn {
    api_key: Option<String>,
    admin_token: Option<String>,
}

/// What the console knows of its session.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionView {
    /// `tenant` or `operator`.
    kind: &'static str,
    tenant_id: Option<String>,
    role: Option<&'static str>,
    expires_at: String,
    csrf_token: String,
}

impl SessionView {
    fn of(claims: &Claims) -> Self {
        let expires_at = chrono::DateTime::from_timestamp(claims.exp as i64, 0)
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        Self {
            kind: if claims.op { "operator" } else { "tenant" },
            tenant_id: (!claims.op).then(|| claims.tid.clone()),
            role: (!claims.op).then(|| claims.role.as_str()),
            expires_at,
            csrf_token: claims.csrf.clone().unwrap_or_default(),
        }
    }
}

fn refuse(headers: &HeaderMap, request_id: &RequestId, code: ErrorCode, message: &str) -> Response {
    error_response(headers, code, message, &request_id.0)
}

/// `POST /console/session`: `{"apiKey": …}` or `{"adminToken": …}`.
async fn sign_in(
    State(state): State<AppState>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let input: SignIn = match serde_json::from_slice(&body) {
        Ok(input) => input,
        Err(err) => {
            return refuse(
                &headers,
                &request_id,
                ErrorCode::BadRequest,
                &format!("the body must be {{\"apiKey\": …}} or {{\"adminToken\": …}}: {err}"),
            );
        }
    };
    let wrong = || {
        refuse(
            &headers,
            &request_id,
            ErrorCode::Unauthenticated,
            "that key or token is not valid (revoked, expired, mistyped, or its tenant is suspended)",
        )
    };
    let minted = match (input.api_key, input.admin_token) {
        (Some(key), None) => {
            // A session is signed in with the key itself, not with another session.
            if crate::auth::jwt::looks_like_jwt(key.trim()) {
                return wrong();
            }
            match super::graphql::found(crate::auth::verify(&state, key.trim()).await) {
                Ok(principal) => {
                    let minted = state.sessions.mint_console(
                        &principal.key_id,
                        &principal.tenant_id,
                        principal.role,
                        SESSION_SECS,
                        false,
                    );
                    if let Ok((_, claims)) = &minted {
                        audit_sign_in(&state, principal, claims, &request_id.0).await;
                    }
                    minted
                }
                Err((ErrorCode::Unauthenticated, _)) => return wrong(),
                Err((code, message)) => return refuse(&headers, &request_id, code, message),
            }
        }
        (None, Some(token)) => match operator_fingerprint(&state) {
            Some(fingerprint) if is_admin_token(&state, token.trim()) => state
                .sessions
                .mint_console(&fingerprint, "", Role::Owner, SESSION_SECS, true),
            _ => return wrong(),
        },
        _ => {
            return refuse(
                &headers,
                &request_id,
                ErrorCode::BadRequest,
                "send exactly one of apiKey (a tenant's API key) and adminToken (TWH_ADMIN_TOKEN)",
            );
        }
    };
    let (token, claims) = match minted {
        Ok(minted) => minted,
        Err(err) => {
            tracing::error!(
                error = format!("{err:#}"),
                "minting a console session failed"
            );
            return refuse(&headers, &request_id, ErrorCode::Internal, "internal error");
        }
    };
    let response = axum::Json(SessionView::of(&claims)).into_response();
    no_store(with_cookie(
        response,
        &state,
        &headers,
        &token,
        SESSION_SECS,
    ))
}

/// The tenant's audit log names each console session when it starts (its later requests name
/// it as their actor).
async fn audit_sign_in(
    state: &AppState,
    mut principal: crate::auth::Principal,
    claims: &Claims,
    request_id: &str,
) {
    principal.session = Some(claims.jti.clone());
    let view = SessionView::of(claims);
    let entry = crate::audit::AuditEntry {
        action: "console.sign_in",
        target_type: "session",
        target_id: &claims.jti,
        request_id: Some(request_id),
        data: serde_json::json!({ "role": view.role, "expiresAt": view.expires_at }),
    };
    if let Err(err) = crate::audit::record(&state.db, &principal, entry).await {
        tracing::warn!(error = %err, "writing the audit record of a console sign-in failed");
    }
}

/// `GET /console/session`: the signed-in session (and its CSRF token, after a reload).
async fn current(
    State(state): State<AppState>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let unauthenticated =
        |message: &str| refuse(&headers, &request_id, ErrorCode::Unauthenticated, message);
    let Some((token, claims)) = session(&state, &headers) else {
        return unauthenticated("not signed in");
    };
    let view = SessionView::of(&claims);
    match in_force(&state, token, claims).await {
        Ok(_) => no_store(axum::Json(view).into_response()),
        Err((ErrorCode::Unauthenticated, _)) => unauthenticated(
            "the session has ended (its key was revoked or its tenant suspended); sign in again",
        ),
        Err((code, message)) => refuse(&headers, &request_id, code, message),
    }
}

/// `DELETE /console/session`: signs out (the cookie is cleared; the token it held expires on
/// its own, and ends at once with a revoked key or a suspended tenant).
async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        &state,
        &headers,
        "",
        0,
    )
}

/// Sets the session cookie to `value` for `max_age` seconds (0 clears it).
fn with_cookie(
    mut response: Response,
    state: &AppState,
    headers: &HeaderMap,
    value: &str,
    max_age: u64,
) -> Response {
    let secure = if served_over_tls(state, headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether the browser reached us over TLS: the public URL is https, or the proxy in front
/// says so.
fn served_over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.http.public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

pub fn is_admin_token(state: &AppState, presented: &str) -> bool {
    state
        .config
        .admin_token
        .as_deref()
        .is_some_and(|admin| presented.as_bytes().ct_eq(admin.as_bytes()).into())
}

/// Names the admin token in an operator session without holding it: a changed token ends the
/// sessions signed in with the old one.
fn operator_fingerprint(state: &AppState) -> Option<String> {
    use sha2::{Digest, Sha256};
    let admin = state.config.admin_token.as_deref()?;
    Some(format!(
        "operator:{}",
        hex::encode(&Sha256::digest(admin.as_bytes())[..12])
    ))
}

/// The console cookie's token and its claims, when it holds a valid console session.
fn session<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<(&'h str, Claims)> {
    let token = cookie(headers)?;
    let claims = state.sessions.verify(token)?;
    claims.csrf.is_some().then_some((token, claims))
}

/// The value of the console cookie, if the request carries one.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The caller of a request that carries no `Authorization` header: the console session in its
/// cookie, provided the request repeats the session's CSRF token.
pub async fn cookie_caller(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, (ErrorCode, &'static str)> {
    if cookie(headers).is_none() {
        return Err((ErrorCode::Unauthenticated, crate::auth::MISSING_CREDENTIALS));
    }
    let Some((token, claims)) = session(state, headers) else {
        return Err((
            ErrorCode::Unauthenticated,
            "the console session has expired or is not valid - Hint: sign in again",
        ));
    };
    let expected = claims.csrf.as_deref().unwrap_or_default();
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Err((
            ErrorCode::Forbidden,
            "a request signed in by the console's cookie must repeat its CSRF token - Hint: send the `X-CSRF-Token` header the sign-in returned",
        ));
    }
    in_force(state, token, claims).await
}

/// The caller a verified console session stands for, while it is in force: the operator while
/// the admin token is the one it signed in with, a tenant while its key is valid.
async fn in_force(
    state: &AppState,
    token: &str,
    claims: Claims,
) -> Result<Caller, (ErrorCode, &'static str)> {
    if claims.op {
        return if operator_fingerprint(state).is_some_and(|f| f == claims.sub) {
            Ok(Caller::Operator)
        } else {
            Err((ErrorCode::Unauthenticated, crate::auth::MISSING_CREDENTIALS))
        };
    }
    super::graphql::found(crate::auth::verify_session(state, token, claims).await)
        .map(Caller::Tenant)
}

/// A tenant's console session in the cookie of a WebSocket upgrade from this server's own
/// origin (browsers always send `Origin` with one; another site's page cannot forge it).
pub fn websocket_session(headers: &HeaderMap) -> Option<String> {
    let token = cookie(headers)?;
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    (origin_host.eq_ignore_ascii_case(host)).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_console_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; twh_console=abc.def.ghi; b=2")]);
        assert_eq!(cookie(&h), Some("abc.def.ghi"));
        assert_eq!(cookie(&headers(&[("cookie", "twh_consoleX=1")])), None);
        assert_eq!(cookie(&headers(&[("cookie", "twh_console=")])), None);
        assert_eq!(cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn a_websocket_session_needs_the_servers_own_origin() {
        let same = headers(&[
            ("cookie", "twh_console=t.o.k"),
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert_eq!(websocket_session(&same).as_deref(), Some("t.o.k"));
        let other = headers(&[
            ("cookie", "twh_console=t.o.k"),
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert_eq!(websocket_session(&other), None);
        let no_origin = headers(&[("cookie", "twh_console=t.o.k"), ("host", "127.0.0.1:8080")]);
        assert_eq!(websocket_session(&no_origin), None);
    }
}
