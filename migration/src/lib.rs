//! Database migrations of The Warehouse Hub.
//! Every table is keyed by `tenant_id` first so it can be distributed by tenant without change.

pub use sea_orm_migration::prelude::*;

mod m0001_ledger_core;
mod m0002_level_location_index;
mod m0003_orders;
mod m0004_events;
mod m0005_plan_overrides;
mod m0006_usage;
mod m0007_jobs;
mod m0008_search;
mod m0009_usage_errors;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_ledger_core::Migration),
            Box::new(m0002_level_location_index::Migration),
            Box::new(m0003_orders::Migration),
            Box::new(m0004_events::Migration),
            Box::new(m0005_plan_overrides::Migration),
            Box::new(m0006_usage::Migration),
            Box::new(m0007_jobs::Migration),
            Box::new(m0008_search::Migration),
            Box::new(m0009_usage_errors::Migration),
        ]
    }
}
