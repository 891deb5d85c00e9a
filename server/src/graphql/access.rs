//! GraphQL for a tenant's access: its API keys and its audit log. Who may call each field is
//! the guard table's business (`auth::guards`: developers for keys, admins for the audit log).

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use twh_entity::audit_event;

use super::{connection, db_error, mutate, page_size, state};
use crate::auth::keys::{self, ApiKey, CreateApiKeyInput};
use crate::auth::principal;
use crate::error::UserError;

#[derive(SimpleObject)]
pub struct ApiKeyPayload {
    pub api_key: Option<ApiKey>,
    pub user_errors: Vec<UserError>,
}

/// One entry of the append-only audit log.
#[derive(SimpleObject, Clone)]
pub struct AuditEvent {
    pub id: ID,
    /// Who: `api_key:<id>` (or the operator).
    pub actor: String,
    /// What: the operation, e.g. `stock.adjust`, `createSalesOrder`, `api_key.revoked`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub request_id: Option<String>,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<audit_event::Model> for AuditEvent {
    fn from(m: audit_event::Model) -> Self {
        Self {
            id: ID(m.id),
            actor: m.actor,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            request_id: m.request_id,
            data: m.data,
            created_at: m.created_at,
        }
    }
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct AuditEventFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct AccessQuery;

#[Object]
impl AccessQuery {
    /// One of the tenant's API keys (never its secret).
    async fn api_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<ApiKey>> {
        let principal = principal(ctx)?;
        keys::get(&state(ctx)?.db, &principal.tenant_id, &id)
            .await
            .map_err(|e| db_error(ctx, e))
    }

    /// The tenant's API keys in creation order, revoked ones included.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, ApiKey>> {
        let principal = principal(ctx)?;
        let limit = page_size(first)?;
        let rows = keys::list(
            &state(ctx)?.db,
            &principal.tenant_id,
            after.as_deref(),
            limit,
        )
        .await
        .map_err(|e| db_error(ctx, e))?;
        Ok(connection(rows, limit, after.is_some(), |k| k.id.0.clone()))
    }

    /// The tenant's audit log, newest first: who changed what, when, from which request.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, AuditEvent>> {
        let principal = principal(ctx)?;
        let limit = page_size(first)?;
        let filter = filter.unwrap_or_default();
        let mut query = audit_event::Entity::find()
            .filter(audit_event::Column::TenantId.eq(&principal.tenant_id));
        if let Some(action) = &filter.action {
            query = query.filter(audit_event::Column::Action.eq(action.as_str()));
        }
        if let Some(actor) = &filter.actor {
            query = query.filter(audit_event::Column::Actor.eq(actor.as_str()));
        }
        if let Some(t) = &filter.target_type {
            query = query.filter(audit_event::Column::TargetType.eq(t.as_str()));
        }
        if let Some(t) = &filter.target_id {
            query = query.filter(audit_event::Column::TargetId.eq(t.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_event::Column::CreatedAt.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_event::Column::CreatedAt.lt(until));
        }
        if let Some(after) = &after {
            query = query.filter(audit_event::Column::Id.lt(after.as_str()));
        }
        let rows = query
            .order_by_desc(audit_event::Column::Id)
            .limit(limit + 1)
            .all(&state(ctx)?.db)
            .await
            .map_err(|e| db_error(ctx, e))?
            .into_iter()
            .map(AuditEvent::from)
            .collect();
        Ok(connection(rows, limit, after.is_some(), |a| a.id.0.clone()))
    }
}

#[derive(Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// Issues a key with a role no higher than the caller's; the answer carries the secret,
    /// which is never shown again.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ApiKeyPayload> {
        let (api_key, user_errors) = mutate(
            ctx,
            "createApiKey",
            idempotency_key,
            input,
            |txn, p, rid, input| async move {
                let result = keys::create(&txn, &p, &rid, input).await;
                (txn, result)
            },
        )
        .await?;
        Ok(ApiKeyPayload {
            api_key,
            user_errors,
        })
    }

    /// Revokes a key: it stops working at once here and within a second on every replica.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ApiKeyPayload> {
        let (api_key, user_errors) = mutate(
            ctx,
            "revokeApiKey",
            idempotency_key,
            id,
            |txn, p, rid, id| async move {
                let result = keys::revoke(&txn, &p, &rid, &id).await;
                (txn, result)
            },
        )
        .await?;
        if let Some(key) = &api_key {
            state(ctx)?.key_cache.evict_key(&key.id);
        }
        Ok(ApiKeyPayload {
            api_key,
            user_errors,
        })
    }
}
