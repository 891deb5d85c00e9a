//! An order document: purchase order, sales order, reservation, transfer or return.
//! Table `order_documents`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "order_documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub number: String,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub version: i64,
    /// Supplier (purchase) or customer (sales, returns).
    #[sea_orm(column_type = "Text")]
    pub party: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub external_reference: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub notes: Option<String>,
    pub expected_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub from_location_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub to_location_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub sales_order_id: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
