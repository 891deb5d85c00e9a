//! Background jobs: bulk imports and exports, reports and the reconciliation, queued in the
//! database and run by workers in any number of processes ([`worker`]). A job's row is its
//! whole state: status, progress, the rows it has committed (`checkpoint`), its result and
//! errors; its files are artifacts ([`crate::artifacts`]).
//!
//! Every change of a job's status writes a `job.*` event in the same transaction, so
//! `jobUpdated`, the event log and webhooks see the job as it goes.

pub mod exports;
pub mod imports;
pub mod queue;
pub mod worker;

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::artifacts::{self, Artifact};
use crate::auth::Principal;
use crate::error::{DomainError, ErrorCode, UserError};
use crate::{events, ids};

pub const JOB_QUEUED: &str = "job.queued";
pub const JOB_STARTED: &str = "job.started";
pub const JOB_PROGRESS: &str = "job.progress";
pub const JOB_COMPLETED: &str = "job.completed";
pub const JOB_FAILED: &str = "job.failed";
pub const JOB_CANCELLED: &str = "job.cancelled";
pub const RECONCILIATION_MISMATCH: &str = "reconciliation.mismatch";
pub const RECONCILIATION_REPAIRED: &str = "reconciliation.repaired";

/// Row errors kept on the job itself; the error report artifact has them all.
pub const MAX_LISTED_ERRORS: usize = 100;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobKind {
    /// Create or update items by SKU from a CSV (`sku,name,barcode,unit`).
    ImportItems,
    /// Set `available` as a cycle count from a CSV
    /// (`sku,location,quantity[,change_from_quantity]`).
    ImportStockCounts,
    /// Every stock level (filters `sku`, `locationCode`) as CSV.
    ExportStockLevels,
    /// Movements (filters `sku`, `locationCode`, `reason`, `since`, `until`) as CSV.
    ExportMovements,
    /// Levels at or below their reorder point.
    ReportLowStock,
    /// Movements counted and summed by period, reason and state.
    ReportMovementSummary,
    /// Recompute every level from the ledger and compare.
    Reconcile,
}

