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

tokio::task_local! {
    /// The idempotency key of the mutation being run (set by the mutation runner), so every
    /// audit record of a keyed request names its key without each change passing it along.
    static IDEMPOTENCY_KEY: Option<String>;
}

/// Runs `work` with `key` as the idempotency key its audit records carry.
pub fn with_idempotency_key<F: std::future::Future>(
    key: Option<String>,
    work: F,
) -> impl std::future::Future<Output = F::Output> {
    IDEMPOTENCY_KEY.scope(key, work)
}

pub async fn record(
    txn: &impl ConnectionTrait,
    principal: &Principal,
    entry: AuditEntry<'_>,
) -> Result<(), DbErr> {
    txn.execute(&insert(principal, entry)).await?;
    Ok(())
}

/// Appends a record for an actor that is not a tenant's key (the command line, the operator).
pub async fn record_as(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    actor: &str,
    entry: AuditEntry<'_>,
) -> Result<(), DbErr> {
    db.execute(&insert_as(tenant_id, actor, entry)).await?;
    Ok(())
}

/// The INSERT for one audit row, to run alone or batched with the change's other rows.
pub fn insert(principal: &Principal, entry: AuditEntry<'_>) -> InsertStatement {
    insert_as(&principal.tenant_id, &principal.actor(), entry)
}

fn insert_as(tenant_id: &str, actor: &str, entry: AuditEntry<'_>) -> InsertStatement {
    let mut data = entry.data;
    if let Some(key) = IDEMPOTENCY_KEY.try_with(|k| k.clone()).ok().flatten()
        && let Some(object) = data.as_object_mut()
    {
        object
            .entry("idempotencyKey")
            .or_insert(serde_json::Value::String(key));
    }
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
            tenant_id.to_owned().into(),
            ids::new_id(ids::AUDIT).into(),
            actor.to_owned().into(),
            entry.action.into(),
            entry.target_type.into(),
            entry.target_id.into(),
            entry.request_id.map(str::to_owned).into(),
            data.into(),
            Utc::now().into(),
        ])
        .to_owned()
}

/// An audit row as a row of a JSON recordset (see [`insert_from_json`]).
#[derive(serde::Serialize)]
pub struct JsonRow<'a> {
    id: String,
    actor: String,
    action: &'a str,
    target_type: &'a str,
    target_id: &'a str,
    request_id: Option<&'a str>,
    data: serde_json::Value,
}

impl<'a> JsonRow<'a> {
    pub fn new(principal: &Principal, entry: AuditEntry<'a>) -> Self {
        Self {
            id: ids::new_id(ids::AUDIT),
            actor: principal.actor(),
            action: entry.action,
            target_type: entry.target_type,
            target_id: entry.target_id,
            request_id: entry.request_id,
            data: entry.data,
        }
    }
}

/// An INSERT of the audit rows in the JSON recordset parameter `rows` ([`JsonRow`]s), for the
/// tenant and time in the parameters `tenant` and `time` (Postgres).
pub fn insert_from_json(rows: &str, tenant: &str, time: &str) -> String {
    format!(
        "INSERT INTO audit_events (tenant_id, id, actor, action, target_type, target_id, \
           request_id, data, created_at) \
         SELECT {tenant}, r.id, r.actor, r.action, r.target_type, r.target_id, r.request_id, \
           r.data, {time} \
         FROM json_to_recordset({rows}::json) AS r(id text, actor text, action text, \
           target_type text, target_id text, request_id text, data json)"
    )
}
