//! Errors per tenant, UTC day and code: what the developers' screen shows as recent errors.
//! Like `usage_daily`, each serving process adds what it counted since its last flush.

use sea_orm_migration::prelude::*;

use crate::m0001_ledger_core::{big, pk, text, time};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_usage_errors"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("usage_errors_daily")
                    .col(text("tenant_id"))
                    // `YYYY-MM-DD` (UTC).
                    .col(text("day"))
                    // An `ErrorCode` name: a request error's `extensions.code` or a user error's.
                    .col(text("code"))
                    .col(big("count"))
                    // The latest occurrence: its message (cut to 300 characters) and request id.
                    .col(text("last_message"))
                    .col(text("last_request_id"))
                    .col(time("last_seen_at"))
                    .primary_key(&mut pk(&["tenant_id", "day", "code"]))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("usage_errors_daily").take())
            .await
    }
}
