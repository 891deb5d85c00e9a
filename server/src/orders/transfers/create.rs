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
    // Every line leaves from the origin: an unknown one is the input's `fromLocationCode`.
    let paths = orders::LinePaths {
        list: &["input", "lines"],
        field: &|i, leaf| match leaf {
            "locationCode" => vec!["input".to_owned(), "fromLocationCode".to_owned()],
            leaf => orders::input_lines(i, leaf),
        },
    };
    let new_lines =
        orders::resolve_new_lines(txn, &cx.principal.tenant_id, Kind::Transfer, &lines, &paths)
            .await?;
    let Some(to) =
        orders::location_id(txn, &cx.principal.tenant_id, &input.to_location_code).await?
    else {
        return Err(DomainError::user(UserError::new(
            ErrorCode::UnknownLocation,
            &["input", "toLocationCode"],
            format!("no location has code {:?}", input.to_location_code),
        )));
    };
    header.from_location_id = new_lines
        .resolved
        .first()
        .map(|(_, location)| location.clone());
    header.to_location_id = Some(to);
    let document = orders::insert(
        txn,
        cx,
        TransferStatus::Draft.as_str(),
        header,
        &lines,
        new_lines,
        Some(CREATED),
    )
    .await?;
    Ok(document)
}
