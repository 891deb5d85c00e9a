//! One immutable ledger entry: a signed change of one (item, location, state) bucket.
//! Table `movements`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "movements")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub group_id: String,
    #[sea_orm(column_type = "Text")]
    pub item_id: String,
    #[sea_orm(column_type = "Text")]
    pub location_id: String,
    #[sea_orm(column_type = "Text")]
    pub state: String,
    pub delta: i64,
    pub quantity_after: i64,
    pub sequence: i64,
    #[sea_orm(column_type = "Text")]
    pub counterparty: String,
    #[sea_orm(column_type = "Text")]
    pub counterparty_location_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub counterparty_state: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    #[sea_orm(column_type = "Text")]
    pub reference_document_uri: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub actor: String,
    #[sea_orm(column_type = "Text")]
    pub idempotency_key: Option<String>,
    pub effective_at: DateTimeUtc,
    pub recorded_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
