//! Reconciliation: recompute every level from the ledger and compare it with the snapshot.
//! Also checks each (item, location)'s sequence: movements numbered 1..=n with no gap.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    IsolationLevel, QueryFilter, TransactionTrait,
};
use serde::Serialize;
use twh_entity::stock_level;

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

type Key = (String, String, String);

#[derive(Default)]
struct LedgerSide {
    states: BTreeMap<&'static str, i64>,
    count: i64,
    max_sequence: i64,
}

/// Compares snapshots with the ledger for one tenant or all, and records the run.
///
/// Both sides are read in one snapshot (a repeatable-read transaction on Postgres; on SQLite in
/// WAL mode a read transaction sees one moment from its first read), so writes committing
/// while it runs never look like mismatches.
pub async fn run(db: &DatabaseConnection, tenant_id: Option<&str>) -> Result<Report, DbErr> {
    let started_at = Utc::now();
    let snapshot = if db.get_database_backend() == DbBackend::Postgres {
        db.begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?
    } else {
        db.begin().await?
    };
    let mut select = Query::select();
    select
        .columns(["tenant_id", "item_id", "location_id", "state"])
        .expr_as(Expr::cust("CAST(SUM(delta) AS BIGINT)"), "total")
        .expr_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
        .expr_as(Expr::cust("CAST(MAX(sequence) AS BIGINT)"), "max_seq")
        .from("movements")
        .group_by_columns(["tenant_id", "item_id", "location_id", "state"]);
    if let Some(t) = tenant_id {
        select.and_where(Expr::col("tenant_id").eq(t));
    }
    let mut ledger: BTreeMap<Key, LedgerSide> = BTreeMap::new();
    for row in snapshot.query_all(&select).await? {
        let key: Key = (
            row.try_get("", "tenant_id")?,
            row.try_get("", "item_id")?,
            row.try_get("", "location_id")?,
        );
        let state: String = row.try_get("", "state")?;
        let total: i64 = row.try_get("", "total")?;
        let side = ledger.entry(key).or_default();
        let state = QuantityState::parse(&state)
            .map(QuantityState::column)
            .unwrap_or("unknown");
        *side.states.entry(state).or_default() += total;
        side.count += row.try_get::<i64>("", "n")?;
        side.max_sequence = Ord::max(side.max_sequence, row.try_get::<i64>("", "max_seq")?);
    }

    let mut levels = stock_level::Entity::find();
    if let Some(t) = tenant_id {
        levels = levels.filter(stock_level::Column::TenantId.eq(t));
    }
    let levels = levels.all(&snapshot).await?;
    snapshot.commit().await?;
    let mut rows = Vec::new();
    let mut checked = 0u64;
    let mut push = |key: &Key, field: &str, snapshot: i64, ledger: i64| {
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
    for level in &levels {
        checked += 1;
        let key: Key = (
            level.tenant_id.clone(),
            level.item_id.clone(),
            level.location_id.clone(),
        );
        let side = ledger.remove(&key).unwrap_or_default();
        for state in QuantityState::ALL {
            let from_ledger = side.states.get(state.column()).copied().unwrap_or(0);
            push(&key, state.column(), state.of(level), from_ledger);
        }
        if let Some(unknown) = side.states.get("unknown") {
            push(&key, "unknown_state", 0, *unknown);
        }
        push(&key, "sequence", level.sequence, side.max_sequence);
        push(&key, "sequence_gaps", side.max_sequence, side.count);
    }
    // Movements whose level row is missing altogether.
    for (key, side) in &ledger {
        for (state, total) in &side.states {
            push(key, state, 0, *total);
        }
    }
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
