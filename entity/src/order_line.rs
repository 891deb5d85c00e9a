//! A line of an order document: an item, a location and quantities by stage.
//! Table `order_lines`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "order_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub document_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub line_no: i64,
    #[sea_orm(column_type = "Text")]
    pub item_id: String,
    #[sea_orm(column_type = "Text")]
    pub location_id: String,
    pub quantity: i64,
    #[sea_orm(column_type = "Text")]
    pub unit_cost: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub disposition: Option<String>,
    pub done: i64,
    pub committed: i64,
    pub over: i64,
    pub closed: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
