//! The transactional outbox: events are written in the same transaction as the change they
//! describe, so nothing reaches subscribers or webhooks that did not commit, and nothing is lost.

use chrono::Utc;
use sea_orm::sea_query::{InsertStatement, Query};
use sea_orm::{ConnectionTrait, DbErr};

use crate::ids;

pub const STOCK_CHANGED: &str = "stock.changed";
pub const ITEM_CREATED: &str = "item.created";
pub const ITEM_UPDATED: &str = "item.updated";
pub const LOCATION_CREATED: &str = "location.created";
pub const LOCATION_UPDATED: &str = "location.updated";

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
    let id = ids::new_id(ids::EVENT);
    Query::insert()
        .into_table("outbox_events")
        .columns([
            "tenant_id",
            "id",
            "event_type",
            "aggregate_type",
            "aggregate_id",
            "payload",
            "created_at",
        ])
        .values_panic([
            tenant_id.into(),
            id.clone().into(),
            event_type.into(),
            aggregate_type.into(),
            aggregate_id.into(),
            payload.into(),
            Utc::now().into(),
        ])
        .to_owned()
}
