//! GraphQL for the platform operator (`TWH_ADMIN_TOKEN`): tenants, plans, suspension.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object, SimpleObject};
use sea_orm::DatabaseTransaction;

use super::{connection, db_error, page_size, state};
use crate::auth::operator;
use crate::error::{DomainError, UserError, internal_error};
use crate::tenancy::operator::{self as ops, CreateTenantInput, Tenant, UpdateTenantPlanInput};

#[derive(SimpleObject)]
pub struct CreateTenantPayload {
    pub tenant: Option<Tenant>,
    /// The new tenant's owner key, shown this once.
    pub api_key: Option<String>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct TenantPayload {
    pub tenant: Option<Tenant>,
    pub user_errors: Vec<UserError>,
}

/// Runs an operator change in one transaction: committed when it succeeds, else rolled back.
async fn change<T, F, Fut>(
    ctx: &Context<'_>,
    work: F,
) -> async_graphql::Result<(Option<T>, Vec<UserError>)>
where
    F: FnOnce(DatabaseTransaction, String) -> Fut,
    Fut: Future<Output = (DatabaseTransaction, Result<T, DomainError>)>,
{
    operator(ctx)?;
    let app = state(ctx)?;
    let rid = crate::auth::request_id(ctx);
    let write = app.begin_write().await.map_err(|e| db_error(ctx, e))?;
    let (txn, result) = work(write.txn, rid.clone()).await;
    match result {
        Ok(value) => {
            txn.commit().await.map_err(|e| db_error(ctx, e))?;
            app.wake.relay.notify_one();
            Ok((Some(value), Vec::new()))
        }
        Err(err) => {
            txn.rollback().await.map_err(|e| db_error(ctx, e))?;
            match err {
                DomainError::User(errors) => Ok((None, errors)),
                DomainError::Internal(err) => Err(internal_error(&rid, &err)),
            }
        }
    }
}

#[async_graphql::ComplexObject]
impl Tenant {
    /// The tenant's month so far against its plan (platform operator only).
    async fn usage(&self, ctx: &Context<'_>) -> async_graphql::Result<super::usage::Usage> {
        operator(ctx)?;
        super::usage::usage_of(state(ctx)?, &self.id)
            .await
            .map_err(|e| db_error(ctx, e))
    }
}

#[derive(Default)]
pub struct OperatorQuery;

#[Object]
impl OperatorQuery {
    /// Every tenant, in creation order (platform operator only).
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Tenant>> {
        operator(ctx)?;
        let limit = page_size(first)?;
        let rows = ops::list(&state(ctx)?.db, after.as_deref(), limit)
            .await
            .map_err(|e| db_error(ctx, e))?;
        Ok(connection(rows, limit, after.is_some(), |t| t.id.0.clone()))
    }

    /// Outbox lag, webhook and job backlogs and the last reconciliation, across every tenant
    /// (platform operator only).
    async fn platform_health(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<ops::PlatformHealth> {
        operator(ctx)?;
        ops::health(&state(ctx)?.db)
            .await
            .map_err(|e| db_error(ctx, e))
    }
}

#[derive(Default)]
pub struct OperatorMutation;

#[Object]
impl OperatorMutation {
    /// Creates a tenant and its owner key (platform operator only).
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        input: CreateTenantInput,
    ) -> async_graphql::Result<CreateTenantPayload> {
        let (created, user_errors) = change(ctx, |txn, rid| async move {
            let result = ops::create(&txn, &rid, input).await;
            (txn, result)
        })
        .await?;
        let (tenant, api_key) = match created {
            Some((tenant, key)) => (Some(tenant), Some(key)),
            None => (None, None),
        };
        Ok(CreateTenantPayload {
            tenant,
            api_key,
            user_errors,
        })
    }

    /// Moves a tenant to another plan, with a custom deal's overrides (platform operator only).
    async fn update_tenant_plan(
        &self,
        ctx: &Context<'_>,
        input: UpdateTenantPlanInput,
    ) -> async_graphql::Result<TenantPayload> {
        let (tenant, user_errors) = change(ctx, |txn, rid| async move {
            let result = ops::update_plan(&txn, &rid, input).await;
            (txn, result)
        })
        .await?;
        // The new limits apply here at once; other replicas drop their cached plan when the
        // `tenant.plan_changed` event reaches them (within a second).
        if let Some(t) = &tenant {
            state(ctx)?.limiter.evict_plan(&t.id);
        }
        Ok(TenantPayload {
            tenant,
            user_errors,
        })
    }

    /// Suspends a tenant: its keys stop working at once (every replica within a second); its
    /// data stays (platform operator only).
    async fn suspend_tenant(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
    ) -> async_graphql::Result<TenantPayload> {
        let (tenant, user_errors) = change(ctx, |txn, rid| async move {
            let result = ops::set_suspended(&txn, &rid, &tenant_id, true).await;
            (txn, result)
        })
        .await?;
        if let Some(t) = &tenant {
            state(ctx)?.key_cache.evict_tenant(&t.id);
        }
        Ok(TenantPayload {
            tenant,
            user_errors,
        })
    }

    /// Resumes a suspended tenant (platform operator only).
    async fn resume_tenant(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
    ) -> async_graphql::Result<TenantPayload> {
        let (tenant, user_errors) = change(ctx, |txn, rid| async move {
            let result = ops::set_suspended(&txn, &rid, &tenant_id, false).await;
            (txn, result)
        })
        .await?;
        Ok(TenantPayload {
            tenant,
            user_errors,
        })
    }
}
