//! Public identifiers: a short type prefix and a time-ordered UUIDv7, e.g. `itm_0192f4…`.
//! Time order makes ids usable as stable pagination cursors.

use uuid::Uuid;

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

pub const TENANT: &str = "ten";
pub const API_KEY: &str = "key";
pub const ITEM: &str = "itm";
pub const LOCATION: &str = "loc";
pub const MOVEMENT: &str = "mov";
pub const MOVEMENT_GROUP: &str = "grp";
pub const EVENT: &str = "evt";
pub const AUDIT: &str = "aud";
pub const RECONCILIATION: &str = "rec";
pub const PURCHASE_ORDER: &str = "po";
pub const SALES_ORDER: &str = "so";
pub const RESERVATION: &str = "rsv";
pub const TRANSFER: &str = "trf";
pub const RETURN_ORDER: &str = "ret";
pub const JOB: &str = "job";
pub const ARTIFACT: &str = "art";

#[cfg(test)]
mod tests {
    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_id("mov")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids[0].starts_with("mov_"));
    }
}
