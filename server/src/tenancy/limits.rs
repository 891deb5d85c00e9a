//! Metering and limits: every call a tenant makes is counted once and passes its token bucket.
//!
//! With `REDIS_URL` one Lua script per call refills and spends the tenant's bucket and counts
//! the call in the month's counter, atomically, so every replica shares one bucket and one
//! count. Without Redis (or while it is unreachable: a failed call opens a one-second breaker)
//! the same rules run in process, against this process's view of the month (the durable count
//! plus what it counted since). Either way each process adds what it counted to `usage_daily`
//! every second (an upsert that adds), the durable record billing reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Statement};
use twh_entity::tenant;

use super::plans::{self, Limits};

const PLAN_TTL: Duration = Duration::from_secs(30);
/// How long this process trusts its own view of a month's count before reading the durable one.
const VIEW_TTL: Duration = Duration::from_secs(60);
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const REDIS_BREAKER: Duration = Duration::from_secs(1);

/// Refills the bucket from the time elapsed (Redis' clock, the same for every replica), then
/// either refuses (1: rate, 2: quota) or spends `cost` and counts the call. Returns the status,
/// the tokens left (as text: Lua numbers become integers on the way out) and the month's calls.
const SCRIPT: &str = r#"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local hard = ARGV[5] == '1'
local seed = tonumber(ARGV[6])
local enforce = ARGV[7] == '1'
local month_ttl = tonumber(ARGV[8])
local calls = tonumber(redis.call('GET', KEYS[2]) or seed)
if not enforce then
  if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], seed, 'EX', month_ttl) end
  return {0, tostring(burst), redis.call('INCR', KEYS[2])}
end
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local bucket_ttl = math.ceil(burst / rate * 1000) + 1000
if hard and limit >= 0 and calls >= limit then
  return {2, tostring(tokens), calls}
end
if tokens < cost then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], bucket_ttl)
  return {1, tostring(tokens), calls}
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], bucket_ttl)
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], seed, 'EX', month_ttl) end
return {0, tostring(tokens), redis.call('INCR', KEYS[2])}
"#;

/// Why a call was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The bucket has fewer tokens than the call costs.
    Rate,
    /// A plan without overage used its month's calls.
    Quota,
}

/// The outcome of one call's check, and what the response tells the caller about its limits.
#[derive(Clone, Debug)]
pub struct Decision {
    pub refused: Option<Refusal>,
    pub cost: u64,
    /// Tokens left in the bucket after this call.
    pub remaining: f64,
    pub limits: Arc<Limits>,
    /// The month's calls, this one included when it was counted.
    pub calls: u64,
    /// Whether this call went past the quota (counted as overage).
    pub overage: bool,
    /// Seconds to wait before a retry can succeed (refusals only).
    pub retry_after: u64,
    /// Whether limits were enforced (`TWH_RATE_LIMITS`).
    pub enforced: bool,
}

impl Decision {
    /// Seconds until the bucket is full again.
    pub fn refill_secs(&self) -> u64 {
        let missing = (self.limits.burst as f64 - self.remaining).max(0.0);
        (missing / self.limits.requests_per_second).ceil() as u64
    }
}

/// One HTTP request's metering: however many times the request executes the schema (REST
/// retries a version conflict), it is checked and counted once.
#[derive(Default, Debug)]
pub struct RequestMeter {
    decision: Mutex<Option<Decision>>,
    refunded: AtomicBool,
}

impl RequestMeter {
    pub fn decision(&self) -> Option<Decision> {
        self.decision.lock().ok().and_then(|d| d.clone())
    }

    pub fn decide(&self, decision: Decision) {
        if let Ok(mut slot) = self.decision.lock() {
            *slot = Some(decision);
        }
    }

    /// True the first time only: a replay is refunded once.
    pub fn take_refund(&self) -> bool {
        !self.refunded.swap(true, Ordering::SeqCst)
    }
}

#[derive(Default, Clone, Copy, Debug)]
struct Pending {
    calls: i64,
    overage: i64,
    refused: i64,
}

