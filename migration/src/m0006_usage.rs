//! Metered calls per tenant and UTC day: the durable record billing reads. Each serving process
//! adds what it counted since its last flush (an upsert adding to the row), so replicas never
//! overwrite each other.

use sea_orm_migration::prelude::*;

use crate::m0001_ledger_core::{big, pk, text, time};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_usage"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("usage_daily")
                    .col(text("tenant_id"))
                    // `YYYY-MM-DD` (UTC): compares and sorts as text on every backend.
                    .col(text("day"))
                    .col(big("calls"))
                    // Calls past the plan's monthly quota (paid plans), billed as overage.
                    .col(big("overage_calls"))
                    // Requests refused for the rate or the quota.
                    .col(big("refused_calls"))
                    .col(time("updated_at"))
                    .primary_key(&mut pk(&["tenant_id", "day"]))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("usage_daily").take())
            .await
    }
}
