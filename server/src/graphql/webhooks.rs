//! GraphQL for webhooks: endpoints, deliveries with their attempts, replay.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object, SimpleObject};

use super::{connection, db_error, mutate, page_size, state};
use crate::auth::principal;
use crate::error::UserError;
use crate::webhooks::deliveries::{
    self, ReplayWebhookDeliveriesInput, WebhookDelivery, WebhookDeliveryFilter,
};
use crate::webhooks::{
    self, CreateWebhookEndpointInput, UpdateWebhookEndpointInput, WebhookEndpoint,
};

#[derive(SimpleObject)]
pub struct WebhookEndpointPayload {
    pub endpoint: Option<WebhookEndpoint>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct DeleteWebhookEndpointPayload {
    pub deleted_id: Option<ID>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct WebhookDeliveryPayload {
    pub delivery: Option<WebhookDelivery>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ReplayWebhookDeliveriesPayload {
    /// How many deliveries were put back to PENDING (with the same `webhook-id`).
    pub replayed_count: i64,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    async fn webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<WebhookEndpoint>> {
        let tenant = &principal(ctx)?.tenant_id;
        webhooks::get(&state(ctx)?.db, tenant, &id)
            .await
            .map_err(|e| db_error(ctx, e))
    }

    /// The tenant's endpoints in creation order.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, WebhookEndpoint>> {
        let tenant = &principal(ctx)?.tenant_id;
        let limit = page_size(first)?;
        let rows = webhooks::list(&state(ctx)?.db, tenant, after.as_deref(), limit)
            .await
            .map_err(|e| db_error(ctx, e))?;
        Ok(connection(rows, limit, after.is_some(), |e| e.id.0.clone()))
    }

    /// One delivery with every attempt.
    async fn webhook_delivery(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<WebhookDelivery>> {
        let tenant = &principal(ctx)?.tenant_id;
        deliveries::get(&state(ctx)?.db, tenant, &id)
            .await
            .map_err(|e| db_error(ctx, e))
    }

    /// Deliveries, newest first, each with its attempts.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        filter: Option<WebhookDeliveryFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, WebhookDelivery>> {
        let tenant = &principal(ctx)?.tenant_id;
        let limit = page_size(first)?;
        let rows = deliveries::list(
            &state(ctx)?.db,
            tenant,
            &filter.unwrap_or_default(),
            after.as_deref(),
            limit,
        )
        .await
        .map_err(|e| db_error(ctx, e))?;
        Ok(connection(rows, limit, after.is_some(), |d| d.id.0.clone()))
    }
}

#[derive(Default)]
pub struct WebhooksMutation;

#[Object]
impl WebhooksMutation {
    /// Registers a URL for the tenant's events; the answer carries the signing secret.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<WebhookEndpointPayload> {
        let app = state(ctx)?;
        let allow = app.config.webhooks.allow_private;
        let tenant_id = &principal(ctx)?.tenant_id;
        let limits = app
            .limiter
            .limits(&app.background_db, tenant_id)
            .await
            .map_err(|e| db_error(ctx, e))?;
        let limit = webhooks::EndpointLimit {
            plan: limits.plan.clone(),
            max: limits.webhook_endpoints,
        };
        let (endpoint, user_errors) = mutate(
            ctx,
            "createWebhookEndpoint",
            idempotency_key,
            input,
            |txn, p, rid, input| async move {
                let result = webhooks::create(&txn, &p, &rid, allow, limit, input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(WebhookEndpointPayload {
            endpoint,
            user_errors,
        })
    }

    /// Changes an endpoint if its version is still `expectedVersion`; `enabled: false`
    /// disables it (its deliveries wait), `enabled: true` resumes them.
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i64,
        input: UpdateWebhookEndpointInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<WebhookEndpointPayload> {
        let allow = state(ctx)?.config.webhooks.allow_private;
        let args = (id, expected_version, input);
        let (endpoint, user_errors) = mutate(
            ctx,
            "updateWebhookEndpoint",
            idempotency_key,
            args,
            |txn, p, rid, (id, version, input)| async move {
                let result = webhooks::update(&txn, &p, &rid, allow, &id, version, input).await;
                (txn, result)
            },
        )
        .await?;
        if endpoint.is_some() {
            state(ctx)?.wake.dispatcher.notify_one();
        }
        Ok(WebhookEndpointPayload {
            endpoint,
            user_errors,
        })
    }

    /// Deletes an endpoint with its deliveries.
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<DeleteWebhookEndpointPayload> {
        let (deleted_id, user_errors) = mutate(
            ctx,
            "deleteWebhookEndpoint",
            idempotency_key,
            id,
            |txn, p, rid, id| async move {
                let result = webhooks::delete(&txn, &p, &rid, &id).await;
                (txn, result)
            },
        )
        .await?;
        Ok(DeleteWebhookEndpointPayload {
            deleted_id,
            user_errors,
        })
    }

    /// Gives the endpoint a new secret. For `overlapSeconds` (default 86400) deliveries carry
    /// two signatures, the new secret's and the old one's, so receivers can switch without a gap.
    async fn rotate_webhook_endpoint_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
        overlap_seconds: Option<i64>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<WebhookEndpointPayload> {
        let (endpoint, user_errors) = mutate(
            ctx,
            "rotateWebhookEndpointSecret",
            idempotency_key,
            (id, overlap_seconds),
            |txn, p, rid, (id, overlap)| async move {
                let result = webhooks::rotate_secret(&txn, &p, &rid, &id, overlap).await;
                (txn, result)
            },
        )
        .await?;
        Ok(WebhookEndpointPayload {
            endpoint,
            user_errors,
        })
    }

    /// Sends a `webhook.test` event to the endpoint now; follow it with `webhookDelivery`.
    async fn send_test_webhook(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<WebhookDeliveryPayload> {
        let (delivery, user_errors) = mutate(
            ctx,
            "sendTestWebhook",
            idempotency_key,
            endpoint_id,
            |txn, p, _rid, id| async move {
                let result = deliveries::create_test(&txn, &p.tenant_id, &id).await;
                (txn, result)
            },
        )
        .await?;
        if delivery.is_some() {
            state(ctx)?.wake.dispatcher.notify_one();
        }
        Ok(WebhookDeliveryPayload {
            delivery,
            user_errors,
        })
    }

    /// Sends deliveries again from the start of the retry schedule, with the same
    /// `webhook-id`: given ones, or an endpoint's (by default its DEAD ones, optionally those
    /// created between `since` and `until`).
    async fn replay_webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        input: ReplayWebhookDeliveriesInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ReplayWebhookDeliveriesPayload> {
        let (count, user_errors) = mutate(
            ctx,
            "replayWebhookDeliveries",
            idempotency_key,
            input,
            |txn, p, _rid, input| async move {
                let result = deliveries::replay(&txn, &p.tenant_id, input)
                    .await
                    .map(|n| n as i64);
                (txn, result)
            },
        )
        .await?;
        if count.is_some_and(|n| n > 0) {
            state(ctx)?.wake.dispatcher.notify_one();
        }
        Ok(ReplayWebhookDeliveriesPayload {
            replayed_count: count.unwrap_or(0),
            user_errors,
        })
    }
}
