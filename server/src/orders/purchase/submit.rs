//! Submitting a purchase order: DRAFT → ORDERED; every line's quantity becomes `incoming`.

use sea_orm::DatabaseTransaction;

use super::{PurchaseOrderStatus, SUBMITTED};
use crate::error::DomainError;
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{Counterparty, MovementReason, QuantityState};
use crate::orders::{self, Document, Kind};

pub async fn submit(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Document, DomainError> {
    let document =
        orders::lock(txn, cx.principal, Kind::PurchaseOrder, id, expected_version).await?;
    if PurchaseOrderStatus::parse(&document.status) != PurchaseOrderStatus::Draft {
        return Err(orders::invalid_transition(&document, "submit"));
    }
    let postings = document
        .lines
        .iter()
        .map(|line| {
            (
                Line::External {
                    sku: line.sku.clone(),
                    location_code: line.location_code.clone(),
                    state: QuantityState::Incoming,
                    delta: line.quantity,
                    counterparty: Counterparty::Supplier,
                    counterparty_location_code: None,
                },
                line.input_path(),
            )
        })
        .collect();
    let posted = orders::post_lines(txn, cx, &document, MovementReason::Ordered, postings).await?;
    let document = orders::save(
        txn,
        cx,
        document,
        PurchaseOrderStatus::Ordered.as_str(),
        SUBMITTED,
        posted,
    )
    .await?;
    Ok(document)
}
