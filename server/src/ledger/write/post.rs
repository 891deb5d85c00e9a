//! Posting a document's stock changes (orders, transfers, returns) through the one write path:
//! the same resolution, lock order, rules and recording as `adjustStock` and `moveStock`.

use sea_orm::DatabaseTransaction;

use super::{Context, Entry, Group, Resolver, StockChange, apply, fail_if_any, path};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::{Counterparty, MAX_DELTA, MovementReason, QuantityState};

/// One change a document makes.
#[derive(Clone, Debug)]
pub enum Line {
    /// Between two buckets (states and/or locations) of this tenant.
    Move {
        sku: String,
        quantity: i64,
        from: (String, QuantityState),
        to: (String, QuantityState),
    },
    /// Between a bucket and an outside party (supplier, customer, transit, adjustment).
    External {
        sku: String,
        location_code: String,
        state: QuantityState,
        delta: i64,
        counterparty: Counterparty,
        /// For transit: the location at the other end.
        counterparty_location_code: Option<String>,
    },
}

/// A document's changes, recorded as one movement group that refers to the document.
pub struct Posting<'a> {
    pub reason: MovementReason,
    pub reference_document_uri: &'a str,
    /// Each line with the input path its errors name (e.g. `["lines", "2"]`).
    pub lines: Vec<(Line, Vec<String>)>,
    /// What the caller has already resolved in this transaction (a document's lines).
    pub known: Known,
}

/// SKUs and location codes with their ids, as `(key, id)`: a posting looks up only the others.
#[derive(Default)]
pub struct Known {
    pub items: Vec<(String, String)>,
    pub locations: Vec<(String, String)>,
}

/// Applies a posting in the caller's transaction; refusals (insufficient stock, unknown SKU)
/// come back as user errors naming the line.
pub async fn post(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    posting: Posting<'_>,
) -> Result<StockChange, DomainError> {
    let mut skus = Vec::new();
    let mut codes = Vec::new();
    for (line, base) in &posting.lines {
        let quantity = match line {
            Line::Move {
                sku,
                quantity,
                from,
                to,
                ..
            } => {
                skus.push(sku.clone());
                codes.extend([from.0.clone(), to.0.clone()]);
                *quantity
            }
            Line::External {
                sku,
                location_code,
                delta,
                counterparty_location_code,
                ..
            } => {
                skus.push(sku.clone());
                codes.push(location_code.clone());
                codes.extend(counterparty_location_code.clone());
                delta.abs()
            }
        };
        if !(1..=MAX_DELTA).contains(&quantity) {
            return Err(DomainError::user(UserError {
                code: ErrorCode::InvalidInput,
                field: path(base, "quantity"),
                message: format!("must be within 1 and {MAX_DELTA}"),
            }));
        }
    }
    let Known { items, locations } = posting.known;
    skus.retain(|sku| !items.iter().any(|(known, _)| known == sku));
    codes.retain(|code| !locations.iter().any(|(known, _)| known == code));
    let mut resolver = if skus.is_empty() && codes.is_empty() {
        Resolver::default()
    } else {
        Resolver::load(txn, &cx.principal.tenant_id, skus, codes).await?
    };
    resolver.know(items, locations);
    // A document never takes stock it does not have, even where a location lets manual
    // adjustments go negative: no allocation, reservation or shipment oversells.
    for location in resolver.locations.values_mut() {
        location.allow_negative = false;
    }
    let mut errors = Vec::new();
    let mut entries = Vec::with_capacity(posting.lines.len() * 2);
    for (line, base) in posting.lines {
        match line {
            Line::Move {
                sku,
                quantity,
                from,
                to,
            } => {
                let item = resolver.item(&sku, &base, &mut errors);
                let source = resolver.location(&from.0, &base, &mut errors);
                let destination = resolver.location(&to.0, &base, &mut errors);
                let (Some(item), Some(source), Some(destination)) = (item, source, destination)
                else {
                    continue;
                };
                entries.push(Entry {
                    item: item.clone(),
                    location: source.clone(),
                    state: from.1,
                    delta: -quantity,
                    target: None,
                    change_from: None,
                    counterparty: Counterparty::Bucket,
                    counterparty_location: Some(destination.clone()),
                    counterparty_state: Some(to.1),
                    path: base.clone(),
                });
                entries.push(Entry {
                    item,
                    location: destination,
                    state: to.1,
                    delta: quantity,
                    target: None,
                    change_from: None,
                    counterparty: Counterparty::Bucket,
                    counterparty_location: Some(source),
                    counterparty_state: Some(from.1),
                    path: base,
                });
            }
            Line::External {
                sku,
                location_code,
                state,
                delta,
                counterparty,
                counterparty_location_code,
            } => {
                let item = resolver.item(&sku, &base, &mut errors);
                let location = resolver.location(&location_code, &base, &mut errors);
                let other = match &counterparty_location_code {
                    Some(code) => match resolver.location(code, &base, &mut errors) {
                        Some(found) => Some(found),
                        None => continue,
                    },
                    None => None,
                };
                let (Some(item), Some(location)) = (item, location) else {
                    continue;
                };
                entries.push(Entry {
                    item,
                    location,
                    state,
                    delta,
                    target: None,
                    change_from: None,
                    counterparty,
                    counterparty_location: other,
                    counterparty_state: None,
                    path: base,
                });
            }
        }
    }
    fail_if_any(errors)?;
    apply(
        txn,
        cx,
        Group {
            reason: posting.reason,
            reference_document_uri: Some(posting.reference_document_uri),
            effective_at: None,
        },
        entries,
    )
    .await
}
