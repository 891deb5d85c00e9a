//! Reads of the ledger: one level, levels and movements as cursor-paginated lists.

use std::collections::{HashMap, HashSet};

use async_graphql::{ID, InputObject};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use twh_entity::{item, location, movement, stock_level};

use super::{Counterparty, Movement, MovementReason, QuantityState, StockLevel};

#[derive(InputObject, Clone, Debug, Default)]
pub struct StockLevelFilter {
    pub sku: Option<String>,
    pub location_code: Option<String>,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct MovementFilter {
    pub sku: Option<String>,
    pub location_code: Option<String>,
    pub state: Option<QuantityState>,
    pub reason: Option<MovementReason>,
    pub group_id: Option<ID>,
    /// Movements a document made, e.g. `twh://purchase-orders/po_…`.
    pub reference_document_uri: Option<String>,
    /// Recorded at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before this instant.
    pub until: Option<DateTime<Utc>>,
}

async fn item_id(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    sku: &str,
) -> Result<Option<String>, DbErr> {
    Ok(item::Entity::find()
        .filter(item::Column::TenantId.eq(tenant_id))
        .filter(item::Column::Sku.eq(sku))
        .one(db)
        .await?
        .map(|m| m.id))
}

async fn location_id(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    code: &str,
) -> Result<Option<String>, DbErr> {
    Ok(location::Entity::find()
        .filter(location::Column::TenantId.eq(tenant_id))
        .filter(location::Column::Code.eq(code))
        .one(db)
        .await?
        .map(|m| m.id))
}

/// SKUs and location codes for the ids a page mentions, in two queries.
struct Names {
    skus: HashMap<String, String>,
    codes: HashMap<String, String>,
}

impl Names {
    async fn load(
        db: &impl ConnectionTrait,
        tenant_id: &str,
        item_ids: HashSet<String>,
        location_ids: HashSet<String>,
    ) -> Result<Self, DbErr> {
        let skus = if item_ids.is_empty() {
            HashMap::new()
        } else {
            item::Entity::find()
                .filter(item::Column::TenantId.eq(tenant_id))
                .filter(item::Column::Id.is_in(item_ids))
                .all(db)
                .await?
                .into_iter()
                .map(|m| (m.id, m.sku))
                .collect()
        };
        let codes = if location_ids.is_empty() {
            HashMap::new()
        } else {
            location::Entity::find()
                .filter(location::Column::TenantId.eq(tenant_id))
                .filter(location::Column::Id.is_in(location_ids))
                .all(db)
                .await?
                .into_iter()
                .map(|m| (m.id, m.code))
                .collect()
        };
        Ok(Self { skus, codes })
    }

    fn sku(&self, id: &str) -> String {
        self.skus.get(id).cloned().unwrap_or_default()
    }

