//! CSV imports: items (create or update by SKU) and stock counts (set `available` through the
//! ledger as a cycle count). The file is read with the `csv` crate (headers mapped by name, a
//! UTF-8 BOM skipped, quoted fields); each row is checked, then applied in batches through the
//! same write paths as the API (`catalog::items`, `ledger::write::set`).
//!
//! `REJECT_EVERYTHING` applies the whole file in one transaction, or nothing; a dry run does the
//! same and rolls back, so what it reports is exactly what would change. `REJECT_FAILED_ROWS`
//! commits batch by batch, each with the job's checkpoint, so a job taken up after a crash
//! resumes after the last committed row and applies none twice.

use std::collections::BTreeSet;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use serde_json::{Value, json};

use super::queue;
use super::worker::{Failure, Outcome, Run};
use super::{ErrorPolicy, JobKind, JobStatus, MAX_LISTED_ERRORS};
use crate::artifacts::{self, NewArtifact};
use crate::catalog::items::{self, CreateItemInput, UpdateItemInput};
use crate::error::{DomainError, UserError};
use crate::ledger::write::{self, SetChangeInput, SetStockInput};
use crate::ledger::{MAX_QUANTITY, MovementReason};

/// One refused row: `row` 1 is the first row after the header.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RowError {
    pub row: i64,
    pub column: Option<String>,
    pub code: String,
    pub message: String,
}

