//! The stock-level index by location also carries the item, so a statement that knows the
//! tenant, the location and the item finds its one row through either index. Without it, a
//! plan made before the table has statistics can pick the location index for a single-level
//! update and walk every level of that location.
//!
//! On Postgres the new index is built `CONCURRENTLY` before the old one is dropped, so stock
//! reads and writes go on during a deploy (a plain build would lock `stock_levels` for its
//! whole length). That cannot run in a transaction; on SQLite both statements go in one call,
//! on one connection.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_level_location_index"
    }
}

const OLD: &str = "ix_stock_levels_location";
const NEW: &str = "ix_stock_levels_location_item";

async fn swap(
    manager: &SchemaManager<'_>,
    (create, columns): (&str, &str),
    drop: &str,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(&format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {create} ON stock_levels ({columns})"
        ))
        .await?;
        db.execute_unprepared(&format!("DROP INDEX CONCURRENTLY IF EXISTS {drop}"))
            .await?;
    } else {
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {create} ON stock_levels ({columns}); \
             DROP INDEX IF EXISTS {drop};"
        ))
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// `CREATE INDEX CONCURRENTLY` refuses to run inside a transaction.
    fn use_transaction(&self) -> Option<bool> {
        Some(false)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        swap(manager, (NEW, "tenant_id, location_id, item_id"), OLD).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        swap(manager, (OLD, "tenant_id, location_id"), NEW).await
    }
}
