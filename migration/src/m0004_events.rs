//! The relayed event log, webhook endpoints, deliveries and their attempts.
//!
//! The outbox gets a relay `position`: assigned by the one relay holding the `relay_cursors`
//! row, in insertion order, so a reader that has seen position P has seen everything before it.
//! Postgres also gets `insert_seq`, an identity in insertion order (SQLite's `rowid` is that);
//! the relay takes the unrelayed events by it, never by a cursor that a transaction committing
//! out of order could jump.
//!
//! As in m0003, secondary indexes do not lead with `tenant_id`, except the event log's, whose
//! (tenant, position) order is the one its reads need.

use sea_orm_migration::prelude::*;

use crate::m0001_ledger_core::{big, index, pk, text, text_null, time, time_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_events"
    }
}

fn big_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let postgres = manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
        manager
            .alter_table(
                Table::alter()
                    .table("outbox_events")
                    .add_column(big_null("position"))
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        if postgres {
            db.execute_unprepared(
                "ALTER TABLE outbox_events ADD COLUMN insert_seq BIGINT GENERATED ALWAYS AS IDENTITY",
            )
            .await?;
            db.execute_unprepared(
                "CREATE INDEX ix_outbox_pending ON outbox_events (insert_seq) WHERE published_at IS NULL",
            )
            .await?;
            db.execute_unprepared("DROP INDEX IF EXISTS ix_outbox_unpublished")
                .await?;
        }
        manager
            .create_index(index(
                "ix_outbox_log",
                "outbox_events",
                &["tenant_id", "position"],
            ))
            .await?;
        manager
            .create_index(index("ix_outbox_position", "outbox_events", &["position"]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("relay_cursors")
                    .col(text("name"))
                    .col(big("position"))
                    .primary_key(&mut pk(&["name"]))
                    .take(),
            )
            .await?;
        // `installation` names this database on a shared Redis: the bus channel of its
        // replicas. Random, not a clock reading: databases migrated at the same moment
        // (parallel test runs on one Redis) must not share a channel.
        let installation = (uuid::Uuid::new_v4().as_u128() as i64) & i64::MAX;
        db.execute_unprepared(&format!(
            "INSERT INTO relay_cursors (name, position) VALUES ('outbox', 0), ('installation', {installation})"
        ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("webhook_endpoints")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("url"))
                    .col(text_null("description"))
                    .col(text("event_types"))
                    .col(text("status"))
                    .col(text_null("disabled_reason"))
                    .col(text("secret"))
                    .col(text_null("previous_secret"))
                    .col(time_null("previous_secret_until"))
                    .col(time_null("failing_since"))
                    .col(text_null("lease_owner"))
                    .col(time_null("lease_until"))
                    .col(big("version"))
                    .col(time("created_at"))
                    .col(time("updated_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_deliveries")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("endpoint_id"))
                    .col(text("event_id"))
                    .col(text("event_type"))
                    .col(big("position"))
                    .col(text("ordering_key"))
                    .col(text("body"))
                    .col(text("status"))
                    .col(big("attempt_count"))
                    .col(big("schedule_step"))
                    .col(time_null("next_attempt_at"))
                    .col(time_null("last_attempt_at"))
                    .col(time("created_at"))
                    .col(time("updated_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_deliveries_due",
                "webhook_deliveries",
                &["next_attempt_at"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_deliveries_endpoint",
                "webhook_deliveries",
                &["endpoint_id", "next_attempt_at"],
            ))
            .await?;
        // An endpoint's queue in log order: only unfinished deliveries are in it.
        db.execute_unprepared(
            "CREATE INDEX ix_deliveries_queue ON webhook_deliveries (endpoint_id, position, id) \
             WHERE next_attempt_at IS NOT NULL",
        )
        .await?;
        manager
            .create_index(index(
                "ix_deliveries_list",
                "webhook_deliveries",
                &["endpoint_id", "id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_attempts")
                    .col(text("tenant_id"))
                    .col(text("delivery_id"))
                    .col(big("number"))
                    .col(time("attempted_at"))
                    .col(big_null("status_code"))
                    .col(big("latency_ms"))
                    .col(text_null("error"))
                    .col(text_null("response_excerpt"))
                    .primary_key(&mut pk(&["tenant_id", "delivery_id", "number"]))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "webhook_attempts",
            "webhook_deliveries",
            "webhook_endpoints",
            "relay_cursors",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
