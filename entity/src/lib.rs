//! SeaORM entities of The Warehouse Hub.
//! One module per table; every primary key starts with `tenant_id` (tenants themselves aside).

pub mod api_key;
pub mod audit_event;
pub mod idempotency_key;
pub mod item;
pub mod location;
pub mod movement;
pub mod order_document;
pub mod order_line;
pub mod outbox_event;
pub mod reconciliation_run;
pub mod stock_level;
pub mod tenant;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
