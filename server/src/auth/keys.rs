//! A tenant's API keys: issued with a role, listed (never the secret), revoked. A revoked key
//! stops working at once on the process that revoked it and, through the `api_key.revoked`
//! event on the bus, within about a second on every other replica (their key caches drop it).

use async_graphql::{ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use twh_entity::{api_key, tenant};

use super::{ApiKeyKind, Principal, Role};
use crate::audit::{self, AuditEntry};
use crate::catalog::{not_found, parse_text};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::events;

pub const API_KEY_CREATED: &str = "api_key.created";
pub const API_KEY_REVOKED: &str = "api_key.revoked";

/// An API key as its tenant sees it: never the secret, only its public prefix.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ID,
    pub name: String,
    pub role: Role,
    /// The key's public beginning (`twh_live_` and its lookup part), to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The whole key (`twh_live_…`), only in the answer to `createApiKey`: it is stored hashed,
    /// and neither an idempotent replay of the call, the event nor the audit log repeats it.
    #[serde(skip)]
    pub secret: Option<String>,
}

impl ApiKey {
    fn from_model(m: api_key::Model, sandbox: bool) -> Self {
        let kind = if sandbox { "twh_test_" } else { "twh_live_" };
        Self {
            id: ID(m.id),
            name: m.name,
            role: Role::parse(&m.role).unwrap_or(Role::Viewer),
            prefix: format!("{kind}{}", m.lookup),
            created_at: m.created_at,
            revoked_at: m.revoked_at,
            secret: None,
        }
    }
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct CreateApiKeyInput {
    pub role: Role,
    /// What the key is for, e.g. "POS integration".
    pub name: String,
}

/// Who may manage keys, and up to which role: a key never issues or revokes one above its own.
fn check_manage(principal: &Principal, role: Role, field: &[&str]) -> Result<(), UserError> {
    if role.rank() > principal.role.rank() {
        return Err(UserError::new(
            ErrorCode::Forbidden,
            field,
            format!(
                "a {} key cannot manage {} keys",
                principal.role.as_str(),
                role.as_str()
            ),
        ));
    }
    Ok(())
}

async fn sandbox(db: &impl ConnectionTrait, tenant_id: &str) -> Result<bool, sea_orm::DbErr> {
    Ok(tenant::Entity::find_by_id(tenant_id.to_owned())
        .one(db)
        .await?
        .is_some_and(|t| t.sandbox))
}

pub async fn create(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    input: CreateApiKeyInput,
) -> Result<ApiKey, DomainError> {
    let name = parse_text(&input.name, &["input", "name"], 200, true).map_err(DomainError::user)?;
    check_manage(principal, input.role, &["input", "role"]).map_err(DomainError::user)?;
    let sandbox = sandbox(txn, &principal.tenant_id).await?;
    let kind = if sandbox {
        ApiKeyKind::Test
    } else {
        ApiKeyKind::Live
    };
    let (id, secret) =
        crate::tenancy::issue_key(txn, &principal.tenant_id, input.role, &name, kind).await?;
    let model = api_key::Entity::find_by_id((principal.tenant_id.clone(), id))
        .one(txn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the new key is not readable"))?;
    let mut key = ApiKey::from_model(model, sandbox);
    record(txn, principal, request_id, API_KEY_CREATED, &key).await?;
    key.secret = Some(secret);
    Ok(key)
}

pub async fn revoke(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    id: &str,
) -> Result<ApiKey, DomainError> {
    let Some(model) = api_key::Entity::find_by_id((principal.tenant_id.clone(), id.to_owned()))
        .one(txn)
        .await?
    else {
        return Err(DomainError::user(not_found("API key")));
    };
    let role = Role::parse(&model.role).unwrap_or(Role::Owner);
    check_manage(principal, role, &["id"]).map_err(DomainError::user)?;
    if model.revoked_at.is_some() {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidTransition,
            &["id"],
            "the key is already revoked",
        )));
    }
    let now = Utc::now();
    let mut updated = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(api_key::Column::TenantId.eq(&principal.tenant_id))
        .filter(api_key::Column::Id.eq(id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec_with_returning(txn)
        .await?;
    let Some(model) = updated.pop() else {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidTransition,
            &["id"],
            "the key is already revoked",
        )));
    };
    let key = ApiKey::from_model(model, sandbox(txn, &principal.tenant_id).await?);
    record(txn, principal, request_id, API_KEY_REVOKED, &key).await?;
    Ok(key)
}

async fn record(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    event_type: &str,
    key: &ApiKey,
) -> Result<(), DomainError> {
    let data = serde_json::to_value(key).map_err(anyhow::Error::from)?;
    events::record(
        txn,
        &principal.tenant_id,
        event_type,
        "api_key",
        &key.id,
        data.clone(),
    )
    .await?;
    audit::record(
        txn,
        principal,
        AuditEntry {
            action: event_type,
            target_type: "api_key",
            target_id: &key.id,
            request_id: Some(request_id),
            data,
        },
    )
    .await?;
    Ok(())
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    id: &str,
) -> Result<Option<ApiKey>, sea_orm::DbErr> {
    let Some(model) = api_key::Entity::find_by_id((tenant_id.to_owned(), id.to_owned()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(ApiKey::from_model(
        model,
        sandbox(db, tenant_id).await?,
    )))
}

/// A page of keys in creation order, `limit + 1` rows.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<ApiKey>, sea_orm::DbErr> {
    let sandbox = sandbox(db, tenant_id).await?;
    let mut query = api_key::Entity::find().filter(api_key::Column::TenantId.eq(tenant_id));
    if let Some(after) = after {
        query = query.filter(api_key::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(api_key::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?
        .into_iter()
        .map(|m| ApiKey::from_model(m, sandbox))
        .collect())
}
