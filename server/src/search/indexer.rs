//! The search indexer: follows the event log from its own cursor (a `relay_cursors` row per
//! engine) and, for every item, location and order an event touched, writes the document as
//! the database holds it now, or deletes it. Reading the current state instead of applying the
//! event makes a round idempotent: a round repeated after a crash writes the same documents.
//!
//! The cursor moves only after the engine has taken the batch (for Meilisearch: once its task
//! succeeded, so the document is searchable), in the same transaction as the documents for the
//! built-in engine. On Postgres the round holds the cursor row (`FOR UPDATE SKIP LOCKED`), so
//! replicas never index the same batch at once nor write an older state over a newer one.
//!
//! A missing cursor (a new database, or a newly configured engine) starts with a full reindex.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, TransactionTrait};

use super::documents::{self, DocRef};
use super::{Engine, SearchDocument, SearchError, embedded};
use crate::app::AppState;
use crate::events::relay::dialect;

/// Events per indexing round.
pub const BATCH: i64 = 1000;

async fn read_cursor(db: &impl ConnectionTrait, name: &str) -> Result<Option<i64>, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            dialect(
                backend,
                "SELECT position FROM relay_cursors WHERE name = $1",
            ),
            [name.into()],
        ))
        .await?;
    row.map(|r| r.try_get::<i64>("", "position")).transpose()
}

async fn write_cursor(db: &impl ConnectionTrait, name: &str, position: i64) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        dialect(
            backend,
            "UPDATE relay_cursors SET position = $1 WHERE name = $2",
        ),
        [position.into(), name.into()],
    ))
    .await?;
    Ok(())
}

async fn log_end(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT coalesce(max(position), 0) AS last FROM outbox_events",
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "last"))
        .transpose()?
        .unwrap_or(0))
}

/// One round: indexes up to [`BATCH`] events after the cursor; returns how many it took
/// (0: nothing to do, or another process is indexing).
pub async fn index_once(app: &AppState) -> Result<usize, SearchError> {
    let _one = app.search.indexing.lock().await;
    let db = &app.background_db;
    let backend = db.get_database_backend();
    let name = app.search.cursor_name();
    let Some(stored) = read_cursor(db, name).await? else {
        start(app).await?;
        return Ok(1);
    };
    // Postgres: hold the cursor row for the round (taken: another process is indexing).
    let (held, cursor) = if backend == DatabaseBackend::Postgres {
        let txn = db.begin().await?;
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                "SELECT position FROM relay_cursors WHERE name = $1 FOR UPDATE SKIP LOCKED",
                [name.into()],
            ))
            .await?;
        match row.map(|row| row.try_get::<i64>("", "position")) {
            Some(Ok(position)) => (Some(txn), position),
            taken_or_failed => {
                txn.rollback().await?;
                taken_or_failed.transpose()?;
                return Ok(0);
            }
        }
    } else {
        (None, stored)
    };
    let round = index_after(app, held.as_ref(), cursor).await;
    // The cursor row's lock goes now, whatever happened: a transaction merely dropped is rolled
    // back only when its connection is next used, and until then every other round (this
    // process's next one included) would find the cursor taken and report nothing to do.
    if let Some(txn) = held {
        match &round {
            Ok(taken) if *taken > 0 => txn.commit().await?,
            Ok(_) => txn.rollback().await?,
            Err(_) => {
                if let Err(err) = txn.rollback().await {
                    tracing::warn!(error = %err, "rolling back a failed search round failed");
                }
            }
        }
    }
    round
}

