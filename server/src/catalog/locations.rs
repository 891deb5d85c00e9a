//! Locations: warehouses, stores and virtual locations; `allowNegative` lets a location's
//! available quantity go below zero (e.g. a store that sells before the count is in).

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use twh_entity::location;

use super::{MAX_NAME_LEN, not_found, parse_code, parse_text, version_conflict};
use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::error::{DomainError, ErrorCode, UserError};
use crate::{events, ids};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocationKind {
    Warehouse,
    Store,
    Virtual,
}

impl LocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LocationKind::Warehouse => "warehouse",
            LocationKind::Store => "store",
            LocationKind::Virtual => "virtual",
        }
    }

    fn parse(raw: &str) -> Self {
        match raw {
            "store" => LocationKind::Store,
            "virtual" => LocationKind::Virtual,
            _ => LocationKind::Warehouse,
        }
    }
}

#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub id: ID,
    pub code: String,
    pub name: String,
    pub kind: LocationKind,
    /// Whether `available` may go below zero here.
    pub allow_negative: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<location::Model> for Location {
    fn from(m: location::Model) -> Self {
        Self {
            id: ID(m.id),
            code: m.code,
            name: m.name,
            kind: LocationKind::parse(&m.kind),
            allow_negative: m.allow_negative,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct CreateLocationInput {
    pub code: String,
    pub name: String,
    /// Defaults to `WAREHOUSE`.
    pub kind: Option<LocationKind>,
    /// Defaults to false.
    pub allow_negative: Option<bool>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct UpdateLocationInput {
    pub name: Option<String>,
    pub kind: Option<LocationKind>,
    pub allow_negative: Option<bool>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct LocationFilter {
    pub code: Option<String>,
    pub kind: Option<LocationKind>,
}

pub async fn create(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    input: CreateLocationInput,
) -> Result<Location, DomainError> {
    let code =
        parse_code(&input.code, &["input", "code"], "location code").map_err(DomainError::user)?;
    let name = parse_text(&input.name, &["input", "name"], MAX_NAME_LEN, true)
        .map_err(DomainError::user)?;
    let now = Utc::now();
    let model = location::Model {
        tenant_id: principal.tenant_id.clone(),
        id: ids::new_id(ids::LOCATION),
        code,
        name,
        kind: input
            .kind
            .unwrap_or(LocationKind::Warehouse)
            .as_str()
            .to_owned(),
        allow_negative: input.allow_negative.unwrap_or(false),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let inserted = location::Entity::insert(location::ActiveModel::from(model.clone()))
        .on_conflict(
            OnConflict::columns([location::Column::TenantId, location::Column::Code])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    if inserted == 0 {
        return Err(DomainError::user(UserError::new(
            ErrorCode::AlreadyExists,
            &["input", "code"],
            format!("a location with code {:?} already exists", model.code),
        )));
    }
    let location = Location::from(model);
    record_change(
        txn,
        principal,
        request_id,
        events::LOCATION_CREATED,
        "location.create",
        &location,
    )
    .await?;
    Ok(location)
}

async fn record_change(
    txn: &DatabaseTransaction,
    principal: &Principal,
    request_id: &str,
    event_type: &str,
    action: &str,
    location: &Location,
) -> Result<(), DomainError> {
    let data = serde_json::to_value(location).map_err(anyhow::Error::from)?;
    events::record(
        txn,
        &principal.tenant_id,
        event_type,
        "location",
        &location.id,
        data.clone(),
    )
    .await?;
    audit::record(
        txn,
        principal,
        AuditEntry {
            action,
            target_type: "location",
            target_id: &location.id,
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
    input: UpdateLocationInput,
) -> Result<Location, DomainError> {
    let mut update = location::Entity::update_many()
        .col_expr(
            location::Column::Version,
            Expr::col(location::Column::Version).add(1),
        )
        .col_expr(location::Column::UpdatedAt, Expr::value(Utc::now()));
    if let Some(name) = &input.name {
        let name =
            parse_text(name, &["input", "name"], MAX_NAME_LEN, true).map_err(DomainError::user)?;
        update = update.col_expr(location::Column::Name, Expr::value(name));
    }
    if let Some(kind) = input.kind {
        update = update.col_expr(location::Column::Kind, Expr::value(kind.as_str()));
    }
    if let Some(allow) = input.allow_negative {
        update = update.col_expr(location::Column::AllowNegative, Expr::value(allow));
    }
    let updated = update
        .filter(location::Column::TenantId.eq(&principal.tenant_id))
        .filter(location::Column::Id.eq(id))
        .filter(location::Column::Version.eq(expected_version))
        .exec_with_returning(txn)
        .await?;
    let Some(model) = updated.into_iter().next() else {
        return Err(DomainError::user(
            match get(txn, &principal.tenant_id, id).await? {
                Some(current) => version_conflict("location", current.version),
                None => not_found("location"),
            },
        ));
    };
    let location = Location::from(model);
    record_change(
        txn,
        principal,
        request_id,
        events::LOCATION_UPDATED,
        "location.update",
        &location,
    )
    .await?;
    Ok(location)
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    id: &str,
) -> Result<Option<Location>, sea_orm::DbErr> {
    Ok(
        location::Entity::find_by_id((tenant_id.to_owned(), id.to_owned()))
            .one(db)
            .await?
            .map(Location::from),
    )
}

pub async fn get_by_code(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    code: &str,
) -> Result<Option<Location>, sea_orm::DbErr> {
    Ok(location::Entity::find()
        .filter(location::Column::TenantId.eq(tenant_id))
        .filter(location::Column::Code.eq(code))
        .one(db)
        .await?
        .map(Location::from))
}

pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    filter: LocationFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Location>, sea_orm::DbErr> {
    let mut query = location::Entity::find().filter(location::Column::TenantId.eq(tenant_id));
    if let Some(code) = filter.code {
        query = query.filter(location::Column::Code.eq(code));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(location::Column::Kind.eq(kind.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(location::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(location::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?
        .into_iter()
        .map(Location::from)
        .collect())
}
