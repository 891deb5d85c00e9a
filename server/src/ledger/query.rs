//! Reads of the ledger: one level, levels and movements as cursor-paginated lists.

use std::collections::{HashMap, HashSet};

use async_graphql::{ID, InputObject};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Statement,
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

/// A level as the reads select it: the snapshot's columns with its item's SKU and its
/// location's code. Every snapshot column is optional: the point look-up joins the level on,
/// and an item that never moved at the location has none.
#[derive(FromQueryResult)]
struct LevelRow {
    item_id: String,
    sku: String,
    location_id: String,
    location_code: String,
    available: Option<i64>,
    committed: Option<i64>,
    reserved: Option<i64>,
    incoming: Option<i64>,
    damaged: Option<i64>,
    safety_stock: Option<i64>,
    quality_control: Option<i64>,
    sequence: Option<i64>,
    version: Option<i64>,
    updated_at: Option<DateTime<Utc>>,
}

impl LevelRow {
    fn into_level(self) -> StockLevel {
        let Some(updated_at) = self.updated_at else {
            return StockLevel::empty(
                &self.item_id,
                &self.sku,
                &self.location_id,
                &self.location_code,
            );
        };
        let model = stock_level::Model {
            tenant_id: String::new(),
            item_id: self.item_id,
            location_id: self.location_id,
            available: self.available.unwrap_or_default(),
            committed: self.committed.unwrap_or_default(),
            reserved: self.reserved.unwrap_or_default(),
            incoming: self.incoming.unwrap_or_default(),
            damaged: self.damaged.unwrap_or_default(),
            safety_stock: self.safety_stock.unwrap_or_default(),
            quality_control: self.quality_control.unwrap_or_default(),
            sequence: self.sequence.unwrap_or_default(),
            version: self.version.unwrap_or_default(),
            updated_at,
        };
        StockLevel::from_model(&model, &self.sku, &self.location_code)
    }
}

const LEVEL_COLUMNS: &str = "s.available, s.committed, s.reserved, s.incoming, s.damaged, \
     s.safety_stock, s.quality_control, s.sequence, s.version, s.updated_at";

/// Past every item id (`itm_` and a time-ordered hex id; see `ids::new_id`) in any collation.
const ITEM_IDS_END: &str = "itn";
/// Past every location id (`loc_…`).
const LOCATION_IDS_END: &str = "lod";