impl JobKind {
    pub const ALL: [JobKind; 7] = [
        JobKind::ImportItems,
        JobKind::ImportStockCounts,
        JobKind::ExportStockLevels,
        JobKind::ExportMovements,
        JobKind::ReportLowStock,
        JobKind::ReportMovementSummary,
        JobKind::Reconcile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::ImportItems => "IMPORT_ITEMS",
            JobKind::ImportStockCounts => "IMPORT_STOCK_COUNTS",
            JobKind::ExportStockLevels => "EXPORT_STOCK_LEVELS",
            JobKind::ExportMovements => "EXPORT_MOVEMENTS",
            JobKind::ReportLowStock => "REPORT_LOW_STOCK",
            JobKind::ReportMovementSummary => "REPORT_MOVEMENT_SUMMARY",
            JobKind::Reconcile => "RECONCILE",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    pub fn is_import(self) -> bool {
        matches!(self, JobKind::ImportItems | JobKind::ImportStockCounts)
    }

    /// The parameters this kind takes (besides nothing: unknown ones are refused).
    fn params(self) -> &'static [&'static str] {
        match self {
            JobKind::ImportItems | JobKind::ImportStockCounts => &["dryRun", "errorPolicy"],
            JobKind::ExportStockLevels => &["sku", "locationCode"],
            JobKind::ExportMovements => &["sku", "locationCode", "reason", "since", "until"],
            JobKind::ReportLowStock => &["locationCode", "defaultReorderPoint"],
            JobKind::ReportMovementSummary => &["since", "until", "period"],
            JobKind::Reconcile => &[],
        }
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "RUNNING" => JobStatus::Running,
            "SUCCEEDED" => JobStatus::Succeeded,
            "FAILED" => JobStatus::Failed,
            "CANCELLED" => JobStatus::Cancelled,
            _ => JobStatus::Queued,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// What an import does with rows it cannot apply.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorPolicy {
    /// One bad row and nothing is applied (the default).
    #[default]
    RejectEverything,
    /// Apply the good rows; report the bad ones.
    RejectFailedRows,
}

/// A job as the API shows it.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[graphql(complex)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: ID,
    pub kind: JobKind,
    pub status: JobStatus,
    /// The parameters it was started with.
    pub params: Value,
    pub input_artifact_id: Option<ID>,
    /// Done so far, 0 to 1.
    pub progress: f64,
    /// Input rows processed (imports), rows written (exports).
    pub processed_rows: i64,
    /// Input rows in all, once known.
    pub total_rows: Option<i64>,
    /// What it produced: counts, ids, what a dry run would change.
    pub result: Option<Value>,
    /// Rows refused (`row`, `column`, `code`, `message`; the first 100, all of them in the
    /// error report artifact), or why the job failed.
    pub errors: Value,
    /// Rows refused in all.
    pub error_count: i64,
    /// Runs so far (a retry after a failure or a crash is another).
    pub attempts: i64,
    pub cancel_requested: bool,
    /// The API key that started it (`scheduler` for scheduled runs).
    pub actor: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[ComplexObject]
impl Job {
    /// Files it read and wrote: the upload, exports, reports, error reports.
    async fn artifacts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Artifact>> {
        let app = crate::graphql::state(ctx)?;
        let tenant = &crate::auth::principal(ctx)?.tenant_id;
        let mut found = artifacts::of_job(&app.db, tenant, &self.id)
            .await
            .map_err(|e| crate::graphql::db_error(ctx, e))?;
        if let Some(input) = &self.input_artifact_id
            && let Some(stored) = artifacts::get(&app.db, tenant, input)
                .await
                .map_err(|e| crate::graphql::db_error(ctx, e))?
        {
            found.insert(0, stored.artifact);
        }
        Ok(found)
    }
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct StartJobInput {
    pub kind: JobKind,
    /// JSON: imports take `dryRun` (false) and `errorPolicy` (`REJECT_EVERYTHING` |
    /// `REJECT_FAILED_ROWS`); exports and reports their filters.
    pub params: Option<Value>,
    /// The uploaded file an import reads (`POST /v1/artifacts`).
    pub input_artifact: Option<ID>,
    /// Start no sooner than this many seconds from now (at most 30 days): an export for the
    /// night, a report after the day's receipts.
    pub delay_seconds: Option<i64>,
}

/// The longest `delaySeconds`.
pub const MAX_DELAY_SECONDS: i64 = 30 * 86_400;

#[derive(InputObject, Clone, Debug, Default)]
pub struct JobFilter {
    pub kind: Option<JobKind>,
    pub status: Option<JobStatus>,
}

/// A job row with what the worker needs besides the API view.
#[derive(Clone, Debug)]
pub struct JobRow {
    pub tenant_id: String,
    pub job: Job,
    pub key_id: String,
    pub role: String,
    pub checkpoint: i64,
    pub max_attempts: i64,
    pub dedupe_key: Option<String>,
}

impl JobRow {
    /// Who the job acts as: the key that started it, with its role.
    pub fn principal(&self) -> Principal {
        Principal {
            tenant_id: self.tenant_id.clone(),
            key_id: self.key_id.clone(),
            role: crate::auth::Role::parse(&self.role).unwrap_or(crate::auth::Role::Viewer),
            session: None,
        }
    }

    pub fn param(&self, name: &str) -> Option<&Value> {
        self.job.params.get(name).filter(|v| !v.is_null())
    }

