//! Sales orders: DRAFT → ALLOCATED (available → committed; all-or-nothing, or line by line
//! with `partial`, the rest backordered) → PARTIALLY_SHIPPED / SHIPPED (committed → customer),
//! or CANCELLED (what is committed is released).

mod allocate;
mod cancel;
mod create;
mod ship;

pub use allocate::allocate;
pub use cancel::cancel;
pub use create::{CreateSalesOrderInput, SalesOrderLineInput, create};
pub use ship::{ShipmentLineInput, ship};

use async_graphql::Enum;
use serde::{Deserialize, Serialize};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SalesOrderStatus {
    Draft,
    /// Some lines are allocated, the rest is backordered.
    PartiallyAllocated,
    Allocated,
    PartiallyShipped,
    Shipped,
    Cancelled,
}

impl SalesOrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::PartiallyAllocated => "partially_allocated",
            Self::Allocated => "allocated",
            Self::PartiallyShipped => "partially_shipped",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "partially_allocated" => Self::PartiallyAllocated,
            "allocated" => Self::Allocated,
            "partially_shipped" => Self::PartiallyShipped,
            "shipped" => Self::Shipped,
            "cancelled" => Self::Cancelled,
            _ => Self::Draft,
        }
    }
}

pub const CREATED: &str = "sales_order.created";
pub const ALLOCATED: &str = "sales_order.allocated";
pub const SHIPPED: &str = "sales_order.shipped";
pub const CANCELLED: &str = "sales_order.cancelled";

/// The status a sales order's lines put it in once allocation or shipping has moved.
fn status_of(document: &crate::orders::Document) -> SalesOrderStatus {
    let lines = &document.lines;
    if lines.iter().all(|l| l.done >= l.quantity) {
        SalesOrderStatus::Shipped
    } else if lines.iter().any(|l| l.done > 0) {
        SalesOrderStatus::PartiallyShipped
    } else if lines.iter().all(|l| l.committed + l.done >= l.quantity) {
        SalesOrderStatus::Allocated
    } else if lines.iter().any(|l| l.committed > 0) {
        SalesOrderStatus::PartiallyAllocated
    } else {
        SalesOrderStatus::Draft
    }
}
