//! Every valid operation a tenant runs is metered and passes its token bucket here, whatever
//! the surface (GraphQL over HTTP, REST through the route table, WebSocket subscriptions).
//!
//! An operation costs `1 + complexity / 1000` units of the bucket: a lookup or a page of 50
//! costs 1, a page of 250 rows with a dozen fields about 4 (connections count their page size
//! times their fields). The response says what it cost and what is left (`extensions.cost`, in the shape of
//! Shopify's), and over HTTP in the IETF `RateLimit` / `RateLimit-Policy` fields.

use async_graphql::extensions::ExtensionContext;
use async_graphql::{ServerError, ValidationResult};
use axum::http::HeaderValue;

use crate::app::AppState;
use crate::auth::{Principal, RequestMeta};
use crate::error::ErrorCode;
use crate::tenancy::limits::{Decision, Refusal, period_bounds};

/// Units an operation of this complexity takes from the bucket.
pub fn cost(complexity: usize) -> u64 {
    1 + complexity as u64 / 1000
}

/// Meters the operation and refuses it (`RATE_LIMITED`, `QUOTA_EXCEEDED`) when over a limit. A
/// request executed again (a REST retry) keeps its first decision and is not counted again.
pub async fn check(
    ctx: &ExtensionContext<'_>,
    result: &ValidationResult,
) -> Result<(), ServerError> {
    let (Some(principal), Some(meta), Some(state)) = (
        ctx.data_opt::<Principal>(),
        ctx.data_opt::<RequestMeta>(),
        ctx.data_opt::<AppState>(),
    ) else {
        return Ok(());
    };
    let decision = match meta.meter.decision() {
        Some(decision) => decision,
        None => {
            let checked = state
                .limiter
                .check(
                    &state.background_db,
                    &principal.tenant_id,
                    cost(result.complexity),
                )
                .await;
            match checked {
                Ok(decision) => {
                    meta.meter.decide(decision.clone());
                    decision
                }
                // Metering must not take the API down with it: the call goes through uncounted
                // (the database being out of reach fails the call itself anyway).
                Err(err) => {
                    tracing::warn!(error = %err, "metering failed; the call is not counted");
                    return Ok(());
                }
            }
        }
    };
    match decision.refused {
        None => Ok(()),
        Some(refusal) => Err(refused(refusal, &decision)),
    }
}

fn refused(refusal: Refusal, decision: &Decision) -> ServerError {
    let limits = &decision.limits;
    let (code, message) = match refusal {
        Refusal::Rate => (
            ErrorCode::RateLimited,
            format!(
                "rate limited: this operation costs {} and the {} plan's bucket holds {:.1} of {} (refilling {} a second) - Hint: retry after {} s (Retry-After), or ask for fewer rows",
                decision.cost,
                limits.plan,
                decision.remaining,
                limits.burst,
                limits.requests_per_second,
                decision.retry_after
            ),
        ),
        Refusal::Quota => (
            ErrorCode::QuotaExceeded,
            format!(
                "the {} plan's {} calls for this month are used up - Hint: upgrade the plan, or wait for the month to end",
                limits.plan,
                limits.call_limit.unwrap_or_default()
            ),
        ),
    };
    let mut error = ServerError::new(message, None);
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", code.as_str());
    extensions.set("retryAfter", decision.retry_after);
    error
}

/// Puts the operation's cost and the bucket's state into the response (`extensions.cost`,
/// `RateLimit` headers), and gives back the call of a replayed idempotent mutation. Runs
/// after the schema (whose request-level hook does not see the request's data).
pub async fn report(
    app: &crate::app::App,
    principal: &Principal,
    meta: &RequestMeta,
    response: &mut async_graphql::Response,
) {
    note_errors(app, principal, meta, response);
    let Some(decision) = meta.meter.decision() else {
        return;
    };
    if decision.refused.is_none()
        && response.http_headers.contains_key("idempotent-replayed")
        && meta.meter.take_refund()
    {
        app.limiter.refund(&principal.tenant_id).await;
    }
    let limits = &decision.limits;
    let mut cost = serde_json::json!({ "requestedQueryCost": decision.cost });
    if decision.enforced {
        cost["throttleStatus"] = serde_json::json!({
            "maximumAvailable": limits.burst,
            "currentlyAvailable": (decision.remaining * 10.0).floor() / 10.0,
            "restoreRate": limits.requests_per_second,
        });
    }
    if let Ok(value) = async_graphql::Value::from_json(cost) {
        response.extensions.insert("cost".into(), value);
    }
    if !decision.enforced {
        return;
    }
    for (name, value) in headers(&decision) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.http_headers.insert(name, value);
        }
    }
}

/// Counts the errors the response carries, by code, for the tenant's recent errors: request
/// errors (`extensions.code`) and the `userErrors` of each mutation payload.
fn note_errors(
    app: &crate::app::App,
    principal: &Principal,
    meta: &RequestMeta,
    response: &async_graphql::Response,
) {
    use async_graphql::Value;
    // A code arrives as an enum value (a user error) or as text (a request error's extension).
    fn text(value: Option<&Value>) -> Option<&str> {
        match value {
            Some(Value::String(text)) => Some(text.as_str()),
            Some(Value::Enum(name)) => Some(name.as_str()),
            _ => None,
        }
    }
    let errors = &app.limiter.errors;
    for error in &response.errors {
        if let Some(code) = text(error.extensions.as_ref().and_then(|e| e.get("code"))) {
            errors.note(&principal.tenant_id, code, &error.message, &meta.request_id);
        }
    }
    let Value::Object(fields) = &response.data else {
        return;
    };
    for payload in fields.values() {
        let Value::Object(payload) = payload else {
            continue;
        };
        let Some(Value::List(user_errors)) = payload.get("userErrors") else {
            continue;
        };
        for user_error in user_errors {
            let Value::Object(user_error) = user_error else {
                continue;
            };
            let Some(code) = text(user_error.get("code")) else {
                continue;
            };
            let message = text(user_error.get("message")).unwrap_or_default();
            errors.note(&principal.tenant_id, code, message, &meta.request_id);
        }
    }
}

/// `RateLimit-Policy` (the bucket, and the month's quota when there is one), `RateLimit` (what
/// is left of each and when it is back), and `Retry-After` on a refusal.
pub fn headers(decision: &Decision) -> Vec<(&'static str, String)> {
    let limits = &decision.limits;
    let window = (limits.burst as f64 / limits.requests_per_second).ceil() as u64;
    let mut policy = format!("\"burst\";q={};w={}", limits.burst, window.max(1));
    let burst_reset = match decision.refused {
        Some(Refusal::Rate) => decision.retry_after,
        _ => decision.refill_secs(),
    };
    let mut current = format!(
        "\"burst\";r={};t={}",
        decision.remaining.max(0.0).floor() as u64,
        burst_reset
    );
    if let Some(limit) = limits.call_limit {
        let now = chrono::Utc::now();
        let (start, end) = period_bounds(now);
        policy.push_str(&format!(
            ", \"month\";q={limit};w={}",
            (end - start).num_seconds()
        ));
        current.push_str(&format!(
            ", \"month\";r={};t={}",
            limit.saturating_sub(decision.calls),
            (end - now).num_seconds().max(0)
        ));
    }
    let mut out = vec![("ratelimit-policy", policy), ("ratelimit", current)];
    if decision.refused.is_some() {
        out.push(("retry-after", decision.retry_after.to_string()));
    }
    out
}
