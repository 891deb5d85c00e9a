//! Cancelling a sales order: what is committed and not shipped goes back to available.

use sea_orm::DatabaseTransaction;

use super::{CANCELLED, SalesOrderStatus};
use crate::error::DomainError;
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{MovementReason, QuantityState};
use crate::orders::{self, Document, Kind};

pub async fn cancel(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Document, DomainError> {
    let mut document =
        orders::lock(txn, cx.principal, Kind::SalesOrder, id, expected_version).await?;
    if matches!(
        SalesOrderStatus::parse(&document.status),
        SalesOrderStatus::Shipped | SalesOrderStatus::Cancelled
    ) {
        return Err(orders::invalid_transition(&document, "cancel"));
    }
    let mut postings = Vec::new();
    for line in &mut document.lines {
        if line.committed > 0 {
            postings.push((
                Line::Move {
                    sku: line.sku.clone(),
                    quantity: line.committed,
                    from: (line.location_code.clone(), QuantityState::Committed),
                    to: (line.location_code.clone(), QuantityState::Available),
                },
                line.input_path(),
            ));
        }
        line.committed = 0;
        line.closed = line.quantity - line.done;
    }
    let posted =
        orders::post_lines(txn, cx, &document, MovementReason::Cancellation, postings).await?;
    let document = orders::save(
        txn,
        cx,
        document,
        SalesOrderStatus::Cancelled.as_str(),
        CANCELLED,
        posted,
    )
    .await?;
    Ok(document)
}
