//! Returns: goods a customer sends back, optionally against a sales order (never more back
//! than was shipped, across every return of that order), each line with a disposition:
//! RESTOCK → available, QUALITY_CONTROL, DAMAGED. DRAFT → RECEIVED moves them in.

use std::collections::HashMap;

use async_graphql::{Enum, ID, InputObject};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::write::Context;
use crate::ledger::write::post::Line;
use crate::ledger::{Counterparty, MovementReason, QuantityState};
use crate::orders::{self, Document, Kind, NewDocument, NewLine};

pub const CREATED: &str = "return.created";
pub const RECEIVED: &str = "return.received";

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReturnOrderStatus {
    Draft,
    Received,
}

impl ReturnOrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Received => "received",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "received" => Self::Received,
            _ => Self::Draft,
        }
    }
}

/// Where a returned unit goes.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disposition {
    /// Back on the shelf: `available`.
    Restock,
    /// To be inspected: `quality_control`.
    QualityControl,
    Damaged,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restock => "restock",
            Self::QualityControl => "quality_control",
            Self::Damaged => "damaged",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "quality_control" => Self::QualityControl,
            "damaged" => Self::Damaged,
            _ => Self::Restock,
        }
    }

    fn state(self) -> QuantityState {
        match self {
            Self::Restock => QuantityState::Available,
            Self::QualityControl => QuantityState::QualityControl,
            Self::Damaged => QuantityState::Damaged,
        }
    }
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct CreateReturnOrderInput {
    /// The sales order the goods were shipped on; at most what it shipped can come back.
    pub sales_order_id: Option<ID>,
    pub customer: Option<String>,
    pub external_reference: Option<String>,
    pub notes: Option<String>,
    pub lines: Vec<ReturnLineInput>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct ReturnLineInput {
    pub sku: String,
    /// Where the goods come back to.
    pub location_code: String,
    pub quantity: i64,
    pub disposition: Disposition,
}

pub async fn create(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: CreateReturnOrderInput,
) -> Result<Document, DomainError> {
    let mut header = NewDocument {
        party: input.customer,
        external_reference: input.external_reference,
        notes: input.notes,
        ..Default::default()
    };
    orders::check_header(&header, "customer")?;
    let lines: Vec<NewLine> = input
        .lines
        .iter()
        .map(|l| NewLine {
            sku: l.sku.clone(),
            location_code: l.location_code.clone(),
            quantity: l.quantity,
            unit_cost: None,
            disposition: Some(l.disposition.as_str().to_owned()),
        })
        .collect();
    let new_lines = orders::resolve_new_lines(
        txn,
        &cx.principal.tenant_id,
        Kind::Return,
        &lines,
        &orders::INPUT_LINES,
    )
    .await?;
    if let Some(order_id) = &input.sales_order_id {
        // The order is locked so two returns against it are checked one after the other.
        let order = orders::lock(txn, cx.principal, Kind::SalesOrder, order_id, None)
            .await
            .map_err(|err| match err {
                DomainError::User(_) => DomainError::user(UserError::new(
                    ErrorCode::NotFound,
                    &["input", "salesOrderId"],
                    "no sales order has this id",
                )),
                other => other,
            })?;
        check_against_shipped(txn, cx, &order, &lines, &new_lines.resolved).await?;
        header.sales_order_id = Some(order.id.0.clone());
        if header.party.is_none() {
            header.party = order.party.clone();
        }
    }
    let document = orders::insert(
        txn,
        cx,
        ReturnOrderStatus::Draft.as_str(),
        header,
        &lines,
        new_lines,
        Some(CREATED),
    )
    .await?;
    Ok(document)
}

/// Every SKU's returns against the order (this one and all earlier ones) stay within what
/// the order shipped of it.
async fn check_against_shipped(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    order: &Document,
    lines: &[NewLine],
    resolved: &[(String, String)],
) -> Result<(), DomainError> {
    let mut shipped: HashMap<&str, i64> = HashMap::new();
    for line in &order.lines {
        *shipped.entry(line.item_id.as_str()).or_default() += line.done;
    }
    let earlier = returned_before(txn, &cx.principal.tenant_id, &order.id).await?;
    let mut asked: HashMap<&str, i64> = HashMap::new();
    let mut errors = Vec::new();
    for (i, (line, (item_id, _))) in lines.iter().zip(resolved).enumerate() {
        let total = asked.entry(item_id.as_str()).or_default();
        *total += line.quantity;
        let already = earlier.get(item_id).copied().unwrap_or(0);
        let limit = shipped.get(item_id.as_str()).copied().unwrap_or(0);
        if already + *total > limit {
            errors.push(UserError {
                code: ErrorCode::InvalidInput,
                field: Some(vec![
                    "input".into(),
                    "lines".into(),
                    i.to_string(),
                    "quantity".into(),
                ]),
                message: format!(
                    "sales order {} shipped {limit} of {}, and {already} already came back",
                    order.number, line.sku
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DomainError::User(errors))
    }
}

/// What every return of the order asks back, by item.
async fn returned_before(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    order_id: &str,
) -> Result<HashMap<String, i64>, DomainError> {
    let select = Query::select()
        .column(("l", "item_id"))
        .expr_as(Expr::col(("l", "quantity")).sum(), "quantity")
        .from_as("order_lines", "l")
        .inner_join(
            "order_documents",
            Expr::col(("order_documents", "tenant_id"))
                .equals(("l", "tenant_id"))
                .and(Expr::col(("order_documents", "id")).equals(("l", "document_id"))),
        )
        .and_where(Expr::col(("l", "tenant_id")).eq(tenant_id))
        .and_where(Expr::col(("order_documents", "kind")).eq(Kind::Return.as_str()))
        .and_where(Expr::col(("order_documents", "sales_order_id")).eq(order_id))
        .group_by_col(("l", "item_id"))
        .to_owned();
    let mut returned = HashMap::new();
    for row in txn.query_all(&select).await? {
        let item: String = row.try_get("", "item_id")?;
        // SUM is NUMERIC on Postgres and INTEGER on SQLite.
        let quantity: i64 = match row.try_get::<i64>("", "quantity") {
            Ok(q) => q,
            Err(_) => row
                .try_get::<sea_orm::prelude::Decimal>("", "quantity")?
                .try_into()
                .map_err(|e| anyhow::anyhow!("returned quantity: {e}"))?,
        };
        returned.insert(item, quantity);
    }
    Ok(returned)
}

/// DRAFT → RECEIVED: each line comes back from the customer into its disposition's state.
pub async fn receive(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Document, DomainError> {
    let mut document = orders::lock(txn, cx.principal, Kind::Return, id, expected_version).await?;
    if ReturnOrderStatus::parse(&document.status) != ReturnOrderStatus::Draft {
        return Err(orders::invalid_transition(&document, "receive"));
    }
    let mut postings = Vec::new();
    for line in &mut document.lines {
        let disposition = Disposition::parse(line.disposition.as_deref().unwrap_or_default());
        line.done = line.quantity;
        postings.push((
            Line::External {
                sku: line.sku.clone(),
                location_code: line.location_code.clone(),
                state: disposition.state(),
                delta: line.quantity,
                counterparty: Counterparty::Customer,
                counterparty_location_code: None,
            },
            line.input_path(),
        ));
    }
    let posted = orders::post_lines(txn, cx, &document, MovementReason::Return, postings).await?;
    let document = orders::save(
        txn,
        cx,
        document,
        ReturnOrderStatus::Received.as_str(),
        RECEIVED,
        posted,
    )
    .await?;
    Ok(document)
}
