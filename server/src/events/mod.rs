//! The transactional outbox: events are written in the same transaction as the change they
//! describe, so nothing reaches subscribers or webhooks that did not commit, and nothing is lost.
//!
//! [`relay`] moves committed events into the ordered log (a `position` per event) and hands
//! them to the [`bus`] (subscriptions, on every replica) and to webhook deliveries.

pub mod bus;
pub mod relay;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{InsertStatement, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use twh_entity::outbox_event;

use crate::ids;

pub const STOCK_CHANGED: &str = "stock.changed";
pub const ITEM_CREATED: &str = "item.created";
pub const ITEM_UPDATED: &str = "item.updated";
pub const LOCATION_CREATED: &str = "location.created";
pub const LOCATION_UPDATED: &str = "location.updated";
pub const WEBHOOK_ENDPOINT_CREATED: &str = "webhook_endpoint.created";
pub const WEBHOOK_ENDPOINT_UPDATED: &str = "webhook_endpoint.updated";
pub const WEBHOOK_ENDPOINT_DELETED: &str = "webhook_endpoint.deleted";
/// An endpoint was switched off by the server (410 Gone, or failing for too long).
pub const WEBHOOK_ENDPOINT_DISABLED: &str = "webhook_endpoint.disabled";
/// The event a test ping sends (never written to the log).
pub const WEBHOOK_TEST: &str = "webhook.test";

/// One event of the log, as the log, subscriptions and webhooks carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub tenant_id: String,
    pub id: String,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// The event's place in the log: increasing in relay order, gap-free across tenants.
    pub position: i64,
}

impl From<outbox_event::Model> for Published {
    fn from(m: outbox_event::Model) -> Self {
        Self {
            tenant_id: m.tenant_id,
            id: m.id,
            event_type: m.event_type,
            aggregate_type: m.aggregate_type,
            aggregate_id: m.aggregate_id,
            data: m.payload,
            created_at: m.created_at,
            position: m.position.unwrap_or_default(),
        }
    }
}

/// Whether an event type matches a filter entry: the type itself, `prefix.*`, or `*`.
pub fn type_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub types: Vec<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A page of a tenant's log after `after` (a position), oldest first, `limit + 1` rows.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    filter: &LogFilter,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<Published>, DbErr> {
    let mut query = outbox_event::Entity::find()
        .filter(outbox_event::Column::TenantId.eq(tenant_id))
        .filter(outbox_event::Column::Position.gt(after.unwrap_or(0)));
    let (exact, prefixes): (Vec<&String>, Vec<&String>) =
        filter.types.iter().partition(|t| !t.ends_with('*'));
    if !filter.types.is_empty() && !prefixes.iter().any(|p| p.as_str() == "*") {
        let mut any = sea_orm::Condition::any();
        if !exact.is_empty() {
            any = any.add(outbox_event::Column::EventType.is_in(exact.iter().map(|t| t.as_str())));
        }
        for prefix in prefixes {
            any =
                any.add(outbox_event::Column::EventType.starts_with(prefix.trim_end_matches('*')));
        }
        query = query.filter(any);
    }
    if let Some(since) = filter.since {
        query = query.filter(outbox_event::Column::CreatedAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(outbox_event::Column::CreatedAt.lt(until));
    }
    let rows = query
        .order_by_asc(outbox_event::Column::Position)
        .limit(limit + 1)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Published::from).collect())
}

/// Every tenant's events after `after` and before `before`, in log order (the bus's gap fill).
pub async fn range(
    db: &impl ConnectionTrait,
    after: i64,
    before: i64,
    limit: u64,
) -> Result<Vec<Published>, DbErr> {
    let rows = outbox_event::Entity::find()
        .filter(outbox_event::Column::Position.gt(after))
        .filter(outbox_event::Column::Position.lt(before))
        .order_by_asc(outbox_event::Column::Position)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Published::from).collect())
}

pub async fn record(
    txn: &impl ConnectionTrait,
    tenant_id: &str,
    event_type: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    payload: serde_json::Value,
) -> Result<(), DbErr> {
    let insert = insert(tenant_id, event_type, aggregate_type, aggregate_id, payload);
    txn.execute(&insert).await?;
    Ok(())
}

/// The INSERT for one event, to run alone or batched with the change's other rows.
pub fn insert(
    tenant_id: &str,
    event_type: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    payload: serde_json::Value,
) -> InsertStatement {
    insert_many(
        tenant_id,
        [NewEvent {
            event_type,
            aggregate_type,
            aggregate_id: aggregate_id.to_owned(),
            payload,
        }],
    )
}

/// One event of [`insert_many`].
pub struct NewEvent<'a> {
    pub event_type: &'a str,
    pub aggregate_type: &'a str,
    pub aggregate_id: String,
    pub payload: serde_json::Value,
}

/// One multi-row INSERT for many events, in order: a bulk change's events cost one statement
/// (Postgres plans it once), not one each.
pub fn insert_many<'a>(
    tenant_id: &str,
    events: impl IntoIterator<Item = NewEvent<'a>>,
) -> InsertStatement {
    let now = Utc::now();
    let mut insert = Query::insert();
    insert.into_table("outbox_events").columns([
        "tenant_id",
        "id",
        "event_type",
        "aggregate_type",
        "aggregate_id",
        "payload",
        "created_at",
    ]);
    for event in events {
        insert.values_panic([
            tenant_id.into(),
            ids::new_id(ids::EVENT).into(),
            event.event_type.into(),
            event.aggregate_type.into(),
            event.aggregate_id.into(),
            event.payload.into(),
            now.into(),
        ]);
    }
    insert
}
