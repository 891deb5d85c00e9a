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

/// A console session: a short-lived bearer token standing for the key that minted it.
#[derive(SimpleObject)]
pub struct Session {
    /// The session's id (in the audit trail as `api_key:<key>/session:<id>`).
    pub id: String,
    /// The bearer token (a JWT), shown in this answer only.
    pub token: String,
    pub role: crate::auth::Role,
    pub expires_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct CreateSessionInput {
    /// At most the minting key's role; by default the key's own.
    pub role: Option<crate::auth::Role>,
    /// 60 to 43200 seconds (12 hours); by default 3600.
    pub ttl_seconds: Option<i64>,
}

#[derive(SimpleObject)]
pub struct SessionPayload {
    pub session: Option<Session>,
    pub user_errors: Vec<UserError>,
}

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

    /// Mints a console session for the calling key: a JWT to send as `Authorization: Bearer`,
    /// with the key's role or a lower one, ending at its expiry or when the key is revoked.
    async fn create_session(
        &self,
        ctx: &Context<'_>,
        input: CreateSessionInput,
    ) -> async_graphql::Result<SessionPayload> {
        use crate::error::{ErrorCode, internal_error};
        let principal = principal(ctx)?;
        let app = state(ctx)?;
        let rid = crate::auth::request_id(ctx);
        let request = rid.as_str();
        let refuse = |field: &'static str, code: ErrorCode, message: String| async move {
            let data = serde_json::json!({ "outcome": "rejected", "codes": [code.as_str()] });
            super::audit_request(app, principal, "createSession", request, data).await;
            SessionPayload {
                session: None,
                user_errors: vec![UserError::new(code, &["input", field], message)],
            }
        };
        if principal.session.is_some() {
            return Ok(refuse(
                "role",
                ErrorCode::Forbidden,
                "a session cannot mint sessions; use an API key".into(),
            )
            .await);
        }
        let role = input.role.unwrap_or(principal.role);
        if role.rank() > principal.role.rank() {
            return Ok(refuse(
                "role",
                ErrorCode::Forbidden,
                format!(
                    "a {} key mints sessions up to its own role, not {}",
                    principal.role.as_str(),
                    role.as_str()
                ),
            )
            .await);
        }
        let ttl = input
            .ttl_seconds
            .unwrap_or(crate::auth::jwt::DEFAULT_TTL_SECS as i64);
        if !(60..=crate::auth::jwt::MAX_TTL_SECS as i64).contains(&ttl) {
            return Ok(refuse(
                "ttlSeconds",
                ErrorCode::InvalidInput,
                format!("ttlSeconds must be 60 to 43200, got {ttl}"),
            )
            .await);
        }
        let (token, claims) = app
            .sessions
            .mint(&principal.key_id, &principal.tenant_id, role, ttl as u64)
            .map_err(|e| internal_error(&rid, &e))?;
        let expires_at = DateTime::from_timestamp(claims.exp as i64, 0).unwrap_or_default();
        crate::audit::record(
            &app.db,
            principal,
            crate::audit::AuditEntry {
                action: "session.created",
                target_type: "session",
                target_id: &claims.jti,
                request_id: Some(&rid),
                data: serde_json::json!({ "role": role.as_str(), "expiresAt": expires_at }),
            },
        )
        .await
        .map_err(|e| db_error(ctx, e))?;
        Ok(SessionPayload {
            session: Some(Session {
                id: claims.jti,
                token,
                role,
                expires_at,
            }),
            user_errors: Vec::new(),
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
