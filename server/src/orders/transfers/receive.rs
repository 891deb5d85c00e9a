//! Receiving a transfer at its destination: incoming → available. Without lines, everything
//! still in transit arrives. With `closeShortfall`, what did not arrive is written off as a
//! DISCREPANCY movement (out of the destination's `incoming`), and the transfer is RECEIVED.

use async_graphql::InputObject;
use sea_orm::DatabaseTransaction;
use serde::Serialize;

use super::{RECEIVED, TransferStatus, ends};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{Counterparty, MovementReason, QuantityState};
use crate::orders::{self, Document, Kind};

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct TransferReceiptLineInput {
    pub sku: String,
    pub quantity: i64,
}

pub async fn receive(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
    lines: Option<Vec<TransferReceiptLineInput>>,
    close_shortfall: bool,
) -> Result<Document, DomainError> {
    if let Some(lines) = &lines {
        let instead = "receive everything in transit";
        orders::check_sent_lines(lines.iter().map(|l| l.quantity), Some(instead))?;
    }
    let mut document =
        orders::lock(txn, cx.principal, Kind::Transfer, id, expected_version).await?;
    if !matches!(
        TransferStatus::parse(&document.status),
        TransferStatus::InTransit | TransferStatus::PartiallyReceived
    ) {
        return Err(orders::invalid_transition(&document, "receive"));
    }
    let (_, to) = ends(&document)?;
    // What arrives from each line: (index, quantity, input path).
    let mut arriving: Vec<(usize, i64, Vec<String>)> = Vec::new();
    match lines {
        None => {
            for (n, line) in document.lines.iter().enumerate() {
                let open = line.quantity - line.done - line.closed;
                if open > 0 {
                    arriving.push((n, open, line.input_path()));
                }
            }
        }
        Some(lines) => {
            let mut errors = Vec::new();
            let mut left: Vec<i64> = document
                .lines
                .iter()
                .map(|l| l.quantity - l.done - l.closed)
                .collect();
            for (i, wanted) in lines.iter().enumerate() {
                let path = || vec!["lines".to_owned(), i.to_string(), "quantity".to_owned()];
                let (taken, rest) = orders::fill(
                    &document.lines,
                    &mut left,
                    |l| l.sku == wanted.sku,
                    wanted.quantity,
                );
                arriving.extend(
                    taken
                        .into_iter()
                        .map(|(n, take)| (n, take, vec!["lines".to_owned(), i.to_string()])),
                );
                if rest > 0 {
                    errors.push(UserError {
                        code: ErrorCode::InvalidInput,
                        field: Some(path()),
                        message: format!(
                            "{rest} more {} than is still in transit on {}",
                            wanted.sku, document.number
                        ),
                    });
                }
            }
            if !errors.is_empty() {
                return Err(DomainError::User(errors));
            }
        }
    }
    let mut postings = Vec::new();
    for (n, quantity, path) in arriving {
        let line = &mut document.lines[n];
        line.done += quantity;
        postings.push((
            Line::Move {
                sku: line.sku.clone(),
                quantity,
                from: (to.clone(), QuantityState::Incoming),
                to: (to.clone(), QuantityState::Available),
            },
            path,
        ));
    }
    if postings.is_empty() && !close_shortfall {
        return Err(orders::invalid_transition(
            &document,
            "receive (nothing is in transit)",
        ));
    }
    let mut posted =
        orders::post_lines(txn, cx, &document, MovementReason::Transfer, postings).await?;
    if close_shortfall {
        let mut shortfall = Vec::new();
        for line in &mut document.lines {
            let missing = line.quantity - line.done - line.closed;
            if missing > 0 {
                line.closed += missing;
                shortfall.push((
                    Line::External {
                        sku: line.sku.clone(),
                        location_code: to.clone(),
                        state: QuantityState::Incoming,
                        delta: -missing,
                        counterparty: Counterparty::Transit,
                        counterparty_location_code: document.from_location_code.clone(),
                    },
                    vec!["closeShortfall".to_owned()],
                ));
            }
        }
        posted = posted.and(
            orders::post_lines(txn, cx, &document, MovementReason::Discrepancy, shortfall).await?,
        );
    }
    let complete = document
        .lines
        .iter()
        .all(|l| l.done + l.closed >= l.quantity);
    let status = if complete {
        TransferStatus::Received
    } else {
        TransferStatus::PartiallyReceived
    };
    let document = orders::save(txn, cx, document, status.as_str(), RECEIVED, posted).await?;
    Ok(document)
}
