//! A tenant: one customer account with its plan and status.
//! Table `tenants`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub plan: String,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub sandbox: bool,
    pub created_at: DateTimeUtc,
    /// A custom deal's limits over the plan's (JSON object), if any.
    #[sea_orm(column_type = "Text", nullable)]
    pub plan_overrides: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