impl RowError {
    fn new(row: i64, column: Option<&str>, code: &str, message: impl Into<String>) -> Self {
        Self {
            row,
            column: column.map(str::to_owned),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ItemRow {
    pub sku: String,
    pub name: Option<String>,
    pub barcode: Option<String>,
    pub unit: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CountRow {
    pub sku: String,
    pub location: String,
    pub quantity: i64,
    pub change_from: Option<i64>,
}

#[derive(Clone, Debug)]
pub enum Record {
    Item(ItemRow),
    Count(CountRow),
}

/// A data row: its number and what it says, or why it cannot be read.
pub type Parsed = (i64, Result<Record, Vec<RowError>>);

const ITEM_COLUMNS: &[&str] = &["sku", "name", "barcode", "unit"];
const COUNT_COLUMNS: &[&str] = &["sku", "location", "quantity", "change_from_quantity"];

/// Reads the file: the header must name known columns (and the required ones); every row is
/// parsed or carries its errors. A header problem fails the whole job.
pub fn read(kind: JobKind, bytes: &[u8]) -> Result<Vec<Parsed>, Failure> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let (known, required): (&[&str], &[&str]) = match kind {
        JobKind::ImportItems => (ITEM_COLUMNS, &["sku"]),
        _ => (COUNT_COLUMNS, &["sku", "location", "quantity"]),
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader.headers().map_err(|e| {
        Failure::permanent(
            "INVALID_INPUT",
            format!("the file's header row cannot be read: {e} - Hint: save it as UTF-8 CSV"),
        )
    })?;
    let mut index: Vec<Option<usize>> = vec![None; known.len()];
    for (i, name) in headers.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        match known.iter().position(|k| *k == name) {
            Some(k) if index[k].is_none() => index[k] = Some(i),
            Some(_) => {
                return Err(Failure::permanent(
                    "INVALID_INPUT",
                    format!("the header names column {name:?} twice"),
                ));
            }
            None => {
                return Err(Failure::permanent(
                    "INVALID_INPUT",
                    format!(
                        "unknown column {name:?} in the header - Hint: the columns are {} ({} required)",
                        known.join(","),
                        required.join(",")
                    ),
                ));
            }
        }
    }
    for column in required {
        let k = known.iter().position(|k| k == column).unwrap_or_default();
        if index[k].is_none() {
            return Err(Failure::permanent(
                "INVALID_INPUT",
                format!(
                    "the header has no {column:?} column - Hint: the first row names the columns: {}",
                    known.join(",")
                ),
            ));
        }
    }
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let row = n as i64 + 1;
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let message = match err.kind() {
                    csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".to_owned(),
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("the row has {len} fields; the header has {expected_len}"),
                    _ => format!("the row cannot be read: {err}"),
                };
                rows.push((
                    row,
                    Err(vec![RowError::new(row, None, "INVALID_INPUT", message)]),
                ));
                continue;
            }
        };
        let cell = |k: usize| -> Option<String> {
            index[k]
                .and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        rows.push((row, parse_row(kind, row, &cell)));
    }
    Ok(rows)
}

fn parse_row(
    kind: JobKind,
    row: i64,
    cell: &dyn Fn(usize) -> Option<String>,
) -> Result<Record, Vec<RowError>> {
    let mut errors = Vec::new();
    let sku = cell(0);
    if sku.is_none() {
        errors.push(RowError::new(
            row,
            Some("sku"),
            "INVALID_INPUT",
            "the SKU is empty",
        ));
    }
    let record = match kind {
        JobKind::ImportItems => Record::Item(ItemRow {
            sku: sku.unwrap_or_default(),
            name: cell(1),
            barcode: cell(2),
            unit: cell(3),
        }),
        _ => {
            let location = cell(1);
            if location.is_none() {
                errors.push(RowError::new(
                    row,
                    Some("location"),
                    "INVALID_INPUT",
                    "the location code is empty",
                ));
            }
            let number = |k: usize, column: &str, errors: &mut Vec<RowError>| -> Option<i64> {
                let raw = cell(k)?;
                match raw.parse::<i64>() {
                    Ok(v) if (0..=MAX_QUANTITY).contains(&v) => Some(v),
                    _ => {
                        errors.push(RowError::new(
                            row,
                            Some(column),
                            "INVALID_INPUT",
                            format!("{raw:?} is not a whole number from 0 to {MAX_QUANTITY}"),
                        ));
                        None
                    }
                }
            };
            let quantity = number(2, "quantity", &mut errors);
            if cell(2).is_none() {
                errors.push(RowError::new(
                    row,
                    Some("quantity"),
                    "INVALID_INPUT",
                    "the counted quantity is empty",
                ));
            }
            let change_from = number(3, "change_from_quantity", &mut errors);
            Record::Count(CountRow {
                sku: sku.unwrap_or_default(),
                location: location.unwrap_or_default(),
                quantity: quantity.unwrap_or_default(),
                change_from,
            })
        }
    };
    if errors.is_empty() {
        Ok(record)
    } else {
        Err(errors)
    }
}

/// What applying the rows did (or, in a dry run, would do), counted.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    rows: i64,
    created: i64,
    updated: i64,
    changed: i64,
    unchanged: i64,
    failed: i64,
}

/// One row's effect, for the dry-run report.
#[derive(Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RowChange {
    row: i64,
    sku: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<&'static str>>,
}

