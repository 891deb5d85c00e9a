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

#[derive(async_graphql::SimpleObject, Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
#[graphql(name = "ReconciliationMismatch")]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    pub tenant_id: String,
    pub item_id: String,
    pub location_id: String,
    /// The item's SKU and the location's code, for reading the report (`None` in runs
    /// recorded before they were added, or for a row whose item or location is gone).
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub location_code: Option<String>,
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

/// Fills in the SKU and location code of each differing row (a look-up per distinct item and
/// location; mismatches are few).
async fn name_rows(db: &DatabaseConnection, rows: &mut [Mismatch]) -> Result<(), DbErr> {
    use std::collections::HashMap;
    let backend = db.get_database_backend();
    let mut names: HashMap<(String, String, &'static str), Option<String>> = HashMap::new();
    for row in rows.iter_mut().take(10_000) {
        for (table, column, id) in [
            ("items", "sku", row.item_id.clone()),
            ("locations", "code", row.location_id.clone()),
        ] {
            let key = (row.tenant_id.clone(), id.clone(), table);
            if !names.contains_key(&key) {
                let found = db
                    .query_one_raw(Statement::from_sql_and_values(
                        backend,
                        format!(
                            "SELECT {column} AS name FROM {table} WHERE tenant_id = $1 AND id = $2"
                        ),
                        [row.tenant_id.clone().into(), id.into()],
                    ))
                    .await?
                    .map(|r| r.try_get::<String>("", "name"))
                    .transpose()?;
                names.insert(key.clone(), found);
            }
            let name = names.get(&key).cloned().flatten();
            if table == "items" {
                row.sku = name;
            } else {
                row.location_code = name;
            }
        }
    }
    Ok(())
}

/// Compares snapshots with the ledger for one tenant or all, and records the run.
///
/// Both sides are read in one snapshot (a repeatable-read transaction on Postgres; on SQLite in
/// WAL mode a read transaction sees one moment from its first read), so writes committing
/// while it runs never look like mismatches.
pub async fn run(db: &DatabaseConnection, tenant_id: Option<&str>) -> Result<Report, DbErr> {
    let report = compare(db, tenant_id).await?;
    record(db, &report).await?;
    Ok(report)
}

/// The comparison alone, recorded by nothing (see [`record`]).
pub async fn compare(db: &DatabaseConnection, tenant_id: Option<&str>) -> Result<Report, DbErr> {
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
                    sku: None,
                    location_code: None,
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
    name_rows(db, &mut rows).await?;
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
    Ok(report)
}

/// Records a run in `reconciliation_runs`, on any connection or transaction.
pub async fn record(db: &impl ConnectionTrait, report: &Report) -> Result<(), DbErr> {
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
            report.tenant_id.as_deref().unwrap_or("*").into(),
            report.run_id.clone().into(),
            (report.levels_checked as i64).into(),
            (report.mismatches as i64).into(),
            serde_json::to_value(&report.rows)
                .unwrap_or_default()
                .into(),
            report.started_at.into(),
            report.finished_at.into(),
        ])
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}

/// What `repairReconciliation` did.
#[derive(async_graphql::SimpleObject, Serialize, serde::Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Repair {
    pub run_id: async_graphql::ID,
    /// Levels whose ledger was brought to the snapshot.
    pub repaired_levels: i64,
    /// The compensating movements (reason `RECONCILIATION`), one per differing state.
    pub movements: Vec<super::Movement>,
    /// What a movement cannot repair (gaps in a sequence, unknown states): the runbook says
    /// what to do about each.
    pub unrepaired: Vec<String>,
}

