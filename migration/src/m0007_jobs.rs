//! Background jobs and their artifacts: a queue in the database with leases, the rows each
//! import refused, the files in object storage, and reorder points for the low-stock report.
//!
//! A job's `checkpoint` is the number of input rows whose effect has committed; it moves in the
//! same transaction as the rows it counts, so a job taken up again after a crash resumes there
//! and never applies a row twice.

use sea_orm_migration::prelude::*;

use crate::m0001_ledger_core::{
    big, boolean, index, json, pk, text, text_null, time, time_null, unique,
};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_jobs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("jobs")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("kind"))
                    .col(text("status"))
                    .col(json("params"))
                    .col(text_null("input_artifact_id"))
                    // Who started it: the job runs with this key's tenant and role.
                    .col(text("key_id"))
                    .col(text("role"))
                    .col(text("actor"))
                    .col(big("processed_rows"))
                    .col(ColumnDef::new("total_rows").big_integer().null().take())
                    .col(big("checkpoint"))
                    .col(big("error_count"))
                    .col(ColumnDef::new("result").json().null().take())
                    .col(json("errors"))
                    .col(big("attempts"))
                    .col(big("max_attempts"))
                    .col(time("run_after"))
                    .col(text_null("lease_owner"))
                    .col(time_null("lease_expires_at"))
                    .col(boolean("cancel_requested"))
                    // Scheduled runs (the nightly reconciliation) are enqueued once per slot.
                    .col(text_null("dedupe_key"))
                    .col(big("version"))
                    .col(time("created_at"))
                    .col(time("updated_at"))
                    .col(time_null("started_at"))
                    .col(time_null("finished_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("ix_jobs_due", "jobs", &["status", "run_after"]))
            .await?;
        manager
            .create_index(index(
                "ix_jobs_tenant_started",
                "jobs",
                &["tenant_id", "started_at"],
            ))
            .await?;
        manager
            .create_index(unique(
                "ux_jobs_dedupe",
                "jobs",
                &["tenant_id", "dedupe_key"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("job_row_errors")
                    .col(text("tenant_id"))
                    .col(text("job_id"))
                    .col(big("row_number"))
                    .col(big("ordinal"))
                    .col(text_null("column_name"))
                    .col(text("code"))
                    .col(text("message"))
                    .primary_key(&mut pk(&["tenant_id", "job_id", "row_number", "ordinal"]))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("artifacts")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("name"))
                    .col(text("content_type"))
                    .col(big("size_bytes"))
                    .col(text("sha256"))
                    .col(text("storage_key"))
                    .col(text_null("job_id"))
                    // upload | output | errors | report
                    .col(text("purpose"))
                    .col(text("created_by"))
                    .col(time("created_at"))
                    .col(time("expires_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("ix_artifacts_expiry", "artifacts", &["expires_at"]))
            .await?;
        manager
            .create_index(index(
                "ix_artifacts_job",
                "artifacts",
                &["tenant_id", "job_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("reorder_points")
                    .col(text("tenant_id"))
                    .col(text("item_id"))
                    .col(text("location_id"))
                    .col(big("reorder_point"))
                    .col(time("updated_at"))
                    .primary_key(&mut pk(&["tenant_id", "item_id", "location_id"]))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["reorder_points", "artifacts", "job_row_errors", "jobs"] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        Ok(())
    }
}
