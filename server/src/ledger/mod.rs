//! The stock ledger: quantity states, immutable movements, level snapshots updated in the same
//! transaction, the adjust/move/set write path, queries and reconciliation.

pub mod query;
pub mod reconcile;
pub mod write;

use async_graphql::{Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use twh_entity::stock_level;

/// Largest quantity any state of one level may hold.
pub const MAX_QUANTITY: i64 = 1_000_000_000_000_000;
/// Largest change one movement may carry.
pub const MAX_DELTA: i64 = 1_000_000_000_000;
/// Most changes one mutation may carry.
pub const MAX_CHANGES: usize = 250;

/// Quantity states (Shopify's names). All but `INCOMING` count as on hand.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QuantityState {
    #[default]
    Available,
    Committed,
    Reserved,
    Incoming,
    Damaged,
    SafetyStock,
    QualityControl,
}

impl QuantityState {
    pub const ALL: [QuantityState; 7] = [
        QuantityState::Available,
        QuantityState::Committed,
        QuantityState::Reserved,
        QuantityState::Incoming,
        QuantityState::Damaged,
        QuantityState::SafetyStock,
        QuantityState::QualityControl,
    ];

    /// The `stock_levels` column (and the stored movement state) for this state.
    pub fn column(self) -> &'static str {
        match self {
            QuantityState::Available => "available",
            QuantityState::Committed => "committed",
            QuantityState::Reserved => "reserved",
            QuantityState::Incoming => "incoming",
            QuantityState::Damaged => "damaged",
            QuantityState::SafetyStock => "safety_stock",
            QuantityState::QualityControl => "quality_control",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.column() == raw)
    }

    pub fn of_mut(self, level: &mut stock_level::Model) -> &mut i64 {
        match self {
            QuantityState::Available => &mut level.available,
            QuantityState::Committed => &mut level.committed,
            QuantityState::Reserved => &mut level.reserved,
            QuantityState::Incoming => &mut level.incoming,
            QuantityState::Damaged => &mut level.damaged,
            QuantityState::SafetyStock => &mut level.safety_stock,
            QuantityState::QualityControl => &mut level.quality_control,
        }
    }

    pub fn of(self, level: &stock_level::Model) -> i64 {
        match self {
            QuantityState::Available => level.available,
            QuantityState::Committed => level.committed,
            QuantityState::Reserved => level.reserved,
            QuantityState::Incoming => level.incoming,
            QuantityState::Damaged => level.damaged,
            QuantityState::SafetyStock => level.safety_stock,
            QuantityState::QualityControl => level.quality_control,
        }
    }
}

/// Why stock changed.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MovementReason {
    Received,
    Correction,
    CycleCount,
    Damaged,
    Shrinkage,
    Restock,
    Promotion,
    Movement,
    QualityControl,
    SafetyStock,
    Reservation,
    /// A purchase order was placed: its quantities are expected (`INCOMING`).
    Ordered,
    /// A sales order's quantities were set aside for it (`AVAILABLE` → `COMMITTED`).
    Allocation,
    /// A sales order's quantities left for the customer.
    Shipment,
    /// Stock in transit between two locations.
    Transfer,
    /// A customer sent stock back.
    Return,
    /// A document was cancelled and what it held was released.
    Cancellation,
    /// Less arrived than was sent; the shortfall is written off with this reason.
    Discrepancy,
    /// A repair after a reconciliation found the ledger and the snapshot apart: the ledger is
    /// brought to the quantities the snapshot showed (`repairReconciliation`).
    Reconciliation,
    Other,
}

impl MovementReason {
    pub const ALL: [MovementReason; 20] = [
        MovementReason::Received,
        MovementReason::Correction,
        MovementReason::CycleCount,
        MovementReason::Damaged,
        MovementReason::Shrinkage,
        MovementReason::Restock,
        MovementReason::Promotion,
        MovementReason::Movement,
        MovementReason::QualityControl,
        MovementReason::SafetyStock,
        MovementReason::Reservation,
        MovementReason::Ordered,
        MovementReason::Allocation,
        MovementReason::Shipment,
        MovementReason::Transfer,
        MovementReason::Return,
        MovementReason::Cancellation,
        MovementReason::Discrepancy,
        MovementReason::Reconciliation,
        MovementReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MovementReason::Received => "received",
            MovementReason::Correction => "correction",
            MovementReason::CycleCount => "cycle_count",
            MovementReason::Damaged => "damaged",
            MovementReason::Shrinkage => "shrinkage",
            MovementReason::Restock => "restock",
            MovementReason::Promotion => "promotion",
            MovementReason::Movement => "movement",
            MovementReason::QualityControl => "quality_control",
            MovementReason::SafetyStock => "safety_stock",
            MovementReason::Reservation => "reservation",
            MovementReason::Ordered => "ordered",
            MovementReason::Allocation => "allocation",
            MovementReason::Shipment => "shipment",
            MovementReason::Transfer => "transfer",
            MovementReason::Return => "return",
            MovementReason::Cancellation => "cancellation",
            MovementReason::Discrepancy => "discrepancy",
            MovementReason::Reconciliation => "reconciliation",
            MovementReason::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .unwrap_or(MovementReason::Other)
    }
}