pub async fn run(run: &Run) -> Result<Outcome, Failure> {
    let app = &run.app;
    let job = &run.job;
    let dry_run = job
        .param("dryRun")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let policy = match job.param_str("errorPolicy") {
        Some("REJECT_FAILED_ROWS") => ErrorPolicy::RejectFailedRows,
        _ => ErrorPolicy::RejectEverything,
    };
    let input = job
        .job
        .input_artifact_id
        .clone()
        .ok_or_else(|| Failure::permanent("INVALID_INPUT", "the job names no input file"))?;
    let stored = artifacts::get(&app.background_db, run.tenant(), &input)
        .await?
        .ok_or_else(|| {
            Failure::permanent(
                "NOT_FOUND",
                format!("the input file {} expired or was deleted", input.0),
            )
        })?;
    let bytes = artifacts::read_all(&app.artifacts, &stored).await?;
    let rows = read(job.job.kind, &bytes)?;
    drop(bytes);
    let total = rows.len() as i64;
    {
        let txn = app.begin_background_write().await?;
        queue::set_total(&txn.txn, job, &run.owner, total).await?;
        txn.txn.commit().await?;
    }
    let one_transaction = dry_run || policy == ErrorPolicy::RejectEverything;
    let (counts, changes, fresh_errors) = if one_transaction {
        apply_at_once(run, &rows, dry_run).await?
    } else {
        apply_in_batches(run, &rows).await?
    };
    // Errors of a one-transaction run are written now (the chunked run wrote its own).
    if !fresh_errors.is_empty() {
        let txn = app.begin_background_write().await?;
        insert_errors(&txn.txn, run, &fresh_errors).await?;
        let update = Query::update()
            .table("jobs")
            .value("error_count", fresh_errors.len() as i64)
            .value("processed_rows", total)
            .and_where(Expr::col("tenant_id").eq(run.tenant()))
            .and_where(Expr::col("id").eq(job.job.id.as_str()))
            .to_owned();
        txn.txn.execute(&update).await?;
        txn.txn.commit().await?;
    }
    let listed = error_listing(run).await?;
    let error_count = counts.failed;
    if error_count > 0 {
        error_report(run).await?;
    }
    let mut result = json!({
        "dryRun": dry_run,
        "errorPolicy": match policy {
            ErrorPolicy::RejectEverything => "REJECT_EVERYTHING",
            ErrorPolicy::RejectFailedRows => "REJECT_FAILED_ROWS",
        },
        "rows": counts.rows,
        "created": counts.created,
        "updated": counts.updated,
        "changed": counts.changed,
        "unchanged": counts.unchanged,
        "failed": counts.failed,
    });
    if dry_run {
        result["wouldApply"] = json!(policy == ErrorPolicy::RejectFailedRows || error_count == 0);
        result["changes"] = json!(changes.iter().take(MAX_LISTED_ERRORS).collect::<Vec<_>>());
        dry_run_report(run, &changes).await?;
    }
    let rejected = !dry_run && policy == ErrorPolicy::RejectEverything && error_count > 0;
    if rejected {
        result["applied"] = json!(0);
    }
    Ok(Outcome {
        status: if rejected {
            JobStatus::Failed
        } else {
            JobStatus::Succeeded
        },
        result: Some(result),
        errors: listed,
    })
}

/// Applies every row in one transaction: committed if nothing failed (and not a dry run),
/// else rolled back.
async fn apply_at_once(
    run: &Run,
    rows: &[Parsed],
    dry_run: bool,
) -> Result<(Counts, Vec<RowChange>, Vec<RowError>), Failure> {
    let app = &run.app;
    let batch = app.config.jobs.batch_rows;
    let txn = app.begin_background_write().await?;
    let mut counts = Counts::default();
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    let mut done = 0i64;
    let mut last_progress = std::time::Instant::now();
    for chunk in rows.chunks(batch) {
        if let Err(stop) = run.check() {
            txn.txn.rollback().await?;
            return Err(stop);
        }
        apply_chunk(&txn.txn, run, chunk, &mut counts, &mut changes, &mut errors).await?;
        done += chunk.len() as i64;
        // Progress goes through another connection: on SQLite the import holds the only
        // writer, so there it shows at the end.
        if app.is_postgres() && last_progress.elapsed() >= std::time::Duration::from_secs(1) {
            queue::progress(app, &run.job, &run.owner, done, Some(rows.len() as i64)).await?;
            last_progress = std::time::Instant::now();
        }
    }
    counts.failed = errors.len_rows();
    if dry_run || counts.failed > 0 {
        txn.txn.rollback().await?;
    } else {
        let total = rows.len() as i64;
        if !queue::advance(&txn.txn, &run.job, &run.owner, 0, total, 0).await? {
            txn.txn.rollback().await?;
            return Err(Failure::LeaseLost);
        }
        txn.txn.commit().await?;
        app.wake.relay.notify_one();
    }
    Ok((counts, changes, errors))
}

