//! Reconciliation: recompute every level from the ledger and compare it with the snapshot.
//! Also checks each (item, location)'s sequence: movements numbered 1..=n with no gap.

use chrono::Utc;
use sea_orm::sea_query::Query;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, IsolationLevel, Statement,
    TransactionTrait,
};
use serde::Serialize;

use super::QuantityState;
use crate::ids;

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    pub tenant_id: String,
    pub item_id: String,
    pub location_id: String,
    /// The state whose quantity differs, or `sequence` for a numbering gap.
    pub field: String,
    pub snapshot: i64,
    pub ledger: i64,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub run_id: String,
    pub tenant_id: Option<String>,
    pub levels_checked: u64,
    pub mismatches: u64,
    pub rows: Vec<Mismatch>,
    pub started_at: chrono::DateTime<Utc>,
    pub finished_at: chrono::DateTime<Utc>,
}

/// The statement that compares: the ledger summed per (tenant, item, location), one column
/// per state, full-outer-joined with the snapshots, keeping only the pairs that differ. Only
/// mismatches travel back, so memory does not grow with the number of levels.
fn comparison(tenant_filter: bool) -> String {
    let states = QuantityState::ALL.map(QuantityState::column);
    let sums: Vec<String> = states
        .iter()
        .map(|c| {
            format!("CAST(SUM(CASE WHEN state = '{c}' THEN delta ELSE 0 END) AS BIGINT) AS {c}")
        })
        .collect();
    let known = states
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let differs: Vec<String> = states
        .iter()
        .map(|c| format!("s.{c} <> COALESCE(l.{c}, 0)"))
        .collect();
    let picked: Vec<String> = states
        .iter()
        .map(|c| format!("s.{c} AS s_{c}, l.{c} AS l_{c}"))
        .collect();
    let (movements_where, levels_where) = if tenant_filter {
        (" WHERE tenant_id = $1", " WHERE tenant_id = $1")
    } else {
        ("", "")
    };
    format!(
        "WITH l AS (SELECT tenant_id, item_id, location_id, {sums}, \
           CAST(SUM(CASE WHEN state IN ({known}) THEN 0 ELSE 1 END) AS BIGINT) AS unknown_rows, \
           CAST(SUM(CASE WHEN state IN ({known}) THEN 0 ELSE delta END) AS BIGINT) AS unknown_state, \
           CAST(COUNT(*) AS BIGINT) AS n, CAST(MAX(sequence) AS BIGINT) AS max_seq \
           FROM movements{movements_where} GROUP BY tenant_id, item_id, location_id), \
         s AS (SELECT * FROM stock_levels{levels_where}) \
         SELECT COALESCE(s.tenant_id, l.tenant_id) AS tenant_id, \
           COALESCE(s.item_id, l.item_id) AS item_id, \
           COALESCE(s.location_id, l.location_id) AS location_id, \
           s.tenant_id IS NOT NULL AS has_level, {picked}, \
           s.sequence AS s_sequence, l.unknown_rows, l.unknown_state, l.n, l.max_seq \
         FROM s FULL OUTER JOIN l ON s.tenant_id = l.tenant_id AND s.item_id = l.item_id \
           AND s.location_id = l.location_id \
         WHERE s.tenant_id IS NULL OR ({differs}) \
           OR COALESCE(l.unknown_state, 0) <> 0 OR s.sequence <> COALESCE(l.max_seq, 0) \
           OR COALESCE(l.max_seq, 0) <> COALESCE(l.n, 0) \
         ORDER BY 1, 2, 3",
        sums = sums.join(", "),
        picked = picked.join(", "),
        differs = differs.join(" OR "),
    )
}

/// Compares snapshots with the ledger for one tenant or all, and records the run.
///
/// Both sides are read in one snapshot (a repeatable-read transaction on Postgres; on SQLite in
/// WAL mode a read transaction sees one moment from its first read), so writes committing
/// while it runs never look like mismatches.
pub async fn run(db: &DatabaseConnection, tenant_id: Option<&str>) -> Result<Report, DbErr> {
    let started_at = Utc::now();
    let backend = db.get_database_backend();
    let snapshot = if backend == DbBackend::Postgres {
        db.begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?
    } else {
        db.begin().await?
    };
    let values: Vec<sea_orm::Value> = tenant_id.map(Into::into).into_iter().collect();
    let mut count = String::from("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM stock_levels");
    if tenant_id.is_some() {
        count.push_str(" WHERE tenant_id = $1");
    }
    let checked: i64 = snapshot
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            count,
            values.clone(),
        ))
        .await?
        .map(|row| row.try_get("", "n"))
        .transpose()?
        .unwrap_or(0);
    let differing = snapshot
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            comparison(tenant_id.is_some()),
            values,
        ))
        .await?;
    snapshot.commit().await?;

    let mut rows = Vec::new();
    for row in &differing {
        let key = (
            row.try_get::<String>("", "tenant_id")?,
            row.try_get::<String>("", "item_id")?,
            row.try_get::<String>("", "location_id")?,
        );
        let mut push = |field: &str, snapshot: i64, ledger: i64| {
            if snapshot != ledger {
                rows.push(Mismatch {
                    tenant_id: key.0.clone(),
                    item_id: key.1.clone(),
                    location_id: key.2.clone(),
                    field: field.to_owned(),
                    snapshot,
                    ledger,
                });
            }
        };
        let ledger = |column: &str| -> Result<i64, DbErr> {
            Ok(row.try_get::<Option<i64>>("", column)?.unwrap_or(0))
        };
        let has_level: bool = row.try_get("", "has_level")?;
        for state in QuantityState::ALL {
            let c = state.column();
            let snapshot = if has_level {
                row.try_get::<i64>("", &format!("s_{c}"))?
            } else {
                0
            };
            push(c, snapshot, ledger(&format!("l_{c}"))?);
        }
        if !has_level {
            // Movements whose level row is missing altogether: their totals are the mismatch.
            if ledger("unknown_rows")? > 0 {
                push("unknown", 0, ledger("unknown_state")?);
            }
            continue;
        }
        push("unknown_state", 0, ledger("unknown_state")?);
        push(
            "sequence",
            row.try_get("", "s_sequence")?,
            ledger("max_seq")?,
        );
        push("sequence_gaps", ledger("max_seq")?, ledger("n")?);
    }
    let checked = checked as u64;
    let finished_at = Utc::now();
    let report = Report {
        run_id: ids::new_id(ids::RECONCILIATION),
        tenant_id: tenant_id.map(str::to_owned),
        levels_checked: checked,
        mismatches: rows.len() as u64,
        rows,
        started_at,
        finished_at,
    };
    let insert = Query::insert()
        .into_table("reconciliation_runs")
        .columns([
            "tenant_id",
            "id",
            "levels_checked",
            "mismatches",
            "report",
            "started_at",
            "finished_at",
        ])
        .values_panic([
            tenant_id.unwrap_or("*").into(),
            report.run_id.clone().into(),
            (report.levels_checked as i64).into(),
            (report.mismatches as i64).into(),
            serde_json::to_value(&report.rows)
                .unwrap_or_default()
                .into(),
            started_at.into(),
            finished_at.into(),
        ])
        .to_owned();
    db.execute(&insert).await?;
    Ok(report)
}
