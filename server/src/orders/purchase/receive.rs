//! Receiving against a purchase order: incoming → available per line, PARTIALLY_RECEIVED until
//! every line has arrived. More than ordered is refused unless the call allows it; then the
//! excess comes straight from the supplier into `available` and is kept as `overReceived`.

use async_graphql::InputObject;
use sea_orm::DatabaseTransaction;
use serde::Serialize;

use super::{PurchaseOrderStatus, RECEIVED};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{Counterparty, MovementReason, QuantityState};
use crate::orders::{self, Document, Kind};

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct ReceiptLineInput {
    pub sku: String,
    pub location_code: String,
    pub quantity: i64,
}

pub async fn receive(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
    receipt: Vec<ReceiptLineInput>,
    allow_over_receipt: bool,
) -> Result<Document, DomainError> {
    orders::check_sent_lines(receipt.iter().map(|l| l.quantity), None)?;
    let mut document =
        orders::lock(txn, cx.principal, Kind::PurchaseOrder, id, expected_version).await?;
    let status = PurchaseOrderStatus::parse(&document.status);
    if !matches!(
        status,
        PurchaseOrderStatus::Ordered | PurchaseOrderStatus::PartiallyReceived
    ) {
        return Err(orders::invalid_transition(&document, "receive against"));
    }
    let mut errors = Vec::new();
    let mut open: Vec<i64> = document
        .lines
        .iter()
        .map(|l| l.quantity - l.done - l.closed)
        .collect();
    let mut from_incoming = Vec::new();
    let mut over = Vec::new();
    for (i, received) in receipt.iter().enumerate() {
        let path = |leaf: &str| vec!["lines".to_owned(), i.to_string(), leaf.to_owned()];
        let matching: Vec<usize> = document
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.sku == received.sku && l.location_code == received.location_code)
            .map(|(n, _)| n)
            .collect();
        if matching.is_empty() {
            errors.push(UserError {
                code: ErrorCode::InvalidInput,
                field: Some(path("sku")),
                message: format!(
                    "{} at {} is not on purchase order {}",
                    received.sku, received.location_code, document.number
                ),
            });
            continue;
        }
        // Fill the order's lines for this SKU and location in line order.
        let (taken, left) = orders::fill(
            &document.lines,
            &mut open,
            |l| l.sku == received.sku && l.location_code == received.location_code,
            received.quantity,
        );
        for (n, take) in taken {
            let line = &mut document.lines[n];
            line.done += take;
            from_incoming.push((
                Line::Move {
                    sku: line.sku.clone(),
                    quantity: take,
                    from: (line.location_code.clone(), QuantityState::Incoming),
                    to: (line.location_code.clone(), QuantityState::Available),
                },
                vec!["lines".to_owned(), i.to_string()],
            ));
        }
        if left > 0 {
            if !allow_over_receipt {
                errors.push(UserError {
                    code: ErrorCode::InvalidInput,
                    field: Some(path("quantity")),
                    message: format!(
                        "{left} more than is still expected on {} - Hint: send allowOverReceipt: true to receive it anyway",
                        document.number
                    ),
                });
                continue;
            }
            let line = &mut document.lines[matching[matching.len() - 1]];
            line.over += left;
            over.push((
                Line::External {
                    sku: line.sku.clone(),
                    location_code: line.location_code.clone(),
                    state: QuantityState::Available,
                    delta: left,
                    counterparty: Counterparty::Supplier,
                    counterparty_location_code: None,
                },
                vec!["lines".to_owned(), i.to_string()],
            ));
        }
    }
    if !errors.is_empty() {
        return Err(DomainError::User(errors));
    }
    let mut postings = from_incoming;
    postings.extend(over);
    let posted = orders::post_lines(txn, cx, &document, MovementReason::Received, postings).await?;
    let complete = document
        .lines
        .iter()
        .all(|l| l.done + l.closed >= l.quantity);
    let status = if complete {
        PurchaseOrderStatus::Received
    } else {
        PurchaseOrderStatus::PartiallyReceived
    };
    let document = orders::save(txn, cx, document, status.as_str(), RECEIVED, posted).await?;
    Ok(document)
}