/// Applies batch by batch, each committed with the checkpoint and its refused rows; resumes
/// after the checkpoint a crashed attempt left.
async fn apply_in_batches(
    run: &Run,
    rows: &[Parsed],
) -> Result<(Counts, Vec<RowChange>, Vec<RowError>), Failure> {
    let app = &run.app;
    let batch = app.config.jobs.batch_rows;
    let job = &run.job;
    let start = job.checkpoint.clamp(0, rows.len() as i64) as usize;
    // Counts of batches an earlier attempt committed ride in the job's result.
    let mut counts: Counts = job
        .job
        .result
        .clone()
        .and_then(|r| serde_json::from_value(r).ok())
        .filter(|_| start > 0)
        .unwrap_or_default();
    let mut from = start as i64;
    let mut last_event = std::time::Instant::now();
    for chunk in rows[start..].chunks(batch) {
        run.check()?;
        let txn = app.begin_background_write().await?;
        let mut errors = Vec::new();
        let mut changes = Vec::new();
        let mut chunk_counts = counts.clone();
        apply_chunk(
            &txn.txn,
            run,
            chunk,
            &mut chunk_counts,
            &mut changes,
            &mut errors,
        )
        .await?;
        let to = from + chunk.len() as i64;
        chunk_counts.failed += errors.len_rows();
        insert_errors(&txn.txn, run, &errors).await?;
        let update = Query::update()
            .table("jobs")
            .value(
                "result",
                serde_json::to_value(&chunk_counts).unwrap_or_default(),
            )
            .and_where(Expr::col("tenant_id").eq(run.tenant()))
            .and_where(Expr::col("id").eq(job.job.id.as_str()))
            .to_owned();
        txn.txn.execute(&update).await?;
        if !queue::advance(&txn.txn, job, &run.owner, from, to, errors.len() as i64).await? {
            txn.txn.rollback().await?;
            return Err(Failure::LeaseLost);
        }
        if last_event.elapsed() >= std::time::Duration::from_secs(1)
            && let Some(current) = super::get(&txn.txn, run.tenant(), &job.job.id).await?
        {
            super::record_event(&txn.txn, run.tenant(), super::JOB_PROGRESS, &current.job).await?;
            last_event = std::time::Instant::now();
        }
        txn.txn.commit().await?;
        app.wake.relay.notify_one();
        counts = chunk_counts;
        from = to;
    }
    Ok((counts, Vec::new(), Vec::new()))
}

trait RowCount {
    fn len_rows(&self) -> i64;
}

impl RowCount for Vec<RowError> {
    /// Rows with at least one error.
    fn len_rows(&self) -> i64 {
        self.iter().map(|e| e.row).collect::<BTreeSet<_>>().len() as i64
    }
}

async fn apply_chunk(
    txn: &DatabaseTransaction,
    run: &Run,
    chunk: &[Parsed],
    counts: &mut Counts,
    changes: &mut Vec<RowChange>,
    errors: &mut Vec<RowError>,
) -> Result<(), Failure> {
    counts.rows += chunk.len() as i64;
    let mut good = Vec::with_capacity(chunk.len());
    for (row, parsed) in chunk {
        match parsed {
            Ok(record) => good.push((*row, record)),
            Err(row_errors) => errors.extend(row_errors.iter().cloned()),
        }
    }
    match run.job.job.kind {
        JobKind::ImportItems => {
            for (row, record) in good {
                let Record::Item(item) = record else { continue };
                apply_item(txn, run, row, item, counts, changes, errors).await?;
            }
        }
        _ => {
            let counted: Vec<(i64, &CountRow)> = good
                .into_iter()
                .filter_map(|(row, r)| match r {
                    Record::Count(c) => Some((row, c)),
                    Record::Item(_) => None,
                })
                .collect();
            apply_counts(txn, run, &counted, counts, changes, errors).await?;
        }
    }
    Ok(())
}

