//! What a tenant used this month against its plan, and the daily records billing reads.

use async_graphql::connection::Connection;
use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{connection, db_error, page_size, state};
use crate::auth::principal;
use crate::error::{ErrorCode, request_error};
use crate::tenancy::limits::{UsageRecord, daily_records, period_bounds};

/// The month so far (UTC calendar month) against the plan.
#[derive(SimpleObject, Clone, Debug)]
pub struct Usage {
    /// free, developer, startup, growth, scale or enterprise.
    pub plan: String,
    /// Calls metered this month, across every replica (a replayed idempotent request counts
    /// once).
    pub calls_this_period: i64,
    /// The plan's calls a month; null when the deal has no quota.
    pub call_limit: Option<i64>,
    /// Calls past the quota, billed as overage (paid plans; Free is refused instead).
    pub overage_calls: i64,
    /// Whether calls past the quota are counted as overage (paid plans) or refused (Free).
    pub overage_allowed: bool,
    /// This month's calls at month end if the month goes on as it has so far.
    pub projected_calls: i64,
    /// The sustained rate of the token bucket, in units a second (a plain call costs 1).
    pub requests_per_second: f64,
    /// The bucket's size: the largest burst.
    pub burst: i64,
    pub webhook_endpoint_limit: i64,
    /// False when the installation runs with `TWH_RATE_LIMITS=off`.
    pub limits_enforced: bool,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}

/// A tenant's usage now.
pub async fn usage_of(app: &crate::app::App, tenant_id: &str) -> Result<Usage, sea_orm::DbErr> {
    let limits = app.limiter.limits(&app.background_db, tenant_id).await?;
    let calls = app
        .limiter
        .calls_this_period(&app.background_db, tenant_id)
        .await?;
    let now = Utc::now();
    let (start, end) = period_bounds(now);
    let elapsed = (now - start).num_seconds().max(1) as f64;
    let length = (end - start).num_seconds().max(1) as f64;
    let projected = (calls as f64 * length / elapsed).round() as i64;
    let overage = match limits.call_limit {
        Some(limit) if limits.overage => calls.saturating_sub(limit) as i64,
        _ => 0,
    };
    Ok(Usage {
        plan: limits.plan.clone(),
        calls_this_period: calls as i64,
        call_limit: limits.call_limit.map(|l| l as i64),
        overage_calls: overage,
        overage_allowed: limits.overage,
        projected_calls: projected,
        requests_per_second: limits.requests_per_second,
        burst: limits.burst as i64,
        webhook_endpoint_limit: limits.webhook_endpoints as i64,
        limits_enforced: app.config.limits.enforce,
        period_start: start,
        period_end: end,
    })
}

fn day(raw: Option<String>, field: &str, default: String) -> async_graphql::Result<String> {
    match raw {
        None => Ok(default),
        Some(text) => chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map(|d| d.format("%Y-%m-%d").to_string())
            .map_err(|_| {
                request_error(
                    ErrorCode::InvalidInput,
                    format!("{field} must be a day as YYYY-MM-DD, got {text:?}"),
                )
            }),
    }
}

/// The errors a tenant's requests met, by code.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecentErrors {
    /// The first day counted (`YYYY-MM-DD`, UTC).
    pub since: String,
    /// Most frequent first; up to a second behind.
    pub errors: Vec<crate::tenancy::error_counts::ErrorCount>,
}

#[derive(Default)]
pub struct UsageQuery;

#[Object]
impl UsageQuery {
    /// This month's metered calls against the plan's quota, rate and limits.
    async fn usage(&self, ctx: &Context<'_>) -> async_graphql::Result<Usage> {
        let principal = principal(ctx)?;
        usage_of(state(ctx)?, &principal.tenant_id)
            .await
            .map_err(|e| db_error(ctx, e))
    }

    /// The errors this tenant's requests met in the last `days` UTC days (today included; 1 to
    /// 31, 7 by default), by code: request errors and the `userErrors` mutations returned
    /// (those a request selected).
    async fn recent_errors(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 7)] days: i32,
    ) -> async_graphql::Result<RecentErrors> {
        let principal = principal(ctx)?;
        if !(1..=31).contains(&days) {
            return Err(request_error(
                ErrorCode::InvalidInput,
                format!("days is 1 to 31, got {days}"),
            ));
        }
        let since = (Utc::now() - chrono::Duration::days(i64::from(days) - 1))
            .format("%Y-%m-%d")
            .to_string();
        let errors =
            crate::tenancy::error_counts::recent(&state(ctx)?.db, &principal.tenant_id, &since)
                .await
                .map_err(|e| db_error(ctx, e))?;
        Ok(RecentErrors { since, errors })
    }

    /// Metered calls per UTC day, oldest first (the records billing reads; up to a second
    /// behind the live count). `from` and `to` are days (`YYYY-MM-DD`, inclusive), by default
    /// this month.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn usage_records(
        &self,
        ctx: &Context<'_>,
        from: Option<String>,
        to: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, UsageRecord>> {
        let principal = principal(ctx)?;
        let limit = page_size(first)?;
        let (start, _) = period_bounds(Utc::now());
        let from = day(from, "from", start.format("%Y-%m-%d").to_string())?;
        let to = day(to, "to", "9999-12-31".into())?;
        let after = match after {
            Some(cursor) => Some(day(Some(cursor), "after", String::new())?),
            None => None,
        };
        let rows = daily_records(
            &state(ctx)?.db,
            &principal.tenant_id,
            &from,
            &to,
            after.as_deref(),
            limit,
        )
        .await
        .map_err(|e| db_error(ctx, e))?;
        Ok(connection(rows, limit, after.is_some(), |r| r.day.clone()))
    }
}
