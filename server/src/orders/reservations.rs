//! Reservations (cart and checkout holds): available → reserved until released, converted
//! into a sales-order allocation (reserved → committed, never available in between), or
//! expired by the sweeper. A reservation's row lock decides between those, so a reservation
//! is converted or released, never both.

use async_graphql::{Enum, InputObject};
use chrono::{Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{Principal, Role};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{MovementReason, QuantityState};
use crate::orders::{self, Document, Kind, NewDocument, NewLine, Posted};

/// Longest hold: 30 days.
pub const MAX_EXPIRES_IN_SECONDS: i64 = 30 * 24 * 3600;

pub const CREATED: &str = "reservation.created";
pub const RELEASED: &str = "reservation.released";
pub const EXPIRED: &str = "reservation.expired";
pub const CONVERTED: &str = "reservation.converted";

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationStatus {
    Active,
    Released,
    Expired,
    /// Turned into a sales order's allocation.
    Converted,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Converted => "converted",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "released" => Self::Released,
            "expired" => Self::Expired,
            "converted" => Self::Converted,
            _ => Self::Active,
        }
    }
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct CreateReservationInput {
    pub sku: String,
    pub location_code: String,
    pub quantity: i64,
    /// How long the hold lasts: 1 second to 30 days.
    pub expires_in_seconds: i64,
    /// The cart or checkout this hold is for.
    pub external_reference: Option<String>,
}

fn line_path() -> Vec<String> {
    vec!["input".to_owned()]
}

pub async fn create(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: CreateReservationInput,
) -> Result<Document, DomainError> {
    if !(1..=MAX_EXPIRES_IN_SECONDS).contains(&input.expires_in_seconds) {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidInput,
            &["input", "expiresInSeconds"],
            format!("must be within 1 and {MAX_EXPIRES_IN_SECONDS}"),
        )));
    }
    let header = NewDocument {
        external_reference: input.external_reference,
        expires_at: Some(Utc::now() + Duration::seconds(input.expires_in_seconds)),
        ..Default::default()
    };
    orders::check_header(&header, "customer")?;
    let lines = [NewLine {
        sku: input.sku,
        location_code: input.location_code,
        quantity: input.quantity,
        unit_cost: None,
        disposition: None,
    }];
    // A single hold's fields sit at `input.*`, not `input.lines.0.*`.
    let paths = orders::LinePaths {
        list: &["input"],
        field: &|_, leaf| vec!["input".to_owned(), leaf.to_owned()],
    };
    let new_lines = orders::resolve_new_lines(
        txn,
        &cx.principal.tenant_id,
        Kind::Reservation,
        &lines,
        &paths,
    )
    .await?;
    let document = orders::insert(
        txn,
        cx,
        ReservationStatus::Active.as_str(),
        header,
        &lines,
        new_lines,
        None,
    )
    .await?;
    let line = &document.lines[0];
    let posted = orders::post_lines(
        txn,
        cx,
        &document,
        MovementReason::Reservation,
        vec![(
            Line::Move {
                sku: line.sku.clone(),
                quantity: line.quantity,
                from: (line.location_code.clone(), QuantityState::Available),
                to: (line.location_code.clone(), QuantityState::Reserved),
            },
            line_path(),
        )],
    )
    .await?;
    orders::record(txn, cx, CREATED, &document, posted).await?;
    Ok(document)
}

/// Gives an active hold back to available, as `released` (on demand) or `expired` (sweeper).
async fn end(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    mut document: Document,
    status: ReservationStatus,
) -> Result<Document, DomainError> {
    let line = &mut document.lines[0];
    let held = line.quantity - line.done - line.closed;
    line.closed += held;
    let posting = (
        Line::Move {
            sku: line.sku.clone(),
            quantity: held,
            from: (line.location_code.clone(), QuantityState::Reserved),
            to: (line.location_code.clone(), QuantityState::Available),
        },
        line_path(),
    );
    let posted = if held > 0 {
        orders::post_lines(
            txn,
            cx,
            &document,
            MovementReason::Reservation,
            vec![posting],
        )
        .await?
    } else {
        Posted::default()
    };
    let event = if status == ReservationStatus::Expired {
        EXPIRED
    } else {
        RELEASED
    };
    orders::save(txn, cx, document, status.as_str(), event, posted).await
}

