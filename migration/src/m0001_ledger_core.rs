//! The ledger core: tenants, API keys, catalog, stock levels, movements, idempotency,
//! the event outbox, the audit trail and reconciliation runs.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_ledger_core"
    }
}

pub(crate) fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().take()
}

pub(crate) fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().take()
}

pub(crate) fn big(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .default(0)
        .take()
}

pub(crate) fn time(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

pub(crate) fn time_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .take()
}

pub(crate) fn boolean(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .boolean()
        .not_null()
        .default(false)
        .take()
}

pub(crate) fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json().not_null().take()
}

pub(crate) fn pk(cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    for col in cols {
        index.col(*col);
    }
    index.primary().take()
}

pub(crate) fn unique(
    name: &'static str,
    table: &'static str,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table).unique();
    for col in cols {
        index.col(*col);
    }
    index.take()
}

pub(crate) fn index(
    name: &'static str,
    table: &'static str,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(*col);
    }
    index.take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenants")
                    .col(text("id"))
                    .col(text("name"))
                    .col(text("plan"))
                    .col(text("status"))
                    .col(boolean("sandbox"))
                    .col(time("created_at"))
                    .primary_key(&mut pk(&["id"]))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("api_keys")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("lookup"))
                    .col(text("key_hash"))
                    .col(text("role"))
                    .col(text("name"))
                    .col(time("created_at"))
                    .col(time_null("revoked_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(unique("ux_api_keys_lookup", "api_keys", &["lookup"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("items")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("sku"))
                    .col(text("name"))
                    .col(text_null("barcode"))
                    .col(text("unit"))
                    .col(json("attributes"))
                    .col(text("status"))
                    .col(big("version"))
                    .col(time("created_at"))
                    .col(time("updated_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(unique("ux_items_sku", "items", &["tenant_id", "sku"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("locations")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("code"))
                    .col(text("name"))
                    .col(text("kind"))
                    .col(boolean("allow_negative"))
                    .col(big("version"))
                    .col(time("created_at"))
                    .col(time("updated_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(unique(
                "ux_locations_code",
                "locations",
                &["tenant_id", "code"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("stock_levels")
                    .col(text("tenant_id"))
                    .col(text("item_id"))
                    .col(text("location_id"))
                    .col(big("available"))
                    .col(big("committed"))
                    .col(big("reserved"))
                    .col(big("incoming"))
                    .col(big("damaged"))
                    .col(big("safety_stock"))
                    .col(big("quality_control"))
                    .col(big("sequence"))
                    .col(big("version"))
                    .col(time("updated_at"))
                    .primary_key(&mut pk(&["tenant_id", "item_id", "location_id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_stock_levels_location",
                "stock_levels",
                &["tenant_id", "location_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("movements")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("group_id"))
                    .col(text("item_id"))
                    .col(text("location_id"))
                    .col(text("state"))
                    .col(big("delta"))
                    .col(big("quantity_after"))
                    .col(big("sequence"))
                    .col(text("counterparty"))
                    .col(text_null("counterparty_location_id"))
                    .col(text_null("counterparty_state"))
                    .col(text("reason"))
                    .col(text_null("reference_document_uri"))
                    .col(text("actor"))
                    .col(text_null("idempotency_key"))
                    .col(time("effective_at"))
                    .col(time("recorded_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(unique(
                "ux_movements_sequence",
                "movements",
                &["tenant_id", "item_id", "location_id", "sequence"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_movements_location",
                "movements",
                &["tenant_id", "location_id", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("idempotency_keys")
                    .col(text("tenant_id"))
                    .col(text("key"))
                    .col(text("operation"))
                    .col(text("request_hash"))
                    .col(text("response"))
                    .col(time("created_at"))
                    .col(time("expires_at"))
                    .primary_key(&mut pk(&["tenant_id", "key"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_idempotency_keys_expiry",
                "idempotency_keys",
                &["expires_at"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("outbox_events")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("event_type"))
                    .col(text("aggregate_type"))
                    .col(text("aggregate_id"))
                    .col(json("payload"))
                    .col(time("created_at"))
                    .col(time_null("published_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_outbox_unpublished",
                "outbox_events",
                &["published_at", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("audit_events")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("actor"))
                    .col(text("action"))
                    .col(text("target_type"))
                    .col(text("target_id"))
                    .col(text_null("request_id"))
                    .col(json("data"))
                    .col(time("created_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("reconciliation_runs")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(big("levels_checked"))
                    .col(big("mismatches"))
                    .col(json("report"))
                    .col(time("started_at"))
                    .col(time("finished_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "reconciliation_runs",
            "audit_events",
            "outbox_events",
            "idempotency_keys",
            "movements",
            "stock_levels",
            "locations",
            "items",
            "api_keys",
            "tenants",
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