    fn code(&self, id: &str) -> String {
        self.codes.get(id).cloned().unwrap_or_default()
    }
}

/// The level of `sku` at `location_code`: zeros if it never moved, `None` if either is unknown.
pub async fn level(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    sku: &str,
    location_code: &str,
) -> Result<Option<StockLevel>, DbErr> {
    let (Some(item_id), Some(location_id)) = (
        item_id(db, tenant_id, sku).await?,
        location_id(db, tenant_id, location_code).await?,
    ) else {
        return Ok(None);
    };
    let row = stock_level::Entity::find_by_id((
        tenant_id.to_owned(),
        item_id.clone(),
        location_id.clone(),
    ))
    .one(db)
    .await?;
    Ok(Some(match row {
        Some(level) => StockLevel::from_model(&level, sku, location_code),
        None => StockLevel::empty(&item_id, sku, &location_id, location_code),
    }))
}

/// Cursor of a level: `item_id/location_id`, the order levels are listed in.
pub fn level_cursor(level: &StockLevel) -> String {
    format!("{}/{}", level.item_id.0, level.location_id.0)
}

pub async fn levels(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    filter: StockLevelFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<StockLevel>, DbErr> {
    let mut query = stock_level::Entity::find().filter(stock_level::Column::TenantId.eq(tenant_id));
    if let Some(sku) = &filter.sku {
        let Some(id) = item_id(db, tenant_id, sku).await? else {
            return Ok(Vec::new());
        };
        query = query.filter(stock_level::Column::ItemId.eq(id));
    }
    if let Some(code) = &filter.location_code {
        let Some(id) = location_id(db, tenant_id, code).await? else {
            return Ok(Vec::new());
        };
        query = query.filter(stock_level::Column::LocationId.eq(id));
    }
    if let Some((item, loc)) = after.and_then(|a| a.split_once('/')) {
        query = query.filter(
            Condition::any()
                .add(Expr::col(stock_level::Column::ItemId).gt(item))
                .add(
                    Condition::all()
                        .add(Expr::col(stock_level::Column::ItemId).eq(item))
                        .add(Expr::col(stock_level::Column::LocationId).gt(loc)),
                ),
        );
    }
    let rows = query
        .order_by_asc(stock_level::Column::ItemId)
        .order_by_asc(stock_level::Column::LocationId)
        .limit(limit + 1)
        .all(db)
        .await?;
    let names = Names::load(
        db,
        tenant_id,
        rows.iter().map(|r| r.item_id.clone()).collect(),
        rows.iter().map(|r| r.location_id.clone()).collect(),
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| StockLevel::from_model(r, &names.sku(&r.item_id), &names.code(&r.location_id)))
        .collect())
}

pub async fn movements(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    filter: MovementFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Movement>, DbErr> {
    let mut query = movement::Entity::find().filter(movement::Column::TenantId.eq(tenant_id));
    if let Some(sku) = &filter.sku {
        let Some(id) = item_id(db, tenant_id, sku).await? else {
            return Ok(Vec::new());
        };
        query = query.filter(movement::Column::ItemId.eq(id));
    }
    if let Some(code) = &filter.location_code {
        let Some(id) = location_id(db, tenant_id, code).await? else {
            return Ok(Vec::new());
        };
        query = query.filter(movement::Column::LocationId.eq(id));
    }
    if let Some(state) = filter.state {
        query = query.filter(movement::Column::State.eq(state.column()));
    }
    if let Some(reason) = filter.reason {
        query = query.filter(movement::Column::Reason.eq(reason.as_str()));
    }
    if let Some(group) = filter.group_id {
        query = query.filter(movement::Column::GroupId.eq(group.0));
    }
    if let Some(uri) = filter.reference_document_uri {
        query = query.filter(movement::Column::ReferenceDocumentUri.eq(uri));
    }
    if let Some(since) = filter.since {
        query = query.filter(movement::Column::RecordedAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(movement::Column::RecordedAt.lt(until));
    }
    if let Some(after) = after {
        query = query.filter(movement::Column::Id.gt(after));
    }
    let rows = query
        .order_by_asc(movement::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    hydrate(db, tenant_id, rows).await
}

/// The movements that refer to each of these documents, in order: one statement for the rows
/// and one for their SKUs and codes, however many documents (the order loaders use this).
pub async fn movements_by_reference(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    uris: &[String],
) -> Result<HashMap<String, Vec<Movement>>, DbErr> {
    let rows = movement::Entity::find()
        .filter(movement::Column::TenantId.eq(tenant_id))
        .filter(movement::Column::ReferenceDocumentUri.is_in(uris.iter().cloned()))
        .order_by_asc(movement::Column::Id)
        .all(db)
        .await?;
    let mut by_uri: HashMap<String, Vec<Movement>> = HashMap::new();
    for m in hydrate(db, tenant_id, rows).await? {
        if let Some(uri) = m.reference_document_uri.clone() {
            by_uri.entry(uri).or_default().push(m);
        }
    }
    Ok(by_uri)
}

/// Movement rows with their SKUs and location codes (one more statement for all of them).
async fn hydrate(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    rows: Vec<movement::Model>,
) -> Result<Vec<Movement>, DbErr> {
    let names = Names::load(
        db,
        tenant_id,
        rows.iter().map(|r| r.item_id.clone()).collect(),
        rows.iter()
            .flat_map(|r| {
                std::iter::once(r.location_id.clone()).chain(r.counterparty_location_id.clone())
            })
            .collect(),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Movement {
            id: ID(r.id),
            group_id: ID(r.group_id),
            sku: names.sku(&r.item_id),
            item_id: ID(r.item_id),
            location_code: names.code(&r.location_id),
            location_id: ID(r.location_id),
            state: QuantityState::parse(&r.state).unwrap_or_default(),
            delta: r.delta,
            quantity_after_change: r.quantity_after,
            sequence: r.sequence,
            counterparty: Counterparty::parse(&r.counterparty),
            counterparty_location_code: r
                .counterparty_location_id
                .as_deref()
                .map(|id| names.code(id)),
            counterparty_location_id: r.counterparty_location_id,
            counterparty_state: r
                .counterparty_state
                .as_deref()
                .and_then(QuantityState::parse),
            reason: MovementReason::parse(&r.reason),
            reference_document_uri: r.reference_document_uri,
            actor: r.actor,
            effective_at: r.effective_at,
            recorded_at: r.recorded_at,
        })
        .collect())
}
