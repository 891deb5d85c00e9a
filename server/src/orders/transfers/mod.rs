//! Transfers between two locations: DRAFT → IN_TRANSIT on ship (the quantity leaves the origin
//! and shows as `incoming` at the destination) → PARTIALLY_RECEIVED / RECEIVED. A shortfall
//! closed out at receipt is a DISCREPANCY movement, never silently lost; cancelling sends what
//! is still in transit back to the origin.

mod cancel;
mod create;
mod receive;
mod ship;

pub use cancel::cancel;
pub use create::{CreateTransferInput, TransferLineInput, create};
pub use receive::{TransferReceiptLineInput, receive};
pub use ship::ship;

use async_graphql::Enum;
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::orders::Document;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferStatus {
    Draft,
    InTransit,
    PartiallyReceived,
    Received,
    Cancelled,
}

impl TransferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::InTransit => "in_transit",
            Self::PartiallyReceived => "partially_received",
            Self::Received => "received",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "in_transit" => Self::InTransit,
            "partially_received" => Self::PartiallyReceived,
            "received" => Self::Received,
            "cancelled" => Self::Cancelled,
            _ => Self::Draft,
        }
    }
}

pub const CREATED: &str = "transfer.created";
pub const SHIPPED: &str = "transfer.shipped";
pub const RECEIVED: &str = "transfer.received";
pub const CANCELLED: &str = "transfer.cancelled";

/// The transfer's two ends, as codes.
fn ends(document: &Document) -> Result<(String, String), DomainError> {
    match (&document.from_location_code, &document.to_location_code) {
        (Some(from), Some(to)) => Ok((from.clone(), to.clone())),
        _ => Err(anyhow::anyhow!("transfer {} has lost a location", document.id.0).into()),
    }
}
