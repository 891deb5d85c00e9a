//! Order documents (purchase orders, sales orders, reservations, transfers, returns) and their
//! lines, per-tenant document numbers, and the index that finds a document's movements.
//!
//! Only the primary keys lead with `tenant_id`. A secondary index that did too would tie with
//! the primary key in a plan made before the tables have statistics (an empty database, a
//! bulk load, autovacuum off), and Postgres keeps such a generic plan for a connection's life:
//! a lookup by (tenant, id) then walked every document of the tenant (seen in bench/).

use sea_orm_migration::prelude::*;

use crate::m0001_ledger_core::{big, index, pk, text, text_null, time, time_null, unique};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_orders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("order_documents")
                    .col(text("tenant_id"))
                    .col(text("id"))
                    .col(text("kind"))
                    .col(text("number"))
                    .col(text("status"))
                    .col(big("version"))
                    .col(text_null("party"))
                    .col(text_null("external_reference"))
                    .col(text_null("notes"))
                    .col(time_null("expected_at"))
                    .col(text_null("from_location_id"))
                    .col(text_null("to_location_id"))
                    .col(text_null("sales_order_id"))
                    .col(time_null("expires_at"))
                    .col(text("created_by"))
                    .col(time("created_at"))
                    .col(time("updated_at"))
                    .primary_key(&mut pk(&["tenant_id", "id"]))
                    .take(),
            )
            .await?;
        manager
            .create_index(unique(
                "ux_order_documents_number",
                "order_documents",
                &["kind", "tenant_id", "number"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_order_documents_list",
                "order_documents",
                &["kind", "tenant_id", "id"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_order_documents_sales_order",
                "order_documents",
                &["sales_order_id", "tenant_id"],
            ))
            .await?;
        // The reservation sweeper looks across tenants for what has expired.
        manager
            .create_index(index(
                "ix_order_documents_expiry",
                "order_documents",
                &["kind", "status", "expires_at"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("order_lines")
                    .col(text("tenant_id"))
                    .col(text("document_id"))
                    .col(big("line_no"))
                    .col(text("item_id"))
                    .col(text("location_id"))
                    .col(big("quantity"))
                    .col(text_null("unit_cost"))
                    .col(text_null("disposition"))
                    // Received (purchase, transfer, return) or shipped (sales).
                    .col(big("done"))
                    // Allocated and not yet shipped (sales).
                    .col(big("committed"))
                    // Received beyond what was ordered (purchase, with allowOverReceipt).
                    .col(big("over"))
                    // Closed without arriving: cancelled or written off as a discrepancy.
                    .col(big("closed"))
                    .primary_key(&mut pk(&["tenant_id", "document_id", "line_no"]))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("document_counters")
                    .col(text("tenant_id"))
                    .col(text("kind"))
                    .col(big("last_number"))
                    .primary_key(&mut pk(&["tenant_id", "kind"]))
                    .take(),
            )
            .await?;

        manager
            .create_index(index(
                "ix_movements_reference",
                "movements",
                &["reference_document_uri", "tenant_id", "id"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_movements_reference")
                    .table("movements")
                    .to_owned(),
            )
            .await?;
        for table in ["document_counters", "order_lines", "order_documents"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
