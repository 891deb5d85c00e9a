//! An event written in the same transaction as the change it describes.
//! Table `outbox_events`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "outbox_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub event_type: String,
    #[sea_orm(column_type = "Text")]
    pub aggregate_type: String,
    #[sea_orm(column_type = "Text")]
    pub aggregate_id: String,
    #[sea_orm(column_type = "Json")]
    pub payload: Json,
    pub created_at: DateTimeUtc,
    pub published_at: Option<DateTimeUtc>,
    /// The place in the relayed log; `None` until the relay has taken the event.
    pub position: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
