//! The dispatcher: sends due deliveries, records every attempt, schedules retries.
//!
//! Work is claimed per endpoint: a process takes a lease on an endpoint with due deliveries
//! (`FOR UPDATE SKIP LOCKED` on Postgres, so processes never wait on or take each other's),
//! sends them, records the attempts, renews the lease while it works and releases it at the
//! end. Each attempt is therefore made by exactly one process; a process that dies leaves a
//! lease that expires, and another takes over (an attempt cut short is made again: webhooks
//! are at least once, and `webhook-id` lets receivers deduplicate). Within an endpoint at most
//! `TWH_WEBHOOK_ENDPOINT_CONCURRENCY` requests are in flight, so a slow receiver holds only its
//! own slots; deliveries with one ordering key (the event's aggregate: a stock level, an order)
//! go one after another in log order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use tokio::task::JoinSet;
use twh_entity::{webhook_attempt, webhook_delivery, webhook_endpoint};

use super::deliveries::WebhookDeliveryStatus;
use super::{WebhookEndpointStatus, signing, target};
use crate::app::AppState;
use crate::config::WebhookConfig;
use crate::error::DomainError;
use crate::events::relay::dialect;

/// Deliveries taken per round of one endpoint.
const ROUND: u64 = 500;
/// Endpoints one process works on at once.
const MAX_ACTIVE_ENDPOINTS: usize = 64;
const EXCERPT_BYTES: usize = 1024;

pub fn client(config: &WebhookConfig) -> reqwest::Client {
    let timeout = Duration::from_millis(config.timeout_ms);
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .dns_resolver(target::resolver(config.allow_private))
        .user_agent(concat!("twh-webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivery: webhook_delivery::Model,
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub excerpt: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }

    fn gone(&self) -> bool {
        self.status_code == Some(410)
    }
}

/// The seconds of a `Retry-After` header (delta-seconds or an HTTP date).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let delta = date.with_timezone(&Utc) - Utc::now();
    delta.to_std().ok()
}

/// Makes one signed attempt.
pub async fn attempt(
    client: &reqwest::Client,
    config: &WebhookConfig,
    endpoint: &webhook_endpoint::Model,
    delivery: webhook_delivery::Model,
) -> Attempt {
    let at = Utc::now();
    let timestamp = at.timestamp();
    let mut secrets = vec![endpoint.secret.as_str()];
    if let (Some(previous), Some(until)) =
        (&endpoint.previous_secret, endpoint.previous_secret_until)
        && until > at
    {
        secrets.push(previous.as_str());
    }
    let signature =
        signing::signature_header(&secrets, &delivery.event_id, timestamp, &delivery.body);
    let started = Instant::now();
    let mut result = Attempt {
        delivery,
        at,
        status_code: None,
        latency_ms: 0,
        error: None,
        excerpt: None,
        retry_after: None,
    };
    let url = match reqwest::Url::parse(&endpoint.url) {
        Ok(url) if target::literal_allowed(&url, config.allow_private) => url,
        Ok(_) => {
            result.error =
                Some("refused: the URL's address is loopback, private or link-local".into());
            return result;
        }
        Err(err) => {
            result.error = Some(format!("refused: the URL does not parse: {err}"));
            return result;
        }
    };
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &result.delivery.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(result.delivery.body.clone())
        .send()
        .await;
    match response {
        Ok(mut response) => {
            let status = response.status().as_u16();
            result.status_code = Some(status);
            if !(200..300).contains(&status) {
                result.retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after);
            }
            let mut excerpt = Vec::new();
            while excerpt.len() < EXCERPT_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            excerpt.truncate(EXCERPT_BYTES);
            if !excerpt.is_empty() {
                result.excerpt = Some(String::from_utf8_lossy(&excerpt).into_owned());
            }
        }
        Err(err) => result.error = Some(describe(&err)),
    }
    result.latency_ms = started.elapsed().as_millis() as i64;
    result
}

fn describe(err: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        if let Some(private) = e.downcast_ref::<target::PrivateTarget>() {
            return format!("refused: {private}");
        }
        source = e.source();
    }
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        format!("could not connect: {err}")
    } else {
        format!("request failed: {err}")
    }
}

/// The delay before the attempt at `step` of the schedule, with up to 10% jitter.
fn delay(config: &WebhookConfig, step: usize) -> Duration {
    let base = config.retry_schedule.get(step).copied().unwrap_or(0.0);
    let jitter = if base > 0.0 {
        rand::rng().random_range(0.0..0.1)
    } else {
        0.0
    };
    Duration::from_secs_f64(base * (1.0 + jitter))
}

