//! GraphQL for jobs, reconciliation repair and reorder points.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{connection, db_error, mutate, page_size, state};
use crate::auth::principal;
use crate::error::{DomainError, ErrorCode, UserError};
use crate::jobs::{self, Job, JobFilter, StartJobInput};
use crate::ledger::reconcile::{self, Repair};

#[derive(SimpleObject)]
pub struct JobPayload {
    pub job: Option<Job>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct RepairReconciliationPayload {
    pub repair: Option<Repair>,
    pub user_errors: Vec<UserError>,
}

/// One comparison of the tenant's snapshots with its ledger.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationRun {
    /// The run's id (`repairReconciliation(runId)`).
    pub id: ID,
    pub levels_checked: i64,
    pub mismatches: i64,
    /// Every differing quantity.
    pub rows: Vec<reconcile::Mismatch>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct ReconciliationRunPayload {
    pub run: Option<ReconciliationRun>,
    pub user_errors: Vec<UserError>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct SetReorderPointInput {
    pub sku: String,
    pub location_code: String,
    /// The `available` quantity at or below which `REPORT_LOW_STOCK` lists the level; null
    /// removes it.
    pub reorder_point: Option<i64>,
}

#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReorderPoint {
    pub sku: String,
    pub location_code: String,
    pub reorder_point: Option<i64>,
    pub updated_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct ReorderPointPayload {
    pub reorder_point: Option<ReorderPoint>,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct JobsQuery;

#[Object]
impl JobsQuery {
    /// One of the tenant's jobs with its progress, result, errors and artifacts.
    async fn job(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Job>> {
        let tenant = &principal(ctx)?.tenant_id;
        Ok(jobs::get(&state(ctx)?.db, tenant, &id)
            .await
            .map_err(|e| db_error(ctx, e))?
            .map(|row| row.job))
    }

    /// The tenant's jobs, newest first.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        filter: Option<JobFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Job>> {
        let tenant = &principal(ctx)?.tenant_id;
        let limit = page_size(first)?;
        let rows = jobs::list(
            &state(ctx)?.db,
            tenant,
            &filter.unwrap_or_default(),
            after.as_deref(),
            limit,
        )
        .await
        .map_err(|e| db_error(ctx, e))?;
        Ok(connection(rows, limit, after.is_some(), |j| j.id.0.clone()))
    }
}

#[derive(Default)]
pub struct JobsMutation;

#[Object]
impl JobsMutation {
    /// Queues a job: an import of an uploaded file, an export, a report or a reconciliation.
    /// Follow it with `job(id)` or the `jobUpdated(id)` subscription.
    async fn start_job(
        &self,
        ctx: &Context<'_>,
        input: StartJobInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<JobPayload> {
        let max_attempts = state(ctx)?.config.jobs.max_attempts;
        let (job, user_errors) = mutate(
            ctx,
            "startJob",
            idempotency_key,
            input,
            move |txn, principal, rid, input| async move {
                let result = jobs::start(&txn, &principal, &rid, input, max_attempts).await;
                (txn, result)
            },
        )
        .await?;
        if job.is_some() {
            state(ctx)?.wake.jobs.notify_waiters();
        }
        Ok(JobPayload { job, user_errors })
    }

    /// Cancels a job: at once if queued; a running one stops after its current batch.
    async fn cancel_job(
        &self,
        ctx: &Context<'_>,
        id: ID,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<JobPayload> {
        let (job, user_errors) = mutate(
            ctx,
            "cancelJob",
            idempotency_key,
            id,
            |txn, principal, rid, id| async move {
                let result = jobs::cancel(&txn, &principal, &rid, &id).await;
                (txn, result)
            },
        )
        .await?;
        Ok(JobPayload { job, user_errors })
    }

    /// Compares the tenant's snapshots with its ledger now and records the run (what the
    /// `RECONCILE` job does, answered at once); a mismatch raises `reconciliation.mismatch`.
    async fn run_reconciliation(
        &self,
        ctx: &Context<'_>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ReconciliationRunPayload> {
        let db = state(ctx)?.db.clone();
        let (run, user_errors) = mutate(
            ctx,
            "runReconciliation",
            idempotency_key,
            (),
            move |txn, principal, rid, ()| async move {
                let result = run_reconciliation(&db, &txn, &principal, &rid).await;
                (txn, result)
            },
        )
        .await?;
        Ok(ReconciliationRunPayload { run, user_errors })
    }

    /// Repairs what a reconciliation run found: compensating movements (reason
    /// `RECONCILIATION`) bring the ledger to the snapshot, never a silent overwrite.
    async fn repair_reconciliation(
        &self,
        ctx: &Context<'_>,
        run_id: ID,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<RepairReconciliationPayload> {
        let (repair, user_errors) = mutate(
            ctx,
            "repairReconciliation",
            idempotency_key,
            run_id,
            |txn, principal, rid, run_id| async move {
                let result = reconcile::repair(&txn, &principal, &rid, &run_id).await;
                (txn, result)
            },
        )
        .await?;
        Ok(RepairReconciliationPayload {
            repair,
            user_errors,
        })
    }

    /// Sets (or with null removes) the reorder point of an item at a location.
    async fn set_reorder_point(
        &self,
        ctx: &Context<'_>,
        input: SetReorderPointInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ReorderPointPayload> {
        let (reorder_point, user_errors) = mutate(
            ctx,
            "setReorderPoint",
            idempotency_key,
            input,
            |txn, principal, rid, input| async move {
                let result = set_reorder_point(&txn, &principal, &rid, input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(ReorderPointPayload {
            reorder_point,
            user_errors,
        })
    }
}

async fn run_reconciliation(
    db: &sea_orm::DatabaseConnection,
    txn: &sea_orm::DatabaseTransaction,
    principal: &crate::auth::Principal,
    request_id: &str,
) -> Result<ReconciliationRun, DomainError> {
    // The comparison reads its own consistent snapshot; the run, its events and the audit
    // record are written with the request.
    let report = reconcile::compare(db, Some(&principal.tenant_id)).await?;
    reconcile::record(txn, &report).await?;
    crate::jobs::exports::announce_in(txn, &report).await?;
    crate::audit::record(
        txn,
        principal,
        crate::audit::AuditEntry {
            action: "reconciliation.run",
            target_type: "reconciliation_run",
            target_id: &report.run_id,
            request_id: Some(request_id),
            data: serde_json::json!({ "mismatches": report.mismatches }),
        },
    )
    .await?;
    Ok(ReconciliationRun {
        id: ID(report.run_id),
        levels_checked: report.levels_checked as i64,
        mismatches: report.mismatches as i64,
        rows: report.rows,
        started_at: report.started_at,
        finished_at: report.finished_at,
    })
}

async fn set_reorder_point(
    txn: &sea_orm::DatabaseTransaction,
    principal: &crate::auth::Principal,
    request_id: &str,
    input: SetReorderPointInput,
) -> Result<ReorderPoint, DomainError> {
    let tenant = principal.tenant_id.as_str();
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
    if input
        .reorder_point
        .is_some_and(|p| !(0..=crate::ledger::MAX_QUANTITY).contains(&p))
    {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidInput,
            &["input", "reorderPoint"],
            format!("a whole number from 0 to {}", crate::ledger::MAX_QUANTITY),
        )));
    }
    let item = crate::catalog::items::get_by_sku(txn, tenant, &input.sku).await?;
    let location =
        crate::catalog::locations::get_by_code(txn, tenant, &input.location_code).await?;
    let mut errors = Vec::new();
    if item.is_none() {
        errors.push(UserError::new(
            ErrorCode::UnknownSku,
            &["input", "sku"],
            format!("no item has SKU {:?}", input.sku),
        ));
    }
    if location.is_none() {
        errors.push(UserError::new(
            ErrorCode::UnknownLocation,
            &["input", "locationCode"],
            format!("no location has code {:?}", input.location_code),
        ));
    }
    let (Some(item), Some(location)) = (item, location) else {
        return Err(DomainError::User(errors));
    };
    let now = Utc::now();
    match input.reorder_point {
        Some(point) => {
            let upsert = Query::insert()
                .into_table("reorder_points")
                .columns([
                    "tenant_id",
                    "item_id",
                    "location_id",
                    "reorder_point",
                    "updated_at",
                ])
                .values_panic([
                    tenant.into(),
                    item.id.0.clone().into(),
                    location.id.0.clone().into(),
                    point.into(),
                    now.into(),
                ])
                .on_conflict(
                    OnConflict::columns(["tenant_id", "item_id", "location_id"])
                        .update_columns(["reorder_point", "updated_at"])
                        .to_owned(),
                )
                .to_owned();
            txn.execute(&upsert).await?;
        }
        None => {
            let delete = Query::delete()
                .from_table("reorder_points")
                .and_where(Expr::col("tenant_id").eq(tenant))
                .and_where(Expr::col("item_id").eq(item.id.0.as_str()))
                .and_where(Expr::col("location_id").eq(location.id.0.as_str()))
                .to_owned();
            txn.execute(&delete).await?;
        }
    }
    crate::audit::record(
        txn,
        principal,
        crate::audit::AuditEntry {
            action: "reorder_point.set",
            target_type: "item",
            target_id: &item.id,
            request_id: Some(request_id),
            data: serde_json::json!({ "locationCode": location.code, "reorderPoint": input.reorder_point }),
        },
    )
    .await?;
    Ok(ReorderPoint {
        sku: item.sku,
        location_code: location.code,
        reorder_point: input.reorder_point,
        updated_at: now,
    })
}