fn column_of(error: &UserError) -> Option<&'static str> {
    let leaf = error.field.as_ref()?.last()?;
    Some(match leaf.as_str() {
        "sku" => "sku",
        "locationCode" => "location",
        "quantity" | "delta" => "quantity",
        "changeFromQuantity" => "change_from_quantity",
        "name" => "name",
        "barcode" => "barcode",
        "unit" => "unit",
        _ => return None,
    })
}

/// Which change of `input.changes` an error names.
fn change_index(error: &UserError) -> Option<usize> {
    let field = error.field.as_ref()?;
    (field.len() >= 3 && field[1] == "changes")
        .then(|| field[2].parse().ok())
        .flatten()
}

/// Sets the counted quantities through the ledger, each batch under a savepoint: a refused row
/// is taken out and the rest tried again, so one bad row never fails its neighbours.
async fn apply_counts(
    txn: &DatabaseTransaction,
    run: &Run,
    rows: &[(i64, &CountRow)],
    counts: &mut Counts,
    changes: &mut Vec<RowChange>,
    errors: &mut Vec<RowError>,
) -> Result<(), Failure> {
    let principal = run.job.principal();
    let uri = format!("twh://jobs/{}", run.job.job.id.0);
    let cx = write::Context {
        principal: &principal,
        request_id: &run.job.job.id,
        idempotency_key: None,
        operation: "importStockCounts",
        audited_by_document: true,
        answers_with_change: false,
        deferred: None,
    };
    let mut pending: Vec<usize> = (0..rows.len()).collect();
    while !pending.is_empty() {
        let input = SetStockInput {
            reason: MovementReason::CycleCount,
            reference_document_uri: Some(uri.clone()),
            effective_at: None,
            changes: pending
                .iter()
                .map(|&i| SetChangeInput {
                    sku: rows[i].1.sku.clone(),
                    location_code: rows[i].1.location.clone(),
                    state: crate::ledger::QuantityState::Available,
                    quantity: rows[i].1.quantity,
                    change_from_quantity: rows[i].1.change_from,
                })
                .collect(),
        };
        let savepoint = txn.begin().await?;
        match write::set_batch(&savepoint, &cx, &input).await {
            Ok(change) => {
                savepoint.commit().await?;
                // Movements come in the order of the changes; a change without one left the
                // quantity as it was.
                let mut movements = change.movements.iter().peekable();
                for &i in &pending {
                    let (row, count) = rows[i];
                    let moved = movements
                        .next_if(|m| m.sku == count.sku && m.location_code == count.location);
                    match moved {
                        Some(m) => {
                            counts.changed += 1;
                            changes.push(RowChange {
                                row,
                                sku: count.sku.clone(),
                                location: Some(count.location.clone()),
                                action: "set",
                                before: Some(m.quantity_after_change - m.delta),
                                after: Some(m.quantity_after_change),
                                fields: None,
                            });
                        }
                        None => {
                            counts.unchanged += 1;
                            changes.push(RowChange {
                                row,
                                sku: count.sku.clone(),
                                location: Some(count.location.clone()),
                                action: "unchanged",
                                before: Some(count.quantity),
                                after: Some(count.quantity),
                                fields: None,
                            });
                        }
                    }
                }
                return Ok(());
            }
            Err(DomainError::User(refused)) => {
                savepoint.rollback().await?;
                let mut failed = BTreeSet::new();
                for error in &refused {
                    match change_index(error) {
                        Some(k) if k < pending.len() => {
                            failed.insert(k);
                            errors.push(RowError::new(
                                rows[pending[k]].0,
                                column_of(error),
                                error.code.as_str(),
                                error.message.clone(),
                            ));
                        }
                        // An error of the whole batch: every row carries it.
                        _ => {
                            for (k, &i) in pending.iter().enumerate() {
                                failed.insert(k);
                                errors.push(RowError::new(
                                    rows[i].0,
                                    column_of(error),
                                    error.code.as_str(),
                                    error.message.clone(),
                                ));
                            }
                        }
                    }
                }
                pending = pending
                    .into_iter()
                    .enumerate()
                    .filter(|(k, _)| !failed.contains(k))
                    .map(|(_, i)| i)
                    .collect();
            }
            Err(DomainError::Internal(err)) => {
                return Err(Failure::Transient(err.to_string()));
            }
        }
    }
    Ok(())
}

