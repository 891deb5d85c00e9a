//! Exports, reports and the reconciliation job. Exports read keyset pages and write CSV to the
//! store as they go, so memory stays the same whatever the number of rows.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value as DbValue};
use serde_json::{Value, json};

use super::queue;
use super::worker::{Failure, Outcome, Run};
use crate::artifacts::{self, Artifact, ArtifactWriter, NewArtifact};
use crate::ledger::QuantityState;

/// Rows read per page.
const PAGE: u64 = 5000;
/// Bytes gathered before a write to the store.
const FLUSH_BYTES: usize = 1 << 20;

/// A CSV file being written to the store.
pub struct CsvOut {
    csv: csv::Writer<Vec<u8>>,
    out: Option<ArtifactWriter>,
    pub rows: i64,
}

impl CsvOut {
    pub fn new(run: &Run, header: &[&str]) -> Result<Self, Failure> {
        let mut csv = csv::Writer::from_writer(Vec::with_capacity(FLUSH_BYTES + 4096));
        csv.write_record(header).map_err(csv_failure)?;
        Ok(Self {
            csv,
            out: Some(ArtifactWriter::new(
                &run.app.artifacts,
                run.tenant(),
                u64::MAX,
            )),
            rows: 0,
        })
    }

    pub async fn row<I, T>(&mut self, record: I) -> Result<(), Failure>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.csv.write_record(record).map_err(csv_failure)?;
        self.rows += 1;
        if self.csv.get_ref().len() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Failure> {
        let bytes = take_csv(&mut self.csv)?;
        if let Some(out) = self.out.as_mut() {
            out.write(&bytes).await?;
        }
        Ok(())
    }

    pub async fn finish(
        mut self,
        run: &Run,
        name: &str,
        purpose: &str,
    ) -> Result<Artifact, Failure> {
        self.flush().await?;
        let out = self
            .out
            .take()
            .ok_or_else(|| Failure::Transient("export already finished".into()))?;
        Ok(out
            .finish(
                &run.app.background_db,
                NewArtifact {
                    tenant_id: run.tenant(),
                    name,
                    content_type: "text/csv",
                    purpose,
                    job_id: Some(&run.job.job.id),
                    created_by: &run.job.job.actor,
                },
                run.app.config.artifacts.retention_days,
            )
            .await?)
    }

    pub async fn abort(mut self) {
        if let Some(out) = self.out.take() {
            out.abort().await;
        }
    }
}

/// What the CSV writer holds, taken out; the writer goes on without writing the header again.
pub fn take_csv(csv: &mut csv::Writer<Vec<u8>>) -> Result<Vec<u8>, Failure> {
    let fresh = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(FLUSH_BYTES + 4096));
    std::mem::replace(csv, fresh)
        .into_inner()
        .map_err(|e| Failure::Transient(format!("writing CSV: {e}")))
}

fn csv_failure(err: csv::Error) -> Failure {
    Failure::Transient(format!("writing CSV: {err}"))
}

/// Runs `body` on a CSV output; aborts the upload if it fails.
async fn with_csv<F>(
    run: &Run,
    header: &[&str],
    name: &str,
    body: F,
) -> Result<(Artifact, i64), Failure>
where
    F: AsyncFnOnce(&mut CsvOut) -> Result<(), Failure>,
{
    let mut out = CsvOut::new(run, header)?;
    match body(&mut out).await {
        Ok(()) => {
            let rows = out.rows;
            Ok((out.finish(run, name, "output").await?, rows))
        }
        Err(err) => {
            out.abort().await;
            Err(err)
        }
    }
}