/// The events after `cursor`, indexed; the cursor written in `held` (the caller commits it)
/// or, without it, in a write transaction of its own. Returns the events taken.
async fn index_after(
    app: &AppState,
    held: Option<&sea_orm::DatabaseTransaction>,
    cursor: i64,
) -> Result<usize, SearchError> {
    let db = &app.background_db;
    let backend = db.get_database_backend();
    let name = app.search.cursor_name();
    let postgres = backend == DatabaseBackend::Postgres;
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            dialect(
                backend,
                "SELECT tenant_id, aggregate_type, aggregate_id, position FROM outbox_events \
                 WHERE position > $1 ORDER BY position LIMIT $2",
            ),
            [cursor.into(), BATCH.into()],
        ))
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // On Postgres' built-in engine an item whose levels changed, and nothing else, gets only
    // its stock fields refreshed (`stocked`); everything else is rebuilt (`touched`).
    let refresh_stock = postgres && matches!(app.search.engine, Engine::Embedded);
    let mut touched: BTreeMap<String, BTreeSet<DocRef>> = BTreeMap::new();
    let mut stocked: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut last = cursor;
    for row in &rows {
        let tenant: String = row.try_get("", "tenant_id")?;
        let aggregate_type: String = row.try_get("", "aggregate_type")?;
        let aggregate_id: String = row.try_get("", "aggregate_id")?;
        last = last.max(row.try_get::<i64>("", "position")?);
        let Some(doc) = DocRef::from_event(&aggregate_type, &aggregate_id) else {
            continue;
        };
        if refresh_stock && aggregate_type == "stock_level" {
            stocked.entry(tenant).or_default().insert(doc.id);
        } else {
            touched.entry(tenant).or_default().insert(doc);
        }
    }
    let mut written = 0usize;
    match (&app.search.engine, held) {
        (Engine::Embedded, Some(txn)) => {
            for (tenant, refs) in &touched {
                let (docs, gone) = documents::build(txn, tenant, refs).await?;
                embedded::apply(txn, tenant, &docs, &gone).await?;
                written += docs.len() + gone.len();
            }
            for (tenant, items) in &stocked {
                // A document rebuilt above is already up to date.
                let rebuilt = touched.get(tenant);
                let items: Vec<String> = items
                    .iter()
                    .filter(|id| {
                        rebuilt.is_none_or(|refs| {
                            !refs.contains(&DocRef {
                                doc_type: super::SearchType::Item,
                                id: (*id).clone(),
                            })
                        })
                    })
                    .cloned()
                    .collect();
                written += embedded::refresh_stock(txn, tenant, &items).await? as usize;
            }
            write_cursor(txn, name, last).await?;
        }
        (Engine::Embedded, None) => {
            let write = app.begin_background_write().await?;
            for (tenant, refs) in &touched {
                let (docs, gone) = documents::build(&write.txn, tenant, refs).await?;
                embedded::apply(&write.txn, tenant, &docs, &gone).await?;
                written += docs.len() + gone.len();
            }
            write_cursor(&write.txn, name, last).await?;
            write.txn.commit().await?;
        }
        (Engine::Meilisearch(meili), held) => {
            for (tenant, refs) in &touched {
                let (docs, gone) = documents::build(db, tenant, refs).await?;
                let synonyms = if meili.is_ready(tenant).await {
                    Vec::new()
                } else {
                    super::synonyms(db, tenant).await?
                };
                meili.apply(tenant, &docs, &gone, &synonyms).await?;
                written += docs.len() + gone.len();
            }
            match held {
                Some(txn) => write_cursor(txn, name, last).await?,
                None => {
                    let write = app.begin_background_write().await?;
                    write_cursor(&write.txn, name, last).await?;
                    write.txn.commit().await?;
                }
            }
        }
    }
    metrics::counter!("twh_search_documents_indexed_total").increment(written as u64);
    Ok(rows.len())
}

/// The first round of an engine: index everything, then start following the log from where
/// it stood before the reindex began (changes made meanwhile are indexed again: harmless).
async fn start(app: &AppState) -> Result<(), SearchError> {
    let from = log_end(&app.background_db).await?;
    rebuild(app, None).await?;
    cursor_statement(
        app,
        "INSERT INTO relay_cursors (name, position) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        [app.search.cursor_name().into(), from.into()],
    )
    .await?;
    tracing::info!(
        engine = app.search.engine_name(),
        from,
        "search index built; following the event log"
    );
    Ok(())
}

/// One statement on the cursor row, in a write transaction of its own.
async fn cursor_statement<const N: usize>(
    app: &AppState,
    sql: &str,
    values: [sea_orm::Value; N],
) -> Result<(), DbErr> {
    let backend = app.background_db.get_database_backend();
    let write = app.begin_background_write().await?;
    write
        .txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            dialect(backend, sql),
            values,
        ))
        .await?;
    write.txn.commit().await
}

/// Rebuilds the index of one tenant or of all, without downtime: the built-in engine swaps a
/// tenant's documents in one transaction, Meilisearch builds an index aside and swaps it in.
/// Returns the documents written.
pub async fn reindex(app: &AppState, tenant: Option<&str>) -> Result<usize, SearchError> {
    let _one = app.search.indexing.lock().await;
    let from = log_end(&app.background_db).await?;
    let written = rebuild(app, tenant).await?;
    // Changes made while it ran are indexed again from where the log stood when it began.
    cursor_statement(
        app,
        "UPDATE relay_cursors SET position = $1 WHERE name = $2 AND position > $1",
        [from.into(), app.search.cursor_name().into()],
    )
    .await?;
    Ok(written)
}