/// Records a round's attempts and what follows from them, in one transaction.
async fn record(
    app: &AppState,
    endpoint: &webhook_endpoint::Model,
    attempts: Vec<Attempt>,
) -> Result<(), DomainError> {
    if attempts.is_empty() {
        return Ok(());
    }
    let config = &app.config.webhooks;
    let write = app.begin_background_write().await?;
    let txn = &write.txn;
    let now = Utc::now();
    let mut rows = Vec::with_capacity(attempts.len());
    let mut updates = Vec::with_capacity(attempts.len());
    let mut gone = false;
    let mut first_failure: Option<DateTime<Utc>> = None;
    let mut last_succeeded = None;
    for a in &attempts {
        let d = &a.delivery;
        let number = d.attempt_count + 1;
        let (status, next, step) = if a.succeeded() {
            (WebhookDeliveryStatus::Succeeded, None, d.schedule_step)
        } else if a.gone() {
            gone = true;
            (WebhookDeliveryStatus::Dead, None, d.schedule_step)
        } else {
            let step = d.schedule_step + 1;
            if step as usize >= config.retry_schedule.len() {
                (WebhookDeliveryStatus::Dead, None, step)
            } else {
                let mut wait = delay(config, step as usize);
                if let Some(after) = a.retry_after {
                    wait = wait.max(after.min(Duration::from_secs(24 * 3600)));
                }
                let next = now + chrono::Duration::from_std(wait).unwrap_or_default();
                (WebhookDeliveryStatus::Failed, Some(next), step)
            }
        };
        let outcome = match status {
            WebhookDeliveryStatus::Succeeded => "succeeded",
            WebhookDeliveryStatus::Dead => "dead",
            _ => "failed",
        };
        metrics::counter!("twh_webhook_deliveries_total", "outcome" => outcome).increment(1);
        if status == WebhookDeliveryStatus::Dead {
            // Counted from the database every 15 s; this keeps the gauge current in between.
            metrics::gauge!("twh_webhook_dead_letters").increment(1.0);
        }
        metrics::histogram!("twh_webhook_attempt_seconds").record(a.latency_ms as f64 / 1000.0);
        if a.succeeded() {
            last_succeeded = Some(true);
        } else {
            last_succeeded = Some(false);
            first_failure.get_or_insert(a.at);
        }
        updates.push((
            d.tenant_id.clone(),
            d.id.clone(),
            status,
            number,
            step,
            next,
            a.at,
        ));
        rows.push(webhook_attempt::ActiveModel::from(webhook_attempt::Model {
            tenant_id: d.tenant_id.clone(),
            delivery_id: d.id.clone(),
            number,
            attempted_at: a.at,
            status_code: a.status_code.map(i64::from),
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            response_excerpt: a.excerpt.clone(),
        }));
    }
    for chunk in updates.chunks(500) {
        update_deliveries(txn, chunk, now).await?;
    }
    for chunk in rows.chunks(500) {
        webhook_attempt::Entity::insert_many(chunk.to_vec())
            .on_conflict_do_nothing()
            .exec_without_returning(txn)
            .await?;
    }
    let tenant = &endpoint.tenant_id;
    if gone {
        super::disable_by_server(
            txn,
            tenant,
            &endpoint.id,
            "the receiver answered 410 Gone: it asked not to be sent more",
        )
        .await?;
    } else if last_succeeded == Some(true) {
        webhook_endpoint::Entity::update_many()
            .col_expr(
                webhook_endpoint::Column::FailingSince,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(webhook_endpoint::Column::TenantId.eq(tenant))
            .filter(webhook_endpoint::Column::Id.eq(&endpoint.id))
            .filter(webhook_endpoint::Column::FailingSince.is_not_null())
            .exec(txn)
            .await?;
    } else if let Some(first) = first_failure {
        let since = endpoint.failing_since.unwrap_or(first);
        let limit = chrono::Duration::seconds(config.disable_after_secs as i64);
        if now - since >= limit {
            let reason = format!(
                "every attempt since {} failed; disabled after {} s of failures",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                config.disable_after_secs
            );
            super::disable_by_server(txn, tenant, &endpoint.id, &reason).await?;
        } else if endpoint.failing_since.is_none() {
            webhook_endpoint::Entity::update_many()
                .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(first))
                .filter(webhook_endpoint::Column::TenantId.eq(tenant))
                .filter(webhook_endpoint::Column::Id.eq(&endpoint.id))
                .filter(webhook_endpoint::Column::FailingSince.is_null())
                .exec(txn)
                .await?;
        }
    }
    write.txn.commit().await?;
    if gone {
        app.wake.relay.notify_one();
    }
    Ok(())
}

