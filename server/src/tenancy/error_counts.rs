//! Errors by tenant and code, for the developers' "recent errors": every error a tenant's
//! request met (a request error's `extensions.code`, a mutation's `userErrors` codes) is counted
//! in memory and added to `usage_errors_daily` with the usage flush, once a second, so an error
//! storm costs no write per error.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};

const MAX_MESSAGE: usize = 300;
/// Distinct (tenant, day, code) entries held between flushes; past it, new ones wait for the
/// next flush (their counts are dropped, never the process's memory).
const MAX_PENDING: usize = 100_000;

#[derive(Debug, Clone)]
struct Tally {
    count: i64,
    last_message: String,
    last_request_id: String,
    last_seen_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ErrorCounts {
    pending: Mutex<HashMap<(String, String, String), Tally>>,
}

/// One code's errors over the days asked for.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
pub struct ErrorCount {
    /// The error code (see the `ErrorCode` enum).
    pub code: String,
    pub count: i64,
    /// The latest occurrence's message.
    pub last_message: String,
    /// The latest occurrence's request id (`X-Request-Id`), to find it in the logs.
    pub last_request_id: String,
    pub last_seen_at: DateTime<Utc>,
}

impl ErrorCounts {
    /// Counts one error of `code` met by a request of the tenant.
    pub fn note(&self, tenant_id: &str, code: &str, message: &str, request_id: &str) {
        let now = Utc::now();
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let key = (
            tenant_id.to_owned(),
            now.format("%Y-%m-%d").to_string(),
            code.to_owned(),
        );
        if pending.len() >= MAX_PENDING && !pending.contains_key(&key) {
            return;
        }
        let tally = pending.entry(key).or_insert_with(|| Tally {
            count: 0,
            last_message: String::new(),
            last_request_id: String::new(),
            last_seen_at: now,
        });
        tally.count += 1;
        tally.last_message = message.chars().take(MAX_MESSAGE).collect();
        tally.last_request_id = request_id.to_owned();
        tally.last_seen_at = now;
    }

    /// Adds what was counted since the last flush to `usage_errors_daily`; on failure the
    /// counts stay for the next flush.
    pub async fn flush(&self, db: &impl ConnectionTrait) -> Result<usize, DbErr> {
        let batch: Vec<_> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let mut insert = Query::insert();
        insert.into_table("usage_errors_daily").columns([
            "tenant_id",
            "day",
            "code",
            "count",
            "last_message",
            "last_request_id",
            "last_seen_at",
        ]);
        for ((tenant_id, day, code), tally) in &batch {
            insert.values_panic([
                tenant_id.clone().into(),
                day.clone().into(),
                code.clone().into(),
                tally.count.into(),
                tally.last_message.clone().into(),
                tally.last_request_id.clone().into(),
                tally.last_seen_at.into(),
            ]);
        }
        insert.on_conflict(
            OnConflict::columns(["tenant_id", "day", "code"])
                .value(
                    "count",
                    Expr::cust("usage_errors_daily.count + excluded.count"),
                )
                .update_columns(["last_message", "last_request_id", "last_seen_at"])
                .to_owned(),
        );
        match db.execute(&insert).await {
            Ok(_) => Ok(batch.len()),
            Err(err) => {
                if let Ok(mut pending) = self.pending.lock() {
                    for (key, tally) in batch {
                        match pending.get_mut(&key) {
                            Some(newer) => newer.count += tally.count,
                            None => {
                                pending.insert(key, tally);
                            }
                        }
                    }
                }
                Err(err)
            }
        }
    }
}

/// The tenant's errors by code since `since_day` (`YYYY-MM-DD`, inclusive), most frequent
/// first.
pub async fn recent(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    since_day: &str,
) -> Result<Vec<ErrorCount>, DbErr> {
    let select = Query::select()
        .columns([
            "code",
            "count",
            "last_message",
            "last_request_id",
            "last_seen_at",
        ])
        .from("usage_errors_daily")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("day").gte(since_day))
        .to_owned();
    let rows = db.query_all(&select).await?;
    let mut by_code: HashMap<String, ErrorCount> = HashMap::new();
    for row in rows {
        let day = ErrorCount {
            code: row.try_get("", "code")?,
            count: row.try_get("", "count")?,
            last_message: row.try_get("", "last_message")?,
            last_request_id: row.try_get("", "last_request_id")?,
            last_seen_at: row.try_get("", "last_seen_at")?,
        };
        match by_code.get_mut(&day.code) {
            Some(total) => {
                total.count += day.count;
                if day.last_seen_at > total.last_seen_at {
                    total.last_message = day.last_message;
                    total.last_request_id = day.last_request_id;
                    total.last_seen_at = day.last_seen_at;
                }
            }
            None => {
                by_code.insert(day.code.clone(), day);
            }
        }
    }
    let mut counts: Vec<ErrorCount> = by_code.into_values().collect();
    counts.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.last_seen_at.cmp(&a.last_seen_at))
    });
    Ok(counts)
}
