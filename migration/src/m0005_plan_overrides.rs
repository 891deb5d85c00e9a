//! Per-tenant plan overrides (a custom deal's quota or rate), as a JSON object.

use sea_orm_migration::prelude::*;

use crate::m0001_ledger_core::text_null;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_plan_overrides"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("tenants")
                    .add_column(text_null("plan_overrides"))
                    .take(),
            )
            .await
    }
}
