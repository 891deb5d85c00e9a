//! Search documents built from the current state of the database: what the indexer writes for
//! each item, location and order an event touched, and what a reindex writes for everything.

use std::collections::{BTreeSet, HashMap};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use twh_entity::{item, location, order_document};

use super::{SearchDocument, SearchType, text};
use crate::events::relay::dialect;
use crate::orders::{self, Kind};

/// A tenant's ids of one entity after `after`, in id order.
async fn ids_after<E: EntityTrait>(
    db: &impl ConnectionTrait,
    tenant_column: E::Column,
    id_column: E::Column,
    tenant_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let mut q = E::find()
        .select_only()
        .column(id_column)
        .filter(tenant_column.eq(tenant_id));
    if let Some(after) = after {
        q = q.filter(id_column.gt(after));
    }
    q.order_by_asc(id_column)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// What an event touched, as the index sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocRef {
    pub doc_type: SearchType,
    pub id: String,
}

impl DocRef {
    /// The document an event's aggregate names, if it is a searchable one. A stock level's
    /// change updates its item (levels per location, in stock); reservations are not searched.
    pub fn from_event(aggregate_type: &str, aggregate_id: &str) -> Option<Self> {
        let (doc_type, id) = match aggregate_type {
            "stock_level" => (
                SearchType::Item,
                aggregate_id
                    .split_once(':')
                    .map_or(aggregate_id, |(item, _)| item),
            ),
            other => (SearchType::parse(other)?, aggregate_id),
        };
        Some(Self {
            doc_type,
            id: id.to_owned(),
        })
    }
}

/// The documents for `refs` of one tenant, and the ids of those that no longer exist.
pub async fn build(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    refs: &BTreeSet<DocRef>,
) -> Result<(Vec<SearchDocument>, Vec<String>), DbErr> {
    let mut docs = Vec::with_capacity(refs.len());
    let ids_of = |t: SearchType| -> Vec<String> {
        refs.iter()
            .filter(|r| r.doc_type == t)
            .map(|r| r.id.clone())
            .collect()
    };
    let items = ids_of(SearchType::Item);
    if !items.is_empty() {
        docs.extend(items_docs(db, tenant_id, &items).await?);
    }
    let locations = ids_of(SearchType::Location);
    if !locations.is_empty() {
        let rows = location::Entity::find()
            .filter(location::Column::TenantId.eq(tenant_id))
            .filter(location::Column::Id.is_in(locations))
            .all(db)
            .await?;
        docs.extend(rows.into_iter().map(location_doc));
    }
    let uris: Vec<String> = refs
        .iter()
        .filter_map(|r| order_kind(r.doc_type).map(|kind| kind.uri(&r.id)))
        .collect();
    if !uris.is_empty() {
        let found = orders::by_uris(db, tenant_id, &uris).await?;
        docs.extend(found.into_values().map(|d| order_doc(tenant_id, d)));
    }
    let present: std::collections::HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    let gone = refs
        .iter()
        .filter(|r| !present.contains(r.id.as_str()))
        .map(|r| r.id.clone())
        .collect();
    Ok((docs, gone))
}

fn order_kind(t: SearchType) -> Option<Kind> {
    match t {
        SearchType::PurchaseOrder => Some(Kind::PurchaseOrder),
        SearchType::SalesOrder => Some(Kind::SalesOrder),
        SearchType::Transfer => Some(Kind::Transfer),
        SearchType::ReturnOrder => Some(Kind::Return),
        SearchType::Item | SearchType::Location => None,
    }
}

#[derive(FromQueryResult)]
struct LevelRow {
    item_id: String,
    code: String,
    available: i64,
}

