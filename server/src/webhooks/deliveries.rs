//! Deliveries: made by the relay for every enabled endpoint an event matches (in the relay's
//! transaction, so none is lost), listed with their attempts, and replayed.

use std::collections::{HashMap, HashSet};

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use twh_entity::{webhook_attempt, webhook_delivery, webhook_endpoint};

use super::{DELIVERY_PREFIX, WebhookEndpointStatus, wants};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::events::{self, Published};
use crate::ids;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookDeliveryStatus {
    /// Not attempted yet (or replayed).
    Pending,
    Succeeded,
    /// The last attempt failed; another is scheduled.
    Failed,
    /// Every attempt of the schedule failed (or the receiver answered 410); replay to retry.
    Dead,
}

impl WebhookDeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Dead => "DEAD",
        }
    }

    fn parse(raw: &str) -> Self {
        match raw {
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "DEAD" => Self::Dead,
            _ => Self::Pending,
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAttempt {
    /// 1 for the first attempt; replays continue the count.
    pub number: i64,
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// Why the attempt failed without a status (timeout, refused target, connection error).
    pub error: Option<String>,
    /// The first kilobyte of the receiver's answer.
    pub response_excerpt: Option<String>,
}

impl From<webhook_attempt::Model> for WebhookAttempt {
    fn from(m: webhook_attempt::Model) -> Self {
        Self {
            number: m.number,
            attempted_at: m.attempted_at,
            status_code: m.status_code,
            latency_ms: m.latency_ms,
            error: m.error,
            response_excerpt: m.response_excerpt,
        }
    }
}

/// One event on its way to one endpoint.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    pub id: ID,
    pub endpoint_id: ID,
    /// Sent as `webhook-id`, the same on every attempt and replay: receivers deduplicate on it.
    pub event_id: ID,
    pub event_type: String,
    pub status: WebhookDeliveryStatus,
    pub attempt_count: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The body sent: `{type, timestamp, data}`.
    pub payload: serde_json::Value,
    /// Every attempt, oldest first.
    pub attempts: Vec<WebhookAttempt>,
}

impl WebhookDelivery {
    fn from_model(m: webhook_delivery::Model, attempts: Vec<WebhookAttempt>) -> Self {
        Self {
            payload: serde_json::from_str(&m.body).unwrap_or(serde_json::Value::Null),
            id: ID(m.id),
            endpoint_id: ID(m.endpoint_id),
            event_id: ID(m.event_id),
            event_type: m.event_type,
            status: WebhookDeliveryStatus::parse(&m.status),
            attempt_count: m.attempt_count,
            next_attempt_at: m.next_attempt_at,
            last_attempt_at: m.last_attempt_at,
            created_at: m.created_at,
            attempts,
        }
    }
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct WebhookDeliveryFilter {
    pub endpoint_id: Option<ID>,
    pub status: Option<WebhookDeliveryStatus>,
    pub event_type: Option<String>,
}

#[derive(InputObject, Clone, Debug, Default, Serialize)]
pub struct ReplayWebhookDeliveriesInput {
    /// Replays this endpoint's deliveries (with `since`/`until`, those created in the range).
    pub endpoint_id: Option<ID>,
    /// Replays exactly these deliveries, whatever their status.
    pub delivery_ids: Option<Vec<ID>>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Which deliveries of the endpoint a range replay takes; `[DEAD]` by default.
    pub statuses: Option<Vec<WebhookDeliveryStatus>>,
}

/// The JSON body of an event's delivery.
pub fn body_of(event_type: &str, created_at: DateTime<Utc>, data: &serde_json::Value) -> String {
    serde_json::json!({
        "type": event_type,
        "timestamp": created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

fn new_delivery(
    tenant_id: &str,
    endpoint_id: &str,
    event: &Published,
    body: String,
    now: DateTime<Utc>,
) -> webhook_delivery::Model {
    webhook_delivery::Model {
        tenant_id: tenant_id.to_owned(),
        id: ids::new_id(DELIVERY_PREFIX),
        endpoint_id: endpoint_id.to_owned(),
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        position: event.position,
        ordering_key: event.aggregate_id.clone(),
        body,
        status: WebhookDeliveryStatus::Pending.as_str().into(),
        attempt_count: 0,
        schedule_step: 0,
        next_attempt_at: Some(now),
        last_attempt_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// Creates the deliveries of a relayed batch; returns how many.
pub async fn create_for_events(
    txn: &DatabaseTransaction,
    events: &[Published],
) -> Result<usize, DbErr> {
    let tenants: HashSet<&str> = events.iter().map(|e| e.tenant_id.as_str()).collect();
    let endpoints = webhook_endpoint::Entity::find()
        .select_only()
        .column(webhook_endpoint::Column::TenantId)
        .column(webhook_endpoint::Column::Id)
        .column(webhook_endpoint::Column::EventTypes)
        .filter(webhook_endpoint::Column::TenantId.is_in(tenants))
        .filter(webhook_endpoint::Column::Status.eq(WebhookEndpointStatus::Enabled.as_str()))
        .into_tuple::<(String, String, String)>()
        .all(txn)
        .await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let mut by_tenant: HashMap<String, Vec<(String, Vec<String>)>> = HashMap::new();
    for (tenant, id, types) in endpoints {
        let types: Vec<String> = serde_json::from_str(&types).unwrap_or_default();
        by_tenant.entry(tenant).or_default().push((id, types));
    }
    let now = Utc::now();
    let mut rows = Vec::new();
    for event in events {
        let Some(endpoints) = by_tenant.get(&event.tenant_id) else {
            continue;
        };
        let mut body = None;
        for (endpoint_id, types) in endpoints {
            // An endpoint is not told about its own changes (its creation, say).
            let about_itself =
                event.aggregate_type == "webhook_endpoint" && event.aggregate_id == *endpoint_id;
            if !about_itself && wants(types, &event.event_type) {
                let body = body
                    .get_or_insert_with(|| {
                        body_of(&event.event_type, event.created_at, &event.data)
                    })
                    .clone();
                rows.push(new_delivery(
                    &event.tenant_id,
                    endpoint_id,
                    event,
                    body,
                    now,
                ));
            }
        }
    }
    let count = rows.len();
    for chunk in rows.chunks(500) {
        webhook_delivery::Entity::insert_many(
            chunk
                .iter()
                .cloned()
                .map(webhook_delivery::ActiveModel::from),
        )
        .exec_without_returning(txn)
        .await?;
    }
    if count > 0 {
        metrics::counter!("twh_webhook_deliveries_created_total").increment(count as u64);
    }
    Ok(count)
}

/// A `webhook.test` delivery to one endpoint (not an event of the log).
pub async fn create_test(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    endpoint_id: &str,
) -> Result<WebhookDelivery, DomainError> {
    let Some(endpoint) = super::get(txn, tenant_id, endpoint_id).await? else {
        return Err(DomainError::user(UserError::new(
            ErrorCode::NotFound,
            &["endpointId"],
            "no webhook endpoint has this id",
        )));
    };
    let now = Utc::now();
    let event = Published {
        tenant_id: tenant_id.to_owned(),
        id: ids::new_id(ids::EVENT),
        event_type: events::WEBHOOK_TEST.to_owned(),
        aggregate_type: "webhook_endpoint".into(),
        aggregate_id: endpoint.id.to_string(),
        data: serde_json::json!({
            "endpointId": endpoint.id,
            "message": "A test delivery from The Warehouse Hub: verify its signature with your endpoint's secret.",
        }),
        created_at: now,
        position: 0,
    };
    let body = body_of(&event.event_type, now, &event.data);
    let mut model = new_delivery(tenant_id, endpoint_id, &event, body, now);
    if endpoint.status == WebhookEndpointStatus::Disabled {
        model.next_attempt_at = None;
    }
    webhook_delivery::Entity::insert(webhook_delivery::ActiveModel::from(model.clone()))
        .exec_without_returning(txn)
        .await?;
    Ok(WebhookDelivery::from_model(model, Vec::new()))
}

/// Stops (disable) or restarts (enable) the unfinished deliveries of an endpoint.
pub async fn pause_or_resume(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    endpoint_id: &str,
    enabled: bool,
) -> Result<(), DbErr> {
    let unfinished = [
        WebhookDeliveryStatus::Pending.as_str(),
        WebhookDeliveryStatus::Failed.as_str(),
    ];
    let mut update = webhook_delivery::Entity::update_many()
        .filter(webhook_delivery::Column::TenantId.eq(tenant_id))
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
        .filter(webhook_delivery::Column::Status.is_in(unfinished));
    update = if enabled {
        update
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(Utc::now()),
            )
            .filter(webhook_delivery::Column::NextAttemptAt.is_null())
    } else {
        update.col_expr(
            webhook_delivery::Column::NextAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
    };
    update.exec(txn).await?;
    Ok(())
}

pub async fn delete_for_endpoint(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    endpoint_id: &str,
) -> Result<(), DbErr> {
    let ids: Vec<String> = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(webhook_delivery::Column::TenantId.eq(tenant_id))
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
        .into_tuple()
        .all(txn)
        .await?;
    for chunk in ids.chunks(500) {
        webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::TenantId.eq(tenant_id))
            .filter(webhook_attempt::Column::DeliveryId.is_in(chunk.iter().cloned()))
            .exec(txn)
            .await?;
    }
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::TenantId.eq(tenant_id))
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
        .exec(txn)
        .await?;
    Ok(())
}

async fn with_attempts(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    models: Vec<webhook_delivery::Model>,
) -> Result<Vec<WebhookDelivery>, DbErr> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    let attempts = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::TenantId.eq(tenant_id))
        .filter(webhook_attempt::Column::DeliveryId.is_in(models.iter().map(|m| m.id.clone())))
        .order_by_asc(webhook_attempt::Column::Number)
        .all(db)
        .await?;
    let mut by_delivery: HashMap<String, Vec<WebhookAttempt>> = HashMap::new();
    for a in attempts {
        by_delivery
            .entry(a.delivery_id.clone())
            .or_default()
            .push(a.into());
    }
    Ok(models
        .into_iter()
        .map(|m| {
            let attempts = by_delivery.remove(&m.id).unwrap_or_default();
            WebhookDelivery::from_model(m, attempts)
        })
        .collect())
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    id: &str,
) -> Result<Option<WebhookDelivery>, DbErr> {
    let Some(model) = webhook_delivery::Entity::find_by_id((tenant_id.to_owned(), id.to_owned()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(with_attempts(db, tenant_id, vec![model]).await?.pop())
}

/// A page of deliveries, newest first, `limit + 1` rows.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    filter: &WebhookDeliveryFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<WebhookDelivery>, DbErr> {
    let mut query =
        webhook_delivery::Entity::find().filter(webhook_delivery::Column::TenantId.eq(tenant_id));
    if let Some(endpoint) = &filter.endpoint_id {
        query = query.filter(webhook_delivery::Column::EndpointId.eq(endpoint.as_str()));
    }
    if let Some(status) = filter.status {
        query = query.filter(webhook_delivery::Column::Status.eq(status.as_str()));
    }
    if let Some(t) = &filter.event_type {
        query = query.filter(webhook_delivery::Column::EventType.eq(t.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(webhook_delivery::Column::Id.lt(after));
    }
    let models = query
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    with_attempts(db, tenant_id, models).await
}

/// How many deliveries are dead (all tenants; the metric).
pub async fn count_dead(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(WebhookDeliveryStatus::Dead.as_str()))
        .count(db)
        .await
}

/// Sends deliveries again from the start of the retry schedule (same `webhook-id`); returns
/// how many were replayed. Deliveries of a disabled endpoint wait until it is enabled.
pub async fn replay(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    input: ReplayWebhookDeliveriesInput,
) -> Result<u64, DomainError> {
    let invalid = |field: &str, message: &str| {
        DomainError::user(UserError::new(
            ErrorCode::InvalidInput,
            &["input", field],
            message,
        ))
    };
    let mut condition = Condition::all().add(webhook_delivery::Column::TenantId.eq(tenant_id));
    match (&input.delivery_ids, &input.endpoint_id) {
        (Some(ids), _) => {
            if ids.is_empty() || ids.len() > 1000 {
                return Err(invalid("deliveryIds", "give 1 to 1000 delivery ids"));
            }
            condition = condition
                .add(webhook_delivery::Column::Id.is_in(ids.iter().map(|i| i.to_string())));
            if let Some(endpoint) = &input.endpoint_id {
                condition =
                    condition.add(webhook_delivery::Column::EndpointId.eq(endpoint.as_str()));
            }
        }
        (None, Some(endpoint)) => {
            if super::get(txn, tenant_id, endpoint).await?.is_none() {
                return Err(DomainError::user(UserError::new(
                    ErrorCode::NotFound,
                    &["input", "endpointId"],
                    "no webhook endpoint has this id",
                )));
            }
            let statuses = input
                .statuses
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| vec![WebhookDeliveryStatus::Dead]);
            condition = condition
                .add(webhook_delivery::Column::EndpointId.eq(endpoint.as_str()))
                .add(webhook_delivery::Column::Status.is_in(statuses.iter().map(|s| s.as_str())));
            if let Some(since) = input.since {
                condition = condition.add(webhook_delivery::Column::CreatedAt.gte(since));
            }
            if let Some(until) = input.until {
                condition = condition.add(webhook_delivery::Column::CreatedAt.lt(until));
            }
        }
        (None, None) => {
            return Err(invalid(
                "endpointId",
                "give deliveryIds, or an endpointId (with since/until for a time range)",
            ));
        }
    }
    if let (Some(since), Some(until)) = (input.since, input.until)
        && since >= until
    {
        return Err(invalid("until", "until must be after since"));
    }
    let enabled_endpoints: Vec<String> = webhook_endpoint::Entity::find()
        .select_only()
        .column(webhook_endpoint::Column::Id)
        .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
        .filter(webhook_endpoint::Column::Status.eq(WebhookEndpointStatus::Enabled.as_str()))
        .into_tuple()
        .all(txn)
        .await?;
    let now = Utc::now();
    let mut replayed = 0;
    // Deliveries of enabled endpoints are due now; those of disabled ones wait.
    for enabled in [true, false] {
        let endpoint_condition = if enabled {
            webhook_delivery::Column::EndpointId.is_in(enabled_endpoints.clone())
        } else {
            webhook_delivery::Column::EndpointId.is_not_in(enabled_endpoints.clone())
        };
        let next: Option<DateTime<Utc>> = enabled.then_some(now);
        let result = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(WebhookDeliveryStatus::Pending.as_str()),
            )
            .col_expr(webhook_delivery::Column::ScheduleStep, Expr::value(0))
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(webhook_delivery::Column::UpdatedAt, Expr::value(now))
            .filter(condition.clone())
            .filter(endpoint_condition)
            .exec(txn)
            .await?;
        replayed += result.rows_affected;
    }
    Ok(replayed)
}
