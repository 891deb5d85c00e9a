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
use sea_orm::{DatabaseTransaction, DbErr};

use super::{
    AdjustStockInput, Context, Entry, Group, Resolver, StockChange, apply_deltas_at_once,
    audit_entry, check_adjust, element, insert_keyed_movements, recorded,
};
use crate::auth::Principal;
use crate::idempotency::{self, Answered};
use crate::ledger::Counterparty;
use crate::{audit, db, events};

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
    let changes = || adjustments.iter().map(|a| &a.input.changes[0]);
    let resolver = Resolver::load(
        txn,
        tenant_id,
        changes().map(|c| c.sku.clone()).collect(),
        changes().map(|c| c.location_code.clone()).collect(),
    )
    .await?;
    let mut errors = Vec::new();
    let mut entries = Vec::with_capacity(adjustments.len());
    for change in changes() {
        let base = element(0);
        let item = resolver.item(&change.sku, &base, &mut errors);
        let location = resolver.location(&change.location_code, &base, &mut errors);
        let (Some(item), Some(location)) = (item, location) else {
            return Ok(None);
        };
        entries.push(Entry {
            item,
            location,
            state: change.state,
            delta: change.delta,
            target: None,
            change_from: None,
            counterparty: Counterparty::Adjustment,
            counterparty_location: None,
            counterparty_state: None,
            path: base,
        });
    }

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

    // The keys with their answers first: the statement counts the keys it inserted.
    let mut answered = Vec::new();
    for (adjustment, change) in adjustments.iter().zip(&changes) {
        if let Some(key) = &adjustment.key {
            answered.push(Answered {
                key,
                operation: OPERATION,
                fingerprint: &adjustment.fingerprint,
                response: idempotency::stored_answer(change)?,
            });
        }
    }
    let mut writes = Vec::with_capacity(4);
    if !answered.is_empty() {
        writes.push(db::Write::Insert(idempotency::insert_answered(
            tenant_id,
            key_ttl_hours,
            &answered,
        )));
    }
    writes.push(db::Write::Insert(insert_keyed_movements(
        tenant_id,
        adjustments
            .iter()
            .zip(&changes)
            .flat_map(|(a, c)| c.movements.iter().map(|m| (m, a.key.as_deref()))),
    )));
    writes.push(db::Write::Insert(events::insert_many(tenant_id, changed)));
    writes.push(db::Write::Insert(audit::insert_many(
        adjustments
            .iter()
            .zip(&contexts)
            .zip(&changes)
            .zip(&reasons)
            .map(|(((a, cx), change), (reason, uri))| {
                (&a.principal, audit_entry(cx, change, *reason, *uri))
            }),
    )));
    let written = db::write_together(txn, writes).await?;
    if !answered.is_empty() && written != answered.len() as u64 {
        // A key was used before (a replay, or a key reused for another request): each call
        // on its own finds out which, and answers it as it should.
        return Ok(None);
    }
    let movements: usize = changes.iter().map(|c| c.movements.len()).sum();
    metrics::counter!("twh_ledger_movements_total").increment(movements as u64);
    Ok(Some(changes))
}