pub async fn release(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Document, DomainError> {
    let document = orders::lock(txn, cx.principal, Kind::Reservation, id, expected_version).await?;
    if ReservationStatus::parse(&document.status) != ReservationStatus::Active {
        return Err(orders::invalid_transition(&document, "release"));
    }
    end(txn, cx, document, ReservationStatus::Released).await
}

/// Converts an active, unexpired reservation into the sales order's allocation: up to what
/// the order still needs of that SKU at that location moves reserved → committed; the rest of
/// the hold goes back to available. Returns how much was allocated.
pub async fn convert(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    reservation_id: &str,
    order: &mut Document,
    field: Vec<String>,
) -> Result<i64, DomainError> {
    let refuse = |message: String| {
        DomainError::user(UserError {
            code: ErrorCode::InvalidTransition,
            field: Some(field.clone()),
            message,
        })
    };
    let mut reservation =
        match orders::lock(txn, cx.principal, Kind::Reservation, reservation_id, None).await {
            Ok(found) => found,
            Err(DomainError::User(_)) => {
                return Err(DomainError::user(UserError {
                    code: ErrorCode::NotFound,
                    field: Some(field.clone()),
                    message: format!("no reservation has id {reservation_id:?}"),
                }));
            }
            Err(other) => return Err(other),
        };
    if ReservationStatus::parse(&reservation.status) != ReservationStatus::Active {
        return Err(refuse(format!(
            "reservation {} cannot be converted: its status is {}",
            reservation.number,
            reservation.status.to_uppercase()
        )));
    }
    if reservation.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(refuse(format!(
            "reservation {} has expired",
            reservation.number
        )));
    }
    let held_line = reservation.lines[0].clone();
    let held = held_line.quantity - held_line.done - held_line.closed;
    let mut used = 0;
    let mut postings = Vec::new();
    for line in &mut order.lines {
        if line.item_id != held_line.item_id || line.location_id != held_line.location_id {
            continue;
        }
        let need = line.quantity - line.committed - line.done - line.closed;
        let take = std::cmp::min(need, held - used);
        if take > 0 {
            line.committed += take;
            used += take;
            postings.push((
                Line::Move {
                    sku: line.sku.clone(),
                    quantity: take,
                    from: (line.location_code.clone(), QuantityState::Reserved),
                    to: (line.location_code.clone(), QuantityState::Committed),
                },
                field.clone(),
            ));
        }
    }
    if used == 0 {
        return Err(refuse(format!(
            "reservation {} holds {} at {}, which sales order {} does not need",
            reservation.number, held_line.sku, held_line.location_code, order.number
        )));
    }
    // The order's allocation is written now: the order's own save comes later, in its caller.
    orders::post_lines(txn, cx, order, MovementReason::Allocation, postings)
        .await?
        .write(txn)
        .await?;
    let leftover = held - used;
    let line = &mut reservation.lines[0];
    line.done += used;
    line.closed += leftover;
    let mut posted = Posted::default();
    if leftover > 0 {
        posted = orders::post_lines(
            txn,
            cx,
            &reservation,
            MovementReason::Reservation,
            vec![(
                Line::Move {
                    sku: held_line.sku.clone(),
                    quantity: leftover,
                    from: (held_line.location_code.clone(), QuantityState::Reserved),
                    to: (held_line.location_code.clone(), QuantityState::Available),
                },
                field.clone(),
            )],
        )
        .await?;
    }
    set_sales_order(txn, &cx.principal.tenant_id, reservation_id, &order.id).await?;
    reservation.sales_order_id = Some(order.id.0.clone());
    orders::save(
        txn,
        cx,
        reservation,
        ReservationStatus::Converted.as_str(),
        CONVERTED,
        posted,
    )
    .await?;
    Ok(used)
}

async fn set_sales_order(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    reservation_id: &str,
    order_id: &str,
) -> Result<(), DomainError> {
    let update = Query::update()
        .table("order_documents")
        .value("sales_order_id", order_id)
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("id").eq(reservation_id))
        .to_owned();
    txn.execute(&update).await?;
    Ok(())
}

/// Expires reservations whose time has passed, each in its own transaction, at most `batch`
/// per call. Several processes may sweep one Postgres: `SKIP LOCKED` hands each reservation
/// to one of them, and the status check under the row lock makes a second pass a no-op.
pub async fn expire_due(app: &App, batch: u64) -> Result<usize, DomainError> {
    let mut expired = 0;
    // A reservation that cannot be released now (its stock was moved out of `reserved` by
    // hand) is logged and passed over, so it never holds up the others.
    let mut stuck: Vec<String> = Vec::new();
    for _ in 0..batch {
        let write = app.begin_write().await?;
        let txn = write.txn;
        let mut select = Query::select();
        select
            .columns(["tenant_id", "id"])
            .from("order_documents")
            .and_where(Expr::col("kind").eq(Kind::Reservation.as_str()))
            .and_where(Expr::col("status").eq(ReservationStatus::Active.as_str()))
            .and_where(Expr::col("expires_at").lte(Utc::now()))
            .and_where(Expr::col("id").is_not_in(stuck.iter().cloned()))
            .order_by("expires_at", sea_orm::sea_query::Order::Asc)
            .limit(1);
        if txn.get_database_backend() == DbBackend::Postgres {
            select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let Some(row) = txn.query_one(&select).await? else {
            txn.rollback().await?;
            break;
        };
        let tenant_id: String = row.try_get("", "tenant_id")?;
        let id: String = row.try_get("", "id")?;
        let principal = Principal {
            tenant_id,
            key_id: "reservation-sweeper".into(),
            role: Role::Operator,
            session: None,
        };
        let cx = Context {
            principal: &principal,
            request_id: "reservation-sweeper",
            idempotency_key: None,
            operation: "reservation.expire",
            audited_by_document: true,
            answers_with_change: false,
            deferred: None,
        };
        let document = orders::lock(&txn, &principal, Kind::Reservation, &id, None).await?;
        if ReservationStatus::parse(&document.status) != ReservationStatus::Active {
            txn.rollback().await?;
            continue;
        }
        match end(&txn, &cx, document, ReservationStatus::Expired).await {
            Ok(_) => {
                txn.commit().await?;
                expired += 1;
            }
            Err(DomainError::User(errors)) => {
                txn.rollback().await?;
                tracing::warn!(
                    reservation.id = %id,
                    tenant.id = %principal.tenant_id,
                    reason = ?errors.first().map(|e| &e.message),
                    "an expired reservation could not be released"
                );
                metrics::counter!("twh_reservations_expiry_failed_total").increment(1);
                stuck.push(id);
            }
            Err(err) => {
                txn.rollback().await?;
                return Err(err);
            }
        }
    }
    if expired > 0 {
        metrics::counter!("twh_reservations_expired_total").increment(expired as u64);
    }
    Ok(expired)
}
