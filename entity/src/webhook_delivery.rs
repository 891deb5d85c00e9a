//! One event on its way to one endpoint. Table `webhook_deliveries`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub endpoint_id: String,
    /// Sent as `webhook-id`: the same on every attempt and replay.
    #[sea_orm(column_type = "Text")]
    pub event_id: String,
    #[sea_orm(column_type = "Text")]
    pub event_type: String,
    pub position: i64,
    /// Deliveries with one key (the event's aggregate) go out one at a time, in log order.
    #[sea_orm(column_type = "Text")]
    pub ordering_key: String,
    /// The exact JSON body sent (and signed).
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// `PENDING`, `SUCCEEDED`, `FAILED` (a retry is scheduled) or `DEAD`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub attempt_count: i64,
    /// Index into the retry schedule of the next attempt (reset by a replay).
    pub schedule_step: i64,
    /// When the next attempt is due; `None` when none is (finished, or endpoint disabled).
    pub next_attempt_at: Option<DateTimeUtc>,
    pub last_attempt_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
