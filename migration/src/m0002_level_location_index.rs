//! The stock-level index by location also carries the item, so a statement that knows the
//! tenant, the location and the item finds its one row through either index. Without it, a
//! plan made before the table has statistics can pick the location index for a single-level
//! update and walk every level of that location.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_level_location_index"
    }
}

const NAME: &str = "ix_stock_levels_location";

async fn replace(manager: &SchemaManager<'_>, cols: &[&'static str]) -> Result<(), DbErr> {
    // Plain SQL: the same statement on Postgres and SQLite.
    manager
        .get_connection()
        .execute_unprepared(&format!("DROP INDEX IF EXISTS {NAME}"))
        .await?;
    let mut index = Index::create();
    index.name(NAME).table("stock_levels");
    for col in cols {
        index.col(*col);
    }
    manager.create_index(index.take()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// Drop and create on one connection in one transaction, on SQLite too (its default is no
    /// transaction, which let the two statements run on different pooled connections).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, &["tenant_id", "location_id", "item_id"]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, &["tenant_id", "location_id"]).await
    }
}