/// Creates or updates one item by SKU under a savepoint; an update is checked against the
/// version read in the same transaction, so an edit made meanwhile is never overwritten.
async fn apply_item(
    txn: &DatabaseTransaction,
    run: &Run,
    row: i64,
    item: &ItemRow,
    counts: &mut Counts,
    changes: &mut Vec<RowChange>,
    errors: &mut Vec<RowError>,
) -> Result<(), Failure> {
    let principal = run.job.principal();
    let request_id = run.job.job.id.0.as_str();
    let savepoint = txn.begin().await?;
    let existing = items::get_by_sku(&savepoint, run.tenant(), &item.sku).await?;
    let outcome = match &existing {
        None => match &item.name {
            None => Err(DomainError::user(UserError::new(
                crate::error::ErrorCode::InvalidInput,
                &["input", "name"],
                format!("no item has SKU {:?}; creating one needs a name", item.sku),
            ))),
            Some(name) => items::create(
                &savepoint,
                &principal,
                request_id,
                CreateItemInput {
                    sku: item.sku.clone(),
                    name: name.clone(),
                    barcode: item.barcode.clone(),
                    unit: item.unit.clone(),
                    attributes: None,
                    status: None,
                },
            )
            .await
            .map(|_| ("create", vec!["sku", "name", "barcode", "unit"])),
        },
        Some(current) => {
            let mut input = UpdateItemInput {
                sku: None,
                name: None,
                barcode: async_graphql::MaybeUndefined::Undefined,
                unit: None,
                attributes: None,
                status: None,
            };
            let mut fields = Vec::new();
            if let Some(name) = &item.name
                && name != &current.name
            {
                input.name = Some(name.clone());
                fields.push("name");
            }
            if let Some(barcode) = &item.barcode
                && Some(barcode) != current.barcode.as_ref()
            {
                input.barcode = async_graphql::MaybeUndefined::Value(barcode.clone());
                fields.push("barcode");
            }
            if let Some(unit) = &item.unit
                && unit != &current.unit
            {
                input.unit = Some(unit.clone());
                fields.push("unit");
            }
            if fields.is_empty() {
                Ok(("unchanged", fields))
            } else {
                items::update(
                    &savepoint,
                    &principal,
                    request_id,
                    &current.id,
                    current.version,
                    input,
                )
                .await
                .map(|_| ("update", fields))
            }
        }
    };
    match outcome {
        Ok((action, fields)) => {
            savepoint.commit().await?;
            match action {
                "create" => counts.created += 1,
                "update" => counts.updated += 1,
                _ => counts.unchanged += 1,
            }
            changes.push(RowChange {
                row,
                sku: item.sku.clone(),
                location: None,
                action,
                before: None,
                after: None,
                fields: Some(fields),
            });
            Ok(())
        }
        Err(DomainError::User(refused)) => {
            savepoint.rollback().await?;
            for error in refused {
                errors.push(RowError::new(
                    row,
                    column_of(&error),
                    error.code.as_str(),
                    error.message,
                ));
            }
            Ok(())
        }
        Err(DomainError::Internal(err)) => Err(Failure::Transient(err.to_string())),
    }
}

