//! What the platform operator does to tenants: create, change plan (with a custom deal's
//! overrides), suspend (every key stops at once, on every replica: the `tenant.suspended`
//! event reaches their key caches through the bus) and resume. Each is audited on the tenant
//! with the actor `platform_operator`.

use async_graphql::{ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use twh_entity::{audit_event, tenant};

use crate::error::{DomainError, ErrorCode, UserError};
use crate::{events, ids};

pub const TENANT_CREATED: &str = "tenant.created";
pub const TENANT_PLAN_CHANGED: &str = "tenant.plan_changed";
pub const TENANT_SUSPENDED: &str = "tenant.suspended";
pub const TENANT_RESUMED: &str = "tenant.resumed";
pub const ACTOR: &str = "platform_operator";

#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[graphql(complex)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: ID,
    pub name: String,
    /// free, developer, startup, growth, scale or enterprise.
    pub plan: String,
    /// A custom deal's limits over the plan's.
    pub plan_overrides: Option<serde_json::Value>,
    /// `active` or `suspended`.
    pub status: String,
    pub sandbox: bool,
    pub created_at: DateTime<Utc>,
}

impl From<tenant::Model> for Tenant {
    fn from(m: tenant::Model) -> Self {
        Self {
            id: ID(m.id),
            name: m.name,
            plan: m.plan,
            plan_overrides: m.plan_overrides.and_then(|o| serde_json::from_str(&o).ok()),
            status: m.status,
            sandbox: m.sandbox,
            created_at: m.created_at,
        }
    }
}

#[derive(InputObject, Clone, Debug)]
pub struct CreateTenantInput {
    pub name: String,
    /// Defaults to free.
    pub plan: Option<String>,
}

#[derive(InputObject, Clone, Debug)]
pub struct UpdateTenantPlanInput {
    pub tenant_id: ID,
    pub plan: String,
    /// A JSON object of limits over the plan's (e.g. `{"callLimit": 5000000}`); null clears.
    pub overrides: Option<serde_json::Value>,
}

fn invalid(field: &[&str], message: impl Into<String>) -> DomainError {
    DomainError::user(UserError::new(ErrorCode::InvalidInput, field, message))
}

fn unknown_tenant() -> DomainError {
    DomainError::user(UserError::new(
        ErrorCode::NotFound,
        &["tenantId"],
        "no tenant has this id",
    ))
}

/// The event on the tenant's own log and the audit row, actor `platform_operator`.
async fn record(
    txn: &DatabaseTransaction,
    request_id: &str,
    event_type: &str,
    tenant: &Tenant,
) -> Result<(), DomainError> {
    let data = serde_json::to_value(tenant).map_err(anyhow::Error::from)?;
    events::record(
        txn,
        &tenant.id,
        event_type,
        "tenant",
        &tenant.id,
        data.clone(),
    )
    .await?;
    audit_event::Entity::insert(audit_event::ActiveModel::from(audit_event::Model {
        tenant_id: tenant.id.to_string(),
        id: ids::new_id(ids::AUDIT),
        actor: ACTOR.into(),
        action: event_type.into(),
        target_type: "tenant".into(),
        target_id: tenant.id.to_string(),
        request_id: Some(request_id.to_owned()),
        data,
        created_at: Utc::now(),
    }))
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Creates a tenant; returns it and its owner key (shown once).
pub async fn create(
    txn: &DatabaseTransaction,
    request_id: &str,
    input: CreateTenantInput,
) -> Result<(Tenant, String), DomainError> {
    let name = crate::catalog::parse_text(&input.name, &["input", "name"], 200, true)
        .map_err(DomainError::user)?;
    let plan = super::parse_plan(input.plan.as_deref().unwrap_or("free"))
        .map_err(|e| invalid(&["input", "plan"], e.to_string()))?;
    let created = super::create(txn, &name, &plan, false)
        .await
        .map_err(DomainError::Internal)?;
    let tenant = get(txn, &created.tenant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the new tenant is not readable"))?;
    record(txn, request_id, TENANT_CREATED, &tenant).await?;
    Ok((tenant, created.api_key))
}

pub async fn update_plan(
    txn: &DatabaseTransaction,
    request_id: &str,
    input: UpdateTenantPlanInput,
) -> Result<Tenant, DomainError> {
    let plan =
        super::parse_plan(&input.plan).map_err(|e| invalid(&["input", "plan"], e.to_string()))?;
    let overrides = match input.overrides {
        None | Some(serde_json::Value::Null) => None,
        Some(value @ serde_json::Value::Object(_)) => {
            super::plans::Overrides::parse(&value)
                .map_err(|e| invalid(&["input", "overrides"], e))?;
            let text = value.to_string();
            if text.len() > 4096 {
                return Err(invalid(
                    &["input", "overrides"],
                    "overrides take at most 4096 bytes",
                ));
            }
            Some(text)
        }
        Some(_) => {
            return Err(invalid(
                &["input", "overrides"],
                "overrides must be a JSON object",
            ));
        }
    };
    let mut updated = tenant::Entity::update_many()
        .col_expr(tenant::Column::Plan, Expr::value(plan))
        .col_expr(tenant::Column::PlanOverrides, Expr::value(overrides))
        .filter(tenant::Column::Id.eq(input.tenant_id.as_str()))
        .exec_with_returning(txn)
        .await?;
    let tenant = Tenant::from(updated.pop().ok_or_else(unknown_tenant)?);
    record(txn, request_id, TENANT_PLAN_CHANGED, &tenant).await?;
    Ok(tenant)
}

/// Suspends (`suspend = true`) or resumes a tenant. Its data stays; its keys stop or resume.
pub async fn set_suspended(
    txn: &DatabaseTransaction,
    request_id: &str,
    tenant_id: &str,
    suspend: bool,
) -> Result<Tenant, DomainError> {
    let (from, to, event) = if suspend {
        ("active", "suspended", TENANT_SUSPENDED)
    } else {
        ("suspended", "active", TENANT_RESUMED)
    };
    let Some(current) = get(txn, tenant_id).await? else {
        return Err(unknown_tenant());
    };
    if current.status != from {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidTransition,
            &["tenantId"],
            format!("the tenant is {}", current.status),
        )));
    }
    let mut updated = tenant::Entity::update_many()
        .col_expr(tenant::Column::Status, Expr::value(to))
        .filter(tenant::Column::Id.eq(tenant_id))
        .filter(tenant::Column::Status.eq(from))
        .exec_with_returning(txn)
        .await?;
    let tenant = Tenant::from(updated.pop().ok_or_else(unknown_tenant)?);
    record(txn, request_id, event, &tenant).await?;
    Ok(tenant)
}

