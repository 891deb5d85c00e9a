//! Creating a transfer: a DRAFT between two different locations, no stock effect yet.

use async_graphql::InputObject;
use sea_orm::DatabaseTransaction;
use serde::Serialize;

use super::{CREATED, TransferStatus};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::write::Context;
use crate::orders::{self, Document, Kind, NewDocument, NewLine};

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct CreateTransferInput {
    pub from_location_code: String,
    pub to_location_code: String,
    pub external_reference: Option<String>,
    pub notes: Option<String>,
    pub lines: Vec<TransferLineInput>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct TransferLineInput {
    pub sku: String,
    pub quantity: i64,
}

pub async fn create(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: CreateTransferInput,
) -> Result<Document, DomainError> {
    if input.from_location_code == input.to_location_code {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidInput,
            &["input", "toLocationCode"],
            "a transfer goes between two different locations",
        )));
    }
    let mut header = NewDocument {
        external_reference: input.external_reference,
        notes: input.notes,
        ..Default::default()
    };
    orders::check_header(&header, "notes")?;
    let lines: Vec<NewLine> = input
        .lines
        .into_iter()
        .map(|l| NewLine {
            sku: l.sku,
            location_code: input.from_location_code.clone(),
            quantity: l.quantity,
            unit_cost: None,
            disposition: None,
        })
        .collect();
    let resolved = orders::resolve_lines(txn, &cx.principal.tenant_id, &lines, "lines")
        .await
        .map_err(|err| rename_location_errors(err, "fromLocationCode"))?;
    // The destination is resolved the same way, as a one-line check.
    let destination = [NewLine {
        sku: lines.first().map(|l| l.sku.clone()).unwrap_or_default(),
        location_code: input.to_location_code.clone(),
        quantity: 1,
        unit_cost: None,
        disposition: None,
    }];
    let to = orders::resolve_lines(txn, &cx.principal.tenant_id, &destination, "lines")
        .await
        .map_err(|err| rename_location_errors(err, "toLocationCode"))?;
    header.from_location_id = resolved.first().map(|(_, location)| location.clone());
    header.to_location_id = to.first().map(|(_, location)| location.clone());
    let document = orders::insert(
        txn,
        cx.principal,
        Kind::Transfer,
        TransferStatus::Draft.as_str(),
        header,
        &lines,
        resolved,
    )
    .await?;
    orders::record(txn, cx, CREATED, &document).await?;
    Ok(document)
}

/// Lines carry the origin; its errors are the input's `fromLocationCode` (or `toLocationCode`).
fn rename_location_errors(err: DomainError, field: &str) -> DomainError {
    match err {
        DomainError::User(errors) => {
            let mut renamed = Vec::new();
            for mut e in errors {
                if e.code == ErrorCode::UnknownLocation {
                    e.field = Some(vec!["input".into(), field.into()]);
                    if renamed.iter().any(|r: &UserError| r.field == e.field) {
                        continue;
                    }
                }
                renamed.push(e);
            }
            DomainError::User(renamed)
        }
        other => other,
    }
}
