//! Cancelling a transfer: a DRAFT simply closes; in transit, what has not arrived goes back
//! from the destination's `incoming` to the origin's `available`.

use sea_orm::DatabaseTransaction;

use super::{CANCELLED, TransferStatus, ends};
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
        orders::lock(txn, cx.principal, Kind::Transfer, id, expected_version).await?;
    let status = TransferStatus::parse(&document.status);
    if matches!(status, TransferStatus::Received | TransferStatus::Cancelled) {
        return Err(orders::invalid_transition(&document, "cancel"));
    }
    let (from, to) = ends(&document)?;
    let shipped = status != TransferStatus::Draft;
    let mut postings = Vec::new();
    for line in &mut document.lines {
        let open = line.quantity - line.done - line.closed;
        line.closed += open.max(0);
        if shipped && open > 0 {
            let path = line.input_path();
            postings.push((
                Line::External {
                    sku: line.sku.clone(),
                    location_code: to.clone(),
                    state: QuantityState::Incoming,
                    delta: -open,
                    counterparty: Counterparty::Transit,
                    counterparty_location_code: Some(from.clone()),
                },
                path.clone(),
            ));
            postings.push((
                Line::External {
                    sku: line.sku.clone(),
                    location_code: from.clone(),
                    state: QuantityState::Available,
                    delta: open,
                    counterparty: Counterparty::Transit,
                    counterparty_location_code: Some(to.clone()),
                },
                path,
            ));
        }
    }
    let posted =
        orders::post_lines(txn, cx, &document, MovementReason::Cancellation, postings).await?;
    let document = orders::save(
        txn,
        cx,
        document,
        TransferStatus::Cancelled.as_str(),
        CANCELLED,
        posted,
    )
    .await?;
    Ok(document)
}