struct View {
    period: String,
    calls: u64,
    read_at: Instant,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limiter {
    enforce: bool,
    redis: Option<deadpool_redis::Pool>,
    /// `twh:<installation>:`, once the installation id is known (Redis keys of two deployments
    /// sharing a Redis never mix).
    prefix: OnceLock<String>,
    redis_retry_at: Mutex<Option<Instant>>,
    redis_up: AtomicBool,
    script: redis::Script,
    plans: RwLock<HashMap<String, (Arc<Limits>, Instant)>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    views: Mutex<HashMap<String, View>>,
    pending: Mutex<HashMap<(String, String), Pending>>,
}

/// `YYYY-MM` of a time (UTC).
pub fn period_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m").to_string()
}

/// The first instant of the month of `at` and of the next one.
pub fn period_bounds(at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let first = NaiveDate::from_ymd_opt(at.year(), at.month(), 1).unwrap_or_default();
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    let start = Utc.from_utc_datetime(&first.and_hms_opt(0, 0, 0).unwrap_or_default());
    let end = Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0).unwrap_or_default());
    (start, end)
}

impl Limiter {
    pub fn new(enforce: bool, redis: Option<deadpool_redis::Pool>) -> Self {
        metrics::gauge!("twh_redis_up").set(if redis.is_some() { 1.0 } else { 0.0 });
        Self {
            enforce,
            redis_up: AtomicBool::new(redis.is_some()),
            redis,
            prefix: OnceLock::new(),
            redis_retry_at: Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            plans: RwLock::default(),
            buckets: Mutex::default(),
            views: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    /// Names this deployment's Redis keys; until it is known, limits run in process.
    pub fn set_installation(&self, installation: &str) {
        let _ = self.prefix.set(format!("twh:{installation}:"));
    }

    pub fn uses_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// Whether the last Redis call succeeded (`true` when Redis is not configured: nothing is
    /// missing).
    pub fn redis_healthy(&self) -> bool {
        self.redis.is_none() || self.redis_up.load(Ordering::Relaxed)
    }

    /// Forgets a tenant's plan (changed here or on another replica).
    pub fn evict_plan(&self, tenant_id: &str) {
        if let Ok(mut plans) = self.plans.write() {
            plans.remove(tenant_id);
        }
    }

    /// The tenant's limits (its plan with its overrides), cached for 30 seconds.
    pub async fn limits(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: &str,
    ) -> Result<Arc<Limits>, DbErr> {
        if let Some((limits, at)) = self
            .plans
            .read()
            .ok()
            .and_then(|p| p.get(tenant_id).cloned())
            && at.elapsed() < PLAN_TTL
        {
            return Ok(limits);
        }
        let row = tenant::Entity::find_by_id(tenant_id.to_owned())
            .one(db)
            .await?;
        let limits = Arc::new(match row {
            Some(t) => plans::limits(&t.plan, t.plan_overrides.as_deref()),
            None => plans::limits("free", None),
        });
        if let Ok(mut plans) = self.plans.write() {
            if plans.len() > 100_000 {
                plans.clear();
            }
            plans.insert(tenant_id.to_owned(), (limits.clone(), Instant::now()));
        }
        Ok(limits)
    }

    /// Checks one call of `cost` units and, unless refused, counts it.
    pub async fn check(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: &str,
        cost: u64,
    ) -> Result<Decision, DbErr> {
        let limits = self.limits(db, tenant_id).await?;
        let now = Utc::now();
        let period = period_of(now);
        let seen = self.view(db, tenant_id, &period).await?;
        let shared = match self.redis_keys(tenant_id, &period) {
            Some((pool, bucket_key, month_key)) => {
                self.check_redis(pool, &bucket_key, &month_key, &limits, cost, seen)
                    .await
            }
            None => None,
        };
        let (refused, remaining, calls) = match shared {
            Some(outcome) => {
                // Keep this process's view in step, so a Redis outage starts from (about)
                // the right number.
                if outcome.0.is_none() {
                    self.bump_view(tenant_id);
                }
                outcome
            }
            None => self.check_local(tenant_id, &limits, cost, seen),
        };
        let counted = refused.is_none();
        let overage = counted && limits.call_limit.is_some_and(|limit| calls > limit);
        self.note(tenant_id, now, counted, overage);
        let retry_after = match refused {
            Some(Refusal::Rate) => {
                ((cost as f64 - remaining).max(0.0) / limits.requests_per_second)
                    .ceil()
                    .max(1.0) as u64
            }
            Some(Refusal::Quota) => (period_bounds(now).1 - now).num_seconds().max(1) as u64,
            None => 0,
        };
        match refused {
            Some(Refusal::Rate) => metrics::counter!("twh_rate_limited_total", "reason" => "rate"),
            Some(Refusal::Quota) => {
                metrics::counter!("twh_rate_limited_total", "reason" => "quota")
            }
            None => metrics::counter!("twh_metered_calls_total"),
        }
        .increment(1);
        Ok(Decision {
            refused,
            cost,
            remaining,
            limits,
            calls,
            overage,
            retry_after,
            enforced: self.enforce,
        })
    }

    /// A replayed idempotent request counts once: the replay gives its call back.
    pub async fn refund(&self, tenant_id: &str) {
        let now = Utc::now();
        let period = period_of(now);
        if let Some((pool, _, month_key)) = self.redis_keys(tenant_id, &period) {
            let result = tokio::time::timeout(REDIS_TIMEOUT, async {
                let mut conn = pool.get().await?;
                let _: i64 = redis::cmd("DECR")
                    .arg(&month_key)
                    .query_async(&mut conn)
                    .await?;
                anyhow::Ok(())
            })
            .await;
            self.redis_outcome(matches!(result, Ok(Ok(()))), "refund");
        }
        if let Ok(mut views) = self.views.lock()
            && let Some(view) = views.get_mut(tenant_id)
            && view.period == period
        {
            view.calls = view.calls.saturating_sub(1);
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending
                .entry((tenant_id.to_owned(), now.format("%Y-%m-%d").to_string()))
                .or_default()
                .calls -= 1;
        }
    }

    /// The month's calls so far: the shared counter when Redis answers, else this process's view.
    pub async fn calls_this_period(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: &str,
    ) -> Result<u64, DbErr> {
        let period = period_of(Utc::now());
        let seen = self.view(db, tenant_id, &period).await?;
        if let Some((pool, _, month_key)) = self.redis_keys(tenant_id, &period) {
            let result = tokio::time::timeout(REDIS_TIMEOUT, async {
                let mut conn = pool.get().await?;
                let calls: Option<u64> = redis::cmd("GET")
                    .arg(&month_key)
                    .query_async(&mut conn)
                    .await?;
                anyhow::Ok(calls)
            })
            .await;
            match result {
                Ok(Ok(calls)) => {
                    self.redis_outcome(true, "usage");
                    return Ok(calls.unwrap_or(seen));
                }
                _ => self.redis_outcome(false, "usage"),
            }
        }
        Ok(seen)
    }

    fn redis_keys(
        &self,
        tenant_id: &str,
        period: &str,
    ) -> Option<(&deadpool_redis::Pool, String, String)> {
        let pool = self.redis.as_ref()?;
        let prefix = self.prefix.get()?;
        if let Ok(retry_at) = self.redis_retry_at.lock()
            && retry_at.is_some_and(|at| Instant::now() < at)
        {
            return None;
        }
        Some((
            pool,
            format!("{prefix}bucket:{tenant_id}"),
            format!("{prefix}calls:{tenant_id}:{period}"),
        ))
    }

    fn redis_outcome(&self, ok: bool, during: &'static str) {
        let was_up = self.redis_up.swap(ok, Ordering::Relaxed);
        if ok {
            if let Ok(mut retry_at) = self.redis_retry_at.lock() {
                *retry_at = None;
            }
            if !was_up {
                tracing::info!("Redis answers again; limits and counts are shared again");
            }
            metrics::gauge!("twh_redis_up").set(1.0);
        } else {
            if let Ok(mut retry_at) = self.redis_retry_at.lock() {
                *retry_at = Some(Instant::now() + REDIS_BREAKER);
            }
            if was_up {
                tracing::warn!(
                    during,
                    "Redis is unreachable; rate limits and counts run per process until it returns"
                );
            }
            metrics::gauge!("twh_redis_up").set(0.0);
            metrics::counter!("twh_redis_failures_total", "during" => during).increment(1);
        }
    }

    async fn check_redis(
        &self,
        pool: &deadpool_redis::Pool,
        bucket_key: &str,
        month_key: &str,
        limits: &Limits,
        cost: u64,
        seen: u64,
    ) -> Option<(Option<Refusal>, f64, u64)> {
        let month_ttl = 40 * 24 * 3600;
        let result = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut conn = pool.get().await?;
            let (status, tokens, calls): (i64, String, u64) = self
                .script
                .key(bucket_key)
                .key(month_key)
                .arg(limits.requests_per_second)
                .arg(limits.burst)
                .arg(cost)
                .arg(limits.call_limit.map_or(-1, |l| l as i64))
                .arg(if limits.overage { "0" } else { "1" })
                .arg(seen)
                .arg(if self.enforce { "1" } else { "0" })
                .arg(month_ttl)
                .invoke_async(&mut conn)
                .await?;
            anyhow::Ok((status, tokens, calls))
        })
        .await;
        match result {
            Ok(Ok((status, tokens, calls))) => {
                self.redis_outcome(true, "check");
                let refused = match status {
                    1 => Some(Refusal::Rate),
                    2 => Some(Refusal::Quota),
                    _ => None,
                };
                Some((refused, tokens.parse().unwrap_or(0.0), calls))
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "rate limit script failed");
                self.redis_outcome(false, "check");
                None
            }
            Err(_) => {
                self.redis_outcome(false, "check");
                None
            }
        }
    }

    fn check_local(
        &self,
        tenant_id: &str,
        limits: &Limits,
        cost: u64,
        seen: u64,
    ) -> (Option<Refusal>, f64, u64) {
        let burst = limits.burst as f64;
        if !self.enforce {
            return (None, burst, self.bump_view(tenant_id));
        }
        let hard = !limits.overage;
        if hard && limits.call_limit.is_some_and(|limit| seen >= limit) {
            return (Some(Refusal::Quota), burst, seen);
        }
        let remaining = {
            let Ok(mut buckets) = self.buckets.lock() else {
                return (None, burst, seen);
            };
            if buckets.len() > 100_000 {
                buckets.retain(|_, b| b.at.elapsed() < Duration::from_secs(3600));
            }
            let bucket = buckets.entry(tenant_id.to_owned()).or_insert(Bucket {
                tokens: burst,
                at: Instant::now(),
            });
            let now = Instant::now();
            bucket.tokens = (bucket.tokens
                + now.duration_since(bucket.at).as_secs_f64() * limits.requests_per_second)
                .min(burst);
            bucket.at = now;
            if bucket.tokens < cost as f64 {
                return (Some(Refusal::Rate), bucket.tokens, seen);
            }
            bucket.tokens -= cost as f64;
            bucket.tokens
        };
        (None, remaining, self.bump_view(tenant_id))
    }

    fn bump_view(&self, tenant_id: &str) -> u64 {
        self.views
            .lock()
            .ok()
            .and_then(|mut views| {
                views.get_mut(tenant_id).map(|v| {
                    v.calls += 1;
                    v.calls
                })
            })
            .unwrap_or(1)
    }

    /// Adds the call to what the next flush writes.
    fn note(&self, tenant_id: &str, now: DateTime<Utc>, counted: bool, overage: bool) {
        if let Ok(mut pending) = self.pending.lock() {
            let entry = pending
                .entry((tenant_id.to_owned(), now.format("%Y-%m-%d").to_string()))
                .or_default();
            if counted {
                entry.calls += 1;
                entry.overage += i64::from(overage);
            } else {
                entry.refused += 1;
            }
        }
    }

    /// This process's view of the tenant's month: the durable count (read at most once a
    /// minute) plus what this process counted and has not flushed yet.
    async fn view(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: &str,
        period: &str,
    ) -> Result<u64, DbErr> {
        if let Ok(views) = self.views.lock()
            && let Some(view) = views.get(tenant_id)
            && view.period == period
            && view.read_at.elapsed() < VIEW_TTL
        {
            return Ok(view.calls);
        }
        let durable = durable_calls(db, tenant_id, period).await?;
        let unflushed: i64 = self
            .pending
            .lock()
            .map(|pending| {
                pending
                    .iter()
                    .filter(|((t, day), _)| t == tenant_id && day.starts_with(period))
                    .map(|(_, p)| p.calls)
                    .sum()
            })
            .unwrap_or(0);
        let calls = (durable as i64 + unflushed).max(0) as u64;
        if let Ok(mut views) = self.views.lock() {
            if views.len() > 100_000 {
                views.clear();
            }
            views.insert(
                tenant_id.to_owned(),
                View {
                    period: period.to_owned(),
                    calls,
                    read_at: Instant::now(),
                },
            );
        }
        Ok(calls)
    }

    /// Writes what was counted since the last flush, adding to each (tenant, day) row. On
    /// failure the counts stay pending for the next flush.
    pub async fn flush(&self, db: &impl ConnectionTrait) -> Result<usize, DbErr> {
        let batch: Vec<((String, String), Pending)> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return Ok(0),
        };
        let batch: Vec<_> = batch
            .into_iter()
            .filter(|(_, p)| p.calls != 0 || p.overage != 0 || p.refused != 0)
            .collect();
        if batch.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        let mut insert = Query::insert();
        insert.into_table("usage_daily").columns([
            "tenant_id",
            "day",
            "calls",
            "overage_calls",
            "refused_calls",
            "updated_at",
        ]);
        for ((tenant_id, day), p) in &batch {
            insert.values_panic([
                tenant_id.clone().into(),
                day.clone().into(),
                p.calls.into(),
                p.overage.into(),
                p.refused.into(),
                now.into(),
            ]);
        }
        insert.on_conflict(
            OnConflict::columns(["tenant_id", "day"])
                .value("calls", Expr::cust("usage_daily.calls + excluded.calls"))
                .value(
                    "overage_calls",
                    Expr::cust("usage_daily.overage_calls + excluded.overage_calls"),
                )
                .value(
                    "refused_calls",
                    Expr::cust("usage_daily.refused_calls + excluded.refused_calls"),
                )
                .value("updated_at", Expr::cust("excluded.updated_at"))
                .to_owned(),
        );
        match db.execute(&insert).await {
            Ok(_) => Ok(batch.len()),
            Err(err) => {
                if let Ok(mut pending) = self.pending.lock() {
                    for (key, p) in batch {
                        let entry = pending.entry(key).or_default();
                        entry.calls += p.calls;
                        entry.overage += p.overage;
                        entry.refused += p.refused;
                    }
                }
                Err(err)
            }
        }
    }

    /// Whether Redis answers a PING now (for `/readyz`).
    pub async fn ping_redis(&self) -> Option<bool> {
        let pool = self.redis.as_ref()?;
        let result = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut conn = pool.get().await?;
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            anyhow::Ok(())
        })
        .await;
        let ok = matches!(result, Ok(Ok(())));
        self.redis_outcome(ok, "ping");
        Some(ok)
    }
}

