//! Single relative adjustments of one tenant, run together: what group commit does with a run
//! of `adjustStock` calls of one change each, instead of running them one after another.
//!
//! The adjustments' SKUs and codes are resolved in one statement, their levels locked and
//! written in two (changes to one level summed into one row update, each change still getting
//! its own `quantityAfterChange` and sequence number), and every movement, event, audit row and
//! idempotency key with its answer in one more: four statements for the whole run, however many
//! calls it holds, where each call alone sends two or three. Anything off that path (an unknown
//! SKU or location, a level that does not exist yet, a change a rule refuses, a key that was
//! used before) makes the whole run answer `None`: the caller rolls it back and runs each
//! adjustment on its own, where it gets its exact answer. So the fast path only ever does what
//! running them one by one in this order would have done.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};
use serde::Serialize;

use super::{
    AdjustStockInput, BucketChange, Context, EventRow, Group, MovementRow, StockChange,
    apply_deltas_at_once, audit_entry, check_adjust, insert_events_from_json,
    insert_movements_from_json, json_rows, recorded, resolve_bucket_changes,
};
use crate::audit;
use crate::auth::Principal;
use crate::error::DomainError;
use crate::idempotency::{self, Answered};

/// A movement of a run with its call's idempotency key.
#[derive(Serialize)]
struct KeyedMovementRow<'a> {
    #[serde(flatten)]
    row: MovementRow<'a>,
    idempotency_key: Option<&'a str>,
}

/// A run's rows: $1 tenant, $2 keys with their answers, $3 movements, $4 events (in order), $5
/// audit rows, $6 now, $7 the keys' expiry. Answers how many keys it inserted.
static WRITE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH k AS ({}), m AS ({}), e AS ({}), a AS ({}) \
         SELECT COUNT(*) AS written FROM k",
        idempotency::insert_answered_from_json("$2", "$1", "$6", "$7"),
        insert_movements_from_json("$3", |name| (name == "tenant_id").then_some("$1")),
        insert_events_from_json("$4", "$1", "$6"),
        audit::insert_from_json("$5", "$1", "$6"),
    )
});

/// The operation names `adjustStock` runs under (its idempotency keys, its audit records).
pub const OPERATION: &str = "adjustStock";
const ACTION: &str = "stock.adjust";

/// One `adjustStock` call that may run together with others.
pub struct Adjustment {
    pub principal: Principal,
    pub request_id: String,
    pub key: Option<String>,
    /// The request's fingerprint, when it is keyed.
    pub fingerprint: String,
    input: AdjustStockInput,
}

impl Adjustment {
    /// The call, when it is one valid relative change (no `changeFromQuantity`): what a run
    /// can hold. Anything else runs on its own.
    pub fn of(
        principal: Principal,
        request_id: String,
        key: Option<String>,
        fingerprint: String,
        input: &AdjustStockInput,
    ) -> Option<Self> {
        let [change] = input.changes.as_slice() else {
            return None;
        };
        if change.change_from_quantity.is_some() || !check_adjust(input).is_empty() {
            return None;
        }
        Some(Self {
            principal,
            request_id,
            key,
            fingerprint,
            input: input.clone(),
        })
    }

    pub fn tenant_id(&self) -> &str {
        &self.principal.tenant_id
    }

    fn context(&self) -> Context<'_> {
        Context {
            principal: &self.principal,
            request_id: &self.request_id,
            idempotency_key: self.key.as_deref(),
            operation: ACTION,
            audited_by_document: false,
            answers_with_change: true,
            deferred: None,
        }
    }
}

