//! The audit trail: who changed what, when and through which request, written in the same
//! transaction as the change.

use chrono::Utc;
use sea_orm::sea_query::{InsertStatement, Query};
use sea_orm::{ConnectionTrait, DbErr};

use crate::auth::Principal;
use crate::ids;

pub struct AuditEntry<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub request_id: Option<&'a str>,
    pub data: serde_json::Value,
}

pub async fn record(
    txn: &impl ConnectionTrait,
    principal: &Principal,
    entry: AuditEntry<'_>,
) -> Result<(), DbErr> {
    txn.execute(&insert(principal, entry)).await?;
    Ok(())
}

/// The INSERT for one audit row, to run alone or batched with the change's other rows.
pub fn insert(principal: &Principal, entry: AuditEntry<'_>) -> InsertStatement {
    Query::insert()
        .into_table("audit_events")
        .columns([
            "tenant_id",
            "id",
            "actor",
            "action",
            "target_type",
            "target_id",
            "request_id",
            "data",
            "created_at",
        ])
        .values_panic([
            principal.tenant_id.clone().into(),
            ids::new_id(ids::AUDIT).into(),
            principal.actor().into(),
            entry.action.into(),
            entry.target_type.into(),
            entry.target_id.into(),
            entry.request_id.map(str::to_owned).into(),
            entry.data.into(),
            Utc::now().into(),
        ])
        .to_owned()
}
