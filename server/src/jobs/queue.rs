//! The queue: workers claim due jobs with a lease (`FOR UPDATE SKIP LOCKED` on Postgres; on
//! SQLite one writer at a time), renew it while they run, and write the job's state only while
//! they hold it. A job whose lease ran out (its worker crashed or hung) is due again.
//!
//! Fairness: among due jobs, the tenant whose last job started longest ago (or never) goes
//! first, so one tenant's hundred imports take turns with another's one.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use serde_json::{Value, json};

use super::{
    JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED, JOB_PROGRESS, JOB_STARTED, JobRow, JobStatus,
};
use crate::app::App;

/// Claims the next due job for `owner`, marking it RUNNING until `lease` from now.
pub async fn claim(app: &App, owner: &str, lease: Duration) -> Result<Option<JobRow>, DbErr> {
    let now = Utc::now();
    let backend = app.background_db.get_database_backend();
    let lock = if backend == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    // The candidate: due (queued and past its backoff) or abandoned (running, lease over);
    // the tenant that started a job least recently first, then the oldest job.
    let sql = format!(
        "UPDATE jobs SET status = 'RUNNING', lease_owner = $1, lease_expires_at = $2, \
           attempts = attempts + 1, started_at = COALESCE(started_at, $3), updated_at = $3, \
           version = version + 1 \
         WHERE (tenant_id, id) = (SELECT j.tenant_id, j.id FROM jobs j \
           WHERE (j.status = 'QUEUED' AND j.run_after <= $3) \
              OR (j.status = 'RUNNING' AND j.lease_expires_at < $3) \
           ORDER BY (SELECT MAX(r.started_at) FROM jobs r WHERE r.tenant_id = j.tenant_id) \
             ASC NULLS FIRST, j.created_at ASC, j.id ASC \
           LIMIT 1{lock}) \
         RETURNING {columns}",
        columns = super::COLUMNS.join(", ")
    );
    let txn = app.begin_background_write().await?;
    let row = txn
        .txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [owner.into(), (now + lease).into(), now.into()],
        ))
        .await?;
    let Some(row) = row else {
        txn.txn.commit().await?;
        return Ok(None);
    };
    let claimed = super::from_row(&row)?;
    if claimed.job.attempts > claimed.max_attempts {
        // It was taken up again after crashing its worker too often: give up on it.
        let errors = json!([{ "code": "INTERNAL", "message": format!(
            "the job stopped without finishing {} times (its worker crashed or lost its lease); not retried again",
            claimed.max_attempts
        ) }]);
        finish_in(
            &txn.txn,
            &claimed,
            owner,
            JobStatus::Failed,
            claimed.job.result.clone(),
            errors,
        )
        .await?;
        txn.txn.commit().await?;
        metrics::counter!("twh_jobs_finished_total", "status" => "FAILED").increment(1);
        return Ok(None);
    }
    super::record_event(&txn.txn, &claimed.tenant_id, JOB_STARTED, &claimed.job).await?;
    txn.txn.commit().await?;
    app.wake.relay.notify_one();
    Ok(Some(claimed))
}

/// Renews the lease; `Some(cancel_requested)` while the worker still holds it.
pub async fn renew(
    app: &App,
    job: &JobRow,
    owner: &str,
    lease: Duration,
) -> Result<Option<bool>, DbErr> {
    let update = Query::update()
        .table("jobs")
        .value("lease_expires_at", Utc::now() + lease)
        .and_where(Expr::col("tenant_id").eq(job.tenant_id.as_str()))
        .and_where(Expr::col("id").eq(job.job.id.as_str()))
        .and_where(Expr::col("lease_owner").eq(owner))
        .and_where(Expr::col("status").eq("RUNNING"))
        .returning(Query::returning().column("cancel_requested"))
        .to_owned();
    let txn = app.begin_background_write().await?;
    let row = txn.txn.query_one(&update).await?;
    txn.txn.commit().await?;
    row.map(|r| r.try_get::<bool>("", "cancel_requested"))
        .transpose()
}

/// Moves the checkpoint from `from` to `to` in the transaction that applied those rows, with
/// the progress so far. `false` when the worker no longer holds the job (or another moved the
/// checkpoint): the caller must roll back.
pub async fn advance(
    txn: &impl ConnectionTrait,
    job: &JobRow,
    owner: &str,
    from: i64,
    to: i64,
    new_errors: i64,
) -> Result<bool, DbErr> {
    let update = Query::update()
        .table("jobs")
        .value("checkpoint", to)
        .value("processed_rows", to)
        .value("error_count", Expr::col("error_count").add(new_errors))
        .value("updated_at", Utc::now())
        .and_where(Expr::col("tenant_id").eq(job.tenant_id.as_str()))
        .and_where(Expr::col("id").eq(job.job.id.as_str()))
        .and_where(Expr::col("lease_owner").eq(owner))
        .and_where(Expr::col("status").eq("RUNNING"))
        .and_where(Expr::col("checkpoint").eq(from))
        .to_owned();
    Ok(txn.execute(&update).await?.rows_affected() == 1)
}

