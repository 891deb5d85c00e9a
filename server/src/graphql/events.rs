//! GraphQL for events: the log (`events`), and the subscriptions that follow it live.

use std::future::Future;
use std::sync::Arc;

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use sea_orm::{DatabaseConnection, DbErr};
use serde::de::DeserializeOwned;

use super::orders::{PurchaseOrder, Reservation, ReturnOrder, SalesOrder, Transfer};
use super::{connection, db_error, page_size, state};
use crate::auth::principal;
use crate::error::{ErrorCode, request_error};
use crate::events::bus::Lagged;
use crate::events::{self, LogFilter, Published};
use crate::ledger::StockLevel;
use crate::orders::{Document, Kind};

/// One event of the tenant's log.
#[derive(Clone)]
pub struct Event(pub Arc<Published>);

#[Object]
impl Event {
    /// Stable; webhooks send it as `webhook-id`.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    /// Dotted lowercase, e.g. `stock.changed`, `sales_order.shipped`.
    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    async fn aggregate_type(&self) -> &str {
        &self.0.aggregate_type
    }

    async fn aggregate_id(&self) -> &str {
        &self.0.aggregate_id
    }

    /// What changed (the same as a webhook's `data`).
    async fn data(&self) -> &serde_json::Value {
        &self.0.data
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The event's place in the log: increasing, and the cursor to resume after.
    async fn position(&self) -> i64 {
        self.0.position
    }
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct EventFilter {
    /// Event types, or `prefix.*` patterns.
    pub types: Option<Vec<String>>,
    /// Events created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events created before this time.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct EventsQuery;

#[Object]
impl EventsQuery {
    /// The tenant's event log, oldest first. Poll it with `after` set to the last cursor seen
    /// to catch up after downtime or instead of receiving webhooks.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Event>> {
        let tenant = &principal(ctx)?.tenant_id;
        let limit = page_size(first)?;
        let after_position = match after.as_deref() {
            None => None,
            Some(raw) => Some(raw.parse::<i64>().ok().filter(|p| *p >= 0).ok_or_else(|| {
                request_error(
                    ErrorCode::InvalidInput,
                    "after is not a cursor of this list: pass an endCursor (a position) it returned",
                )
            })?),
        };
        let filter = filter.unwrap_or_default();
        let filter = LogFilter {
            types: filter.types.unwrap_or_default(),
            since: filter.since,
            until: filter.until,
        };
        let rows = events::list(&state(ctx)?.db, tenant, &filter, after_position, limit)
            .await
            .map_err(|e| db_error(ctx, e))?;
        let rows = rows.into_iter().map(|p| Event(Arc::new(p))).collect();
        Ok(connection(rows, limit, after.is_some(), |e| {
            e.0.position.to_string()
        }))
    }
}

/// A stock level after a change, as `stockChanged` emits it.
#[derive(SimpleObject, Clone)]
pub struct StockChangedEvent {
    pub event_id: ID,
    pub position: i64,
    /// The movement group (one mutation) that changed the level.
    pub group_id: ID,
    /// The mutation, e.g. `adjustStock`, `shipSalesOrder`.
    pub operation: String,
    /// The level's movement sequence after the change: consecutive per (SKU, location).
    pub sequence: i64,
    pub level: StockLevel,
    pub created_at: DateTime<Utc>,
}

fn slow_consumer(lagged: Lagged) -> async_graphql::Error {
    request_error(
        ErrorCode::SlowConsumer,
        format!(
            "this subscription fell {} events behind and was ended - Hint: subscribe again and catch up with the events query from the last position you saw",
            lagged.0
        ),
    )
}

/// The caller's live events; a lag ends the stream with SLOW_CONSUMER.
fn live(
    ctx: &Context<'_>,
) -> async_graphql::Result<impl Stream<Item = Result<Arc<Published>, Lagged>> + use<>> {
    let tenant = principal(ctx)?.tenant_id.clone();
    Ok(state(ctx)?.bus.stream(&tenant))
}

/// The documents one order document becomes, opening with the document as it is.
fn document_stream<T, F>(
    ctx: &Context<'_>,
    kind: Kind,
    id: ID,
    wrap: F,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<T>> + use<T, F>>
where
    T: Send + 'static,
    F: Fn(Document) -> T + Send + Sync + 'static,
{
    let read = move |db: DatabaseConnection, tenant: String, id: String| async move {
        crate::orders::get(&db, &tenant, kind, &id).await
    };
    Ok(now_then_changes(ctx, kind.as_str(), id, read)?.map(move |d| d.map(&wrap)))
}

/// One aggregate (a document, a job) as it is now, then after each of its changes. Things
/// change on their own (a job runs, a reservation expires), so a client's read and its
/// subscription can miss a change between them: listening starts before the read, so such a
/// change shows twice, never not at all, and the last message is always the latest state.
/// Another tenant's id, or an unknown one, gives nothing, as for its changes.
fn now_then_changes<T, R, Fut>(
    ctx: &Context<'_>,
    aggregate_type: &'static str,
    id: ID,
    read: R,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<T>> + use<T, R, Fut>>
where
    T: DeserializeOwned + Send + 'static,
    R: FnOnce(DatabaseConnection, String, String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Option<T>, DbErr>> + Send + 'static,
{
    let changes = {
        let id = id.clone();
        live(ctx)?.filter_map(move |item| {
            let out = match item {
                Err(lagged) => Some(Err(slow_consumer(lagged))),
                Ok(e) if e.aggregate_type == aggregate_type && e.aggregate_id == id.as_str() => {
                    decode::<T>(&e.data).map(Ok)
                }
                Ok(_) => None,
            };
            std::future::ready(out)
        })
    };
    let tenant = principal(ctx)?.tenant_id.clone();
    let db = state(ctx)?.db.clone();
    let request_id = crate::auth::request_id(ctx);
    let now = futures_util::stream::once(async move {
        match read(db, tenant, id.0).await {
            Ok(found) => found.map(Ok),
            Err(err) => Some(Err(crate::error::internal_error(
                &request_id,
                &anyhow::Error::new(err),
            ))),
        }
    })
    .filter_map(std::future::ready);
    Ok(now.chain(changes))
}

fn decode<T: DeserializeOwned>(data: &serde_json::Value) -> Option<T> {
    match serde_json::from_value(data.clone()) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!(error = %err, "an event's data does not decode");
            None
        }
    }
}

#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Each change of a stock level (of one SKU and/or one location when given), in sequence
    /// order per level.
    async fn stock_changed(
        &self,
        ctx: &Context<'_>,
        sku: Option<String>,
        location_code: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<StockChangedEvent>>> {
        Ok(live(ctx)?.filter_map(move |item| {
            let out = match item {
                Err(lagged) => Some(Err(slow_consumer(lagged))),
                Ok(e) if e.event_type == events::STOCK_CHANGED => {
                    // Compare the raw fields first: with thousands of subscribers, each event
                    // is decoded only by those it is for.
                    let raw = &e.data["level"];
                    let wanted = sku
                        .as_deref()
                        .is_none_or(|s| raw["sku"].as_str() == Some(s))
                        && location_code
                            .as_deref()
                            .is_none_or(|c| raw["locationCode"].as_str() == Some(c));
                    match wanted.then(|| decode::<StockLevel>(raw)).flatten() {
                        Some(level) => {
                            let text = |key: &str| {
                                e.data
                                    .get(key)
                                    .and_then(|v| v.as_str())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            Some(Ok(StockChangedEvent {
                                event_id: ID(e.id.clone()),
                                position: e.position,
                                group_id: ID(text("groupId")),
                                operation: text("operation"),
                                sequence: level.sequence,
                                level,
                                created_at: e.created_at,
                            }))
                        }
                        None => None,
                    }
                }
                Ok(_) => None,
            };
            std::future::ready(out)
        }))
    }

    /// The tenant's whole event stream (or the given types / `prefix.*` patterns).
    async fn events(
        &self,
        ctx: &Context<'_>,
        types: Option<Vec<String>>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Event>>> {
        let types = types.unwrap_or_default();
        Ok(live(ctx)?.filter_map(move |item| {
            let out = match item {
                Err(lagged) => Some(Err(slow_consumer(lagged))),
                Ok(e)
                    if types.is_empty()
                        || types.iter().any(|t| events::type_matches(t, &e.event_type)) =>
                {
                    Some(Ok(Event(e)))
                }
                Ok(_) => None,
            };
            std::future::ready(out)
        }))
    }

    /// The purchase order as it is now, then after each of its changes.
    async fn purchase_order_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<PurchaseOrder>>> {
        document_stream(ctx, Kind::PurchaseOrder, id, PurchaseOrder)
    }

    /// The sales order as it is now, then after each of its changes.
    async fn sales_order_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<SalesOrder>>> {
        document_stream(ctx, Kind::SalesOrder, id, SalesOrder)
    }

    /// The transfer as it is now, then after each of its changes.
    async fn transfer_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Transfer>>> {
        document_stream(ctx, Kind::Transfer, id, Transfer)
    }

    /// The return order as it is now, then after each of its changes.
    async fn return_order_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ReturnOrder>>> {
        document_stream(ctx, Kind::Return, id, ReturnOrder)
    }

    /// The job as it is now, then after each of its changes: started, progress (at most every
    /// second), completed, failed or cancelled. The last message is always its latest state.
    async fn job_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<crate::jobs::Job>>> {
        let read = |db: DatabaseConnection, tenant: String, id: String| async move {
            Ok(crate::jobs::get(&db, &tenant, &id)
                .await?
                .map(|row| row.job))
        };
        now_then_changes(ctx, "job", id, read)
    }

    /// The reservation as it is now, then after each of its changes (release, expiry,
    /// conversion).
    async fn reservation_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Reservation>>> {
        document_stream(ctx, Kind::Reservation, id, Reservation)
    }
}
