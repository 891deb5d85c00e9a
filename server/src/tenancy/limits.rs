//! Metering and limits: every call a tenant makes is counted once and passes its token bucket.
//!
//! With `REDIS_URL` a Lua script refills and spends the tenant's bucket and counts calls in the
//! month's counter, atomically, so every replica shares one bucket and one count. A bucket of
//! 100 units or more lends each process a lease of 1% of it with each script call, spent
//! locally (and for at most a second), and calls are counted in Redis with the next script
//! call or flush: a busy tenant costs one Redis round trip per lease, not per call, at the price
//! of each replica holding at most 1% of the bucket and the shared count lagging a second.
//! Small buckets, and a Free tenant near its quota, go to Redis on every call, exactly. Without Redis (or while it is unreachable: a failed call opens a one-second breaker)
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
const REDIS_BREAKER: Duration = Duration::from_secs(1);

/// Refills the bucket from the time elapsed (Redis' clock, the same for every replica), then
/// either refuses (1: rate, 2: quota) or spends `cost` and counts the call. Returns the status,
/// the tokens left (as text: Lua numbers become integers on the way out) and the month's calls.
/// `ARGV[9]` calls counted locally since the last sync are added first; then this call is
/// checked: refused (1: rate, 2: quota), or it spends `cost` (plus a lease of `extra` when the
/// bucket has it) and is counted. Returns the status, the tokens left (as text: Lua numbers
/// become integers on the way out), the month's calls and the lease granted.
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
local unsynced = tonumber(ARGV[9])
local extra = tonumber(ARGV[10])
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], seed, 'EX', month_ttl) end
local calls = tonumber(redis.call('INCRBY', KEYS[2], unsynced))
if not enforce then
  return {0, tostring(burst), redis.call('INCR', KEYS[2]), '0'}
end
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local bucket_ttl = math.ceil(burst / rate * 1000) + 1000
if hard and limit >= 0 and calls >= limit then
  return {2, tostring(tokens), calls, '0'}
end
if tokens < cost then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], bucket_ttl)
  return {1, tostring(tokens), calls, '0'}
end
local lease = 0
if tokens >= cost + extra then lease = extra end
tokens = tokens - cost - lease
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], bucket_ttl)
return {0, tostring(tokens), redis.call('INCR', KEYS[2]), tostring(lease)}
"#;

/// Gives a call back to a month Redis knows; leaves an unknown month alone (returns -1).
const REFUND_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('DECR', KEYS[1])
"#;

/// How long a lease may be spent locally.
const LEASE_TTL: Duration = Duration::from_secs(1);

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

/// Tokens this process took from the shared bucket ahead of use, and calls it has counted
/// since it last told Redis.
#[derive(Default)]
struct Lease {
    period: String,
    allowance: f64,
    granted_at: Option<Instant>,
    /// The bucket and the month as Redis last reported them.
    remaining_at_sync: f64,
    calls_at_sync: u64,
    unsynced: u64,
    /// Since when a script call asking for a lease is in flight: the calls meanwhile ask for
    /// none, so a burst of concurrent calls does not take a lease each. (A call dropped in
    /// flight leaves it set; it stops counting after the Redis timeout.)
    refilling: Option<Instant>,
}

pub struct Limiter {
    enforce: bool,
    redis: Option<deadpool_redis::Pool>,
    redis_timeout: Duration,
    /// Held shared while calls counted here are on their way to Redis (taken out of `unsynced`,
    /// not yet in the shared counter), exclusively while the month's count is read: a read in
    /// that window would miss them.
    sync_gate: tokio::sync::RwLock<()>,
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
    /// Errors by tenant and code, written with the usage.
    pub errors: super::error_counts::ErrorCounts,
    leases: Mutex<HashMap<String, Lease>>,
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
    pub fn new(
        enforce: bool,
        redis: Option<deadpool_redis::Pool>,
        redis_timeout: Duration,
    ) -> Self {
        metrics::gauge!("twh_redis_up").set(if redis.is_some() { 1.0 } else { 0.0 });
        Self {
            enforce,
            redis_up: AtomicBool::new(redis.is_some()),
            redis,
            redis_timeout,
            sync_gate: tokio::sync::RwLock::new(()),
            prefix: OnceLock::new(),
            redis_retry_at: Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            plans: RwLock::default(),
            buckets: Mutex::default(),
            views: Mutex::default(),
            pending: Mutex::default(),
            errors: Default::default(),
            leases: Mutex::default(),
        }
    }

