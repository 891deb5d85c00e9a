//! Creating a purchase order: a DRAFT, no stock effect yet.

use async_graphql::InputObject;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde::Serialize;

use super::{CREATED, PurchaseOrderStatus};
use crate::error::DomainError;
use crate::ledger::write::Context;
use crate::orders::{self, Document, Kind, NewDocument, NewLine};

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct CreatePurchaseOrderInput {
    pub supplier: String,
    /// When the goods are expected.
    pub expected_at: Option<DateTime<Utc>>,
    pub external_reference: Option<String>,
    pub notes: Option<String>,
    pub lines: Vec<PurchaseOrderLineInput>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct PurchaseOrderLineInput {
    pub sku: String,
    /// Where the goods will be received.
    pub location_code: String,
    pub quantity: i64,
    /// Decimal amount per unit, e.g. "4.25".
    pub unit_cost: Option<String>,
}

impl From<PurchaseOrderLineInput> for NewLine {
    fn from(l: PurchaseOrderLineInput) -> Self {
        NewLine {
            sku: l.sku,
            location_code: l.location_code,
            quantity: l.quantity,
            unit_cost: l.unit_cost,
            disposition: None,
        }
    }
}

/// A supplier, when given, is a name, not blank.
pub(super) fn check_supplier(supplier: Option<&str>) -> Result<(), DomainError> {
    if supplier.is_some_and(|s| s.trim().is_empty()) {
        return Err(DomainError::user(crate::error::UserError::new(
            crate::error::ErrorCode::InvalidInput,
            &["input", "supplier"],
            "name the supplier",
        )));
    }
    Ok(())
}

pub async fn create(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: CreatePurchaseOrderInput,
) -> Result<Document, DomainError> {
    let header = NewDocument {
        party: Some(input.supplier),
        external_reference: input.external_reference,
        notes: input.notes,
        expected_at: input.expected_at,
        ..Default::default()
    };
    orders::check_header(&header, "supplier")?;
    check_supplier(header.party.as_deref())?;
    let lines: Vec<NewLine> = input.lines.into_iter().map(NewLine::from).collect();
    let new_lines = orders::resolve_new_lines(
        txn,
        &cx.principal.tenant_id,
        Kind::PurchaseOrder,
        &lines,
        &orders::INPUT_LINES,
    )
    .await?;
    let document = orders::insert(
        txn,
        cx,
        PurchaseOrderStatus::Draft.as_str(),
        header,
        &lines,
        new_lines,
        Some(CREATED),
    )
    .await?;
    Ok(document)
}