/// Records progress that commits nothing else (exports, dry runs, one-transaction imports on
/// Postgres), with a `job.progress` event.
pub async fn progress(
    app: &App,
    job: &JobRow,
    owner: &str,
    processed: i64,
    total: Option<i64>,
) -> Result<(), DbErr> {
    let txn = app.begin_background_write().await?;
    let update = Query::update()
        .table("jobs")
        .value("processed_rows", processed)
        .value("total_rows", total)
        .value("updated_at", Utc::now())
        .and_where(Expr::col("tenant_id").eq(job.tenant_id.as_str()))
        .and_where(Expr::col("id").eq(job.job.id.as_str()))
        .and_where(Expr::col("lease_owner").eq(owner))
        .and_where(Expr::col("status").eq("RUNNING"))
        .to_owned();
    if txn.txn.execute(&update).await?.rows_affected() == 1
        && let Some(current) = super::get(&txn.txn, &job.tenant_id, &job.job.id).await?
    {
        super::record_event(&txn.txn, &job.tenant_id, JOB_PROGRESS, &current.job).await?;
    }
    txn.txn.commit().await?;
    app.wake.relay.notify_one();
    Ok(())
}

/// Sets the total once the input is read.
pub async fn set_total(
    txn: &impl ConnectionTrait,
    job: &JobRow,
    owner: &str,
    total: i64,
) -> Result<(), DbErr> {
    let update = Query::update()
        .table("jobs")
        .value("total_rows", total)
        .and_where(Expr::col("tenant_id").eq(job.tenant_id.as_str()))
        .and_where(Expr::col("id").eq(job.job.id.as_str()))
        .and_where(Expr::col("lease_owner").eq(owner))
        .to_owned();
    txn.execute(&update).await?;
    Ok(())
}

/// Ends the job in `status` (in the caller's transaction) with its event; `None` when the
/// worker no longer held it.
pub async fn finish_in(
    txn: &impl ConnectionTrait,
    job: &JobRow,
    owner: &str,
    status: JobStatus,
    result: Option<Value>,
    errors: Value,
) -> Result<Option<JobRow>, DbErr> {
    let now = Utc::now();
    let update = Query::update()
        .table("jobs")
        .value("status", status.as_str())
        .value("result", result)
        .value("errors", errors)
        .value("finished_at", now)
        .value("updated_at", now)
        .value("lease_owner", Option::<String>::None)
        .value("lease_expires_at", Option::<DateTime<Utc>>::None)
        .value("version", Expr::col("version").add(1))
        .and_where(Expr::col("tenant_id").eq(job.tenant_id.as_str()))
        .and_where(Expr::col("id").eq(job.job.id.as_str()))
        .and_where(Expr::col("lease_owner").eq(owner))
        .and_where(Expr::col("status").eq("RUNNING"))
        .to_owned();
    if txn.execute(&update).await?.rows_affected() == 0 {
        return Ok(None);
    }
    let Some(done) = super::get(txn, &job.tenant_id, &job.job.id).await? else {
        return Ok(None);
    };
    let event = match status {
        JobStatus::Succeeded => JOB_COMPLETED,
        JobStatus::Cancelled => JOB_CANCELLED,
        _ => JOB_FAILED,
    };
    super::record_event(txn, &job.tenant_id, event, &done.job).await?;
    Ok(Some(done))
}

/// [`finish_in`] in a transaction of its own.
pub async fn finish(
    app: &App,
    job: &JobRow,
    owner: &str,
    status: JobStatus,
    result: Option<Value>,
    errors: Value,
) -> Result<Option<JobRow>, DbErr> {
    let txn = app.begin_background_write().await?;
    let done = finish_in(&txn.txn, job, owner, status, result, errors).await?;
    txn.txn.commit().await?;
    if done.is_some() {
        metrics::counter!("twh_jobs_finished_total", "status" => status.as_str()).increment(1);
        app.wake.relay.notify_one();
    }
    Ok(done)
}

/// After a failure that may pass (the database or the store out of reach): queued again
/// after a backoff of 2^attempts seconds (at most 5 minutes), or failed for good once its
/// attempts are spent.
pub async fn retry_later(app: &App, job: &JobRow, owner: &str, reason: &str) -> Result<(), DbErr> {
    if job.job.attempts >= job.max_attempts {
        let errors = json!([{ "code": "INTERNAL", "message": format!(
            "failed {} times; the last failure: {reason}", job.job.attempts
        ) }]);
        finish(app, job, owner, JobStatus::Failed, None, errors).await?;
        return Ok(());
    }
    let backoff = Duration::seconds(1i64 << job.job.attempts.clamp(0, 8)).min(Duration::minutes(5));
    let update = Query::update()
        .table("jobs")
        .value("status", "QUEUED")
        .value("run_after", Utc::now() + backoff)
        .value("lease_owner", Option::<String>::None)
        .value("lease_expires_at", Option::<DateTime<Utc>>::None)
        .value("errors", json!([{ "code": "RETRYING", "message": reason }]))
        .value("updated_at", Utc::now())
        .and_where(Expr::col("tenant_id").eq(job.tenant_id.as_str()))
        .and_where(Expr::col("id").eq(job.job.id.as_str()))
        .and_where(Expr::col("lease_owner").eq(owner))
        .to_owned();
    let txn = app.begin_background_write().await?;
    txn.txn.execute(&update).await?;
    txn.txn.commit().await?;
    Ok(())
}