/// Repairs what a run found for the caller's tenant: for each level it named, every state whose
/// ledger sum differs from the snapshot gets a movement of the difference (reason
/// `RECONCILIATION`), so the ledger comes to the quantities the snapshot showed and every unit
/// of the change stays on record. Nothing is overwritten; the next run is clean.
pub async fn repair(
    txn: &sea_orm::DatabaseTransaction,
    principal: &crate::auth::Principal,
    request_id: &str,
    run_id: &str,
) -> Result<Repair, crate::error::DomainError> {
    use crate::error::{DomainError, ErrorCode, UserError};
    let backend = txn.get_database_backend();
    let tenant = principal.tenant_id.as_str();
    let run = txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT report FROM reconciliation_runs WHERE id = $1 AND (tenant_id = $2 OR tenant_id = '*')",
            [run_id.into(), tenant.into()],
        ))
        .await?;
    let Some(run) = run else {
        return Err(DomainError::user(UserError::new(
            ErrorCode::NotFound,
            &["runId"],
            format!("no reconciliation run {run_id:?}"),
        )));
    };
    let rows: Vec<Mismatch> =
        serde_json::from_value(run.try_get::<serde_json::Value>("", "report")?)
            .map_err(anyhow::Error::from)?;
    let mut pairs: Vec<(String, String)> = rows
        .iter()
        .filter(|m| m.tenant_id == tenant)
        .map(|m| (m.item_id.clone(), m.location_id.clone()))
        .collect();
    pairs.sort();
    pairs.dedup();
    let now = Utc::now();
    let group_id = ids::new_id(ids::MOVEMENT_GROUP);
    let actor = principal.actor();
    let mut movements = Vec::new();
    let mut unrepaired = Vec::new();
    let mut repaired_levels = 0;
    let mut inserts = Vec::new();
    for (item_id, location_id) in &pairs {
        let ensure = "INSERT INTO stock_levels (tenant_id, item_id, location_id, available, \
             committed, reserved, incoming, damaged, safety_stock, quality_control, sequence, \
             version, updated_at) \
             VALUES ($1, $2, $3, 0, 0, 0, 0, 0, 0, 0, 0, 0, $4) \
             ON CONFLICT (tenant_id, item_id, location_id) DO NOTHING";
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            ensure,
            [
                tenant.into(),
                item_id.clone().into(),
                location_id.clone().into(),
                now.into(),
            ],
        ))
        .await?;
        let lock = if backend == DbBackend::Postgres {
            " FOR UPDATE OF s"
        } else {
            ""
        };
        let level = txn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT s.*, i.sku, l.code FROM stock_levels s \
                     JOIN items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id \
                     JOIN locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id \
                     WHERE s.tenant_id = $1 AND s.item_id = $2 AND s.location_id = $3{lock}"
                ),
                [
                    tenant.into(),
                    item_id.clone().into(),
                    location_id.clone().into(),
                ],
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("level row missing after its insert"))?;
        let sums = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                "SELECT state, CAST(SUM(delta) AS BIGINT) AS total, CAST(MAX(sequence) AS BIGINT) AS max_seq, \
                 CAST(COUNT(*) AS BIGINT) AS n FROM movements \
                 WHERE tenant_id = $1 AND item_id = $2 AND location_id = $3 GROUP BY state",
                [tenant.into(), item_id.clone().into(), location_id.clone().into()],
            ))
            .await?;
        let (sku, code): (String, String) = (level.try_get("", "sku")?, level.try_get("", "code")?);
        let mut ledger = std::collections::HashMap::new();
        let (mut max_seq, mut count) = (0i64, 0i64);
        for row in &sums {
            let state: String = row.try_get("", "state")?;
            max_seq = max_seq.max(row.try_get::<i64>("", "max_seq")?);
            count += row.try_get::<i64>("", "n")?;
            match QuantityState::parse(&state) {
                Some(s) => {
                    ledger.insert(s, row.try_get::<i64>("", "total")?);
                }
                None => unrepaired.push(format!(
                    "{sku} at {code}: movements in an unknown state {state:?}"
                )),
            }
        }
        if count != max_seq {
            unrepaired.push(format!(
                "{sku} at {code}: the sequence has gaps ({count} movements numbered up to {max_seq})"
            ));
        }
        let mut sequence = max_seq;
        let mut changed = false;
        for state in QuantityState::ALL {
            let snapshot: i64 = level.try_get("", state.column())?;
            let diff = snapshot - ledger.get(&state).copied().unwrap_or(0);
            if diff == 0 {
                continue;
            }
            sequence += 1;
            changed = true;
            movements.push(super::Movement {
                id: async_graphql::ID(ids::new_id(ids::MOVEMENT)),
                group_id: async_graphql::ID(group_id.clone()),
                item_id: async_graphql::ID(item_id.clone()),
                sku: sku.clone(),
                location_id: async_graphql::ID(location_id.clone()),
                location_code: code.clone(),
                state,
                delta: diff,
                quantity_after_change: snapshot,
                sequence,
                counterparty: super::Counterparty::Adjustment,
                counterparty_location_code: None,
                counterparty_location_id: None,
                counterparty_state: None,
                reason: super::MovementReason::Reconciliation,
                reference_document_uri: Some(format!("twh://reconciliations/{run_id}")),
                actor: actor.clone(),
                effective_at: now,
                recorded_at: now,
            });
        }
        let snapshot_sequence: i64 = level.try_get("", "sequence")?;
        if changed || snapshot_sequence != sequence {
            repaired_levels += 1;
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                "UPDATE stock_levels SET sequence = $1, version = version + 1, updated_at = $2 \
                 WHERE tenant_id = $3 AND item_id = $4 AND location_id = $5",
                [
                    sequence.into(),
                    now.into(),
                    tenant.into(),
                    item_id.clone().into(),
                    location_id.clone().into(),
                ],
            ))
            .await?;
        }
    }
    if !movements.is_empty() {
        inserts.push(super::write::insert_movements(tenant, &movements, None));
    }
    let result = Repair {
        run_id: async_graphql::ID(run_id.to_owned()),
        repaired_levels,
        movements,
        unrepaired,
    };
    inserts.push(crate::events::insert(
        tenant,
        crate::jobs::RECONCILIATION_REPAIRED,
        "reconciliation_run",
        run_id,
        serde_json::json!({ "runId": run_id, "repairedLevels": result.repaired_levels,
            "movements": result.movements.len(), "unrepaired": result.unrepaired }),
    ));
    inserts.push(crate::audit::insert(
        principal,
        crate::audit::AuditEntry {
            action: "reconciliation.repair",
            target_type: "reconciliation_run",
            target_id: run_id,
            request_id: Some(request_id),
            data: serde_json::json!({ "repairedLevels": result.repaired_levels,
                "movements": result.movements.len(), "groupId": group_id }),
        },
    ));
    crate::db::insert_all(txn, inserts).await?;
    Ok(result)
}
