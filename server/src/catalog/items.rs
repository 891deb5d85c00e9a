//! Items: create, update with `expectedVersion`, get by id or SKU, list with filters.

use async_graphql::{Enum, ID, InputObject, MaybeUndefined, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, SqlErr,
};
use serde::{Deserialize, Serialize};
use twh_entity::item;

use super::{MAX_NAME_LEN, not_found, parse_attributes, parse_code, parse_text, version_conflict};
use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::error::{DomainError, ErrorCode, UserError};
use crate::{events, ids};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemStatus {
    Active,
    Archived,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Active => "active",
            ItemStatus::Archived => "archived",
        }
    }

    fn parse(raw: &str) -> Self {
        if raw == "archived" {
            ItemStatus::Archived
        } else {
            ItemStatus::Active
        }
    }
}

/// A catalog item: one SKU, counted in its base `unit`.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub id: ID,
    pub sku: String,
    pub name: String,
    pub barcode: Option<String>,
    pub unit: String,
    pub attributes: serde_json::Value,
    pub status: ItemStatus,
    /// Increases by one on every change; send it back as `expectedVersion`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<item::Model> for Item {
    fn from(m: item::Model) -> Self {
        Self {
            id: ID(m.id),
            sku: m.sku,
            name: m.name,
            barcode: m.barcode,
            unit: m.unit,
            attributes: m.attributes,
            status: ItemStatus::parse(&m.status),
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct CreateItemInput {
    pub sku: String,
    pub name: String,
    pub barcode: Option<String>,
    /// Base unit of measure; defaults to `each`.
    pub unit: Option<String>,
    /// Free-form JSON object (at most 16 KiB).
    pub attributes: Option<serde_json::Value>,
    pub status: Option<ItemStatus>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct UpdateItemInput {
    pub sku: Option<String>,
    pub name: Option<String>,
    /// `null` clears the barcode.
    pub barcode: MaybeUndefined<String>,
    pub unit: Option<String>,
    pub attributes: Option<serde_json::Value>,
    pub status: Option<ItemStatus>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct ItemFilter {
    pub sku: Option<String>,
    pub skus: Option<Vec<String>>,
    pub status: Option<ItemStatus>,
    /// Case-sensitive substring of the name or SKU.
    pub search: Option<String>,
}

fn parse_barcode(raw: &str) -> Result<String, UserError> {
    parse_code(raw, &["input", "barcode"], "barcode")
}

fn parse_unit(raw: &str) -> Result<String, UserError> {
    parse_code(raw, &["input", "unit"], "unit")
}

pub async fn create(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    input: CreateItemInput,
) -> Result<Item, DomainError> {
    let sku = parse_code(&input.sku, &["input", "sku"], "SKU").map_err(DomainError::user)?;
    let name = parse_text(&input.name, &["input", "name"], MAX_NAME_LEN, true)
        .map_err(DomainError::user)?;
    let barcode = input
        .barcode
        .as_deref()
        .map(parse_barcode)
        .transpose()
        .map_err(DomainError::user)?;
    let unit = parse_unit(input.unit.as_deref().unwrap_or("each")).map_err(DomainError::user)?;
    let attributes = parse_attributes(
        input.attributes.unwrap_or_else(|| serde_json::json!({})),
        &["input", "attributes"],
    )
    .map_err(DomainError::user)?;
    let now = Utc::now();
    let model = item::Model {
        tenant_id: principal.tenant_id.clone(),
        id: ids::new_id(ids::ITEM),
        sku,
        name,
        barcode,
        unit,
        attributes,
        status: input
            .status
            .unwrap_or(ItemStatus::Active)
            .as_str()
            .to_owned(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let active: item::ActiveModel = model.clone().into();
    let inserted = item::Entity::insert(active)
        .on_conflict(
            OnConflict::columns([item::Column::TenantId, item::Column::Sku])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    if inserted == 0 {
        return Err(DomainError::user(UserError::new(
            ErrorCode::AlreadyExists,
            &["input", "sku"],
            format!("an item with SKU {:?} already exists", model.sku),
        )));
    }
    let item = Item::from(model);
    record_change(
        txn,
        principal,
        request_id,
        events::ITEM_CREATED,
        "item.create",
        &item,
    )
    .await?;
    Ok(item)
}

async fn record_change(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    event_type: &str,
    action: &str,
    item: &Item,
) -> Result<(), DomainError> {
    let data = serde_json::to_value(item).map_err(anyhow::Error::from)?;
    events::record(
        txn,
        &principal.tenant_id,
        event_type,
        "item",
        &item.id,
        data.clone(),
    )
    .await?;
    audit::record(
        txn,
        principal,
        AuditEntry {
            action,
            target_type: "item",
            target_id: &item.id,
            request_id: Some(request_id),
            data,
        },
    )
    .await?;
    Ok(())
}

pub async fn update(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    id: &str,
    expected_version: i64,
    input: UpdateItemInput,
) -> Result<Item, DomainError> {
    let mut update = item::Entity::update_many()
        .col_expr(
            item::Column::Version,
            Expr::col(item::Column::Version).add(1),
        )
        .col_expr(item::Column::UpdatedAt, Expr::value(Utc::now()));
    if let Some(sku) = &input.sku {
        let sku = parse_code(sku, &["input", "sku"], "SKU").map_err(DomainError::user)?;
        update = update.col_expr(item::Column::Sku, Expr::value(sku));
    }
    if let Some(name) = &input.name {
        let name =
            parse_text(name, &["input", "name"], MAX_NAME_LEN, true).map_err(DomainError::user)?;
        update = update.col_expr(item::Column::Name, Expr::value(name));
    }
    match &input.barcode {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => {
            update = update.col_expr(item::Column::Barcode, Expr::value(Option::<String>::None));
        }
        MaybeUndefined::Value(barcode) => {
            let barcode = parse_barcode(barcode).map_err(DomainError::user)?;
            update = update.col_expr(item::Column::Barcode, Expr::value(barcode));
        }
    }
    if let Some(unit) = &input.unit {
        let unit = parse_unit(unit).map_err(DomainError::user)?;
        update = update.col_expr(item::Column::Unit, Expr::value(unit));
    }
    if let Some(attributes) = &input.attributes {
        let attributes = parse_attributes(attributes.clone(), &["input", "attributes"])
            .map_err(DomainError::user)?;
        update = update.col_expr(item::Column::Attributes, Expr::value(attributes));
    }
    if let Some(status) = input.status {
        update = update.col_expr(item::Column::Status, Expr::value(status.as_str()));
    }
    let updated = update
        .filter(item::Column::TenantId.eq(&principal.tenant_id))
        .filter(item::Column::Id.eq(id))
        .filter(item::Column::Version.eq(expected_version))
        .exec_with_returning(txn)
        .await
        .map_err(|err| match err.sql_err() {
            // The unique index decides, so two concurrent renames cannot both win.
            Some(SqlErr::UniqueConstraintViolation(_)) => DomainError::user(UserError::new(
                ErrorCode::AlreadyExists,
                &["input", "sku"],
                format!(
                    "another item already has SKU {:?}",
                    input.sku.as_deref().unwrap_or_default().trim()
                ),
            )),
            _ => DomainError::from(err),
        })?;
    let Some(model) = updated.into_iter().next() else {
        return Err(DomainError::user(
            match get(txn, &principal.tenant_id, id).await? {
                Some(current) => version_conflict("item", current.version),
                None => not_found("item"),
            },
        ));
    };
    let item = Item::from(model);
    record_change(
        txn,
        principal,
        request_id,
        events::ITEM_UPDATED,
        "item.update",
        &item,
    )
    .await?;
    Ok(item)
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    id: &str,
) -> Result<Option<Item>, sea_orm::DbErr> {
    Ok(
        item::Entity::find_by_id((tenant_id.to_owned(), id.to_owned()))
            .one(db)
            .await?
            .map(Item::from),
    )
}

pub async fn get_by_sku(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    sku: &str,
) -> Result<Option<Item>, sea_orm::DbErr> {
    Ok(item::Entity::find()
        .filter(item::Column::TenantId.eq(tenant_id))
        .filter(item::Column::Sku.eq(sku))
        .one(db)
        .await?
        .map(Item::from))
}

/// One page of items in id (creation) order after the cursor; fetches `limit + 1` to tell
/// whether another page follows.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    filter: ItemFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Item>, sea_orm::DbErr> {
    let mut query = item::Entity::find().filter(item::Column::TenantId.eq(tenant_id));
    if let Some(sku) = filter.sku {
        query = query.filter(item::Column::Sku.eq(sku));
    }
    if let Some(skus) = filter.skus {
        query = query.filter(item::Column::Sku.is_in(skus));
    }
    if let Some(status) = filter.status {
        query = query.filter(item::Column::Status.eq(status.as_str()));
    }
    if let Some(search) = filter.search.filter(|s| !s.is_empty()) {
        query = query.filter(
            Condition::any()
                .add(item::Column::Name.contains(&search))
                .add(item::Column::Sku.contains(&search)),
        );
    }
    if let Some(after) = after {
        query = query.filter(item::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(item::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?
        .into_iter()
        .map(Item::from)
        .collect())
}