/// A statement written with `$n` parameters, for the connection's database (SQLite numbers
/// them `?n`).
fn statement(backend: DbBackend, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    let sql = match backend {
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The level of `sku` at `location_code`: zeros if it never moved, `None` if either is unknown.
/// One statement: the item and the location through their unique indexes, and the level
/// joined by its whole key, found through scalar subqueries so the plan probes the level's
/// index with all three columns whether or not the tables have statistics (a plain join let
/// Postgres probe by location alone and filter every level there by item).
pub async fn level(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    sku: &str,
    location_code: &str,
) -> Result<Option<StockLevel>, DbErr> {
    let statement = level_statement(db.get_database_backend(), tenant_id, sku, location_code);
    let row = db.query_one_raw(statement).await?;
    row.map(|row| LevelRow::from_query_result(&row, "").map(LevelRow::into_level))
        .transpose()
}

/// The statement of [`level`] (tests read its plan).
pub fn level_statement(
    backend: DbBackend,
    tenant_id: &str,
    sku: &str,
    location_code: &str,
) -> Statement {
    let sql = format!(
        "SELECT i.id AS item_id, i.sku AS sku, l.id AS location_id, l.code AS location_code, \
         {LEVEL_COLUMNS} \
         FROM items i CROSS JOIN locations l \
         LEFT JOIN stock_levels s ON s.tenant_id = $1 \
           AND s.item_id = (SELECT id FROM items WHERE tenant_id = $1 AND sku = $2) \
           AND s.location_id = (SELECT id FROM locations WHERE tenant_id = $1 AND code = $3) \
         WHERE i.tenant_id = $1 AND i.sku = $2 AND l.tenant_id = $1 AND l.code = $3"
    );
    statement(
        backend,
        &sql,
        vec![tenant_id.into(), sku.into(), location_code.into()],
    )
}

/// Cursor of a level: `item_id/location_id`, the order levels are listed in.
pub fn level_cursor(level: &StockLevel) -> String {
    format!("{}/{}", level.item_id.0, level.location_id.0)
}

/// A page of levels in key order, one statement whose plan does not depend on statistics:
/// the levels are walked as a range of a whole index key (only that index serves such a range,
/// and the walk stops after a page; a plain `tenant_id =` let a planner without statistics
/// fetch every level of the tenant and sort them), each with its SKU and location code looked
/// up by primary key. With a SKU the range is that item's levels; with a location and no SKU
/// it runs over the location index (tenant, location, item), which holds the same order for one
/// location.
pub async fn levels(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    filter: StockLevelFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<StockLevel>, DbErr> {
    let statement = levels_statement(db.get_database_backend(), tenant_id, &filter, after, limit);
    let rows = db.query_all_raw(statement).await?;
    rows.iter()
        .map(|row| LevelRow::from_query_result(row, "").map(LevelRow::into_level))
        .collect()
}

/// The statement of [`levels`] (tests read its plan).
pub fn levels_statement(
    backend: DbBackend,
    tenant_id: &str,
    filter: &StockLevelFilter,
    after: Option<&str>,
    limit: u64,
) -> Statement {
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut param = |value: sea_orm::Value| {
        values.push(value);
        format!("${}", values.len())
    };
    let tenant = param(tenant_id.into());
    // Ids are never empty: the first page starts past ("", "").
    let (after_item, after_location) = after.and_then(|a| a.split_once('/')).unwrap_or(("", ""));
    let item = filter.sku.as_ref().map(|sku| {
        let sku = param(sku.as_str().into());
        format!("(SELECT id FROM items WHERE tenant_id = {tenant} AND sku = {sku})")
    });
    let location = filter.location_code.as_ref().map(|code| {
        let code = param(code.as_str().into());
        format!("(SELECT id FROM locations WHERE tenant_id = {tenant} AND code = {code})")
    });
    // Each range pins what the filter fixes by giving it on both ends: (tenant, item, …)
    // between (tenant, item, after) and (tenant, item, past every location id) is that item's
    // levels and nothing else. No plain equality is added beside it: the planner would take
    // it to an index that can only filter.
    let (range, order) = match (&item, &location) {
        (Some(item), location) => {
            let after_location = param(after_location.into());
            let end = param(LOCATION_IDS_END.into());
            let mut range = format!(
                "(s.tenant_id, s.item_id, s.location_id) > ({tenant}, {item}, {after_location}) \
                 AND (s.tenant_id, s.item_id, s.location_id) < ({tenant}, {item}, {end})"
            );
            if let Some(location) = location {
                range.push_str(&format!(" AND s.location_id = {location}"));
            }
            (range, "s.tenant_id, s.item_id, s.location_id")
        }
        (None, Some(location)) => {
            let after_item = param(after_item.into());
            let end = param(ITEM_IDS_END.into());
            (
                format!(
                    "(s.tenant_id, s.location_id, s.item_id) > ({tenant}, {location}, {after_item}) \
                     AND (s.tenant_id, s.location_id, s.item_id) < ({tenant}, {location}, {end})"
                ),
                "s.tenant_id, s.location_id, s.item_id",
            )
        }
        (None, None) => {
            let after_item = param(after_item.into());
            let after_location = param(after_location.into());
            let end = param(ITEM_IDS_END.into());
            (
                format!(
                    "(s.tenant_id, s.item_id, s.location_id) > ({tenant}, {after_item}, {after_location}) \
                     AND (s.tenant_id, s.item_id, s.location_id) < ({tenant}, {end}, '')"
                ),
                "s.tenant_id, s.item_id, s.location_id",
            )
        }
    };
    let limit = param((limit as i64 + 1).into());
    let sql = format!(
        "SELECT s.item_id AS item_id, \
           (SELECT sku FROM items WHERE tenant_id = {tenant} AND id = s.item_id) AS sku, \
           s.location_id AS location_id, \
           (SELECT code FROM locations WHERE tenant_id = {tenant} AND id = s.location_id) \
             AS location_code, \
           {LEVEL_COLUMNS} \
         FROM stock_levels s WHERE {range} ORDER BY {order} LIMIT {limit}"
    );
    statement(backend, &sql, values)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The page ranges end at a key past every id of the kind: the prefix with its last letter
    /// moved one on, which sorts after `prefix_<anything>` and before any other prefix's ids.
    #[test]
    fn id_range_ends_follow_the_id_prefixes() {
        for (prefix, end) in [
            (crate::ids::ITEM, ITEM_IDS_END),
            (crate::ids::LOCATION, LOCATION_IDS_END),
        ] {
            let mut bumped = prefix.as_bytes().to_vec();
            *bumped.last_mut().expect("a prefix") += 1;
            assert_eq!(end.as_bytes(), bumped.as_slice(), "{prefix}");
            for _ in 0..100 {
                let id = crate::ids::new_id(prefix);
                assert!(id.as_str() < end && id.as_str() > prefix, "{id} vs {end}");
            }
            // Ids of the other kinds stay out of the range.
            for other in [
                crate::ids::MOVEMENT,
                crate::ids::MOVEMENT_GROUP,
                crate::ids::EVENT,
            ] {
                let id = crate::ids::new_id(other);
                assert!(
                    !(id.as_str() > prefix && id.as_str() < end),
                    "{id} falls in {prefix}..{end}"
                );
            }
        }
    }
}
