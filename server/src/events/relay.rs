//! The outbox relay: takes committed, unrelayed events in insertion order, gives each the next
//! log position, creates their webhook deliveries, and hands them to the bus, all of a batch in
//! one transaction.
//!
//! Relays of every process serialise on the `relay_cursors` row (`FOR UPDATE` on Postgres, the
//! single writer on SQLite), so positions are assigned once, gap-free, in the order the relay
//! commits them. The relay selects what is unrelayed (`published_at IS NULL`), not what follows
//! a cursor, so a transaction that commits after a later one is taken by the next round instead
//! of being jumped; two changes of one stock level are ordered by the level's row lock, so
//! their events keep the level's sequence order in the log.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};

use super::Published;
use crate::app::AppState;

/// Events relayed per transaction.
pub const BATCH: u64 = 500;

/// Rewrites `$n` placeholders for SQLite (`?n`).
pub fn dialect(backend: DatabaseBackend, sql: &str) -> String {
    match backend {
        DatabaseBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    }
}

/// Relays one batch; returns what it relayed, in log order.
pub async fn relay_once(app: &AppState, limit: u64) -> Result<Vec<Published>, DbErr> {
    // Look before taking the writer's slot (SQLite) or the cursor row: most rounds find nothing.
    let backend = app.background_db.get_database_backend();
    let pending = app
        .background_db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT 1 AS pending FROM outbox_events WHERE published_at IS NULL LIMIT 1",
        ))
        .await?;
    if pending.is_none() {
        return Ok(Vec::new());
    }
    let write = app.begin_background_write().await?;
    let txn = &write.txn;
    let postgres = backend == DatabaseBackend::Postgres;
    let lock = if postgres {
        "SELECT position FROM relay_cursors WHERE name = 'outbox' FOR UPDATE"
    } else {
        "SELECT position FROM relay_cursors WHERE name = 'outbox'"
    };
    let last: i64 = match txn
        .query_one_raw(Statement::from_string(backend, lock))
        .await?
    {
        Some(row) => row.try_get("", "position")?,
        None => return Err(DbErr::Custom("relay cursor row missing".into())),
    };
    let order = if postgres { "insert_seq" } else { "rowid" };
    let sql = format!(
        "WITH batch AS (\
           SELECT b_tenant, b_id, row_number() OVER (ORDER BY b_seq) AS b_n FROM (\
             SELECT tenant_id AS b_tenant, id AS b_id, {order} AS b_seq FROM outbox_events \
             WHERE published_at IS NULL ORDER BY {order} LIMIT $1) AS pending) \
         UPDATE outbox_events SET published_at = $2, position = $3 + batch.b_n \
         FROM batch WHERE outbox_events.tenant_id = batch.b_tenant AND outbox_events.id = batch.b_id \
         RETURNING tenant_id, id, event_type, aggregate_type, aggregate_id, payload, created_at, position"
    );
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            dialect(backend, &sql),
            [(limit as i64).into(), Utc::now().into(), last.into()],
        ))
        .await?;
    if rows.is_empty() {
        // Nothing to do: end the transaction without writing.
        write.txn.rollback().await?;
        return Ok(Vec::new());
    }
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        events.push(Published {
            tenant_id: row.try_get("", "tenant_id")?,
            id: row.try_get("", "id")?,
            event_type: row.try_get("", "event_type")?,
            aggregate_type: row.try_get("", "aggregate_type")?,
            aggregate_id: row.try_get("", "aggregate_id")?,
            data: row.try_get("", "payload")?,
            created_at: row.try_get("", "created_at")?,
            position: row.try_get("", "position")?,
        });
    }
    events.sort_by_key(|e| e.position);
    let next = events.last().map_or(last, |e| e.position);
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        dialect(
            backend,
            "UPDATE relay_cursors SET position = $1 WHERE name = 'outbox'",
        ),
        [next.into()],
    ))
    .await?;
    let deliveries = crate::webhooks::deliveries::create_for_events(txn, &events).await?;
    write.txn.commit().await?;
    metrics::counter!("twh_events_relayed_total").increment(events.len() as u64);
    if deliveries > 0 {
        app.wake.dispatcher.notify_one();
    }
    Ok(events)
}

/// Age in seconds of the oldest event not relayed yet (0 when none): the first pending one, in
/// the order the relay takes them, through the partial index of pending events.
pub async fn lag_seconds(db: &impl ConnectionTrait) -> Result<f64, DbErr> {
    let backend = db.get_database_backend();
    // The relay's own order: `insert_seq` on Postgres, `rowid` on SQLite.
    let order = if backend == sea_orm::DbBackend::Postgres {
        "insert_seq"
    } else {
        "rowid"
    };
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            format!(
                "SELECT created_at AS oldest FROM outbox_events WHERE published_at IS NULL \
                 ORDER BY {order} LIMIT 1"
            ),
        ))
        .await?;
    let oldest: Option<chrono::DateTime<Utc>> = match row {
        Some(row) => row.try_get("", "oldest").ok(),
        None => None,
    };
    Ok(oldest.map_or(0.0, |t| {
        (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
    }))
}

/// Runs until `stop`: relays whenever a write wakes it, and every `poll` in case a write of
/// another process did (its own relay may have died with it).
pub async fn run(app: AppState, poll: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        loop {
            match relay_once(&app, BATCH).await {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    let full = events.len() as u64 >= BATCH;
                    app.bus.publish(events).await;
                    app.wake.search.notify_one();
                    if !full {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "relaying outbox events failed");
                    break;
                }
            }
        }
        match lag_seconds(&app.background_db).await {
            Ok(lag) => metrics::gauge!("twh_outbox_lag_seconds").set(lag),
            Err(err) => tracing::debug!(error = %err, "reading the outbox lag failed"),
        }
        tokio::select! {
            _ = app.wake.relay.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Relays everything pending now (tests and `twh` commands that write without a server).
pub async fn drain(app: &AppState) -> Result<usize, DbErr> {
    let mut total = 0;
    loop {
        let events = relay_once(app, BATCH).await?;
        if events.is_empty() {
            return Ok(total);
        }
        total += events.len();
        app.bus.publish(events).await;
    }
}