    pub fn param_str(&self, name: &str) -> Option<&str> {
        self.param(name).and_then(Value::as_str)
    }
}

pub(crate) const COLUMNS: [&str; 27] = [
    "tenant_id",
    "id",
    "kind",
    "status",
    "params",
    "input_artifact_id",
    "key_id",
    "role",
    "actor",
    "processed_rows",
    "total_rows",
    "checkpoint",
    "error_count",
    "result",
    "errors",
    "attempts",
    "max_attempts",
    "run_after",
    "lease_owner",
    "lease_expires_at",
    "cancel_requested",
    "dedupe_key",
    "version",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
];

pub(crate) fn from_row(row: &QueryResult) -> Result<JobRow, DbErr> {
    let status = JobStatus::parse(&row.try_get::<String>("", "status")?);
    let processed: i64 = row.try_get("", "processed_rows")?;
    let total: Option<i64> = row.try_get("", "total_rows")?;
    let progress = match (status, total) {
        (JobStatus::Succeeded, _) => 1.0,
        (_, Some(total)) if total > 0 => (processed as f64 / total as f64).clamp(0.0, 1.0),
        _ => 0.0,
    };
    let kind_raw: String = row.try_get("", "kind")?;
    Ok(JobRow {
        tenant_id: row.try_get("", "tenant_id")?,
        key_id: row.try_get("", "key_id")?,
        role: row.try_get("", "role")?,
        checkpoint: row.try_get("", "checkpoint")?,
        max_attempts: row.try_get("", "max_attempts")?,
        dedupe_key: row.try_get("", "dedupe_key")?,
        job: Job {
            id: ID(row.try_get("", "id")?),
            kind: JobKind::parse(&kind_raw)
                .ok_or_else(|| DbErr::Custom(format!("unknown job kind {kind_raw}")))?,
            status,
            params: row.try_get("", "params")?,
            input_artifact_id: row
                .try_get::<Option<String>>("", "input_artifact_id")?
                .map(ID),
            progress,
            processed_rows: processed,
            total_rows: total,
            result: row.try_get("", "result")?,
            errors: row.try_get("", "errors")?,
            error_count: row.try_get("", "error_count")?,
            attempts: row.try_get("", "attempts")?,
            cancel_requested: row.try_get("", "cancel_requested")?,
            actor: row.try_get("", "actor")?,
            version: row.try_get("", "version")?,
            created_at: row.try_get("", "created_at")?,
            updated_at: row.try_get("", "updated_at")?,
            started_at: row.try_get("", "started_at")?,
            finished_at: row.try_get("", "finished_at")?,
        },
    })
}

pub(crate) fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from("jobs").to_owned()
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    id: &str,
) -> Result<Option<JobRow>, DbErr> {
    let select = select()
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    db.query_one(&select)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The tenant's jobs, newest first; `limit + 1` rows.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    filter: &JobFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Job>, DbErr> {
    let mut select = select()
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .to_owned();
    if let Some(kind) = filter.kind {
        select.and_where(Expr::col("kind").eq(kind.as_str()));
    }
    if let Some(status) = filter.status {
        select.and_where(Expr::col("status").eq(status.as_str()));
    }
    if let Some(after) = after {
        select.and_where(Expr::col("id").lt(after));
    }
    select.order_by("id", sea_orm::Order::Desc).limit(limit + 1);
    db.query_all(&select)
        .await?
        .iter()
        .map(|row| from_row(row).map(|r| r.job))
        .collect()
}

/// Writes the job's event (`job.*`) with the job as its data.
pub async fn record_event(
    txn: &impl ConnectionTrait,
    tenant_id: &str,
    event_type: &str,
    job: &Job,
) -> Result<(), DbErr> {
    let data = serde_json::to_value(job).unwrap_or_default();
    events::record(txn, tenant_id, event_type, "job", &job.id, data).await
}

fn invalid(field: &[&str], message: impl Into<String>) -> UserError {
    UserError::new(ErrorCode::InvalidInput, field, message)
}

/// Checks a kind's parameters; returns them with defaults filled in.
fn check_params(kind: JobKind, params: Option<Value>) -> Result<Value, Vec<UserError>> {
    let params = match params {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(map)) => Value::Object(map),
        Some(_) => {
            return Err(vec![invalid(
                &["input", "params"],
                "params is a JSON object, e.g. {\"dryRun\": true}",
            )]);
        }
    };
    let mut errors = Vec::new();
    let known = kind.params();
    let Value::Object(mut map) = params else {
        unreachable!("checked above")
    };
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(invalid(
                &["input", "params", key],
                format!(
                    "{} takes no parameter {key:?}; it takes: {}",
                    kind.as_str(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    let text = |map: &serde_json::Map<String, Value>, key: &str, errors: &mut Vec<UserError>| {
        if let Some(v) = map.get(key)
            && !v.is_null()
            && !v.is_string()
        {
            errors.push(invalid(&["input", "params", key], "must be a string"));
        }
    };
    let time = |map: &serde_json::Map<String, Value>, key: &str, errors: &mut Vec<UserError>| {
        if let Some(v) = map.get(key)
            && !v.is_null()
            && v.as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .is_none()
        {
            errors.push(invalid(
                &["input", "params", key],
                "must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z",
            ));
        }
    };
    match kind {
        JobKind::ImportItems | JobKind::ImportStockCounts => {
            match map.get("dryRun") {
                None | Some(Value::Null) => {
                    map.insert("dryRun".into(), json!(false));
                }
                Some(Value::Bool(_)) => {}
                Some(_) => errors.push(invalid(&["input", "params", "dryRun"], "true or false")),
            }
            match map.get("errorPolicy") {
                None | Some(Value::Null) => {
                    map.insert("errorPolicy".into(), json!("REJECT_EVERYTHING"));
                }
                Some(Value::String(p)) if p == "REJECT_EVERYTHING" || p == "REJECT_FAILED_ROWS" => {
                }
                Some(_) => errors.push(invalid(
                    &["input", "params", "errorPolicy"],
                    "REJECT_EVERYTHING or REJECT_FAILED_ROWS",
                )),
            }
        }
        JobKind::ExportStockLevels => {
            text(&map, "sku", &mut errors);
            text(&map, "locationCode", &mut errors);
        }
        JobKind::ExportMovements => {
            text(&map, "sku", &mut errors);
            text(&map, "locationCode", &mut errors);
            time(&map, "since", &mut errors);
            time(&map, "until", &mut errors);
            if let Some(v) = map.get("reason").filter(|v| !v.is_null()) {
                let known = v.as_str().is_some_and(|r| {
                    crate::ledger::MovementReason::ALL
                        .iter()
                        .any(|m| m.as_str().eq_ignore_ascii_case(r))
                });
                if !known {
                    errors.push(invalid(
                        &["input", "params", "reason"],
                        "a movement reason, e.g. CYCLE_COUNT",
                    ));
                }
            }
        }
        JobKind::ReportLowStock => {
            text(&map, "locationCode", &mut errors);
            if let Some(v) = map.get("defaultReorderPoint").filter(|v| !v.is_null())
                && !v
                    .as_i64()
                    .is_some_and(|n| (0..=crate::ledger::MAX_QUANTITY).contains(&n))
            {
                errors.push(invalid(
                    &["input", "params", "defaultReorderPoint"],
                    "a whole number, 0 or more",
                ));
            }
        }
        JobKind::ReportMovementSummary => {
            time(&map, "since", &mut errors);
            time(&map, "until", &mut errors);
            match map.get("period") {
                None | Some(Value::Null) => {
                    map.insert("period".into(), json!("DAY"));
                }
                Some(Value::String(p)) if ["DAY", "WEEK", "MONTH"].contains(&p.as_str()) => {}
                Some(_) => errors.push(invalid(
                    &["input", "params", "period"],
                    "DAY, WEEK or MONTH",
                )),
            }
        }
        JobKind::Reconcile => {}
    }
    if errors.is_empty() {
        Ok(Value::Object(map))
    } else {
        Err(errors)
    }
}

/// What a new job is.
pub struct NewJob<'a> {
    pub tenant_id: &'a str,
    pub kind: JobKind,
    pub params: Value,
    pub input_artifact: Option<String>,
    pub key_id: &'a str,
    pub role: &'a str,
    pub actor: &'a str,
    pub max_attempts: i64,
    pub dedupe_key: Option<String>,
    pub run_after: DateTime<Utc>,
}

/// Inserts a queued job and its `job.queued` event; `None` when a job with the same dedupe
/// key exists (a scheduled run already enqueued).
pub async fn insert(txn: &impl ConnectionTrait, new: NewJob<'_>) -> Result<Option<Job>, DbErr> {
    let now = Utc::now();
    let job = Job {
        id: ID(ids::new_id(ids::JOB)),
        kind: new.kind,
        status: JobStatus::Queued,
        params: new.params,
        input_artifact_id: new.input_artifact.clone().map(ID),
        progress: 0.0,
        processed_rows: 0,
        total_rows: None,
        result: None,
        errors: json!([]),
        error_count: 0,
        attempts: 0,
        cancel_requested: false,
        actor: new.actor.to_owned(),
        version: 1,
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    };
    let mut insert = Query::insert()
        .into_table("jobs")
        .columns([
            "tenant_id",
            "id",
            "kind",
            "status",
            "params",
            "input_artifact_id",
            "key_id",
            "role",
            "actor",
            "errors",
            "max_attempts",
            "run_after",
            "dedupe_key",
            "version",
            "created_at",
            "updated_at",
        ])
        .values_panic([
            new.tenant_id.into(),
            job.id.0.clone().into(),
            job.kind.as_str().into(),
            job.status.as_str().into(),
            job.params.clone().into(),
            new.input_artifact.into(),
            new.key_id.into(),
            new.role.into(),
            new.actor.into(),
            job.errors.clone().into(),
            new.max_attempts.into(),
            new.run_after.into(),
            new.dedupe_key.clone().into(),
            1i64.into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    if new.dedupe_key.is_some() {
        insert.on_conflict(
            sea_orm::sea_query::OnConflict::columns(["tenant_id", "dedupe_key"])
                .do_nothing()
                .to_owned(),
        );
    }
    if txn.execute(&insert).await?.rows_affected() == 0 {
        return Ok(None);
    }
    record_event(txn, new.tenant_id, JOB_QUEUED, &job).await?;
    Ok(Some(job))
}

/// `startJob`: checks the kind's parameters and input, then queues it.
pub async fn start(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    input: StartJobInput,
    max_attempts: i64,
) -> Result<Job, DomainError> {
    let params = check_params(input.kind, input.params).map_err(DomainError::User)?;
    let delay = input.delay_seconds.unwrap_or(0);
    if !(0..=MAX_DELAY_SECONDS).contains(&delay) {
        return Err(DomainError::user(invalid(
            &["input", "delaySeconds"],
            format!("0 to {MAX_DELAY_SECONDS} seconds (30 days)"),
        )));
    }
    let input_artifact = match (input.kind.is_import(), input.input_artifact) {
        (true, None) => {
            return Err(DomainError::user(invalid(
                &["input", "inputArtifact"],
                "an import reads an uploaded file: POST it to /v1/artifacts and pass its id",
            )));
        }
        (true, Some(id)) => {
            if artifacts::get(txn, &principal.tenant_id, &id)
                .await?
                .is_none()
            {
                return Err(DomainError::user(UserError::new(
                    ErrorCode::NotFound,
                    &["input", "inputArtifact"],
                    format!("no artifact {:?} (uploads expire; upload it again)", id.0),
                )));
            }
            Some(id.0)
        }
        (false, Some(_)) => {
            return Err(DomainError::user(invalid(
                &["input", "inputArtifact"],
                format!("{} reads no file", input.kind.as_str()),
            )));
        }
        (false, None) => None,
    };
    let actor = principal.actor();
    let job = insert(
        txn,
        NewJob {
            tenant_id: &principal.tenant_id,
            kind: input.kind,
            params,
            input_artifact,
            key_id: &principal.key_id,
            role: principal.role.as_str(),
            actor: &actor,
            max_attempts,
            dedupe_key: None,
            run_after: Utc::now() + chrono::Duration::seconds(delay),
        },
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("a job insert without a dedupe key changed nothing"))?;
    crate::audit::record(
        txn,
        principal,
        crate::audit::AuditEntry {
            action: "job.start",
            target_type: "job",
            target_id: &job.id,
            request_id: Some(request_id),
            data: json!({ "kind": job.kind.as_str(), "params": job.params }),
        },
    )
    .await?;
    Ok(job)
}

/// `cancelJob`: a queued job is cancelled at once; a running one stops at its next batch
/// (what it committed before stays, and its result says how much).
pub async fn cancel(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    id: &str,
) -> Result<Job, DomainError> {
    let Some(row) = get(txn, &principal.tenant_id, id).await? else {
        return Err(DomainError::user(UserError::new(
            ErrorCode::NotFound,
            &["id"],
            format!("no job {id:?}"),
        )));
    };
    let now = Utc::now();
    let status = row.job.status;
    if status.is_final() {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidTransition,
            &["id"],
            format!(
                "the job is {}; only a QUEUED or RUNNING job can be cancelled",
                status.as_str()
            ),
        )));
    }
    let mut update = Query::update()
        .table("jobs")
        .value("updated_at", now)
        .value("version", Expr::col("version").add(1))
        .and_where(Expr::col("tenant_id").eq(principal.tenant_id.as_str()))
        .and_where(Expr::col("id").eq(id))
        .and_where(Expr::col("status").eq(status.as_str()))
        .to_owned();
    if status == JobStatus::Queued {
        update
            .value("status", JobStatus::Cancelled.as_str())
            .value("finished_at", now)
            .value("lease_owner", Option::<String>::None);
    } else {
        update.value("cancel_requested", true);
    }
    if txn.execute(&update).await?.rows_affected() == 0 {
        return Err(DomainError::user(UserError::new(
            ErrorCode::VersionConflict,
            &["id"],
            "the job changed while cancelling it - Hint: read it and try again",
        )));
    }
    let job = get(txn, &principal.tenant_id, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("job vanished while cancelling"))?
        .job;
    if job.status == JobStatus::Cancelled {
        record_event(txn, &principal.tenant_id, JOB_CANCELLED, &job).await?;
    }
    crate::audit::record(
        txn,
        principal,
        crate::audit::AuditEntry {
            action: "job.cancel",
            target_type: "job",
            target_id: id,
            request_id: Some(request_id),
            data: json!({ "status": job.status.as_str() }),
        },
    )
    .await?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_params_get_defaults_and_refuse_strangers() {
        let p = check_params(JobKind::ImportStockCounts, None).unwrap();
        assert_eq!(p["dryRun"], json!(false));
        assert_eq!(p["errorPolicy"], json!("REJECT_EVERYTHING"));
        let errors = check_params(JobKind::ImportItems, Some(json!({"dryrun": true}))).unwrap_err();
        assert_eq!(errors[0].field.as_ref().unwrap()[2], "dryrun");
        let errors =
            check_params(JobKind::ImportItems, Some(json!({"errorPolicy": "SOME"}))).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(check_params(JobKind::Reconcile, Some(json!([1]))).is_err());
        assert!(
            check_params(
                JobKind::ExportMovements,
                Some(json!({"since": "yesterday"}))
            )
            .is_err()
        );
        assert!(
            check_params(
                JobKind::ExportMovements,
                Some(json!({"since": "2026-01-01T00:00:00Z", "reason": "cycle_count"}))
            )
            .is_ok()
        );
    }

    #[test]
    fn kinds_round_trip() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
        }
    }
}
