//! Allocating a sales order: available → committed. By default all-or-nothing (the ledger
//! refuses the whole group if any line lacks stock, so nothing is ever oversold); with
//! `partial`, each line takes what is available now and the rest stays backordered.
//! Reservations named in the call are converted first: reserved → committed, so those units
//! are never available to anyone else in between.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, LockType, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend};

use super::{ALLOCATED, SalesOrderStatus, status_of};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{MovementReason, QuantityState};
use crate::orders::{self, Document, Kind, reservations};

pub async fn allocate(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
    partial: bool,
    reservation_ids: Vec<String>,
) -> Result<Document, DomainError> {
    let mut document =
        orders::lock(txn, cx.principal, Kind::SalesOrder, id, expected_version).await?;
    // A backorder stays open for allocation after part of the order has shipped.
    let backordered = document
        .lines
        .iter()
        .any(|l| l.quantity - l.committed - l.done - l.closed > 0);
    if !matches!(
        SalesOrderStatus::parse(&document.status),
        SalesOrderStatus::Draft
            | SalesOrderStatus::PartiallyAllocated
            | SalesOrderStatus::PartiallyShipped
    ) || !backordered
    {
        return Err(orders::invalid_transition(&document, "allocate"));
    }
    let mut postings = Vec::new();
    let mut allocated_any = false;

    // Every reservation named is locked first, in one order, before any stock level: an
    // allocation never waits for a reservation while holding a level a release needs.
    if reservation_ids.len() > orders::MAX_LINES {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidInput,
            &["reservationIds"],
            format!("name at most {} reservations", orders::MAX_LINES),
        )));
    }
    let mut reservation_ids = reservation_ids;
    reservation_ids.sort();
    reservation_ids.dedup();
    for reservation_id in &reservation_ids {
        if let Err(err) =
            orders::lock(txn, cx.principal, Kind::Reservation, reservation_id, None).await
            && !matches!(err, DomainError::User(_))
        {
            return Err(err);
        }
    }
    for (i, reservation_id) in reservation_ids.iter().enumerate() {
        let field = vec!["reservationIds".to_owned(), i.to_string()];
        let used =
            reservations::convert(txn, cx, reservation_id, &mut document, field.clone()).await?;
        allocated_any |= used > 0;
    }

    let available = if partial {
        available_now(txn, &cx.principal.tenant_id, &document).await?
    } else {
        HashMap::new()
    };
    let mut available = available;
    for line in &mut document.lines {
        let need = line.quantity - line.committed - line.done - line.closed;
        if need <= 0 {
            continue;
        }
        let take = if partial {
            let left = available
                .entry((line.item_id.clone(), line.location_id.clone()))
                .or_default();
            let take = std::cmp::min(need, std::cmp::max(*left, 0));
            *left -= take;
            take
        } else {
            need
        };
        if take == 0 {
            continue;
        }
        line.committed += take;
        allocated_any = true;
        postings.push((
            Line::Move {
                sku: line.sku.clone(),
                quantity: take,
                from: (line.location_code.clone(), QuantityState::Available),
                to: (line.location_code.clone(), QuantityState::Committed),
            },
            line.input_path(),
        ));
    }
    if !allocated_any {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InsufficientStock,
            &["id"],
            format!(
                "nothing of sales order {} can be allocated now: no stock is available",
                document.number
            ),
        )));
    }
    let posted =
        orders::post_lines(txn, cx, &document, MovementReason::Allocation, postings).await?;
    let status = status_of(&document);
    let document = orders::save(txn, cx, document, status.as_str(), ALLOCATED, posted).await?;
    Ok(document)
}

/// What is available now at each (item, location) of the order, the rows locked in the
/// ledger's own lock order so this never deadlocks with a concurrent write.
async fn available_now(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    document: &Document,
) -> Result<HashMap<(String, String), i64>, DomainError> {
    let mut keys: Vec<(String, String)> = document
        .lines
        .iter()
        .map(|l| (l.item_id.clone(), l.location_id.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    let mut available = HashMap::new();
    for (item_id, location_id) in keys {
        let mut select = Query::select();
        select
            .column("available")
            .from("stock_levels")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("item_id").eq(item_id.as_str()))
            .and_where(Expr::col("location_id").eq(location_id.as_str()));
        if txn.get_database_backend() == DbBackend::Postgres {
            select.lock(LockType::Update);
        }
        let quantity: i64 = match txn.query_one(&select).await? {
            Some(row) => row.try_get("", "available")?,
            None => 0,
        };
        available.insert((item_id, location_id), quantity);
    }
    Ok(available)
}
