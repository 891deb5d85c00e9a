//! Editing a purchase order while it is a DRAFT: its header and, when given, all its lines.
//! Once ORDERED it changes only through its own transitions.

use async_graphql::{InputObject, MaybeUndefined};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::Serialize;

use super::{PurchaseOrderLineInput, PurchaseOrderStatus, UPDATED};
use crate::error::DomainError;
use crate::ledger::write::Context;
use crate::orders::{self, Document, Kind, NewDocument, NewLine};

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct UpdatePurchaseOrderInput {
    pub supplier: Option<String>,
    /// `null` clears it.
    pub expected_at: MaybeUndefined<DateTime<Utc>>,
    /// `null` clears it.
    pub external_reference: MaybeUndefined<String>,
    /// `null` clears it.
    pub notes: MaybeUndefined<String>,
    /// Replaces every line.
    pub lines: Option<Vec<PurchaseOrderLineInput>>,
}

pub async fn update(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    id: &str,
    expected_version: i64,
    input: UpdatePurchaseOrderInput,
) -> Result<Document, DomainError> {
    // The request's own checks come first, the precondition (the version) after them (RFC 9110
    // 13.2.1): a malformed edit is refused as such whatever version it names.
    let value = |field: &MaybeUndefined<String>| field.value().cloned();
    let header = NewDocument {
        party: input.supplier.clone(),
        external_reference: value(&input.external_reference),
        notes: value(&input.notes),
        ..Default::default()
    };
    orders::check_header(&header, "supplier")?;
    super::create::check_supplier(input.supplier.as_deref())?;
    let lines = match input.lines {
        Some(lines) => {
            let lines: Vec<NewLine> = lines.into_iter().map(NewLine::from).collect();
            let resolved =
                orders::resolve_lines(txn, &cx.principal.tenant_id, &lines, &orders::INPUT_LINES)
                    .await?;
            Some((lines, resolved))
        }
        None => None,
    };
    let document = orders::lock(
        txn,
        cx.principal,
        Kind::PurchaseOrder,
        id,
        Some(expected_version),
    )
    .await?;
    if PurchaseOrderStatus::parse(&document.status) != PurchaseOrderStatus::Draft {
        return Err(orders::invalid_transition(&document, "edit"));
    }
    let mut update = Query::update();
    update
        .table("order_documents")
        .value("updated_at", Utc::now())
        .and_where(Expr::col("tenant_id").eq(cx.principal.tenant_id.as_str()))
        .and_where(Expr::col("id").eq(id));
    if let Some(supplier) = &input.supplier {
        update.value("party", supplier.trim());
    }
    match &input.expected_at {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => {
            update.value("expected_at", Option::<DateTime<Utc>>::None);
        }
        MaybeUndefined::Value(at) => {
            update.value("expected_at", *at);
        }
    }
    for (column, field) in [
        ("external_reference", &input.external_reference),
        ("notes", &input.notes),
    ] {
        match field {
            MaybeUndefined::Undefined => {}
            MaybeUndefined::Null => {
                update.value(column, Option::<String>::None);
            }
            MaybeUndefined::Value(text) => {
                update.value(column, text.trim());
            }
        }
    }
    txn.execute(&update).await?;
    if let Some((lines, resolved)) = lines {
        orders::replace_lines(txn, &cx.principal.tenant_id, id, &lines, resolved).await?;
    }
    let current = orders::get(txn, &cx.principal.tenant_id, Kind::PurchaseOrder, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("purchase order {id} vanished under its lock"))?;
    let document = orders::save(
        txn,
        cx,
        Document {
            version: document.version,
            ..current
        },
        PurchaseOrderStatus::Draft.as_str(),
        UPDATED,
        orders::Posted::default(),
    )
    .await?;
    Ok(document)
}
