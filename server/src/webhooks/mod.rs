//! Webhooks: a tenant's endpoints, the deliveries the relay makes for them, and the
//! dispatcher that sends them (Standard Webhooks signatures, retries on a schedule, dead
//! letters, replay).

pub mod deliveries;
pub mod dispatch;
pub mod signing;
pub mod target;

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use twh_entity::webhook_endpoint;

use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::catalog::{not_found, parse_text, version_conflict};
use crate::error::{DomainError, ErrorCode, UserError};
use crate::{events, ids};

pub const ENDPOINT_PREFIX: &str = "whe";
pub const DELIVERY_PREFIX: &str = "whd";
pub const MAX_EVENT_TYPES: usize = 100;
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Longest overlap a rotation may keep the previous secret signing.
pub const MAX_OVERLAP_SECONDS: i64 = 7 * 24 * 3600;
pub const DEFAULT_OVERLAP_SECONDS: i64 = 24 * 3600;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookEndpointStatus {
    Enabled,
    Disabled,
}

impl WebhookEndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
        }
    }
}

/// A URL that receives a tenant's events, signed with the endpoint's secret.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[graphql(complex)]
pub struct WebhookEndpoint {
    pub id: ID,
    pub url: String,
    pub description: Option<String>,
    /// Event types (or `prefix.*` patterns) sent here; empty means every event.
    pub event_types: Vec<String>,
    pub status: WebhookEndpointStatus,
    /// Why the endpoint was disabled, when it was.
    pub disabled_reason: Option<String>,
    #[graphql(skip)]
    pub secret: String,
    /// Start of the current run of failed attempts; the endpoint is disabled when it lasts
    /// longer than the operator's limit (5 days by default).
    pub failing_since: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[async_graphql::ComplexObject]
impl WebhookEndpoint {
    /// The signing secret (`whsec_…`); verify `webhook-signature` with it. Only roles that may
    /// change data can read it.
    async fn secret(&self, ctx: &async_graphql::Context<'_>) -> Option<String> {
        crate::auth::principal(ctx)
            .ok()
            .filter(|p| p.role.can_write())
            .map(|_| self.secret.clone())
    }
}

impl From<webhook_endpoint::Model> for WebhookEndpoint {
    fn from(m: webhook_endpoint::Model) -> Self {
        Self {
            id: ID(m.id),
            url: m.url,
            description: m.description,
            event_types: serde_json::from_str(&m.event_types).unwrap_or_default(),
            status: if m.status == "DISABLED" {
                WebhookEndpointStatus::Disabled
            } else {
                WebhookEndpointStatus::Enabled
            },
            disabled_reason: m.disabled_reason,
            secret: m.secret,
            failing_since: m.failing_since,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct CreateWebhookEndpointInput {
    /// Where deliveries are POSTed: `https://…` (or `http://…`), a public address.
    pub url: String,
    /// Event types (`stock.changed`) or patterns (`sales_order.*`); empty or absent: every event.
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct UpdateWebhookEndpointInput {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    /// `false` disables the endpoint (deliveries wait), `true` enables it again.
    pub enabled: Option<bool>,
}

fn parse_event_types(types: Option<Vec<String>>) -> Result<Vec<String>, UserError> {
    let types = types.unwrap_or_default();
    let field = &["input", "eventTypes"];
    if types.len() > MAX_EVENT_TYPES {
        return Err(UserError::new(
            ErrorCode::InvalidInput,
            field,
            format!("at most {MAX_EVENT_TYPES} event types"),
        ));
    }
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        let t = t.trim().to_owned();
        let valid = !t.is_empty()
            && t.len() <= 100
            && (t == "*"
                || t.trim_end_matches(".*").split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                }));
        if !valid {
            return Err(UserError::new(
                ErrorCode::InvalidInput,
                field,
                format!(
                    "{t:?} is not an event type: use dotted lowercase names like stock.changed, or a prefix pattern like sales_order.*"
                ),
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

fn parse_url(raw: &str, allow_private: bool) -> Result<String, UserError> {
    target::check_url(raw, allow_private)
        .map(|u| u.to_string())
        .map_err(|message| UserError::new(ErrorCode::InvalidInput, &["input", "url"], message))
}

fn parse_description(raw: Option<&str>) -> Result<Option<String>, UserError> {
    raw.map(|d| parse_text(d, &["input", "description"], MAX_DESCRIPTION_LEN, false))
        .transpose()
        .map(|d| d.filter(|d| !d.is_empty()))
}

/// An update of endpoint rows that moves their version on (every change of an endpoint does).
fn versioned_update(now: DateTime<Utc>) -> sea_orm::UpdateMany<webhook_endpoint::Entity> {
    webhook_endpoint::Entity::update_many()
        .col_expr(
            webhook_endpoint::Column::Version,
            Expr::col(webhook_endpoint::Column::Version).add(1),
        )
        .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(now))
}

/// Whether an endpoint takes an event type.
pub fn wants(event_types: &[String], event_type: &str) -> bool {
    event_types.is_empty()
        || event_types
            .iter()
            .any(|p| events::type_matches(p, event_type))
}

/// The plan's cap on a tenant's endpoints, with the plan named for the message.
pub struct EndpointLimit {
    pub plan: String,
    pub max: u64,
}

pub async fn create(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    allow_private: bool,
    limit: EndpointLimit,
    input: CreateWebhookEndpointInput,
) -> Result<WebhookEndpoint, DomainError> {
    let url = parse_url(&input.url, allow_private).map_err(DomainError::user)?;
    let event_types = parse_event_types(input.event_types).map_err(DomainError::user)?;
    let description = parse_description(input.description.as_deref()).map_err(DomainError::user)?;
    // The tenant's row, locked (Postgres), serialises creations, so two racing requests
    // cannot both take the last slot.
    twh_entity::tenant::Entity::find_by_id(principal.tenant_id.clone())
        .lock_exclusive()
        .one(txn)
        .await?;
    let existing = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(principal.tenant_id.as_str()))
        .count(txn)
        .await?;
    if existing >= limit.max {
        return Err(DomainError::user(UserError::new(
            ErrorCode::LimitExceeded,
            &["input"],
            format!(
                "the {} plan allows {} webhook endpoints and the tenant has {existing} - Hint: delete one, or move to a larger plan",
                limit.plan, limit.max
            ),
        )));
    }
    let now = Utc::now();
    let model = webhook_endpoint::Model {
        tenant_id: principal.tenant_id.clone(),
        id: ids::new_id(ENDPOINT_PREFIX),
        url,
        description,
        event_types: serde_json::to_string(&event_types).map_err(anyhow::Error::from)?,
        status: WebhookEndpointStatus::Enabled.as_str().into(),
        disabled_reason: None,
        secret: signing::new_secret(),
        previous_secret: None,
        previous_secret_until: None,
        failing_since: None,
        lease_owner: None,
        lease_until: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel::from(model.clone()))
        .exec_without_returning(txn)
        .await?;
    let endpoint = WebhookEndpoint::from(model);
    record_change(
        txn,
        &principal.tenant_id,
        Some((principal, request_id)),
        events::WEBHOOK_ENDPOINT_CREATED,
        &endpoint,
    )
    .await?;
    Ok(endpoint)
}

pub async fn update(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    allow_private: bool,
    id: &str,
    expected_version: i64,
    input: UpdateWebhookEndpointInput,
) -> Result<WebhookEndpoint, DomainError> {
    let now = Utc::now();
    let mut update = versioned_update(now);
    if let Some(url) = &input.url {
        let url = parse_url(url, allow_private).map_err(DomainError::user)?;
        update = update.col_expr(webhook_endpoint::Column::Url, Expr::value(url));
    }
    if input.event_types.is_some() {
        let types = parse_event_types(input.event_types.clone()).map_err(DomainError::user)?;
        let types = serde_json::to_string(&types).map_err(anyhow::Error::from)?;
        update = update.col_expr(webhook_endpoint::Column::EventTypes, Expr::value(types));
    }
    if let Some(description) = &input.description {
        let description = parse_description(Some(description)).map_err(DomainError::user)?;
        update = update.col_expr(
            webhook_endpoint::Column::Description,
            Expr::value(description),
        );
    }
    if let Some(enabled) = input.enabled {
        let (status, reason) = if enabled {
            (WebhookEndpointStatus::Enabled, None)
        } else {
            (
                WebhookEndpointStatus::Disabled,
                Some(format!("disabled by {}", principal.actor())),
            )
        };
        update = update
            .col_expr(
                webhook_endpoint::Column::Status,
                Expr::value(status.as_str()),
            )
            .col_expr(
                webhook_endpoint::Column::DisabledReason,
                Expr::value(reason),
            );
        if enabled {
            update = update.col_expr(
                webhook_endpoint::Column::FailingSince,
                Expr::value(Option::<DateTime<Utc>>::None),
            );
        }
    }
    let updated = update
        .filter(webhook_endpoint::Column::TenantId.eq(&principal.tenant_id))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .filter(webhook_endpoint::Column::Version.eq(expected_version))
        .exec_with_returning(txn)
        .await?;
    let Some(model) = updated.into_iter().next() else {
        return Err(DomainError::user(
            match get(txn, &principal.tenant_id, id).await? {
                Some(current) => version_conflict("webhook endpoint", current.version),
                None => not_found("webhook endpoint"),
            },
        ));
    };
    if let Some(enabled) = input.enabled {
        deliveries::pause_or_resume(txn, &principal.tenant_id, id, enabled).await?;
    }
    let endpoint = WebhookEndpoint::from(model);
    record_change(
        txn,
        &principal.tenant_id,
        Some((principal, request_id)),
        events::WEBHOOK_ENDPOINT_UPDATED,
        &endpoint,
    )
    .await?;
    Ok(endpoint)
}

/// Deletes an endpoint with its deliveries and their attempts.
pub async fn delete(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    id: &str,
) -> Result<ID, DomainError> {
    let Some(endpoint) = get(txn, &principal.tenant_id, id).await? else {
        return Err(DomainError::user(not_found("webhook endpoint")));
    };
    deliveries::delete_for_endpoint(txn, &principal.tenant_id, id).await?;
    webhook_endpoint::Entity::delete_many()
        .filter(webhook_endpoint::Column::TenantId.eq(&principal.tenant_id))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .exec(txn)
        .await?;
    record_change(
        txn,
        &principal.tenant_id,
        Some((principal, request_id)),
        events::WEBHOOK_ENDPOINT_DELETED,
        &endpoint,
    )
    .await?;
    Ok(endpoint.id)
}

/// A new secret; the previous one keeps signing (a second signature) for `overlap_seconds`.
pub async fn rotate_secret(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    id: &str,
    overlap_seconds: Option<i64>,
) -> Result<WebhookEndpoint, DomainError> {
    let overlap = overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if !(0..=MAX_OVERLAP_SECONDS).contains(&overlap) {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidInput,
            &["overlapSeconds"],
            format!("overlapSeconds must be between 0 and {MAX_OVERLAP_SECONDS}"),
        )));
    }
    let Some(current) = get(txn, &principal.tenant_id, id).await? else {
        return Err(DomainError::user(not_found("webhook endpoint")));
    };
    let now = Utc::now();
    let updated = versioned_update(now)
        .col_expr(
            webhook_endpoint::Column::Secret,
            Expr::value(signing::new_secret()),
        )
        .col_expr(
            webhook_endpoint::Column::PreviousSecret,
            Expr::value((overlap > 0).then(|| current.secret.clone())),
        )
        .col_expr(
            webhook_endpoint::Column::PreviousSecretUntil,
            Expr::value((overlap > 0).then(|| now + Duration::seconds(overlap))),
        )
        .filter(webhook_endpoint::Column::TenantId.eq(&principal.tenant_id))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .filter(webhook_endpoint::Column::Version.eq(current.version))
        .exec_with_returning(txn)
        .await?;
    let Some(model) = updated.into_iter().next() else {
        return Err(DomainError::user(version_conflict(
            "webhook endpoint",
            current.version,
        )));
    };
    let endpoint = WebhookEndpoint::from(model);
    record_change(
        txn,
        &principal.tenant_id,
        Some((principal, request_id)),
        events::WEBHOOK_ENDPOINT_UPDATED,
        &endpoint,
    )
    .await?;
    Ok(endpoint)
}

/// The event and audit row of an endpoint's change; the secret stays out of both.
async fn record_change(
    txn: &impl ConnectionTrait,
    tenant_id: &str,
    by: Option<(&Principal, &str)>,
    event_type: &str,
    endpoint: &WebhookEndpoint,
) -> Result<(), DomainError> {
    let data = serde_json::json!({
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "eventTypes": endpoint.event_types,
        "status": endpoint.status,
        "disabledReason": endpoint.disabled_reason,
        "version": endpoint.version,
    });
    events::record(
        txn,
        tenant_id,
        event_type,
        "webhook_endpoint",
        &endpoint.id,
        data.clone(),
    )
    .await?;
    if let Some((principal, request_id)) = by {
        audit::record(
            txn,
            principal,
            AuditEntry {
                action: event_type,
                target_type: "webhook_endpoint",
                target_id: &endpoint.id,
                request_id: Some(request_id),
                data,
            },
        )
        .await?;
    }
    Ok(())
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    id: &str,
) -> Result<Option<WebhookEndpoint>, sea_orm::DbErr> {
    Ok(
        webhook_endpoint::Entity::find_by_id((tenant_id.to_owned(), id.to_owned()))
            .one(db)
            .await?
            .map(WebhookEndpoint::from),
    )
}

/// A page of endpoints in creation order, `limit + 1` rows.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<WebhookEndpoint>, sea_orm::DbErr> {
    let mut query =
        webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::TenantId.eq(tenant_id));
    if let Some(after) = after {
        query = query.filter(webhook_endpoint::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(webhook_endpoint::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?
        .into_iter()
        .map(WebhookEndpoint::from)
        .collect())
}

/// Disables an endpoint on the server's own decision (410 Gone, failing too long) and tells
/// the tenant with a `webhook_endpoint.disabled` event. Returns false if it was not enabled.
pub async fn disable_by_server(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    id: &str,
    reason: &str,
) -> Result<bool, DomainError> {
    let updated = versioned_update(Utc::now())
        .col_expr(
            webhook_endpoint::Column::Status,
            Expr::value(WebhookEndpointStatus::Disabled.as_str()),
        )
        .col_expr(
            webhook_endpoint::Column::DisabledReason,
            Expr::value(reason),
        )
        .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .filter(webhook_endpoint::Column::Status.eq(WebhookEndpointStatus::Enabled.as_str()))
        .exec_with_returning(txn)
        .await?;
    let Some(model) = updated.into_iter().next() else {
        return Ok(false);
    };
    deliveries::pause_or_resume(txn, tenant_id, id, false).await?;
    let endpoint = WebhookEndpoint::from(model);
    record_change(
        txn,
        tenant_id,
        None,
        events::WEBHOOK_ENDPOINT_DISABLED,
        &endpoint,
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_filters() {
        assert!(wants(&[], "stock.changed"));
        let types = vec!["sales_order.*".to_owned(), "stock.changed".to_owned()];
        assert!(wants(&types, "sales_order.shipped"));
        assert!(wants(&types, "stock.changed"));
        assert!(!wants(&types, "item.created"));
        assert!(wants(&["*".to_owned()], "item.created"));
    }

    #[test]
    fn event_types_are_validated() {
        assert!(
            parse_event_types(Some(vec!["stock.changed".into(), "sales_order.*".into()])).is_ok()
        );
        assert!(parse_event_types(Some(vec!["Stock Changed".into()])).is_err());
        assert!(parse_event_types(Some(vec!["".into()])).is_err());
        assert!(parse_event_types(Some(vec!["a..b".into()])).is_err());
        assert_eq!(
            parse_event_types(Some(vec!["a.b".into(), "a.b".into()])).unwrap(),
            vec!["a.b".to_owned()]
        );
    }
}
