//! Cancelling a purchase order: whatever is still incoming is released; what arrived stays.

use sea_orm::DatabaseTransaction;

use super::{CANCELLED, PurchaseOrderStatus};
use crate::error::DomainError;
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{Counterparty, MovementReason, QuantityState};
use crate::orders::{self, Document, Kind};

pub async fn cancel(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Document, DomainError> {
    let mut document =
        orders::lock(txn, cx.principal, Kind::PurchaseOrder, id, expected_version).await?;
    let status = PurchaseOrderStatus::parse(&document.status);
    if matches!(
        status,
        PurchaseOrderStatus::Received | PurchaseOrderStatus::Cancelled
    ) {
        return Err(orders::invalid_transition(&document, "cancel"));
    }
    let raised = status != PurchaseOrderStatus::Draft;
    let mut postings = Vec::new();
    for line in &mut document.lines {
        let open = (line.quantity - line.done - line.closed).max(0);
        line.closed += open;
        if raised && open > 0 {
            postings.push((
                Line::External {
                    sku: line.sku.clone(),
                    location_code: line.location_code.clone(),
                    state: QuantityState::Incoming,
                    delta: -open,
                    counterparty: Counterparty::Supplier,
                    counterparty_location_code: None,
                },
                line.input_path(),
            ));
        }
    }
    let posted =
        orders::post_lines(txn, cx, &document, MovementReason::Cancellation, postings).await?;
    let document = orders::save(
        txn,
        cx,
        document,
        PurchaseOrderStatus::Cancelled.as_str(),
        CANCELLED,
        posted,
    )
    .await?;
    Ok(document)
}