/// The other side of a movement: another bucket, or a party outside the ledger.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Counterparty {
    Bucket,
    Supplier,
    Customer,
    Adjustment,
    Transit,
}

impl Counterparty {
    pub fn as_str(self) -> &'static str {
        match self {
            Counterparty::Bucket => "bucket",
            Counterparty::Supplier => "supplier",
            Counterparty::Customer => "customer",
            Counterparty::Adjustment => "adjustment",
            Counterparty::Transit => "transit",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "bucket" => Counterparty::Bucket,
            "supplier" => Counterparty::Supplier,
            "customer" => Counterparty::Customer,
            "transit" => Counterparty::Transit,
            _ => Counterparty::Adjustment,
        }
    }
}

/// The snapshot of one item at one location.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockLevel {
    pub item_id: ID,
    pub sku: String,
    pub location_id: ID,
    pub location_code: String,
    /// available + committed + reserved + damaged + safetyStock + qualityControl.
    pub on_hand: i64,
    pub available: i64,
    pub committed: i64,
    pub reserved: i64,
    pub incoming: i64,
    pub damaged: i64,
    pub safety_stock: i64,
    pub quality_control: i64,
    /// Sequence number of the last movement at this (item, location).
    pub sequence: i64,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl StockLevel {
    pub fn from_model(m: &stock_level::Model, sku: &str, location_code: &str) -> Self {
        Self {
            item_id: ID(m.item_id.clone()),
            sku: sku.to_owned(),
            location_id: ID(m.location_id.clone()),
            location_code: location_code.to_owned(),
            on_hand: m.available
                + m.committed
                + m.reserved
                + m.damaged
                + m.safety_stock
                + m.quality_control,
            available: m.available,
            committed: m.committed,
            reserved: m.reserved,
            incoming: m.incoming,
            damaged: m.damaged,
            safety_stock: m.safety_stock,
            quality_control: m.quality_control,
            sequence: m.sequence,
            version: m.version,
            updated_at: m.updated_at,
        }
    }

    /// The level of an item at a location that has never moved: all zero.
    pub fn empty(item_id: &str, sku: &str, location_id: &str, location_code: &str) -> Self {
        Self::from_model(
            &stock_level::Model {
                tenant_id: String::new(),
                item_id: item_id.to_owned(),
                location_id: location_id.to_owned(),
                available: 0,
                committed: 0,
                reserved: 0,
                incoming: 0,
                damaged: 0,
                safety_stock: 0,
                quality_control: 0,
                sequence: 0,
                version: 0,
                updated_at: DateTime::<Utc>::UNIX_EPOCH,
            },
            sku,
            location_code,
        )
    }
}

/// One immutable ledger entry: a signed change of one (item, location, state) bucket.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[graphql(complex)]
#[serde(rename_all = "camelCase")]
pub struct Movement {
    pub id: ID,
    /// All movements of one mutation share a group and were applied atomically.
    pub group_id: ID,
    pub item_id: ID,
    pub sku: String,
    pub location_id: ID,
    pub location_code: String,
    pub state: QuantityState,
    /// Signed change of this bucket.
    pub delta: i64,
    /// The bucket's quantity right after this movement.
    pub quantity_after_change: i64,
    /// Per-(item, location) sequence number, consecutive from 1, to detect gaps.
    pub sequence: i64,
    pub counterparty: Counterparty,
    pub counterparty_location_code: Option<String>,
    #[graphql(skip)]
    #[serde(skip)]
    pub counterparty_location_id: Option<String>,
    pub counterparty_state: Option<QuantityState>,
    pub reason: MovementReason,
    pub reference_document_uri: Option<String>,
    pub actor: String,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_columns() {
        for state in QuantityState::ALL {
            assert_eq!(QuantityState::parse(state.column()), Some(state));
        }
        assert_eq!(QuantityState::parse("on_hand"), None);
    }

    #[test]
    fn reasons_round_trip() {
        for reason in MovementReason::ALL {
            assert_eq!(MovementReason::parse(reason.as_str()), reason);
        }
    }

    #[test]
    fn on_hand_excludes_incoming() {
        let mut level = StockLevel::empty("i", "s", "l", "c");
        assert_eq!(level.on_hand, 0);
        level.incoming = 5;
        assert_eq!(level.on_hand, 0);
    }

    #[test]
    fn quantity_bounds_cannot_overflow() {
        // Conditions compare `column + delta` with MAX_QUANTITY; both bounded, so no overflow.
        assert!(MAX_QUANTITY.checked_add(MAX_DELTA).is_some());
        assert!((MAX_QUANTITY * 6).checked_add(MAX_DELTA).is_some());
    }
}
