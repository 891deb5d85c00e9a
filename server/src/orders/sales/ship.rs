//! Shipping a sales order: committed → customer. Without lines, everything allocated ships;
//! with lines, a partial shipment. Each call is one shipment (one movement group).

use async_graphql::InputObject;
use sea_orm::DatabaseTransaction;
use serde::Serialize;

use super::{SHIPPED, SalesOrderStatus, status_of};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{Counterparty, MovementReason, QuantityState};
use crate::orders::{self, Document, Kind};

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct ShipmentLineInput {
    pub sku: String,
    pub location_code: String,
    pub quantity: i64,
}

pub async fn ship(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
    lines: Option<Vec<ShipmentLineInput>>,
) -> Result<Document, DomainError> {
    if let Some(lines) = &lines {
        let instead = "ship everything allocated";
        orders::check_sent_lines(lines.iter().map(|l| l.quantity), Some(instead))?;
    }
    let mut document =
        orders::lock(txn, cx.principal, Kind::SalesOrder, id, expected_version).await?;
    if !matches!(
        SalesOrderStatus::parse(&document.status),
        SalesOrderStatus::Allocated
            | SalesOrderStatus::PartiallyAllocated
            | SalesOrderStatus::PartiallyShipped
    ) {
        return Err(orders::invalid_transition(&document, "ship"));
    }
    // What ships from each order line: (index, quantity, input path).
    let mut shipping: Vec<(usize, i64, Vec<String>)> = Vec::new();
    match lines {
        None => {
            for (n, line) in document.lines.iter().enumerate() {
                if line.committed > 0 {
                    shipping.push((n, line.committed, line.input_path()));
                }
            }
        }
        Some(lines) => {
            let mut errors = Vec::new();
            let mut left: Vec<i64> = document.lines.iter().map(|l| l.committed).collect();
            for (i, wanted) in lines.iter().enumerate() {
                let path = |leaf: &str| vec!["lines".to_owned(), i.to_string(), leaf.to_owned()];
                let (taken, rest) = orders::fill(
                    &document.lines,
                    &mut left,
                    |l| l.sku == wanted.sku && l.location_code == wanted.location_code,
                    wanted.quantity,
                );
                shipping.extend(
                    taken
                        .into_iter()
                        .map(|(n, take)| (n, take, vec!["lines".to_owned(), i.to_string()])),
                );
                if rest > 0 {
                    errors.push(UserError {
                        code: ErrorCode::InvalidInput,
                        field: Some(path("quantity")),
                        message: format!(
                            "{rest} more {} at {} than is allocated on {} - Hint: allocate first",
                            wanted.sku, wanted.location_code, document.number
                        ),
                    });
                }
            }
            if !errors.is_empty() {
                return Err(DomainError::User(errors));
            }
        }
    }
    if shipping.is_empty() {
        return Err(orders::invalid_transition(
            &document,
            "ship (nothing allocated to ship)",
        ));
    }
    let mut postings = Vec::new();
    for (n, quantity, path) in shipping {
        let line = &mut document.lines[n];
        line.committed -= quantity;
        line.done += quantity;
        postings.push((
            Line::External {
                sku: line.sku.clone(),
                location_code: line.location_code.clone(),
                state: QuantityState::Committed,
                delta: -quantity,
                counterparty: Counterparty::Customer,
                counterparty_location_code: None,
            },
            path,
        ));
    }
    let posted = orders::post_lines(txn, cx, &document, MovementReason::Shipment, postings).await?;
    let status = status_of(&document);
    let document = orders::save(txn, cx, document, status.as_str(), SHIPPED, posted).await?;
    Ok(document)
}