    /// Names this deployment's Redis keys after its event channel (`twh:events:<installation
    /// id>`, the bus's); until it is known, limits run in process.
    pub fn name_from_channel(&self, channel: &str) {
        let installation = channel.trim_start_matches(crate::events::bus::CHANNEL_PREFIX);
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
                match self.spend_lease(tenant_id, &period, &limits, cost) {
                    Some(outcome) => Some(outcome),
                    None => {
                        self.check_redis(
                            pool,
                            tenant_id,
                            &period,
                            (&bucket_key, &month_key),
                            &limits,
                            cost,
                            seen,
                        )
                        .await
                    }
                }
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
            retry_after,
            enforced: self.enforce,
        })
    }

    /// A replayed idempotent request counts once: the replay gives its call back.
    pub async fn refund(&self, tenant_id: &str) {
        let now = Utc::now();
        let period = period_of(now);
        let taken_locally = self
            .leases
            .lock()
            .ok()
            .and_then(|mut leases| {
                let lease = leases.get_mut(tenant_id)?;
                (lease.period == period && lease.unsynced > 0).then(|| lease.unsynced -= 1)
            })
            .is_some();
        // A call not in Redis yet has nothing to give back there; nor has a month Redis does
        // not know (the calls so far were counted here, before Redis was reachable or named):
        // a bare DECR would create it at -1, and the next check would count on from there
        // instead of seeding it from this process's view.
        if !taken_locally && let Some((pool, _, month_key)) = self.redis_keys(tenant_id, &period) {
            let _: Option<i64> = self
                .redis_command(
                    pool,
                    redis::cmd("EVAL").arg(REFUND_SCRIPT).arg(1).arg(&month_key),
                    "refund",
                )
                .await;
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
            let _no_sync_in_flight = self.sync_gate.write().await;
            let calls: Option<Option<u64>> = self
                .redis_command(pool, redis::cmd("GET").arg(&month_key), "usage")
                .await;
            if let Some(calls) = calls {
                let unsynced = self
                    .leases
                    .lock()
                    .ok()
                    .and_then(|l| l.get(tenant_id).map(|l| l.unsynced))
                    .unwrap_or(0);
                return Ok(calls.unwrap_or(seen) + unsynced);
            }
        }
        Ok(seen)
    }

    /// One Redis command within the timeout, its success or failure noted (breaker, gauge);
    /// `None` when it failed.
    async fn redis_command<T: redis::FromRedisValue>(
        &self,
        pool: &deadpool_redis::Pool,
        command: &redis::Cmd,
        during: &'static str,
    ) -> Option<T> {
        let result = tokio::time::timeout(self.redis_timeout, async {
            let mut conn = pool.get().await?;
            anyhow::Ok(command.query_async::<T>(&mut conn).await?)
        })
        .await;
        match result {
            Ok(Ok(value)) => {
                self.redis_outcome(true, during);
                Some(value)
            }
            _ => {
                self.redis_outcome(false, during);
                None
            }
        }
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

    /// The lease a bucket of this size lends per script call: 1% of it, none below 100 units or
    /// for a hard quota within 1,000 calls of its end.
    fn lease_size(limits: &Limits, calls: u64) -> f64 {
        let near_quota = !limits.overage
            && limits
                .call_limit
                .is_some_and(|limit| calls.saturating_add(1000) >= limit);
        if limits.burst < 100 || near_quota {
            0.0
        } else {
            (limits.burst / 100) as f64
        }
    }

    /// Spends `cost` from this process's lease when it has enough (counting the call locally).
    fn spend_lease(
        &self,
        tenant_id: &str,
        period: &str,
        limits: &Limits,
        cost: u64,
    ) -> Option<(Option<Refusal>, f64, u64)> {
        if !self.enforce {
            return None;
        }
        let mut leases = self.leases.lock().ok()?;
        let lease = leases.get_mut(tenant_id)?;
        let fresh = lease.granted_at.is_some_and(|at| at.elapsed() < LEASE_TTL);
        let calls = lease.calls_at_sync + lease.unsynced;
        if lease.period != period
            || !fresh
            || lease.allowance < cost as f64
            || Self::lease_size(limits, calls) == 0.0
        {
            return None;
        }
        lease.allowance -= cost as f64;
        lease.unsynced += 1;
        Some((
            None,
            lease.remaining_at_sync + lease.allowance,
            lease.calls_at_sync + lease.unsynced,
        ))
    }

    /// Calls counted locally and not yet in Redis, taken for a sync (given back on failure).
    fn take_unsynced(&self, tenant_id: &str, period: &str) -> u64 {
        let Ok(mut leases) = self.leases.lock() else {
            return 0;
        };
        match leases.get_mut(tenant_id) {
            Some(lease) if lease.period == period => std::mem::take(&mut lease.unsynced),
            _ => 0,
        }
    }

    fn give_back_unsynced(&self, tenant_id: &str, unsynced: u64) {
        if unsynced > 0
            && let Ok(mut leases) = self.leases.lock()
            && let Some(lease) = leases.get_mut(tenant_id)
        {
            lease.unsynced += unsynced;
        }
    }

    /// Writes every tenant's locally counted calls to Redis (with the flush, once a second).
    pub async fn sync_counts(&self) {
        let period = period_of(Utc::now());
        let tenants: Vec<String> = match self.leases.lock() {
            Ok(leases) => leases
                .iter()
                .filter(|(_, l)| l.unsynced > 0 && l.period == period)
                .map(|(t, _)| t.clone())
                .collect(),
            Err(_) => return,
        };
        for tenant_id in tenants {
            let Some((pool, _, month_key)) = self.redis_keys(&tenant_id, &period) else {
                return;
            };
            let _syncing = self.sync_gate.read().await;
            let unsynced = self.take_unsynced(&tenant_id, &period);
            if unsynced == 0 {
                continue;
            }
            let synced: Option<u64> = self
                .redis_command(
                    pool,
                    redis::cmd("INCRBY").arg(&month_key).arg(unsynced),
                    "sync",
                )
                .await;
            match synced {
                Some(calls) => {
                    if let Ok(mut leases) = self.leases.lock()
                        && let Some(lease) = leases.get_mut(&tenant_id)
                    {
                        lease.calls_at_sync = calls;
                    }
                }
                None => self.give_back_unsynced(&tenant_id, unsynced),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn check_redis(
        &self,
        pool: &deadpool_redis::Pool,
        tenant_id: &str,
        period: &str,
        (bucket_key, month_key): (&str, &str),
        limits: &Limits,
        cost: u64,
        seen: u64,
    ) -> Option<(Option<Refusal>, f64, u64)> {
        let month_ttl = 40 * 24 * 3600;
        let _syncing = self.sync_gate.read().await;
        let unsynced = self.take_unsynced(tenant_id, period);
        let known = self
            .leases
            .lock()
            .ok()
            .and_then(|l| l.get(tenant_id).map(|l| l.calls_at_sync + unsynced))
            .unwrap_or(0)
            .max(seen);
        let mut extra = if self.enforce {
            Self::lease_size(limits, known)
        } else {
            0.0
        };
        if extra > 0.0
            && let Ok(mut leases) = self.leases.lock()
        {
            let lease = leases.entry(tenant_id.to_owned()).or_default();
            if lease
                .refilling
                .is_some_and(|at| at.elapsed() < self.redis_timeout)
            {
                extra = 0.0;
            } else {
                lease.refilling = Some(Instant::now());
            }
        }
        let asked_lease = extra > 0.0;
        let result = tokio::time::timeout(self.redis_timeout, async {
            let mut conn = pool.get().await?;
            let (status, tokens, calls, lease): (i64, String, u64, String) = self
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
                .arg(unsynced)
                .arg(extra)
                .invoke_async(&mut conn)
                .await?;
            anyhow::Ok((status, tokens, calls, lease))
        })
        .await;
        match result {
            Ok(Ok((status, tokens, calls, lease))) => {
                self.redis_outcome(true, "check");
                let refused = match status {
                    1 => Some(Refusal::Rate),
                    2 => Some(Refusal::Quota),
                    _ => None,
                };
                let tokens: f64 = tokens.parse().unwrap_or(0.0);
                let lease: f64 = lease.parse().unwrap_or(0.0);
                if let Ok(mut leases) = self.leases.lock() {
                    if leases.len() > 100_000 {
                        leases.retain(|_, l| l.unsynced > 0);
                    }
                    let entry = leases.entry(tenant_id.to_owned()).or_default();
                    let fresh = entry.period == period
                        && entry.granted_at.is_some_and(|at| at.elapsed() < LEASE_TTL);
                    if asked_lease {
                        entry.refilling = None;
                        // What is left of an older lease stays spendable while it is fresh.
                        entry.allowance = if fresh {
                            entry.allowance + lease
                        } else {
                            lease
                        };
                        entry.granted_at = Some(Instant::now());
                    }
                    entry.period = period.to_owned();
                    entry.remaining_at_sync = tokens;
                    entry.calls_at_sync = entry.calls_at_sync.max(calls);
                }
                // What this process holds is still spendable: report it as available.
                Some((refused, tokens + lease, calls))
            }
            failed => {
                if let Ok(Err(err)) = failed {
                    tracing::debug!(error = %err, "rate limit script failed");
                }
                self.redis_outcome(false, "check");
                self.give_back_unsynced(tenant_id, unsynced);
                if asked_lease
                    && let Ok(mut leases) = self.leases.lock()
                    && let Some(lease) = leases.get_mut(tenant_id)
                {
                    lease.refilling = None;
                }
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
        let pong: Option<String> = self.redis_command(pool, &redis::cmd("PING"), "ping").await;
        Some(pong.is_some())
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