async fn items_docs(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    ids: &[String],
) -> Result<Vec<SearchDocument>, DbErr> {
    let rows = item::Entity::find()
        .filter(item::Column::TenantId.eq(tenant_id))
        .filter(item::Column::Id.is_in(ids.iter().cloned()))
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    // Levels of these items with their location codes, in one statement.
    let placeholders: Vec<String> = (0..rows.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT l.item_id AS item_id, c.code AS code, l.available AS available \
         FROM stock_levels l JOIN locations c ON c.tenant_id = l.tenant_id AND c.id = l.location_id \
         WHERE l.tenant_id = $1 AND l.item_id IN ({}) ORDER BY c.code",
        placeholders.join(", ")
    );
    let mut values: Vec<sea_orm::Value> = vec![tenant_id.into()];
    values.extend(rows.iter().map(|r| r.id.clone().into()));
    let levels = LevelRow::find_by_statement(Statement::from_sql_and_values(
        backend,
        dialect(backend, &sql),
        values,
    ))
    .all(db)
    .await?;
    let mut by_item: HashMap<&str, Vec<&LevelRow>> = HashMap::new();
    for level in &levels {
        by_item
            .entry(level.item_id.as_str())
            .or_default()
            .push(level);
    }
    Ok(rows
        .iter()
        .map(|m| {
            let levels = by_item
                .get(m.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            item_doc(m, levels)
        })
        .collect())
}

fn item_doc(m: &item::Model, levels: &[&LevelRow]) -> SearchDocument {
    let available: i64 = levels
        .iter()
        .map(|l| l.available)
        .fold(0i64, i64::saturating_add);
    let mut body = m.unit.clone();
    attribute_text(&m.attributes, &mut body);
    SearchDocument {
        id: m.id.clone(),
        tenant_id: m.tenant_id.clone(),
        doc_type: SearchType::Item.as_str().to_owned(),
        title: m.name.clone(),
        code: m.sku.clone(),
        code_key: m.sku.to_lowercase(),
        barcode: m.barcode.clone(),
        body,
        status: m.status.to_uppercase(),
        location_codes: levels
            .iter()
            .filter(|l| l.available > 0)
            .map(|l| l.code.clone())
            .collect(),
        in_stock: available > 0,
        available,
        updated_at: m.updated_at.timestamp_millis(),
    }
}

/// The string and number values of an item's attributes, so "blue" finds `{"color": "blue"}`.
fn attribute_text(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::String(s) => {
            out.push(' ');
            out.push_str(s);
        }
        serde_json::Value::Number(n) => {
            out.push(' ');
            out.push_str(&n.to_string());
        }
        serde_json::Value::Array(values) => values.iter().for_each(|v| attribute_text(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| attribute_text(v, out)),
        _ => {}
    }
}

fn location_doc(m: location::Model) -> SearchDocument {
    SearchDocument {
        id: m.id,
        tenant_id: m.tenant_id,
        doc_type: SearchType::Location.as_str().to_owned(),
        title: m.name,
        code_key: m.code.to_lowercase(),
        location_codes: vec![m.code.clone()],
        code: m.code,
        barcode: None,
        body: m.kind.to_lowercase(),
        status: "ACTIVE".to_owned(),
        in_stock: false,
        available: 0,
        updated_at: m.updated_at.timestamp_millis(),
    }
}

fn order_doc(tenant_id: &str, d: orders::Document) -> SearchDocument {
    let doc_type = match d.kind {
        Kind::PurchaseOrder => SearchType::PurchaseOrder,
        Kind::SalesOrder | Kind::Reservation => SearchType::SalesOrder,
        Kind::Transfer => SearchType::Transfer,
        Kind::Return => SearchType::ReturnOrder,
    };
    let mut codes: BTreeSet<String> = d.lines.iter().map(|l| l.location_code.clone()).collect();
    codes.extend(d.from_location_code.iter().cloned());
    codes.extend(d.to_location_code.iter().cloned());
    let skus: BTreeSet<&str> = d.lines.iter().map(|l| l.sku.as_str()).collect();
    let body = [
        d.party.as_deref().unwrap_or_default(),
        d.external_reference.as_deref().unwrap_or_default(),
        d.notes.as_deref().unwrap_or_default(),
    ]
    .into_iter()
    .chain(skus)
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    let title = match &d.party {
        Some(party) => format!("{} {party}", d.number),
        None => d.number.clone(),
    };
    SearchDocument {
        id: d.id.0.clone(),
        tenant_id: tenant_id.to_owned(),
        doc_type: doc_type.as_str().to_owned(),
        title,
        code_key: d.number.to_lowercase(),
        code: d.number,
        barcode: None,
        body,
        // As the API shows it (`ORDERED`), whatever the stored spelling.
        status: d.status.to_uppercase(),
        location_codes: codes.into_iter().collect(),
        in_stock: false,
        available: 0,
        updated_at: d.updated_at.timestamp_millis(),
    }
}

/// The indexed words of a document (see the migration: a space at each end).
pub fn terms_of(doc: &SearchDocument) -> String {
    text::terms([
        doc.code.as_str(),
        doc.barcode.as_deref().unwrap_or_default(),
        doc.title.as_str(),
        doc.body.as_str(),
    ])
}

/// A page of every searchable document reference of a tenant after `after` (by id), for a
/// reindex; empty at the end.
pub async fn all_refs(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    after: Option<&DocRef>,
    limit: u64,
) -> Result<Vec<DocRef>, DbErr> {
    // Items, then locations, then orders; each by id.
    let stage = after.map_or(0, |a| match a.doc_type {
        SearchType::Item => 0,
        SearchType::Location => 1,
        _ => 2,
    });
    let after_in = |n: u8| after.filter(|_| stage == n).map(|a| a.id.as_str());
    let refs = |doc_type: SearchType, ids: Vec<String>| -> Vec<DocRef> {
        ids.into_iter().map(|id| DocRef { doc_type, id }).collect()
    };
    if stage == 0 {
        let ids = ids_after::<item::Entity>(
            db,
            item::Column::TenantId,
            item::Column::Id,
            tenant_id,
            after_in(0),
            limit,
        )
        .await?;
        if !ids.is_empty() {
            return Ok(refs(SearchType::Item, ids));
        }
    }
    if stage <= 1 {
        let ids = ids_after::<location::Entity>(
            db,
            location::Column::TenantId,
            location::Column::Id,
            tenant_id,
            after_in(1),
            limit,
        )
        .await?;
        if !ids.is_empty() {
            return Ok(refs(SearchType::Location, ids));
        }
    }
    let mut q = order_document::Entity::find()
        .select_only()
        .column(order_document::Column::Id)
        .column(order_document::Column::Kind)
        .filter(order_document::Column::TenantId.eq(tenant_id))
        .filter(order_document::Column::Kind.ne(Kind::Reservation.as_str()));
    if let Some(a) = after_in(2) {
        q = q.filter(order_document::Column::Id.gt(a));
    }
    let rows: Vec<(String, String)> = q
        .order_by_asc(order_document::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, kind)| {
            Some(DocRef {
                doc_type: SearchType::parse(&kind)?,
                id,
            })
        })
        .collect())
}