async fn insert_errors(
    txn: &impl ConnectionTrait,
    run: &Run,
    errors: &[RowError],
) -> Result<(), sea_orm::DbErr> {
    for chunk in errors.chunks(500) {
        let mut insert = Query::insert();
        insert.into_table("job_row_errors").columns([
            "tenant_id",
            "job_id",
            "row_number",
            "ordinal",
            "column_name",
            "code",
            "message",
        ]);
        let mut ordinal: std::collections::HashMap<i64, i64> = Default::default();
        for e in chunk {
            let n = ordinal.entry(e.row).or_default();
            *n += 1;
            insert.values_panic([
                run.tenant().into(),
                run.job.job.id.0.clone().into(),
                e.row.into(),
                (*n).into(),
                e.column.clone().into(),
                e.code.clone().into(),
                e.message.clone().into(),
            ]);
        }
        insert.on_conflict(
            sea_orm::sea_query::OnConflict::columns([
                "tenant_id",
                "job_id",
                "row_number",
                "ordinal",
            ])
            .do_nothing()
            .to_owned(),
        );
        txn.execute(&insert).await?;
    }
    Ok(())
}

/// The job's refused rows in row order, `limit` of them from `after` (row, ordinal).
async fn load_errors(
    run: &Run,
    after: (i64, i64),
    limit: u64,
) -> Result<Vec<(RowError, i64)>, sea_orm::DbErr> {
    let select = Query::select()
        .columns(["row_number", "ordinal", "column_name", "code", "message"])
        .from("job_row_errors")
        .and_where(Expr::col("tenant_id").eq(run.tenant()))
        .and_where(Expr::col("job_id").eq(run.job.job.id.as_str()))
        .and_where(
            Expr::col("row_number")
                .gt(after.0)
                .or(Expr::col("row_number")
                    .eq(after.0)
                    .and(Expr::col("ordinal").gt(after.1))),
        )
        .order_by("row_number", sea_orm::Order::Asc)
        .order_by("ordinal", sea_orm::Order::Asc)
        .limit(limit)
        .to_owned();
    run.app
        .background_db
        .query_all(&select)
        .await?
        .iter()
        .map(|r| {
            Ok((
                RowError {
                    row: r.try_get("", "row_number")?,
                    column: r.try_get("", "column_name")?,
                    code: r.try_get("", "code")?,
                    message: r.try_get("", "message")?,
                },
                r.try_get("", "ordinal")?,
            ))
        })
        .collect()
}

async fn error_listing(run: &Run) -> Result<Value, Failure> {
    let first = load_errors(run, (0, 0), MAX_LISTED_ERRORS as u64).await?;
    Ok(json!(first.into_iter().map(|(e, _)| e).collect::<Vec<_>>()))
}