/// The month's durable count of a tenant.
async fn durable_calls(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    period: &str,
) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm::DatabaseBackend::Postgres => {
                    "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) AS calls FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day < $3"
                }
                _ => {
                    "SELECT COALESCE(SUM(calls), 0) AS calls FROM usage_daily WHERE tenant_id = ? AND day >= ? AND day < ?"
                }
            },
            [
                tenant_id.into(),
                format!("{period}-01").into(),
                format!("{period}-99").into(),
            ],
        ))
        .await?;
    let calls: i64 = match row {
        Some(row) => row.try_get("", "calls")?,
        None => 0,
    };
    Ok(calls.max(0) as u64)
}

/// One day of a tenant's metered use.
#[derive(Clone, Debug, async_graphql::SimpleObject, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub calls: i64,
    /// Calls past the plan's monthly quota (billed as overage on paid plans).
    pub overage_calls: i64,
    /// Requests refused for the rate or the quota (not billed).
    pub refused_calls: i64,
}

/// A tenant's daily records from `from` to `to` (inclusive, `YYYY-MM-DD`), oldest first, after
/// the day `after` (the cursor), `limit + 1` rows.
pub async fn daily_records(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    from: &str,
    to: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<UsageRecord>, DbErr> {
    use sea_orm::sea_query::ExprTrait;
    let mut query = Query::select();
    query
        .columns(["day", "calls", "overage_calls", "refused_calls"])
        .from("usage_daily")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("day").gte(from))
        .and_where(Expr::col("day").lte(to))
        .order_by("day", sea_orm::Order::Asc)
        .limit(limit + 1);
    if let Some(after) = after {
        query.and_where(Expr::col("day").gt(after));
    }
    let rows = db.query_all(&query).await?;
    rows.into_iter()
        .map(|row| {
            Ok(UsageRecord {
                day: row.try_get("", "day")?,
                calls: row.try_get("", "calls")?,
                overage_calls: row.try_get("", "overage_calls")?,
                refused_calls: row.try_get("", "refused_calls")?,
            })
        })
        .collect()
}