fn statement(db: &impl ConnectionTrait, sql: String, values: Vec<DbValue>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

fn text(row: &QueryResult, column: &str) -> Result<String, sea_orm::DbErr> {
    Ok(row
        .try_get::<Option<String>>("", column)?
        .unwrap_or_default())
}

fn time(row: &QueryResult, column: &str) -> Result<String, sea_orm::DbErr> {
    Ok(row
        .try_get::<DateTime<Utc>>("", column)?
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Adds `AND column = $n` for a parameter the job was given.
fn filter(
    sql: &mut String,
    values: &mut Vec<DbValue>,
    column: &str,
    op: &str,
    value: Option<DbValue>,
) {
    if let Some(value) = value {
        values.push(value);
        sql.push_str(&format!(" AND {column} {op} ${}", values.len()));
    }
}

fn param_time(run: &Run, name: &str) -> Option<DbValue> {
    run.job
        .param_str(name)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc).into())
}

fn param_text(run: &Run, name: &str) -> Option<DbValue> {
    run.job.param_str(name).map(|s| s.to_owned().into())
}

async fn progress(run: &Run, rows: i64) -> Result<(), Failure> {
    queue::progress(&run.app, &run.job, &run.owner, rows, None).await?;
    Ok(())
}

/// `EXPORT_STOCK_LEVELS`: every level with every quantity state, by SKU then location code.
pub async fn stock_levels(run: &Run) -> Result<Outcome, Failure> {
    let db = &run.app.background_db;
    let states: Vec<&str> = QuantityState::ALL.iter().map(|s| s.column()).collect();
    let mut header = vec!["sku", "location", "on_hand"];
    header.extend(states.iter().copied());
    header.extend(["sequence", "updated_at"]);
    let name = format!("{}-stock-levels.csv", run.job.job.id.0);
    let (artifact, rows) = with_csv(run, &header, &name, async |out: &mut CsvOut| {
        let mut after: Option<(String, String)> = None;
        let mut last_progress = std::time::Instant::now();
        loop {
            run.check()?;
            let mut values: Vec<DbValue> = vec![run.tenant().to_owned().into()];
            let mut sql = format!(
                "SELECT i.sku, l.code, {cols}, s.sequence, s.updated_at FROM stock_levels s \
                 JOIN items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id \
                 JOIN locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id \
                 WHERE s.tenant_id = $1",
                cols = states
                    .iter()
                    .map(|c| format!("s.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            filter(&mut sql, &mut values, "i.sku", "=", param_text(run, "sku"));
            filter(
                &mut sql,
                &mut values,
                "l.code",
                "=",
                param_text(run, "locationCode"),
            );
            if let Some((sku, code)) = &after {
                values.push(sku.clone().into());
                values.push(code.clone().into());
                let (a, b) = (values.len() - 1, values.len());
                sql.push_str(&format!(
                    " AND (i.sku > ${a} OR (i.sku = ${a} AND l.code > ${b}))"
                ));
            }
            sql.push_str(&format!(" ORDER BY i.sku, l.code LIMIT {PAGE}"));
            let page = db.query_all_raw(statement(db, sql, values)).await?;
            if page.is_empty() {
                return Ok(());
            }
            for row in &page {
                let quantities: Vec<i64> = states
                    .iter()
                    .map(|c| row.try_get::<i64>("", c))
                    .collect::<Result<_, _>>()?;
                let on_hand: i64 = QuantityState::ALL
                    .iter()
                    .zip(&quantities)
                    .filter(|(s, _)| **s != QuantityState::Incoming)
                    .map(|(_, q)| q)
                    .sum();
                let mut record = vec![text(row, "sku")?, text(row, "code")?, on_hand.to_string()];
                record.extend(quantities.iter().map(i64::to_string));
                record.push(row.try_get::<i64>("", "sequence")?.to_string());
                record.push(time(row, "updated_at")?);
                out.row(&record).await?;
            }
            let last = page.last().expect("not empty");
            after = Some((text(last, "sku")?, text(last, "code")?));
            if last_progress.elapsed().as_secs() >= 1 {
                progress(run, out.rows).await?;
                last_progress = std::time::Instant::now();
            }
            if (page.len() as u64) < PAGE {
                return Ok(());
            }
        }
    })
    .await?;
    Ok(Outcome::succeeded(
        json!({ "rows": rows, "artifactId": artifact.id.0 }),
    ))
}

/// `EXPORT_MOVEMENTS`: movements in the order they were recorded.
pub async fn movements(run: &Run) -> Result<Outcome, Failure> {
    let db = &run.app.background_db;
    let header = [
        "id",
        "recorded_at",
        "effective_at",
        "sku",
        "location",
        "state",
        "delta",
        "quantity_after",
        "sequence",
        "reason",
        "counterparty",
        "reference_document_uri",
        "actor",
        "group_id",
    ];
    let name = format!("{}-movements.csv", run.job.job.id.0);
    let reason = run.job.param_str("reason").map(|r| r.to_ascii_lowercase());
    let (artifact, rows) = with_csv(run, &header, &name, async |out: &mut CsvOut| {
        let mut after: Option<String> = None;
        let mut last_progress = std::time::Instant::now();
        loop {
            run.check()?;
            let mut values: Vec<DbValue> = vec![run.tenant().to_owned().into()];
            let mut sql = "SELECT m.id, m.recorded_at, m.effective_at, i.sku, l.code, m.state, \
                 m.delta, m.quantity_after, m.sequence, m.reason, m.counterparty, \
                 m.reference_document_uri, m.actor, m.group_id FROM movements m \
                 JOIN items i ON i.tenant_id = m.tenant_id AND i.id = m.item_id \
                 JOIN locations l ON l.tenant_id = m.tenant_id AND l.id = m.location_id \
                 WHERE m.tenant_id = $1"
                .to_owned();
            filter(&mut sql, &mut values, "i.sku", "=", param_text(run, "sku"));
            filter(
                &mut sql,
                &mut values,
                "l.code",
                "=",
                param_text(run, "locationCode"),
            );
            filter(
                &mut sql,
                &mut values,
                "m.reason",
                "=",
                reason.clone().map(Into::into),
            );
            filter(
                &mut sql,
                &mut values,
                "m.recorded_at",
                ">=",
                param_time(run, "since"),
            );
            filter(
                &mut sql,
                &mut values,
                "m.recorded_at",
                "<",
                param_time(run, "until"),
            );
            filter(
                &mut sql,
                &mut values,
                "m.id",
                ">",
                after.clone().map(Into::into),
            );
            sql.push_str(&format!(" ORDER BY m.id LIMIT {PAGE}"));
            let page = db.query_all_raw(statement(db, sql, values)).await?;
            for row in &page {
                let record = [
                    text(row, "id")?,
                    time(row, "recorded_at")?,
                    time(row, "effective_at")?,
                    text(row, "sku")?,
                    text(row, "code")?,
                    text(row, "state")?.to_ascii_uppercase(),
                    row.try_get::<i64>("", "delta")?.to_string(),
                    row.try_get::<i64>("", "quantity_after")?.to_string(),
                    row.try_get::<i64>("", "sequence")?.to_string(),
                    text(row, "reason")?.to_ascii_uppercase(),
                    text(row, "counterparty")?.to_ascii_uppercase(),
                    text(row, "reference_document_uri")?,
                    text(row, "actor")?,
                    text(row, "group_id")?,
                ];
                out.row(&record).await?;
            }
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(text(last, "id")?);
            if last_progress.elapsed().as_secs() >= 1 {
                progress(run, out.rows).await?;
                last_progress = std::time::Instant::now();
            }
            if (page.len() as u64) < PAGE {
                return Ok(());
            }
        }
    })
    .await?;
    Ok(Outcome::succeeded(
        json!({ "rows": rows, "artifactId": artifact.id.0 }),
    ))
}

/// `REPORT_LOW_STOCK`: levels whose `available` is at or below their reorder point (set per
/// item and location with `setReorderPoint`, or `defaultReorderPoint` for the rest).
pub async fn low_stock(run: &Run) -> Result<Outcome, Failure> {
    let db = &run.app.background_db;
    let default = run.job.param("defaultReorderPoint").and_then(Value::as_i64);
    let mut values: Vec<DbValue> = vec![run.tenant().to_owned().into()];
    // Items with a reorder point but no level yet count as none available.
    let mut sql = match default {
        Some(default) => {
            values.push(default.into());
            "SELECT i.sku, l.code, COALESCE(s.available, 0) AS available, \
               COALESCE(s.incoming, 0) AS incoming, COALESCE(r.reorder_point, $2) AS reorder_point \
             FROM stock_levels s \
             JOIN items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id \
             JOIN locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id \
             LEFT JOIN reorder_points r ON r.tenant_id = s.tenant_id AND r.item_id = s.item_id \
               AND r.location_id = s.location_id \
             WHERE s.tenant_id = $1 AND COALESCE(s.available, 0) <= COALESCE(r.reorder_point, $2)"
                .to_owned()
        }
        None => "SELECT i.sku, l.code, COALESCE(s.available, 0) AS available, \
               COALESCE(s.incoming, 0) AS incoming, r.reorder_point \
             FROM reorder_points r \
             JOIN items i ON i.tenant_id = r.tenant_id AND i.id = r.item_id \
             JOIN locations l ON l.tenant_id = r.tenant_id AND l.id = r.location_id \
             LEFT JOIN stock_levels s ON s.tenant_id = r.tenant_id AND s.item_id = r.item_id \
               AND s.location_id = r.location_id \
             WHERE r.tenant_id = $1 AND COALESCE(s.available, 0) <= r.reorder_point"
            .to_owned(),
    };
    filter(
        &mut sql,
        &mut values,
        "l.code",
        "=",
        param_text(run, "locationCode"),
    );
    sql.push_str(" ORDER BY i.sku, l.code");
    let found = db.query_all_raw(statement(db, sql, values)).await?;
    let name = format!("{}-low-stock.csv", run.job.job.id.0);
    let header = [
        "sku",
        "location",
        "available",
        "incoming",
        "reorder_point",
        "shortfall",
    ];
    let mut listed = Vec::new();
    let (artifact, rows) = with_csv(run, &header, &name, async |out: &mut CsvOut| {
        for row in &found {
            let available: i64 = row.try_get("", "available")?;
            let point: i64 = row.try_get("", "reorder_point")?;
            let incoming: i64 = row.try_get("", "incoming")?;
            let (sku, code) = (text(row, "sku")?, text(row, "code")?);
            if listed.len() < 100 {
                listed.push(
                    json!({ "sku": sku, "locationCode": code, "available": available,
                    "incoming": incoming, "reorderPoint": point, "shortfall": point - available }),
                );
            }
            out.row([
                sku,
                code,
                available.to_string(),
                incoming.to_string(),
                point.to_string(),
                (point - available).to_string(),
            ])
            .await?;
        }
        Ok(())
    })
    .await?;
    Ok(Outcome::succeeded(
        json!({ "rows": rows, "artifactId": artifact.id.0, "levels": listed }),
    ))
}

/// `REPORT_MOVEMENT_SUMMARY`: per period (`DAY`, `WEEK` from Monday, `MONTH`; UTC), reason
/// and state: how many movements, units in, units out, and the net change.
pub async fn movement_summary(run: &Run) -> Result<Outcome, Failure> {
    let db = &run.app.background_db;
    let period = run.job.param_str("period").unwrap_or("DAY");
    let bucket = match (db.get_database_backend(), period) {
        (DbBackend::Postgres, "MONTH") => "to_char(m.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM')",
        (DbBackend::Postgres, "WEEK") => {
            "to_char(date_trunc('week', m.recorded_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"
        }
        (DbBackend::Postgres, _) => "to_char(m.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        (_, "MONTH") => "strftime('%Y-%m', m.recorded_at)",
        (_, "WEEK") => "date(m.recorded_at, '-6 days', 'weekday 1')",
        _ => "date(m.recorded_at)",
    };
    let mut values: Vec<DbValue> = vec![run.tenant().to_owned().into()];
    let mut sql = format!(
        "SELECT {bucket} AS period, m.reason, m.state, CAST(COUNT(*) AS BIGINT) AS movements, \
           CAST(SUM(CASE WHEN m.delta > 0 THEN m.delta ELSE 0 END) AS BIGINT) AS units_in, \
           CAST(SUM(CASE WHEN m.delta < 0 THEN -m.delta ELSE 0 END) AS BIGINT) AS units_out \
         FROM movements m WHERE m.tenant_id = $1"
    );
    filter(
        &mut sql,
        &mut values,
        "m.recorded_at",
        ">=",
        param_time(run, "since"),
    );
    filter(
        &mut sql,
        &mut values,
        "m.recorded_at",
        "<",
        param_time(run, "until"),
    );
    sql.push_str(" GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
    let found = db.query_all_raw(statement(db, sql, values)).await?;
    let name = format!("{}-movement-summary.csv", run.job.job.id.0);
    let header = [
        "period",
        "reason",
        "state",
        "movements",
        "units_in",
        "units_out",
        "net",
    ];
    let mut listed = Vec::new();
    let (artifact, rows) = with_csv(run, &header, &name, async |out: &mut CsvOut| {
        for row in &found {
            let (n, units_in, units_out): (i64, i64, i64) = (
                row.try_get("", "movements")?,
                row.try_get("", "units_in")?,
                row.try_get("", "units_out")?,
            );
            let (period, reason, state) = (
                text(row, "period")?,
                text(row, "reason")?.to_ascii_uppercase(),
                text(row, "state")?.to_ascii_uppercase(),
            );
            if listed.len() < 500 {
                listed.push(json!({ "period": period, "reason": reason, "state": state,
                    "movements": n, "unitsIn": units_in, "unitsOut": units_out, "net": units_in - units_out }));
            }
            out.row([
                period,
                reason,
                state,
                n.to_string(),
                units_in.to_string(),
                units_out.to_string(),
                (units_in - units_out).to_string(),
            ])
            .await?;
        }
        Ok(())
    })
    .await?;
    Ok(Outcome::succeeded(json!({
        "rows": rows, "period": period, "artifactId": artifact.id.0, "summary": listed
    })))
}

/// `RECONCILE`: compares the tenant's snapshots with its ledger; the report is an artifact,
/// and a mismatch raises `reconciliation.mismatch`.
pub async fn reconcile(run: &Run) -> Result<Outcome, Failure> {
    let app = &run.app;
    let report = crate::ledger::reconcile::run(&app.background_db, Some(run.tenant())).await?;
    let artifact = report_artifact(
        app,
        run.tenant(),
        Some(&run.job.job.id),
        &run.job.job.actor,
        &report,
    )
    .await?;
    announce(app, &report).await?;
    Ok(Outcome::succeeded(json!({
        "runId": report.run_id,
        "levelsChecked": report.levels_checked,
        "mismatches": report.mismatches,
        "artifactId": artifact.id.0,
        "durationMs": (report.finished_at - report.started_at).num_milliseconds(),
    })))
}

/// Stores a reconciliation report as a JSON artifact of its tenant.
pub async fn report_artifact(
    app: &crate::app::App,
    tenant_id: &str,
    job_id: Option<&str>,
    actor: &str,
    report: &crate::ledger::reconcile::Report,
) -> Result<Artifact, Failure> {
    let bytes = serde_json::to_vec_pretty(report).map_err(|e| Failure::Transient(e.to_string()))?;
    let name = format!("{}-reconciliation.json", report.run_id);
    Ok(artifacts::store_bytes(
        &app.artifacts,
        &app.background_db,
        NewArtifact {
            tenant_id,
            name: &name,
            content_type: "application/json",
            purpose: "report",
            job_id,
            created_by: actor,
        },
        bytes,
        app.config.artifacts.retention_days,
    )
    .await?)
}

/// The metric of every run, and for each tenant with mismatches a `reconciliation.mismatch`
/// event naming the run and the differing levels.
pub async fn announce(
    app: &crate::app::App,
    report: &crate::ledger::reconcile::Report,
) -> Result<(), sea_orm::DbErr> {
    if report.mismatches == 0 {
        count(report);
        return Ok(());
    }
    let txn = app.begin_background_write().await?;
    announce_in(&txn.txn, report).await?;
    txn.txn.commit().await?;
    app.wake.relay.notify_one();
    Ok(())
}

fn count(report: &crate::ledger::reconcile::Report) {
    metrics::counter!("twh_reconciliation_runs_total").increment(1);
    metrics::gauge!("twh_reconciliation_last_mismatches").set(report.mismatches as f64);
    metrics::counter!("twh_reconciliation_mismatches_total").increment(report.mismatches);
}

/// [`announce`] in the caller's transaction.
pub async fn announce_in(
    txn: &impl ConnectionTrait,
    report: &crate::ledger::reconcile::Report,
) -> Result<(), sea_orm::DbErr> {
    count(report);
    let mut by_tenant: std::collections::BTreeMap<&str, Vec<&crate::ledger::reconcile::Mismatch>> =
        Default::default();
    for row in &report.rows {
        by_tenant
            .entry(row.tenant_id.as_str())
            .or_default()
            .push(row);
    }
    for (tenant, rows) in by_tenant {
        crate::events::record(
            txn,
            tenant,
            super::RECONCILIATION_MISMATCH,
            "reconciliation_run",
            &report.run_id,
            json!({
                "runId": report.run_id,
                "mismatches": rows.len(),
                "rows": rows.iter().take(100).collect::<Vec<_>>(),
            }),
        )
        .await?;
    }
    Ok(())
}
