//! Shipping a transfer: DRAFT → IN_TRANSIT. Each line leaves the origin's `available` and
//! shows as `incoming` at the destination, one movement group; the origin must have the stock.

use sea_orm::DatabaseTransaction;

use super::{SHIPPED, TransferStatus, ends};
use crate::error::DomainError;
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{Counterparty, MovementReason, QuantityState};
use crate::orders::{self, Document, Kind};

pub async fn ship(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Document, DomainError> {
    let document = orders::lock(txn, cx.principal, Kind::Transfer, id, expected_version).await?;
    if TransferStatus::parse(&document.status) != TransferStatus::Draft {
        return Err(orders::invalid_transition(&document, "ship"));
    }
    let (from, to) = ends(&document)?;
    let mut postings = Vec::new();
    for line in &document.lines {
        let path = line.input_path();
        postings.push((
            Line::External {
                sku: line.sku.clone(),
                location_code: from.clone(),
                state: QuantityState::Available,
                delta: -line.quantity,
                counterparty: Counterparty::Transit,
                counterparty_location_code: Some(to.clone()),
            },
            path.clone(),
        ));
        postings.push((
            Line::External {
                sku: line.sku.clone(),
                location_code: to.clone(),
                state: QuantityState::Incoming,
                delta: line.quantity,
                counterparty: Counterparty::Transit,
                counterparty_location_code: Some(from.clone()),
            },
            path,
        ));
    }
    let posted = orders::post_lines(txn, cx, &document, MovementReason::Transfer, postings).await?;
    let document = orders::save(
        txn,
        cx,
        document,
        TransferStatus::InTransit.as_str(),
        SHIPPED,
        posted,
    )
    .await?;
    Ok(document)
}
