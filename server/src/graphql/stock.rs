//! GraphQL for the ledger: levels, movements, and the adjust/move/set mutations.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object, SimpleObject};

use super::{connection, db_error, mutate, mutate_together, page_size, state};
use crate::auth::principal;
use crate::error::UserError;
use crate::idempotency::Together;
use crate::ledger::query::{self, MovementFilter, StockLevelFilter};
use crate::ledger::write::{
    self, AdjustStockInput, MoveStockInput, SetStockInput, StockChange, together,
};
use crate::ledger::{Movement, StockLevel};

/// The result of `adjustStock`, `moveStock` and `setStock`.
#[derive(SimpleObject, Default)]
pub struct StockChangePayload {
    /// Shared by every movement of this mutation.
    pub group_id: Option<ID>,
    pub movements: Vec<Movement>,
    /// The resulting level of every (item, location) touched.
    pub levels: Vec<StockLevel>,
    pub user_errors: Vec<UserError>,
}

impl StockChangePayload {
    fn from_parts(change: Option<StockChange>, user_errors: Vec<UserError>) -> Self {
        match change {
            Some(c) => Self {
                group_id: Some(c.group_id),
                movements: c.movements,
                levels: c.levels,
                user_errors,
            },
            None => Self {
                user_errors,
                ..Self::default()
            },
        }
    }
}

#[derive(Default)]
pub struct StockQuery;

#[Object]
impl StockQuery {
    /// The level of one SKU at one location; all zeros if it never moved, null if either is unknown.
    async fn stock_level(
        &self,
        ctx: &Context<'_>,
        sku: String,
        location_code: String,
    ) -> async_graphql::Result<Option<StockLevel>> {
        let tenant = &principal(ctx)?.tenant_id;
        query::level(&state(ctx)?.reads, tenant, &sku, &location_code)
            .await
            .map_err(|e| db_error(ctx, e))
    }

    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn stock_levels(
        &self,
        ctx: &Context<'_>,
        filter: Option<StockLevelFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, StockLevel>> {
        let tenant = &principal(ctx)?.tenant_id;
        let limit = page_size(first)?;
        let rows = query::levels(
            &state(ctx)?.reads,
            tenant,
            filter.unwrap_or_default(),
            after.as_deref(),
            limit,
        )
        .await
        .map_err(|e| db_error(ctx, e))?;
        Ok(connection(
            rows,
            limit,
            after.is_some(),
            query::level_cursor,
        ))
    }

    /// Ledger entries in the order they were recorded.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn movements(
        &self,
        ctx: &Context<'_>,
        filter: Option<MovementFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Movement>> {
        let tenant = &principal(ctx)?.tenant_id;
        let limit = page_size(first)?;
        let rows = query::movements(
            &state(ctx)?.reads,
            tenant,
            filter.unwrap_or_default(),
            after.as_deref(),
            limit,
        )
        .await
        .map_err(|e| db_error(ctx, e))?;
        Ok(connection(rows, limit, after.is_some(), |m| m.id.0.clone()))
    }
}

#[derive(Default)]
pub struct StockMutation;

#[Object]
impl StockMutation {
    /// Adds or removes quantities (up to 250 changes, applied atomically).
    async fn adjust_stock(
        &self,
        ctx: &Context<'_>,
        input: AdjustStockInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<StockChangePayload> {
        let key = idempotency_key.clone();
        let (change, errors) = mutate_together(
            ctx,
            together::OPERATION,
            idempotency_key,
            input,
            |parts| {
                let adjustment = together::Adjustment::of(
                    parts.principal.clone(),
                    parts.request_id.to_owned(),
                    parts.key.map(str::to_owned),
                    parts.fingerprint.to_owned(),
                    parts.input,
                )?;
                Some(Together {
                    adjustment,
                    answer: std::convert::identity,
                })
            },
            |txn, p, rid, input| async move {
                let cx = write::Context {
                    principal: &p,
                    request_id: &rid,
                    idempotency_key: key.as_deref(),
                    audited_by_document: false,
                    answers_with_change: true,
                    deferred: None,
                    operation: "stock.adjust",
                };
                let result = write::adjust(&txn, &cx, &input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(StockChangePayload::from_parts(change, errors))
    }

    /// Moves quantities between states and/or locations.
    async fn move_stock(
        &self,
        ctx: &Context<'_>,
        input: MoveStockInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<StockChangePayload> {
        let key = idempotency_key.clone();
        let (change, errors) = mutate(
            ctx,
            "moveStock",
            idempotency_key,
            input,
            |txn, p, rid, input| async move {
                let cx = write::Context {
                    principal: &p,
                    request_id: &rid,
                    idempotency_key: key.as_deref(),
                    audited_by_document: false,
                    answers_with_change: true,
                    deferred: None,
                    operation: "stock.move",
                };
                let result = write::move_stock(&txn, &cx, &input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(StockChangePayload::from_parts(change, errors))
    }

    /// Sets absolute quantities (cycle counts); the ledger records the difference.
    async fn set_stock(
        &self,
        ctx: &Context<'_>,
        input: SetStockInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<StockChangePayload> {
        let key = idempotency_key.clone();
        let (change, errors) = mutate(
            ctx,
            "setStock",
            idempotency_key,
            input,
            |txn, p, rid, input| async move {
                let cx = write::Context {
                    principal: &p,
                    request_id: &rid,
                    idempotency_key: key.as_deref(),
                    audited_by_document: false,
                    answers_with_change: true,
                    deferred: None,
                    operation: "stock.set",
                };
                let result = write::set(&txn, &cx, &input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(StockChangePayload::from_parts(change, errors))
    }
}
