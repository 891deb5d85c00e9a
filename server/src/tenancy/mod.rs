//! Tenants and their plans, API key issuing, and the sandbox tenant created on first start.

pub mod error_counts;
pub mod limits;
pub mod operator;
pub mod plans;
pub mod sandbox;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, Set};
use serde::Serialize;
use twh_entity::{api_key, tenant};

use crate::auth::{ApiKeyKind, Role, generate_key};
use crate::ids;

/// Plans from the price list; limits are enforced by the metering layer.
pub const PLANS: [&str; 6] = [
    "free",
    "developer",
    "startup",
    "growth",
    "scale",
    "enterprise",
];

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenant {
    pub tenant_id: String,
    pub name: String,
    pub plan: String,
    pub sandbox: bool,
    /// The owner key, shown once.
    pub api_key: String,
    pub api_key_id: String,
}

pub fn parse_plan(raw: &str) -> anyhow::Result<String> {
    let plan = raw.trim().to_ascii_lowercase();
    if PLANS.contains(&plan.as_str()) {
        Ok(plan)
    } else {
        anyhow::bail!("unknown plan {raw:?}; plans are {}", PLANS.join(", "))
    }
}

/// Creates a tenant and its first (owner) API key.
pub async fn create(
    db: &impl ConnectionTrait,
    name: &str,
    plan: &str,
    sandbox: bool,
) -> anyhow::Result<CreatedTenant> {
    let name = crate::catalog::parse_text(name, &["name"], 200, true)
        .map_err(|e| anyhow::anyhow!("a tenant name {}", e.message))?;
    let plan = parse_plan(plan)?;
    let tenant_id = ids::new_id(ids::TENANT);
    let now = Utc::now();
    tenant::Entity::insert(tenant::ActiveModel {
        id: Set(tenant_id.clone()),
        name: Set(name.to_owned()),
        plan: Set(plan.clone()),
        status: Set("active".into()),
        sandbox: Set(sandbox),
        created_at: Set(now),
        plan_overrides: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    let (api_key_id, key) = issue_key(
        db,
        &tenant_id,
        Role::Owner,
        "owner",
        if sandbox {
            ApiKeyKind::Test
        } else {
            ApiKeyKind::Live
        },
    )
    .await?;
    Ok(CreatedTenant {
        tenant_id,
        name: name.to_owned(),
        plan,
        sandbox,
        api_key: key,
        api_key_id,
    })
}

/// Stores a new key's hash and returns the plaintext, which is never stored.
pub async fn issue_key(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    role: Role,
    name: &str,
    kind: ApiKeyKind,
) -> Result<(String, String), DbErr> {
    let key = generate_key(kind);
    let id = ids::new_id(ids::API_KEY);
    api_key::Entity::insert(api_key::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        id: Set(id.clone()),
        lookup: Set(key.lookup),
        key_hash: Set(key.hash),
        role: Set(role.as_str().to_owned()),
        name: Set(name.to_owned()),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok((id, key.plaintext))
}

pub async fn count(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    tenant::Entity::find().count(db).await
}