/// Every refused row as CSV (`row,column,code,message`), written page by page.
async fn error_report(run: &Run) -> Result<(), Failure> {
    let app = &run.app;
    let mut writer = artifacts::ArtifactWriter::new(&app.artifacts, run.tenant(), u64::MAX);
    let mut csv = csv::Writer::from_writer(Vec::new());
    let outcome: Result<(), Failure> = async {
        csv.write_record(["row", "column", "code", "message"])
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let mut after = (0, 0);
        loop {
            let page = load_errors(run, after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = (last.0.row, last.1);
            for (e, _) in &page {
                csv.write_record([
                    e.row.to_string().as_str(),
                    e.column.as_deref().unwrap_or(""),
                    e.code.as_str(),
                    e.message.as_str(),
                ])
                .map_err(|e| Failure::Transient(e.to_string()))?;
            }
            let buffered = super::exports::take_csv(&mut csv)?;
            writer.write(&buffered).await?;
        }
        Ok(())
    }
    .await;
    if let Err(err) = outcome {
        writer.abort().await;
        return Err(err);
    }
    let name = format!("{}-errors.csv", run.job.job.id.0);
    writer
        .finish(
            &app.background_db,
            NewArtifact {
                tenant_id: run.tenant(),
                name: &name,
                content_type: "text/csv",
                purpose: "errors",
                job_id: Some(&run.job.job.id),
                created_by: &run.job.job.actor,
            },
            app.config.artifacts.retention_days,
        )
        .await?;
    Ok(())
}

/// What a dry run would change, row by row, as CSV.
async fn dry_run_report(run: &Run, changes: &[RowChange]) -> Result<(), Failure> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    let header: &[&str] = match run.job.job.kind {
        JobKind::ImportItems => &["row", "sku", "action", "fields"],
        _ => &[
            "row", "sku", "location", "action", "before", "after", "change",
        ],
    };
    let fail = |e: csv::Error| Failure::Transient(e.to_string());
    csv.write_record(header).map_err(fail)?;
    for c in changes {
        let record: Vec<String> = match run.job.job.kind {
            JobKind::ImportItems => vec![
                c.row.to_string(),
                c.sku.clone(),
                c.action.to_owned(),
                c.fields.clone().unwrap_or_default().join(" "),
            ],
            _ => {
                let (before, after) = (c.before.unwrap_or_default(), c.after.unwrap_or_default());
                vec![
                    c.row.to_string(),
                    c.sku.clone(),
                    c.location.clone().unwrap_or_default(),
                    c.action.to_owned(),
                    before.to_string(),
                    after.to_string(),
                    (after - before).to_string(),
                ]
            }
        };
        csv.write_record(&record).map_err(fail)?;
    }
    let bytes = csv
        .into_inner()
        .map_err(|e| Failure::Transient(e.to_string()))?;
    let name = format!("{}-dry-run.csv", run.job.job.id.0);
    artifacts::store_bytes(
        &run.app.artifacts,
        &run.app.background_db,
        NewArtifact {
            tenant_id: run.tenant(),
            name: &name,
            content_type: "text/csv",
            purpose: "dryRun",
            job_id: Some(&run.job.job.id),
            created_by: &run.job.job.actor,
        },
        bytes,
        run.app.config.artifacts.retention_days,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(kind: JobKind, text: &str) -> Vec<Parsed> {
        match read(kind, text.as_bytes()) {
            Ok(rows) => rows,
            Err(f) => panic!("{f:?}"),
        }
    }

    #[test]
    fn a_bom_quoted_commas_and_header_case_are_read() {
        let parsed = rows(
            JobKind::ImportItems,
            "\u{feff}SKU,Name,barcode\nMUG-1,\"Mug, blue\",123\n",
        );
        assert_eq!(parsed.len(), 1);
        let Ok(Record::Item(item)) = &parsed[0].1 else {
            panic!("{:?}", parsed[0])
        };
        assert_eq!(item.sku, "MUG-1");
        assert_eq!(item.name.as_deref(), Some("Mug, blue"));
        assert_eq!(item.barcode.as_deref(), Some("123"));
    }

    #[test]
    fn a_wrong_header_fails_the_file_and_bad_rows_carry_their_errors() {
        assert!(matches!(
            read(JobKind::ImportStockCounts, b"sku,loc,quantity\n"),
            Err(Failure::Permanent { .. })
        ));
        assert!(matches!(
            read(JobKind::ImportStockCounts, b"sku,quantity\n"),
            Err(Failure::Permanent { .. })
        ));
        let parsed = rows(
            JobKind::ImportStockCounts,
            "sku,location,quantity,change_from_quantity\nA,WH,5,\nB,WH,-1,\nC,WH\n,WH,x,2\n",
        );
        assert!(parsed[0].1.is_ok());
        let codes = |i: usize| -> Vec<Option<String>> {
            parsed[i]
                .1
                .as_ref()
                .err()
                .map(|e| e.iter().map(|e| e.column.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(codes(1), vec![Some("quantity".to_owned())]);
        assert_eq!(codes(2), vec![None]);
        assert_eq!(
            codes(3),
            vec![Some("sku".to_owned()), Some("quantity".to_owned())]
        );
        assert_eq!(parsed[3].0, 4);
    }
}
