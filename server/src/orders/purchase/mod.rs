//! Purchase orders: DRAFT → ORDERED (raises `incoming`) → PARTIALLY_RECEIVED / RECEIVED
//! (incoming → available), or CANCELLED (what is still incoming is released).

mod cancel;
mod create;
mod receive;
mod submit;
mod update;

pub use cancel::cancel;
pub use create::{CreatePurchaseOrderInput, PurchaseOrderLineInput, create};
pub use receive::{ReceiptLineInput, receive};
pub use submit::submit;
pub use update::{UpdatePurchaseOrderInput, update};

use async_graphql::Enum;
use serde::{Deserialize, Serialize};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurchaseOrderStatus {
    Draft,
    Ordered,
    PartiallyReceived,
    Received,
    Cancelled,
}

impl PurchaseOrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Ordered => "ordered",
            Self::PartiallyReceived => "partially_received",
            Self::Received => "received",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "ordered" => Self::Ordered,
            "partially_received" => Self::PartiallyReceived,
            "received" => Self::Received,
            "cancelled" => Self::Cancelled,
            _ => Self::Draft,
        }
    }
}

pub const CREATED: &str = "purchase_order.created";
pub const SUBMITTED: &str = "purchase_order.submitted";
pub const UPDATED: &str = "purchase_order.updated";
pub const RECEIVED: &str = "purchase_order.received";
pub const CANCELLED: &str = "purchase_order.cancelled";