/// Runs adjustments of one tenant together in `txn`, in their order, and answers each one's
/// change; `None` when any of them must run on its own (see the module's note), after which
/// `txn` holds partial work and must be rolled back. Postgres only.
pub async fn adjust_together(
    txn: &DatabaseTransaction,
    adjustments: &[&Adjustment],
    key_ttl_hours: i64,
) -> Result<Option<Vec<StockChange>>, DbErr> {
    let Some(first) = adjustments.first() else {
        return Ok(Some(Vec::new()));
    };
    let tenant_id = first.tenant_id();
    if adjustments.iter().any(|a| a.tenant_id() != tenant_id) {
        return Ok(None);
    }
    let changes = adjustments
        .iter()
        .map(|a| BucketChange::adjusting(&a.input.changes[0]))
        .collect();
    let entries = match resolve_bucket_changes(txn, &first.context(), changes).await {
        Ok(entries) => entries,
        // An unknown SKU or location: each call on its own gets its exact error.
        Err(DomainError::User(_)) => return Ok(None),
        Err(DomainError::Internal(err)) => {
            return Err(err
                .downcast::<DbErr>()
                .unwrap_or_else(|err| DbErr::Custom(err.to_string())));
        }
    };

    // Lock order as `apply` takes it: by (item, location), each level's changes in call order.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|a, b| {
        (&entries[*a].item.id, &entries[*a].location.id)
            .cmp(&(&entries[*b].item.id, &entries[*b].location.id))
    });
    let now = Utc::now();
    let Some(applied) = apply_deltas_at_once(txn, tenant_id, &entries, &order, now).await? else {
        return Ok(None);
    };

    let contexts: Vec<Context<'_>> = adjustments.iter().map(|a| a.context()).collect();
    let mut changes = Vec::with_capacity(adjustments.len());
    let mut changed = Vec::with_capacity(adjustments.len());
    let mut reasons = Vec::with_capacity(adjustments.len());
    for (i, (adjustment, cx)) in adjustments.iter().zip(&contexts).enumerate() {
        let input = &adjustment.input;
        let recorded = recorded(
            cx,
            now,
            Group::of(
                input.reason,
                &input.reference_document_uri,
                input.effective_at,
            ),
            &entries[i..=i],
            &applied[i..=i],
        );
        changes.push(recorded.change);
        changed.extend(recorded.changed);
        reasons.push((recorded.reason, recorded.reference_document_uri));
    }

    // Every row of the run in one statement of constant text (planned once per connection):
    // the keys with their answers (counted), movements, events and audit rows.
    let mut answered = Vec::new();
    for (adjustment, change) in adjustments.iter().zip(&changes) {
        if let Some(key) = &adjustment.key {
            answered.push(Answered {
                key,
                operation: OPERATION,
                request_hash: &adjustment.fingerprint,
                response: idempotency::stored_answer(change)?,
            });
        }
    }
    let movements: Vec<KeyedMovementRow<'_>> = adjustments
        .iter()
        .zip(&changes)
        .flat_map(|(a, c)| {
            c.movements.iter().map(|m| KeyedMovementRow {
                row: MovementRow::from(m),
                idempotency_key: a.key.as_deref(),
            })
        })
        .collect();
    let events = EventRow::rows(&changed);
    let audits: Vec<audit::JsonRow<'_>> = adjustments
        .iter()
        .zip(&contexts)
        .zip(&changes)
        .zip(&reasons)
        .map(|(((a, cx), change), (reason, uri))| {
            audit::JsonRow::new(&a.principal, audit_entry(cx, change, *reason, *uri))
        })
        .collect();
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            WRITE_SQL.as_str(),
            [
                tenant_id.into(),
                json_rows(&answered).map_err(|e| DbErr::Custom(e.to_string()))?,
                json_rows(&movements).map_err(|e| DbErr::Custom(e.to_string()))?,
                json_rows(&events).map_err(|e| DbErr::Custom(e.to_string()))?,
                json_rows(&audits).map_err(|e| DbErr::Custom(e.to_string()))?,
                now.into(),
                idempotency::expiry(key_ttl_hours, now).into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the count of a run's keys".into()))?;
    let written: i64 = row.try_get("", "written")?;
    if written != answered.len() as i64 {
        // A key was used before (a replay, or a key reused for another request): each call
        // on its own finds out which, and answers it as it should.
        return Ok(None);
    }
    let movements: usize = changes.iter().map(|c| c.movements.len()).sum();
    metrics::counter!("twh_ledger_movements_total").increment(movements as u64);
    Ok(Some(changes))
}
