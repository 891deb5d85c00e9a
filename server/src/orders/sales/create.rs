//! Creating a sales order: a DRAFT, nothing allocated yet.

use async_graphql::InputObject;
use sea_orm::DatabaseTransaction;
use serde::Serialize;

use super::{CREATED, SalesOrderStatus};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::write::Context;
use crate::orders::{self, Document, Kind, NewDocument, NewLine};

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct CreateSalesOrderInput {
    pub customer: String,
    pub external_reference: Option<String>,
    pub notes: Option<String>,
    pub lines: Vec<SalesOrderLineInput>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct SalesOrderLineInput {
    pub sku: String,
    /// Where the goods ship from.
    pub location_code: String,
    pub quantity: i64,
    /// Decimal amount per unit, e.g. "19.90".
    pub unit_price: Option<String>,
}

pub async fn create(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: CreateSalesOrderInput,
) -> Result<Document, DomainError> {
    if input.customer.trim().is_empty() {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidInput,
            &["input", "customer"],
            "name the customer",
        )));
    }
    let header = NewDocument {
        party: Some(input.customer),
        external_reference: input.external_reference,
        notes: input.notes,
        ..Default::default()
    };
    orders::check_header(&header, "customer")?;
    let lines: Vec<NewLine> = input
        .lines
        .into_iter()
        .map(|l| NewLine {
            sku: l.sku,
            location_code: l.location_code,
            quantity: l.quantity,
            unit_cost: l.unit_price,
            disposition: None,
        })
        .collect();
    let new_lines = orders::resolve_new_lines(
        txn,
        &cx.principal.tenant_id,
        Kind::SalesOrder,
        &lines,
        &orders::INPUT_LINES,
    )
    .await?;
    let document = orders::insert(
        txn,
        cx,
        SalesOrderStatus::Draft.as_str(),
        header,
        &lines,
        new_lines,
        Some(CREATED),
    )
    .await?;
    Ok(document)
}