type DeliveryUpdate = (
    String,
    String,
    WebhookDeliveryStatus,
    i64,
    i64,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

/// The outcome of a round's deliveries in one statement (one round trip, not one per delivery).
async fn update_deliveries(
    txn: &sea_orm::DatabaseTransaction,
    updates: &[DeliveryUpdate],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = txn.get_database_backend();
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(updates.len() * 7 + 1);
    let mut rows = Vec::with_capacity(updates.len());
    values.push(now.into());
    for (tenant, id, status, count, step, next, last) in updates {
        let n = values.len();
        rows.push(format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7
        ));
        values.extend([
            tenant.clone().into(),
            id.clone().into(),
            status.as_str().into(),
            (*count).into(),
            (*step).into(),
            (*next).into(),
            (*last).into(),
        ]);
    }
    let sql = format!(
        "WITH v (v_tenant, v_id, v_status, v_count, v_step, v_next, v_last) AS (VALUES {}) \
         UPDATE webhook_deliveries SET status = v.v_status, attempt_count = v.v_count, \
           schedule_step = v.v_step, next_attempt_at = v.v_next, last_attempt_at = v.v_last, \
           updated_at = $1 \
         FROM v WHERE webhook_deliveries.tenant_id = v.v_tenant AND webhook_deliveries.id = v.v_id",
        rows.join(", ")
    );
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        dialect(backend, &sql),
        values,
    ))
    .await?;
    Ok(())
}

/// Leases up to `limit` enabled endpoints that have due deliveries and no live lease.
async fn claim(
    app: &AppState,
    owner: &str,
    limit: usize,
) -> Result<Vec<webhook_endpoint::Model>, DbErr> {
    let backend = app.background_db.get_database_backend();
    let now = Utc::now();
    // Look first without the writer's slot: most rounds find nothing.
    let due = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .limit(1)
        .into_tuple::<String>()
        .one(&app.background_db)
        .await?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "SELECT tenant_id, id FROM webhook_endpoints e \
         WHERE status = 'ENABLED' AND (lease_until IS NULL OR lease_until < $1) \
           AND EXISTS (SELECT 1 FROM webhook_deliveries d \
                       WHERE d.endpoint_id = e.id AND d.tenant_id = e.tenant_id AND d.next_attempt_at <= $1) \
         LIMIT $2{lock}"
    );
    let write = app.begin_background_write().await?;
    let txn = &write.txn;
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            dialect(backend, &sql),
            [now.into(), (limit as i64).into()],
        ))
        .await?;
    if rows.is_empty() {
        write.txn.rollback().await?;
        return Ok(Vec::new());
    }
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let tenant: String = row.try_get("", "tenant_id")?;
        let id: String = row.try_get("", "id")?;
        keys.push((tenant, id));
    }
    let until = now + chrono::Duration::seconds(app.config.webhooks.lease_secs as i64);
    let mut claimed = Vec::with_capacity(keys.len());
    for (tenant, id) in keys {
        let mut updated = webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::LeaseOwner, Expr::value(owner))
            .col_expr(webhook_endpoint::Column::LeaseUntil, Expr::value(until))
            .filter(webhook_endpoint::Column::TenantId.eq(&tenant))
            .filter(webhook_endpoint::Column::Id.eq(&id))
            .exec_with_returning(txn)
            .await?;
        if let Some(model) = updated.pop() {
            claimed.push(model);
        }
    }
    write.txn.commit().await?;
    Ok(claimed)
}

/// Extends a lease; false when it is no longer ours (it expired and another process took it).
async fn renew(
    app: &AppState,
    endpoint: &webhook_endpoint::Model,
    owner: &str,
) -> Result<bool, DbErr> {
    let until = Utc::now() + chrono::Duration::seconds(app.config.webhooks.lease_secs as i64);
    let result = webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::LeaseUntil, Expr::value(until))
        .filter(webhook_endpoint::Column::TenantId.eq(&endpoint.tenant_id))
        .filter(webhook_endpoint::Column::Id.eq(&endpoint.id))
        .filter(webhook_endpoint::Column::LeaseOwner.eq(owner))
        .exec(&app.background_db)
        .await?;
    Ok(result.rows_affected == 1)
}

async fn release(
    app: &AppState,
    endpoint: &webhook_endpoint::Model,
    owner: &str,
) -> Result<(), DbErr> {
    webhook_endpoint::Entity::update_many()
        .col_expr(
            webhook_endpoint::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            webhook_endpoint::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_endpoint::Column::TenantId.eq(&endpoint.tenant_id))
        .filter(webhook_endpoint::Column::Id.eq(&endpoint.id))
        .filter(webhook_endpoint::Column::LeaseOwner.eq(owner))
        .exec(&app.background_db)
        .await?;
    Ok(())
}

