//! Workers: each claims a due job, keeps its lease alive while it runs, and ends it. The
//! scheduler enqueues the nightly reconciliation of every tenant, once per slot whatever the
//! number of processes (a dedupe key per tenant and slot).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveTime, TimeZone, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{JobKind, JobRow, JobStatus, exports, imports, queue};
use crate::app::AppState;
use crate::config::ReconcileSchedule;

/// What a running job sees of the outside: a cancel request, a lost lease.
#[derive(Default)]
pub struct Flags {
    cancel: AtomicBool,
    lost: AtomicBool,
}

impl Flags {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

/// One job being run.
pub struct Run {
    pub app: AppState,
    pub job: JobRow,
    pub owner: String,
    pub flags: Arc<Flags>,
}

impl Run {
    /// Stops the job between batches when it was cancelled or its lease was lost.
    pub fn check(&self) -> Result<(), Failure> {
        if self.flags.lost() {
            return Err(Failure::LeaseLost);
        }
        if self.flags.cancelled() {
            return Err(Failure::Cancelled);
        }
        Ok(())
    }

    pub fn tenant(&self) -> &str {
        &self.job.tenant_id
    }
}

/// How a job ended.
pub struct Outcome {
    pub status: JobStatus,
    pub result: Option<Value>,
    pub errors: Value,
}

impl Outcome {
    pub fn succeeded(result: Value) -> Self {
        Self {
            status: JobStatus::Succeeded,
            result: Some(result),
            errors: json!([]),
        }
    }
}

/// Why a job stopped short.
#[derive(Debug)]
pub enum Failure {
    /// The input or the parameters are wrong: retrying cannot help.
    Permanent { code: &'static str, message: String },
    /// The database or the store failed: try again later.
    Transient(String),
    /// Another worker holds the job now; stop without writing.
    LeaseLost,
    /// Cancelled by the tenant.
    Cancelled,
}

impl Failure {
    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Failure::Permanent {
            code,
            message: message.into(),
        }
    }
}

impl From<DbErr> for Failure {
    fn from(err: DbErr) -> Self {
        Failure::Transient(format!("database: {err}"))
    }
}

impl From<crate::artifacts::StoreError> for Failure {
    fn from(err: crate::artifacts::StoreError) -> Self {
        Failure::Transient(format!("object store: {err}"))
    }
}

impl From<object_store::Error> for Failure {
    fn from(err: object_store::Error) -> Self {
        Failure::Transient(format!("object store: {err}"))
    }
}

/// Runs `TWH_JOB_WORKERS` workers and the scheduler until `stop`.
pub fn start(state: &AppState, stop: &watch::Sender<bool>) {
    // SQLite has one writer: one worker keeps imports from queueing behind each other there.
    let workers = if state.is_postgres() {
        state.config.jobs.workers
    } else {
        state.config.jobs.workers.min(1)
    };
    for n in 0..workers {
        tokio::spawn(worker(state.clone(), n, stop.subscribe()));
    }
    if workers > 0 && state.config.jobs.reconcile_schedule != ReconcileSchedule::Off {
        tokio::spawn(scheduler(state.clone(), stop.subscribe()));
    }
}

async fn worker(state: AppState, n: usize, mut stop: watch::Receiver<bool>) {
    let owner = format!("{}#{n}", state.instance_id);
    let lease = Duration::seconds(state.config.jobs.lease_secs as i64);
    let idle = StdDuration::from_millis(state.config.jobs.poll_ms);
    loop {
        if *stop.borrow() {
            return;
        }
        match queue::claim(&state, &owner, lease).await {
            Ok(Some(job)) => {
                let run = run_one(&state, job, &owner, lease);
                tokio::select! {
                    _ = run => {}
                    // Shutting down: the lease runs out and another process takes the job up
                    // from its checkpoint.
                    _ = stop.changed() => return,
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = state.wake.jobs.notified() => {}
                    _ = stop.changed() => return,
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "claiming a job failed");
                tokio::select! {
                    _ = tokio::time::sleep(idle * 4) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

async fn run_one(state: &AppState, job: JobRow, owner: &str, lease: Duration) {
    let flags = Arc::new(Flags::default());
    // Renews the lease a few times per lease period; sees cancel requests and a lost lease.
    let heartbeat = {
        let (state, job, owner, flags) =
            (state.clone(), job.clone(), owner.to_owned(), flags.clone());
        tokio::spawn(async move {
            let every =
                StdDuration::from_millis(Ord::max(lease.num_milliseconds() / 3, 100) as u64);
            loop {
                tokio::time::sleep(every).await;
                match queue::renew(&state, &job, &owner, lease).await {
                    Ok(Some(cancel)) => flags.cancel.store(cancel, Ordering::Relaxed),
                    Ok(None) => {
                        flags.lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, job = %job.job.id.0, "renewing a job lease failed")
                    }
                }
            }
        })
    };
    let started = std::time::Instant::now();
    let kind = job.job.kind;
    tracing::info!(job.id = %job.job.id.0, job.kind = kind.as_str(), tenant.id = %job.tenant_id, attempt = job.job.attempts, "job started");
    let run = Run {
        app: state.clone(),
        job: job.clone(),
        owner: owner.to_owned(),
        flags,
    };
    let outcome = execute(&run).await;
    heartbeat.abort();
    let ended = match outcome {
        Ok(outcome) => queue::finish(
            state,
            &job,
            owner,
            outcome.status,
            outcome.result,
            outcome.errors,
        )
        .await
        .map(|_| outcome.status.as_str()),
        Err(Failure::Permanent { code, message }) => queue::finish(
            state,
            &job,
            owner,
            JobStatus::Failed,
            None,
            json!([{ "code": code, "message": message }]),
        )
        .await
        .map(|_| "FAILED"),
        Err(Failure::Cancelled) => {
            let processed = super::get(&state.background_db, &job.tenant_id, &job.job.id)
                .await
                .ok()
                .flatten()
                .map(|j| j.job.processed_rows)
                .unwrap_or_default();
            queue::finish(
                state,
                &job,
                owner,
                JobStatus::Cancelled,
                Some(json!({ "rowsCommittedBeforeCancel": processed })),
                json!([]),
            )
            .await
            .map(|_| "CANCELLED")
        }
        Err(Failure::LeaseLost) => Ok("LEASE_LOST"),
        Err(Failure::Transient(reason)) => {
            tracing::warn!(job.id = %job.job.id.0, reason, "job failed; retrying later");
            queue::retry_later(state, &job, owner, &reason)
                .await
                .map(|_| "RETRYING")
        }
    };
    match ended {
        Ok(status) => {
            metrics::histogram!("twh_job_duration_seconds", "kind" => kind.as_str())
                .record(started.elapsed().as_secs_f64());
            tracing::info!(job.id = %job.job.id.0, status, duration_ms = started.elapsed().as_millis() as u64, "job ended");
        }
        Err(err) => {
            tracing::warn!(job.id = %job.job.id.0, error = %err, "recording the end of a job failed; its lease will run out and it runs again")
        }
    }
}

async fn execute(run: &Run) -> Result<Outcome, Failure> {
    match run.job.job.kind {
        JobKind::ImportItems | JobKind::ImportStockCounts => imports::run(run).await,
        JobKind::ExportStockLevels => exports::stock_levels(run).await,
        JobKind::ExportMovements => exports::movements(run).await,
        JobKind::ReportLowStock => exports::low_stock(run).await,
        JobKind::ReportMovementSummary => exports::movement_summary(run).await,
        JobKind::Reconcile => exports::reconcile(run).await,
    }
}

/// How long after its time a daily run is still started (a process that was down at 02:00
/// and back by 08:00 still runs that night's); a server first started in the afternoon waits
/// for the next night instead of reconciling at once.
const DAILY_GRACE_HOURS: i64 = 6;

/// The slot a schedule is in at `now`, once its time has come: the dedupe key of its runs.
pub fn slot(schedule: ReconcileSchedule, now: chrono::DateTime<Utc>) -> Option<String> {
    match schedule {
        ReconcileSchedule::Off => None,
        ReconcileSchedule::Daily(h, m) => {
            let at = NaiveTime::from_hms_opt(h, m, 0)?;
            // Today's time, or yesterday's when today's has not come yet (a late-evening time
            // whose grace runs past midnight).
            let mut start = Utc.from_utc_datetime(&now.date_naive().and_time(at));
            if now < start {
                start -= Duration::days(1);
            }
            (now < start + Duration::hours(DAILY_GRACE_HOURS))
                .then(|| format!("reconcile:{}", start.date_naive()))
        }
        ReconcileSchedule::Every(secs) => Some(format!(
            "reconcile:every{secs}:{}",
            now.timestamp() / secs as i64
        )),
    }
}

/// Enqueues this slot's reconciliation for every active tenant that has none yet; returns
/// how many it enqueued.
pub async fn enqueue_scheduled(state: &AppState, key: &str) -> Result<u64, DbErr> {
    let tenants = Query::select()
        .column("id")
        .from("tenants")
        .and_where(Expr::col("status").ne("suspended"))
        .to_owned();
    let mut enqueued = 0;
    for row in state.background_db.query_all(&tenants).await? {
        let tenant_id: String = row.try_get("", "id")?;
        let txn = state.begin_background_write().await?;
        let inserted = super::insert(
            &txn.txn,
            super::NewJob {
                tenant_id: &tenant_id,
                kind: JobKind::Reconcile,
                params: json!({}),
                input_artifact: None,
                key_id: "scheduler",
                role: "admin",
                actor: "scheduler",
                max_attempts: state.config.jobs.max_attempts,
                dedupe_key: Some(key.to_owned()),
                run_after: Utc::now(),
            },
        )
        .await?;
        txn.txn.commit().await?;
        enqueued += u64::from(inserted.is_some());
    }
    if enqueued > 0 {
        state.wake.jobs.notify_waiters();
        state.wake.relay.notify_one();
    }
    Ok(enqueued)
}

async fn scheduler(state: AppState, mut stop: watch::Receiver<bool>) {
    let schedule = state.config.jobs.reconcile_schedule;
    let every = match schedule {
        ReconcileSchedule::Every(secs) => StdDuration::from_secs(Ord::min(secs, 30)),
        _ => StdDuration::from_secs(30),
    };
    let mut last: Option<String> = None;
    loop {
        if let Some(key) = slot(schedule, Utc::now())
            && last.as_deref() != Some(key.as_str())
        {
            match enqueue_scheduled(&state, &key).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(jobs = n, slot = %key, "scheduled reconciliation enqueued");
                    }
                    last = Some(key);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "enqueueing the scheduled reconciliation failed")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_slot_opens_at_its_time() {
        let schedule = ReconcileSchedule::Daily(2, 0);
        let before = Utc.with_ymd_and_hms(2026, 11, 26, 1, 59, 0).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap();
        assert_eq!(slot(schedule, before), None);
        assert_eq!(
            slot(schedule, after).as_deref(),
            Some("reconcile:2026-11-26")
        );
        let afternoon = Utc.with_ymd_and_hms(2026, 11, 26, 16, 0, 0).unwrap();
        assert_eq!(slot(schedule, afternoon), None);
        let late = ReconcileSchedule::Daily(23, 0);
        let after_midnight = Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap();
        assert_eq!(
            slot(late, after_midnight).as_deref(),
            Some("reconcile:2026-11-26")
        );
        assert_eq!(slot(ReconcileSchedule::Off, after), None);
        let every = ReconcileSchedule::Every(60);
        assert_ne!(
            slot(every, after),
            slot(every, after + Duration::seconds(60))
        );
    }
}
