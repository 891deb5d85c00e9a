//! The built-in search engine's index: one row per searchable document (item, location, order),
//! projected from the event log by the search indexer, and the full-text index over its terms.
//!
//! `terms` holds the document's words, normalised (lowercase, split on anything that is not a
//! letter or digit) and joined by single spaces with a space at each end, so a trigram that
//! starts with a space marks the start of a word. SQLite indexes it with FTS5's trigram
//! tokenizer (an external-content table kept in step by triggers, keyed by an integer alias of
//! the rowid so VACUUM cannot renumber it); Postgres with a pg_trgm GIN index. Both answer the
//! same question, "which documents share a trigram with each query word", and the engine
//! checks and ranks those candidates the same way on both.
//!
//! Documents live in the tenant's rows only; the indexer's cursor is a `relay_cursors` row.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_search"
    }
}

const COLUMNS: &str = "tenant_id TEXT NOT NULL, \
    doc_id TEXT NOT NULL, \
    doc_type TEXT NOT NULL, \
    title TEXT NOT NULL, \
    code TEXT NOT NULL, \
    code_key TEXT NOT NULL, \
    barcode TEXT NULL, \
    body TEXT NOT NULL, \
    terms TEXT NOT NULL, \
    status TEXT NOT NULL, \
    location_codes TEXT NOT NULL, \
    in_stock BOOLEAN NOT NULL, \
    available BIGINT NOT NULL, \
    updated_at BIGINT NOT NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            // A trusted extension since Postgres 13: a database owner may create it.
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                .await?;
            db.execute_unprepared(&format!(
                "CREATE TABLE search_documents ({COLUMNS}, PRIMARY KEY (tenant_id, doc_id))"
            ))
            .await?;
            db.execute_unprepared(
                "CREATE INDEX ix_search_terms ON search_documents USING gin (terms gin_trgm_ops)",
            )
            .await?;
        } else {
            db.execute_unprepared(&format!(
                "CREATE TABLE search_documents (key INTEGER PRIMARY KEY, {COLUMNS}, \
                 UNIQUE (tenant_id, doc_id))"
            ))
            .await?;
            db.execute_unprepared(
                "CREATE VIRTUAL TABLE search_fts USING fts5(terms, content='search_documents', \
                 content_rowid='key', tokenize='trigram')",
            )
            .await?;
            db.execute_unprepared(
                "CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN \
                   INSERT INTO search_fts (rowid, terms) VALUES (new.key, new.terms); \
                 END",
            )
            .await?;
            db.execute_unprepared(
                "CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN \
                   INSERT INTO search_fts (search_fts, rowid, terms) VALUES ('delete', old.key, old.terms); \
                 END",
            )
            .await?;
            db.execute_unprepared(
                "CREATE TRIGGER search_documents_au AFTER UPDATE ON search_documents BEGIN \
                   INSERT INTO search_fts (search_fts, rowid, terms) VALUES ('delete', old.key, old.terms); \
                   INSERT INTO search_fts (rowid, terms) VALUES (new.key, new.terms); \
                 END",
            )
            .await?;
        }
        // Exact look-ups (a scanned barcode, a typed SKU or order number) come before any fuzzy
        // match and must be instant.
        db.execute_unprepared(
            "CREATE INDEX ix_search_code ON search_documents (tenant_id, code_key)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_search_barcode ON search_documents (tenant_id, barcode)",
        )
        .await?;
        // An empty query lists by recency.
        db.execute_unprepared(
            "CREATE INDEX ix_search_recent ON search_documents (tenant_id, updated_at)",
        )
        .await?;
        // Synonyms per tenant: groups of words that find each other.
        db.execute_unprepared(
            "CREATE TABLE search_synonyms (tenant_id TEXT NOT NULL PRIMARY KEY, groups TEXT NOT NULL, \
             version BIGINT NOT NULL)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            db.execute_unprepared("DROP TABLE IF EXISTS search_fts")
                .await?;
        }
        db.execute_unprepared("DROP TABLE IF EXISTS search_synonyms")
            .await?;
        db.execute_unprepared("DROP TABLE IF EXISTS search_documents")
            .await?;
        db.execute_unprepared("DELETE FROM relay_cursors WHERE name LIKE 'search:%'")
            .await?;
        Ok(())
    }
}
