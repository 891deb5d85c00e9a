//! The snapshot of one item at one location: one column per quantity state.
//! Table `stock_levels`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "stock_levels")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub item_id: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub location_id: String,
    pub available: i64,
    pub committed: i64,
    pub reserved: i64,
    pub incoming: i64,
    pub damaged: i64,
    pub safety_stock: i64,
    pub quality_control: i64,
    pub sequence: i64,
    pub version: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