pub async fn get(db: &impl ConnectionTrait, id: &str) -> Result<Option<Tenant>, sea_orm::DbErr> {
    Ok(tenant::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(Tenant::from))
}

/// A page of tenants in creation order, `limit + 1` rows.
pub async fn list(
    db: &impl ConnectionTrait,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Tenant>, sea_orm::DbErr> {
    let mut query = tenant::Entity::find();
    if let Some(after) = after {
        query = query.filter(tenant::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(tenant::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?
        .into_iter()
        .map(Tenant::from)
        .collect())
}

/// What the platform operator watches across tenants: events waiting for the relay, webhook
/// deliveries and jobs waiting for a worker, and the last reconciliation.
#[derive(SimpleObject, Debug)]
pub struct PlatformHealth {
    /// Age in seconds of the oldest event not relayed yet (0 when the relay is caught up).
    pub outbox_lag_seconds: f64,
    /// Events written and not relayed yet.
    pub unrelayed_events: i64,
    /// Webhook deliveries waiting for an attempt (PENDING) or a retry (FAILED).
    pub webhook_backlog: i64,
    /// Webhook deliveries that used up their schedule (DEAD), waiting for a replay.
    pub webhook_dead_letters: i64,
    /// Jobs waiting for a worker (QUEUED).
    pub jobs_queued: i64,
    /// Jobs a worker holds (RUNNING).
    pub jobs_running: i64,
    /// The most recent reconciliation run of any tenant.
    pub last_reconciliation: Option<ReconciliationSummary>,
}

#[derive(SimpleObject, Debug)]
pub struct ReconciliationSummary {
    pub id: String,
    /// The tenant it checked (`*` for a run over every tenant).
    pub tenant_id: String,
    pub levels_checked: i64,
    pub mismatches: i64,
    pub finished_at: DateTime<Utc>,
}

pub async fn health(db: &impl ConnectionTrait) -> Result<PlatformHealth, DbErr> {
    use sea_orm::Statement;
    let backend = db.get_database_backend();
    let counts = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT \
               (SELECT count(*) FROM outbox_events WHERE published_at IS NULL) AS unrelayed, \
               (SELECT count(*) FROM webhook_deliveries WHERE status IN ('PENDING', 'FAILED')) AS backlog, \
               (SELECT count(*) FROM webhook_deliveries WHERE status = 'DEAD') AS dead, \
               (SELECT count(*) FROM jobs WHERE status = 'QUEUED') AS queued, \
               (SELECT count(*) FROM jobs WHERE status = 'RUNNING') AS running",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the platform counts".into()))?;
    let last = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT id, tenant_id, levels_checked, mismatches, finished_at FROM reconciliation_runs \
             ORDER BY finished_at DESC LIMIT 1",
        ))
        .await?;
    let last_reconciliation = match last {
        Some(row) => Some(ReconciliationSummary {
            id: row.try_get("", "id")?,
            tenant_id: row.try_get("", "tenant_id")?,
            levels_checked: row.try_get("", "levels_checked")?,
            mismatches: row.try_get("", "mismatches")?,
            finished_at: row.try_get("", "finished_at")?,
        }),
        None => None,
    };
    Ok(PlatformHealth {
        outbox_lag_seconds: events::relay::lag_seconds(db).await?,
        unrelayed_events: counts.try_get("", "unrelayed")?,
        webhook_backlog: counts.try_get("", "backlog")?,
        webhook_dead_letters: counts.try_get("", "dead")?,
        jobs_queued: counts.try_get("", "queued")?,
        jobs_running: counts.try_get("", "running")?,
        last_reconciliation,
    })
}