async fn rebuild(app: &AppState, tenant: Option<&str>) -> Result<usize, SearchError> {
    let db = &app.background_db;
    let tenants: Vec<String> = match tenant {
        Some(t) => vec![t.to_owned()],
        None => {
            let backend = db.get_database_backend();
            db.query_all_raw(Statement::from_string(
                backend,
                "SELECT id FROM tenants ORDER BY id",
            ))
            .await?
            .iter()
            .map(|r| r.try_get::<String>("", "id"))
            .collect::<Result<_, _>>()?
        }
    };
    let mut written = 0;
    for tenant in tenants {
        let docs = tenant_documents(db, &tenant).await?;
        written += docs.len();
        match &app.search.engine {
            Engine::Embedded => {
                let write = app.begin_background_write().await?;
                embedded::clear(&write.txn, &tenant).await?;
                embedded::apply(&write.txn, &tenant, &docs, &[]).await?;
                write.txn.commit().await?;
            }
            Engine::Meilisearch(meili) => {
                let synonyms = super::synonyms(db, &tenant).await?;
                meili.rebuild(&tenant, &docs, &synonyms).await?;
            }
        }
    }
    Ok(written)
}

async fn tenant_documents(
    db: &impl ConnectionTrait,
    tenant: &str,
) -> Result<Vec<SearchDocument>, DbErr> {
    let mut out = Vec::new();
    let mut after: Option<DocRef> = None;
    loop {
        let page = documents::all_refs(db, tenant, after.as_ref(), 1000).await?;
        let Some(last) = page.last().cloned() else {
            return Ok(out);
        };
        let refs: BTreeSet<DocRef> = page.into_iter().collect();
        out.extend(documents::build(db, tenant, &refs).await?.0);
        after = Some(last);
    }
}

/// Age in seconds of the oldest event not indexed yet, relayed or not (0 when none): the first
/// after the cursor, found through the position index (a `min` over every event after the
/// cursor read them all, and on a table without statistics the whole log: 72 ms a call under
/// load).
pub async fn lag_seconds(app: &AppState) -> Result<f64, DbErr> {
    let db = &app.background_db;
    let backend = db.get_database_backend();
    let cursor = read_cursor(db, app.search.cursor_name())
        .await?
        .unwrap_or(0);
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            dialect(
                backend,
                "SELECT created_at AS oldest FROM outbox_events WHERE position > $1 \
                 ORDER BY position LIMIT 1",
            ),
            [cursor.into()],
        ))
        .await?;
    let oldest: Option<chrono::DateTime<Utc>> = row.and_then(|r| r.try_get("", "oldest").ok());
    let indexed = oldest.map_or(0.0, |t| {
        (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
    });
    let unrelayed = crate::events::relay::lag_seconds(db).await?;
    Ok(indexed.max(unrelayed))
}

/// Relays and indexes everything pending now (tests and `twh` commands).
pub async fn catch_up(app: &AppState) -> Result<(), SearchError> {
    loop {
        crate::events::relay::drain(app).await?;
        if index_once(app).await? == 0 {
            return Ok(());
        }
    }
}

/// Runs until `stop`: indexes whenever the relay wakes it, and every `poll`. While the engine
/// fails (Meilisearch down) it retries with a growing pause; the cursor waits, so nothing is
/// skipped, and writes go on unaffected.
pub async fn run(app: AppState, poll: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut pause = poll;
    loop {
        loop {
            match index_once(&app).await {
                Ok(0) => {
                    pause = poll;
                    break;
                }
                Ok(_) => pause = poll,
                Err(err) => {
                    metrics::counter!("twh_search_index_failures_total").increment(1);
                    tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "search indexing failed");
                    pause = (pause * 2).min(Duration::from_secs(30));
                    break;
                }
            }
        }
        match lag_seconds(&app).await {
            Ok(lag) => metrics::gauge!("twh_search_index_lag_seconds").set(lag),
            Err(err) => tracing::debug!(error = %err, "reading the search index lag failed"),
        }
        // Failing: wait out the pause even if writes come in.
        let healthy = pause == poll;
        tokio::select! {
            _ = app.wake.search.notified(), if healthy => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}
