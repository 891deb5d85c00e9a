//! GraphQL for the catalog: items and locations.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object, SimpleObject};

use super::{connection, db_error, mutate, page_size, state};
use crate::auth::principal;
use crate::catalog::items::{self, CreateItemInput, Item, ItemFilter, UpdateItemInput};
use crate::catalog::locations::{
    self, CreateLocationInput, Location, LocationFilter, UpdateLocationInput,
};
use crate::error::{ErrorCode, UserError, request_error};

#[derive(SimpleObject)]
pub struct ItemPayload {
    pub item: Option<Item>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct LocationPayload {
    pub location: Option<Location>,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// One item by id or by SKU (give exactly one).
    async fn item(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        sku: Option<String>,
    ) -> async_graphql::Result<Option<Item>> {
        let tenant = &principal(ctx)?.tenant_id;
        let db = &state(ctx)?.reads;
        match (id, sku) {
            (Some(id), None) => items::get(db, tenant, &id)
                .await
                .map_err(|e| db_error(ctx, e)),
            (None, Some(sku)) => items::get_by_sku(db, tenant, &sku)
                .await
                .map_err(|e| db_error(ctx, e)),
            _ => Err(request_error(
                ErrorCode::InvalidInput,
                "give exactly one of id and sku",
            )),
        }
    }

    /// Items in creation order.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn items(
        &self,
        ctx: &Context<'_>,
        filter: Option<ItemFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Item>> {
        let tenant = &principal(ctx)?.tenant_id;
        let limit = page_size(first)?;
        let rows = items::list(
            &state(ctx)?.reads,
            tenant,
            filter.unwrap_or_default(),
            after.as_deref(),
            limit,
        )
        .await
        .map_err(|e| db_error(ctx, e))?;
        Ok(connection(rows, limit, after.is_some(), |i| i.id.0.clone()))
    }

    /// One location by id or by code (give exactly one).
    async fn location(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        code: Option<String>,
    ) -> async_graphql::Result<Option<Location>> {
        let tenant = &principal(ctx)?.tenant_id;
        let db = &state(ctx)?.reads;
        match (id, code) {
            (Some(id), None) => locations::get(db, tenant, &id)
                .await
                .map_err(|e| db_error(ctx, e)),
            (None, Some(code)) => locations::get_by_code(db, tenant, &code)
                .await
                .map_err(|e| db_error(ctx, e)),
            _ => Err(request_error(
                ErrorCode::InvalidInput,
                "give exactly one of id and code",
            )),
        }
    }

    /// Locations in creation order.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn locations(
        &self,
        ctx: &Context<'_>,
        filter: Option<LocationFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Location>> {
        let tenant = &principal(ctx)?.tenant_id;
        let limit = page_size(first)?;
        let rows = locations::list(
            &state(ctx)?.reads,
            tenant,
            filter.unwrap_or_default(),
            after.as_deref(),
            limit,
        )
        .await
        .map_err(|e| db_error(ctx, e))?;
        Ok(connection(rows, limit, after.is_some(), |l| l.id.0.clone()))
    }
}

#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Creates an item; the SKU must be unused in the tenant.
    async fn create_item(
        &self,
        ctx: &Context<'_>,
        input: CreateItemInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ItemPayload> {
        let (item, user_errors) = mutate(
            ctx,
            "createItem",
            idempotency_key,
            input,
            |txn, p, rid, input| async move {
                let result = items::create(&txn, &p, &rid, input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(ItemPayload { item, user_errors })
    }

    /// Updates an item if its version is still `expectedVersion`.
    async fn update_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i64,
        input: UpdateItemInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ItemPayload> {
        let args = (id, expected_version, input);
        let (item, user_errors) = mutate(
            ctx,
            "updateItem",
            idempotency_key,
            args,
            |txn, p, rid, (id, version, input)| async move {
                let result = items::update(&txn, &p, &rid, &id, version, input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(ItemPayload { item, user_errors })
    }

    /// Creates a location; the code must be unused in the tenant.
    async fn create_location(
        &self,
        ctx: &Context<'_>,
        input: CreateLocationInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<LocationPayload> {
        let (location, user_errors) = mutate(
            ctx,
            "createLocation",
            idempotency_key,
            input,
            |txn, p, rid, input| async move {
                let result = locations::create(&txn, &p, &rid, input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(LocationPayload {
            location,
            user_errors,
        })
    }

    /// Updates a location if its version is still `expectedVersion`.
    async fn update_location(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i64,
        input: UpdateLocationInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<LocationPayload> {
        let args = (id, expected_version, input);
        let (location, user_errors) = mutate(
            ctx,
            "updateLocation",
            idempotency_key,
            args,
            |txn, p, rid, (id, version, input)| async move {
                let result = locations::update(&txn, &p, &rid, &id, version, input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(LocationPayload {
            location,
            user_errors,
        })
    }
}