/// Sends an endpoint's due deliveries, round after round, while the lease holds.
async fn work(
    app: AppState,
    client: reqwest::Client,
    endpoint: webhook_endpoint::Model,
    owner: String,
) {
    let config = app.config.webhooks.clone();
    let mut endpoint = endpoint;
    loop {
        let due = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::TenantId.eq(&endpoint.tenant_id))
            .filter(webhook_delivery::Column::EndpointId.eq(&endpoint.id))
            .filter(webhook_delivery::Column::NextAttemptAt.is_not_null())
            .filter(webhook_delivery::Column::NextAttemptAt.lte(Utc::now()))
            .order_by_asc(webhook_delivery::Column::Position)
            .order_by_asc(webhook_delivery::Column::Id)
            .limit(ROUND)
            .all(&app.background_db)
            .await;
        let due = match due {
            Ok(due) if due.is_empty() => break,
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, endpoint.id = %endpoint.id, "reading due deliveries failed");
                break;
            }
        };
        // One queue per ordering key, in log order; keys run side by side.
        let mut order: Vec<String> = Vec::new();
        let mut queues: HashMap<String, Vec<webhook_delivery::Model>> = HashMap::new();
        for d in due {
            if !queues.contains_key(&d.ordering_key) {
                order.push(d.ordering_key.clone());
            }
            queues.entry(d.ordering_key.clone()).or_default().push(d);
        }
        let groups: Vec<Vec<webhook_delivery::Model>> = order
            .into_iter()
            .filter_map(|k| queues.remove(&k))
            .collect();
        let endpoint_ref = &endpoint;
        let client_ref = &client;
        let config_ref = &config;
        let attempts: Vec<Attempt> = futures_util::stream::iter(groups)
            .map(|group| async move {
                let mut done = Vec::with_capacity(group.len());
                for d in group {
                    done.push(attempt(client_ref, config_ref, endpoint_ref, d).await);
                }
                done
            })
            .buffer_unordered(config.endpoint_concurrency.max(1))
            .flat_map(futures_util::stream::iter)
            .collect()
            .await;
        let gone = attempts.iter().any(Attempt::gone);
        if let Err(err) = record(&app, &endpoint, attempts).await {
            tracing::warn!(error = ?err, endpoint.id = %endpoint.id, "recording webhook attempts failed");
            break;
        }
        if gone {
            break;
        }
        match renew(&app, &endpoint, &owner).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(error = %err, "renewing a webhook lease failed");
                return;
            }
        }
        // Pick up a rotated secret or a changed URL between rounds.
        match webhook_endpoint::Entity::find_by_id((
            endpoint.tenant_id.clone(),
            endpoint.id.clone(),
        ))
        .one(&app.background_db)
        .await
        {
            Ok(Some(fresh)) if fresh.status == WebhookEndpointStatus::Enabled.as_str() => {
                endpoint = fresh;
            }
            _ => break,
        }
    }
    if let Err(err) = release(&app, &endpoint, &owner).await {
        tracing::warn!(error = %err, "releasing a webhook lease failed");
    }
}

/// Runs until `stop`: claims endpoints with due deliveries whenever the relay wakes it and
/// every `poll`, and works on up to 64 endpoints at once.
pub async fn run(app: AppState, poll: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let client = client(&app.config.webhooks);
    let owner = app.instance_id.clone();
    let mut active: JoinSet<()> = JoinSet::new();
    let mut dead_count_at = Instant::now() - Duration::from_secs(60);
    loop {
        while active.try_join_next().is_some() {}
        let room = MAX_ACTIVE_ENDPOINTS.saturating_sub(active.len());
        let mut claimed_any = false;
        if room > 0 {
            match claim(&app, &owner, room.min(16)).await {
                Ok(claimed) => {
                    claimed_any = !claimed.is_empty();
                    for endpoint in claimed {
                        active.spawn(work(app.clone(), client.clone(), endpoint, owner.clone()));
                    }
                }
                Err(err) => tracing::warn!(error = %err, "claiming webhook endpoints failed"),
            }
        }
        if dead_count_at.elapsed() >= Duration::from_secs(15) {
            dead_count_at = Instant::now();
            match super::deliveries::count_dead(&app.background_db).await {
                Ok(n) => metrics::gauge!("twh_webhook_dead_letters").set(n as f64),
                Err(err) => tracing::debug!(error = %err, "counting dead deliveries failed"),
            }
        }
        if claimed_any {
            continue;
        }
        tokio::select! {
            _ = app.wake.dispatcher.notified() => {}
            Some(_) = active.join_next(), if !active.is_empty() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => break,
        }
    }
    // Let in-flight attempts finish and be recorded (the lease would hand them over anyway).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while active.join_next().await.is_some() {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("soon"), None);
        let later = (Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let parsed = retry_after(&later).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
    }

    #[test]
    fn delays_follow_the_schedule_with_bounded_jitter() {
        let mut config = crate::config::Config::default().webhooks;
        config.retry_schedule = vec![0.0, 5.0, 300.0];
        assert_eq!(delay(&config, 0), Duration::ZERO);
        for _ in 0..100 {
            let d = delay(&config, 1).as_secs_f64();
            assert!((5.0..5.5).contains(&d), "{d}");
        }
    }
}
