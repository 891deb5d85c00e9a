//! Order documents: purchase orders, sales orders and reservations as state machines whose
//! every quantity change is posted through the ledger's write path, in the caller's transaction.

pub mod purchase;
pub mod reservations;
pub mod returns;
pub mod sales;
pub mod transfers;

use std::collections::HashMap;

use async_graphql::ID;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{
    Condition, Expr, ExprTrait, InsertStatement, OnConflict, Order, PostgresQueryBuilder, Query,
    UnionType,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryTrait, Statement,
};
use serde::{Deserialize, Serialize};
use twh_entity::{order_document, order_line};

use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::catalog::{MAX_NAME_LEN, parse_text};
use crate::db::Write;
use crate::error::{DomainError, ErrorCode, UserError};
use crate::ledger::write::Context;
use crate::ledger::write::post::{Known, Line as PostingLine, Posting, post};
use crate::ledger::{MAX_DELTA, MovementReason};
use crate::{events, ids};

/// Most lines one document may carry.
pub const MAX_LINES: usize = 250;

/// The lines a transition is sent (their quantities), checked before the document is locked:
/// input that can never be right is refused as such, whatever version or state the document
/// is in. `instead` says what sending no lines does, where that is allowed.
pub fn check_sent_lines(
    quantities: impl ExactSizeIterator<Item = i64>,
    instead: Option<&str>,
) -> Result<(), DomainError> {
    if quantities.len() == 0 || quantities.len() > MAX_LINES {
        let instead = instead.map(|what| format!(", or none to {what}"));
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidInput,
            &["lines"],
            format!("send 1 to {MAX_LINES} lines{}", instead.unwrap_or_default()),
        )));
    }
    let out_of_range: Vec<UserError> = quantities
        .enumerate()
        .filter(|(_, quantity)| !(1..=MAX_DELTA).contains(quantity))
        .map(|(i, _)| UserError {
            code: ErrorCode::InvalidInput,
            field: Some(vec![
                "lines".to_owned(),
                i.to_string(),
                "quantity".to_owned(),
            ]),
            message: format!("must be within 1 and {MAX_DELTA}"),
        })
        .collect();
    if out_of_range.is_empty() {
        Ok(())
    } else {
        Err(DomainError::User(out_of_range))
    }
}

/// The kinds of document, each with its number prefix and URI path.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    PurchaseOrder,
    SalesOrder,
    Reservation,
    Transfer,
    Return,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::PurchaseOrder,
        Kind::SalesOrder,
        Kind::Reservation,
        Kind::Transfer,
        Kind::Return,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PurchaseOrder => "purchase_order",
            Kind::SalesOrder => "sales_order",
            Kind::Reservation => "reservation",
            Kind::Transfer => "transfer",
            Kind::Return => "return_order",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::PurchaseOrder => "PO",
            Kind::SalesOrder => "SO",
            Kind::Reservation => "RS",
            Kind::Transfer => "TR",
            Kind::Return => "RT",
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Kind::PurchaseOrder => ids::PURCHASE_ORDER,
            Kind::SalesOrder => ids::SALES_ORDER,
            Kind::Reservation => ids::RESERVATION,
            Kind::Transfer => ids::TRANSFER,
            Kind::Return => ids::RETURN_ORDER,
        }
    }

    /// The words users read: "purchase order".
    pub fn noun(self) -> &'static str {
        match self {
            Kind::PurchaseOrder => "purchase order",
            Kind::SalesOrder => "sales order",
            Kind::Reservation => "reservation",
            Kind::Transfer => "transfer",
            Kind::Return => "return",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::PurchaseOrder => "purchase-orders",
            Kind::SalesOrder => "sales-orders",
            Kind::Reservation => "reservations",
            Kind::Transfer => "transfers",
            Kind::Return => "returns",
        }
    }

    /// The reference URI its movements carry, e.g. `twh://purchase-orders/po_…`.
    pub fn uri(self, id: &str) -> String {
        format!("twh://{}/{id}", self.path())
    }

    /// The kind and id a movement's reference URI names, when it is one of ours.
    pub fn from_uri(uri: &str) -> Option<(Kind, &str)> {
        let rest = uri.strip_prefix("twh://")?;
        let (path, id) = rest.split_once('/')?;
        let kind = Kind::ALL.into_iter().find(|k| k.path() == path)?;
        Some((kind, id))
    }
}

/// A document as stored, with its lines; what mutations return and idempotent replays repeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub id: ID,
    pub kind: Kind,
    pub number: String,
    pub status: String,
    pub version: i64,
    pub party: Option<String>,
    pub external_reference: Option<String>,
    pub notes: Option<String>,
    pub expected_at: Option<DateTime<Utc>>,
    pub sales_order_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Transfers: where the goods leave from and go to.
    pub from_location_code: Option<String>,
    pub to_location_code: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub lines: Vec<Line>,
}

impl Document {
    pub fn uri(&self) -> String {
        self.kind.uri(&self.id)
    }
}

/// A line with its item's SKU and its location's code.
#[derive(Clone, Debug, Serialize, Deserialize, FromQueryResult)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub line_no: i64,
    pub item_id: String,
    pub sku: String,
    pub location_id: String,
    pub location_code: String,
    pub quantity: i64,
    pub unit_cost: Option<String>,
    pub disposition: Option<String>,
    pub done: i64,
    pub committed: i64,
    pub over: i64,
    pub closed: i64,
}

impl Line {
    /// Where the line sits in the document's input (`["lines", "0"]`), for errors naming it.
    pub fn input_path(&self) -> Vec<String> {
        vec!["lines".to_owned(), (self.line_no - 1).to_string()]
    }
}

/// Places `wanted` on the lines that `matches`, in line order, each taking at most what its
/// `left` still allows (and using it up); returns what each line takes and what did not fit.
pub fn fill(
    lines: &[Line],
    left: &mut [i64],
    matches: impl Fn(&Line) -> bool,
    wanted: i64,
) -> (Vec<(usize, i64)>, i64) {
    let mut rest = wanted;
    let mut taken = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if rest == 0 {
            break;
        }
        if !matches(line) {
            continue;
        }
        let take = std::cmp::min(rest, std::cmp::max(left[n], 0));
        if take > 0 {
            left[n] -= take;
            rest -= take;
            taken.push((n, take));
        }
    }
    (taken, rest)
}

/// A line as the caller sends it.
pub struct NewLine {
    pub sku: String,
    pub location_code: String,
    pub quantity: i64,
    pub unit_cost: Option<String>,
    pub disposition: Option<String>,
}

/// The header fields a caller may set.
#[derive(Default)]
pub struct NewDocument {
    pub party: Option<String>,
    pub external_reference: Option<String>,
    pub notes: Option<String>,
    pub expected_at: Option<DateTime<Utc>>,
    pub sales_order_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Transfers: the two locations' ids.
    pub from_location_id: Option<String>,
    pub to_location_id: Option<String>,
}

fn from_model(
    model: order_document::Model,
    kind: Kind,
    lines: Vec<Line>,
    codes: &HashMap<String, String>,
) -> Document {
    let code = |id: &Option<String>| id.as_ref().and_then(|id| codes.get(id)).cloned();
    Document {
        id: ID(model.id),
        kind,
        number: model.number,
        status: model.status,
        version: model.version,
        party: model.party,
        external_reference: model.external_reference,
        notes: model.notes,
        expected_at: model.expected_at,
        sales_order_id: model.sales_order_id,
        expires_at: model.expires_at,
        from_location_code: code(&model.from_location_id),
        to_location_code: code(&model.to_location_id),
        created_by: model.created_by,
        created_at: model.created_at,
        updated_at: model.updated_at,
        lines,
    }
}

/// Lines of the given documents, with SKUs and codes, in one statement.
async fn lines_of(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    document_ids: &[String],
) -> Result<HashMap<String, Vec<Line>>, DbErr> {
    if document_ids.is_empty() {
        return Ok(HashMap::new());
    }
    // SKUs and codes by scalar subqueries on the full primary keys, not joins: the plan then
    // finds each by (tenant, id) whatever the statistics say (see migration m0002's note).
    let select = Query::select()
        .expr_as(Expr::col(("l", "document_id")), "document_id")
        .expr_as(Expr::col(("l", "line_no")), "line_no")
        .expr_as(Expr::col(("l", "item_id")), "item_id")
        .expr_as(
            Expr::cust("(SELECT sku FROM items WHERE items.tenant_id = l.tenant_id AND items.id = l.item_id)"),
            "sku",
        )
        .expr_as(Expr::col(("l", "location_id")), "location_id")
        .expr_as(
            Expr::cust("(SELECT code FROM locations WHERE locations.tenant_id = l.tenant_id AND locations.id = l.location_id)"),
            "location_code",
        )
        .expr_as(Expr::col(("l", "quantity")), "quantity")
        .expr_as(Expr::col(("l", "unit_cost")), "unit_cost")
        .expr_as(Expr::col(("l", "disposition")), "disposition")
        .expr_as(Expr::col(("l", "done")), "done")
        .expr_as(Expr::col(("l", "committed")), "committed")
        .expr_as(Expr::col(("l", "over")), "over")
        .expr_as(Expr::col(("l", "closed")), "closed")
        .from_as("order_lines", "l")
        .and_where(Expr::col(("l", "tenant_id")).eq(tenant_id))
        .and_where(Expr::col(("l", "document_id")).is_in(document_ids.iter().cloned()))
        .order_by(("l", "document_id"), Order::Asc)
        .order_by(("l", "line_no"), Order::Asc)
        .to_owned();
    let mut by_document: HashMap<String, Vec<Line>> = HashMap::new();
    for row in db.query_all(&select).await? {
        let document_id: String = row.try_get("", "document_id")?;
        by_document
            .entry(document_id)
            .or_default()
            .push(Line::from_query_result(&row, "")?);
    }
    Ok(by_document)
}

/// The codes of the transfers' locations (no statement when none of the documents has one).
async fn location_codes(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    models: &[order_document::Model],
) -> Result<HashMap<String, String>, DbErr> {
    let ids: Vec<String> = models
        .iter()
        .flat_map(|m| [m.from_location_id.clone(), m.to_location_id.clone()])
        .flatten()
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let select = Query::select()
        .columns(["id", "code"])
        .from("locations")
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col("id").is_in(ids))
        .to_owned();
    let mut codes = HashMap::new();
    for row in db.query_all(&select).await? {
        codes.insert(row.try_get("", "id")?, row.try_get("", "code")?);
    }
    Ok(codes)
}

/// The documents the URIs name (`twh://sales-orders/so_…`), by URI, in three statements
/// however many: the documents, their lines, their locations' codes.
pub async fn by_uris(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    uris: &[String],
) -> Result<HashMap<String, Document>, DbErr> {
    let wanted: Vec<(&String, Kind, &str)> = uris
        .iter()
        .filter_map(|uri| Kind::from_uri(uri).map(|(kind, id)| (uri, kind, id)))
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let models = order_document::Entity::find()
        .filter(order_document::Column::TenantId.eq(tenant_id))
        .filter(order_document::Column::Id.is_in(wanted.iter().map(|(_, _, id)| id.to_string())))
        .all(db)
        .await?;
    let ids: Vec<String> = models.iter().map(|m| m.id.clone()).collect();
    let mut lines = lines_of(db, tenant_id, &ids).await?;
    let codes = location_codes(db, tenant_id, &models).await?;
    let mut found = HashMap::new();
    for model in models {
        let Some((uri, kind, _)) = wanted
            .iter()
            .find(|(_, kind, id)| *id == model.id && kind.as_str() == model.kind)
        else {
            continue;
        };
        let lines = lines.remove(&model.id).unwrap_or_default();
        found.insert((*uri).clone(), from_model(model, *kind, lines, &codes));
    }
    Ok(found)
}

/// One document of a kind, with its lines.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    kind: Kind,
    id: &str,
) -> Result<Option<Document>, DbErr> {
    read(db, tenant_id, kind, id, false).await
}

/// The document, its row locked for the transaction when `for_update` (Postgres; SQLite's
/// writers are one at a time already), in the same statement that reads it.
async fn read(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    kind: Kind,
    id: &str,
    for_update: bool,
) -> Result<Option<Document>, DbErr> {
    use sea_orm::QuerySelect;
    // By the primary key alone (the kind is checked here): no other index can tie with it.
    let mut query = order_document::Entity::find()
        .filter(order_document::Column::TenantId.eq(tenant_id))
        .filter(order_document::Column::Id.eq(id));
    if for_update && db.get_database_backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    let Some(model) = query.one(db).await?.filter(|m| m.kind == kind.as_str()) else {
        return Ok(None);
    };
    let mut lines = lines_of(db, tenant_id, std::slice::from_ref(&model.id)).await?;
    let lines = lines.remove(&model.id).unwrap_or_default();
    let codes = location_codes(db, tenant_id, std::slice::from_ref(&model)).await?;
    Ok(Some(from_model(model, kind, lines, &codes)))
}

/// The document, locked for the rest of the transaction (Postgres: `FOR UPDATE`; SQLite's
/// writers are already one at a time), checked against `expectedVersion`.
pub async fn lock(
    txn: &DatabaseTransaction,
    principal: &Principal,
    kind: Kind,
    id: &str,
    expected_version: Option<i64>,
) -> Result<Document, DomainError> {
    let document = read(txn, &principal.tenant_id, kind, id, true)
        .await?
        .ok_or_else(|| not_found(kind))?;
    if let Some(expected) = expected_version
        && document.version != expected
    {
        return Err(DomainError::user(crate::catalog::version_conflict(
            kind.noun(),
            document.version,
        )));
    }
    Ok(document)
}

fn not_found(kind: Kind) -> DomainError {
    DomainError::user(crate::catalog::not_found(kind.noun()))
}

/// The refusal of a transition the current status does not allow; nothing is changed.
pub fn invalid_transition(document: &Document, action: &str) -> DomainError {
    DomainError::user(UserError::new(
        ErrorCode::InvalidTransition,
        &["id"],
        format!(
            "cannot {action} {} {}: its status is {}",
            document.kind.noun(),
            document.number,
            document.status.to_uppercase()
        ),
    ))
}

/// Checks header fields; the paths name `input.<field>`.
pub fn check_header(new: &NewDocument, party_field: &str) -> Result<(), DomainError> {
    let mut errors = Vec::new();
    let text = |value: &Option<String>, field: &str, max: usize, errors: &mut Vec<UserError>| {
        if let Some(value) = value
            && let Err(e) = parse_text(value, &["input", field], max, false)
        {
            errors.push(e);
        }
    };
    text(&new.party, party_field, MAX_NAME_LEN, &mut errors);
    text(
        &new.external_reference,
        "externalReference",
        MAX_NAME_LEN,
        &mut errors,
    );
    text(&new.notes, "notes", 4000, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DomainError::User(errors))
    }
}

/// Where a document's lines sit in its input, for the paths their errors name.
pub struct LinePaths<'a> {
    /// The list itself (`["input", "lines"]`).
    pub list: &'a [&'a str],
    /// A field of line `i` (`["input", "lines", "2", "sku"]`).
    pub field: &'a (dyn Fn(usize, &str) -> Vec<String> + Sync),
}

/// The usual place: `input.lines.<i>.<field>`.
pub fn input_lines(i: usize, leaf: &str) -> Vec<String> {
    vec![
        "input".to_owned(),
        "lines".to_owned(),
        i.to_string(),
        leaf.to_owned(),
    ]
}

pub const INPUT_LINES: LinePaths<'static> = LinePaths {
    list: &["input", "lines"],
    field: &input_lines,
};

/// Checks and resolves lines: 1 to 250, positive quantities, known SKUs and locations. Errors
/// name the line's field as `paths` says, each distinct error once.
pub async fn resolve_lines(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    lines: &[NewLine],
    paths: &LinePaths<'_>,
) -> Result<Vec<(String, String)>, DomainError> {
    Ok(resolve(txn, tenant_id, lines, paths, None).await?.0)
}

/// A new document's lines, resolved, and the number it takes.
pub struct NewLines {
    kind: Kind,
    pub resolved: Vec<(String, String)>,
    number: String,
}

/// [`resolve_lines`] for a new document of `kind`, which also draws the document's number in
/// the same round trip (one statement on Postgres). A refusal rolls the draw back with the
/// transaction, so numbers stay gap-free.
pub async fn resolve_new_lines(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    kind: Kind,
    lines: &[NewLine],
    paths: &LinePaths<'_>,
) -> Result<NewLines, DomainError> {
    let (resolved, number) = resolve(txn, tenant_id, lines, paths, Some(kind)).await?;
    let number = number.ok_or_else(|| anyhow::anyhow!("no document number drawn"))?;
    Ok(NewLines {
        kind,
        resolved,
        number,
    })
}

async fn resolve(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    lines: &[NewLine],
    paths: &LinePaths<'_>,
    numbering: Option<Kind>,
) -> Result<(Vec<(String, String)>, Option<String>), DomainError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(DomainError::user(UserError::new(
            ErrorCode::InvalidInput,
            paths.list,
            format!("send 1 to {MAX_LINES} lines"),
        )));
    }
    let mut errors = Vec::new();
    let path = |i: usize, leaf: &str| (paths.field)(i, leaf);
    for (i, line) in lines.iter().enumerate() {
        if !(1..=MAX_DELTA).contains(&line.quantity) {
            errors.push(UserError {
                code: ErrorCode::InvalidInput,
                field: Some(path(i, "quantity")),
                message: format!("must be within 1 and {MAX_DELTA}"),
            });
        }
        if let Some(cost) = &line.unit_cost
            && !valid_amount(cost)
        {
            errors.push(UserError {
                code: ErrorCode::InvalidInput,
                field: Some(path(i, "unitCost")),
                message: "must be a decimal amount such as \"12.50\" (up to 6 decimals)".into(),
            });
        }
    }
    let (items, locations, number) = items_and_locations(
        txn,
        tenant_id,
        lines.iter().map(|l| l.sku.clone()),
        lines.iter().map(|l| l.location_code.clone()),
        numbering,
    )
    .await?;
    let mut resolved = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let item = items.get(&line.sku);
        let location = locations.get(&line.location_code);
        if item.is_none() {
            errors.push(UserError {
                code: ErrorCode::UnknownSku,
                field: Some(path(i, "sku")),
                message: format!("no item has SKU {:?}", line.sku),
            });
        }
        if location.is_none() {
            errors.push(UserError {
                code: ErrorCode::UnknownLocation,
                field: Some(path(i, "locationCode")),
                message: format!("no location has code {:?}", line.location_code),
            });
        }
        if let (Some(item), Some(location)) = (item, location) {
            resolved.push((item.clone(), location.clone()));
        }
    }
    if errors.is_empty() {
        Ok((resolved, number))
    } else {
        // Lines that share a field (a transfer's origin) would repeat the same error.
        let mut distinct: Vec<UserError> = Vec::new();
        for error in errors {
            if !distinct
                .iter()
                .any(|e| e.field == error.field && e.message == error.message)
            {
                distinct.push(error);
            }
        }
        Err(DomainError::User(distinct))
    }
}

/// A location's id by its code, if it has one.
pub async fn location_id(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    code: &str,
) -> Result<Option<String>, DbErr> {
    Ok(ids_by(
        txn,
        "locations",
        "code",
        tenant_id,
        std::iter::once(code.to_owned()),
    )
    .await?
    .remove(code))
}

fn valid_amount(raw: &str) -> bool {
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    !whole.is_empty()
        && whole.len() <= 15
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.len() <= 6
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && raw.contains('.') != fraction.is_empty()
}

async fn ids_by(
    txn: &DatabaseTransaction,
    table: &'static str,
    key: &'static str,
    tenant_id: &str,
    values: impl Iterator<Item = String>,
) -> Result<HashMap<String, String>, DbErr> {
    let select = Query::select()
        .column("id")
        .expr_as(Expr::col(key), "key")
        .from(table)
        .and_where(Expr::col("tenant_id").eq(tenant_id))
        .and_where(Expr::col(key).is_in(values))
        .to_owned();
    let mut found = HashMap::new();
    for row in txn.query_all(&select).await? {
        found.insert(row.try_get("", "key")?, row.try_get("", "id")?);
    }
    Ok(found)
}

/// Items' ids by SKU and locations' ids by code, in one round trip (a UNION ALL); with
/// `numbering`, also the next number of that kind in the tenant (on Postgres in the same
/// statement, as a data-modifying CTE).
async fn items_and_locations(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    skus: impl Iterator<Item = String>,
    codes: impl Iterator<Item = String>,
    numbering: Option<Kind>,
) -> Result<
    (
        HashMap<String, String>,
        HashMap<String, String>,
        Option<String>,
    ),
    DbErr,
> {
    let lookup = |kind: &str, table: &'static str, key: &'static str, values: Vec<String>| {
        Query::select()
            .expr_as(Expr::val(kind.to_owned()), "kind")
            .column("id")
            .expr_as(Expr::col(key), "key")
            .from(table)
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col(key).is_in(values))
            .to_owned()
    };
    let mut select = lookup("i", "items", "sku", skus.collect());
    select.union(
        UnionType::All,
        lookup("l", "locations", "code", codes.collect()),
    );
    let postgres = txn.get_database_backend() == DbBackend::Postgres;
    let mut number = None;
    let rows = match numbering {
        Some(kind) if postgres => {
            let (upsert, mut values) = number_upsert(tenant_id, kind).build(PostgresQueryBuilder);
            let (lookups, params) = select.build(PostgresQueryBuilder);
            let lookups = crate::db::renumber_placeholders(&lookups, values.0.len());
            values.0.extend(params.0);
            let sql = format!(
                "WITH n AS ({upsert}) \
                 SELECT 'n' AS kind, NULL AS id, last_number::text AS key FROM n \
                 UNION ALL {lookups}"
            );
            txn.query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await?
        }
        Some(kind) => {
            number = Some(next_number(txn, tenant_id, kind).await?);
            txn.query_all(&select).await?
        }
        None => txn.query_all(&select).await?,
    };
    let (mut items, mut locations) = (HashMap::new(), HashMap::new());
    for row in rows {
        let kind: String = row.try_get("", "kind")?;
        let key: String = row.try_get("", "key")?;
        match kind.as_str() {
            "n" => {
                let drawn: i64 = key
                    .parse()
                    .map_err(|_| DbErr::Custom(format!("document counter read {key:?}")))?;
                number = numbering.map(|kind| number_text(kind, drawn));
            }
            "i" => {
                items.insert(key, row.try_get("", "id")?);
            }
            _ => {
                locations.insert(key, row.try_get("", "id")?);
            }
        }
    }
    Ok((items, locations, number))
}

/// Adds one to the tenant's counter of `kind` (starting it at 1), returning `last_number`.
fn number_upsert(tenant_id: &str, kind: Kind) -> InsertStatement {
    Query::insert()
        .into_table("document_counters")
        .columns(["tenant_id", "kind", "last_number"])
        .values_panic([tenant_id.into(), kind.as_str().into(), 1i64.into()])
        .on_conflict(
            OnConflict::columns(["tenant_id", "kind"])
                .value(
                    "last_number",
                    Expr::col(("document_counters", "last_number")).add(1),
                )
                .to_owned(),
        )
        .returning_col("last_number")
        .to_owned()
}

/// `PO-000001`, `PO-000002`, …
fn number_text(kind: Kind, number: i64) -> String {
    format!("{}-{number:06}", kind.prefix())
}

/// The next number of a kind in the tenant: `PO-000001`, `PO-000002`, …
async fn next_number(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    kind: Kind,
) -> Result<String, DbErr> {
    let row = txn
        .query_one(&number_upsert(tenant_id, kind))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("document counter".into()))?;
    let number: i64 = row.try_get("", "last_number")?;
    Ok(number_text(kind, number))
}

/// Inserts a new document (of the kind and with the number its resolved lines drew) in status
/// `status` with its lines and, when `event_type` names one, its creation's outbox event and
/// audit row (in one round trip with the document on Postgres but for a transfer, which reads
/// its ends' codes back).
pub async fn insert(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    status: &str,
    header: NewDocument,
    lines: &[NewLine],
    new_lines: NewLines,
    event_type: Option<&str>,
) -> Result<Document, DomainError> {
    let principal = cx.principal;
    let now = Utc::now();
    // Microseconds: what the database keeps, so what is returned equals what is read later.
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let NewLines {
        kind,
        resolved,
        number,
    } = new_lines;
    let id = ids::new_id(kind.id_prefix());
    let model = order_document::Model {
        tenant_id: principal.tenant_id.clone(),
        id: id.clone(),
        kind: kind.as_str().into(),
        number,
        status: status.into(),
        version: 1,
        party: header.party.map(|p| p.trim().to_owned()),
        external_reference: header.external_reference.map(|r| r.trim().to_owned()),
        notes: header.notes,
        expected_at: header.expected_at,
        from_location_id: header.from_location_id,
        to_location_id: header.to_location_id,
        sales_order_id: header.sales_order_id,
        expires_at: header.expires_at,
        created_by: principal.actor(),
        created_at: now,
        updated_at: now,
    };
    let document_row =
        order_document::Entity::insert(order_document::ActiveModel::from(model.clone()))
            .into_query();
    let rows: Vec<order_line::ActiveModel> = lines
        .iter()
        .zip(resolved.iter())
        .enumerate()
        .map(|(i, (line, (item_id, location_id)))| {
            order_line::Model {
                tenant_id: principal.tenant_id.clone(),
                document_id: id.clone(),
                line_no: i as i64 + 1,
                item_id: item_id.clone(),
                location_id: location_id.clone(),
                quantity: line.quantity,
                unit_cost: line.unit_cost.clone(),
                disposition: line.disposition.clone(),
                done: 0,
                committed: 0,
                over: 0,
                closed: 0,
            }
            .into()
        })
        .collect();
    let mut writes = vec![
        Write::Insert(document_row),
        Write::Insert(order_line::Entity::insert_many(rows).into_query()),
    ];
    if kind == Kind::Transfer {
        // Its two ends' codes are read back with it.
        crate::db::write_together(txn, writes).await?;
        let document = get(txn, &principal.tenant_id, kind, &id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("document missing right after its insert"))?;
        if let Some(event_type) = event_type {
            record(txn, cx, event_type, &document, Posted::default()).await?;
        }
        return Ok(document);
    }
    // What was just written, without reading it back (the SKUs and codes resolved exactly).
    let lines = lines
        .iter()
        .zip(resolved)
        .enumerate()
        .map(|(i, (line, (item_id, location_id)))| Line {
            line_no: i as i64 + 1,
            item_id,
            sku: line.sku.clone(),
            location_id,
            location_code: line.location_code.clone(),
            quantity: line.quantity,
            unit_cost: line.unit_cost.clone(),
            disposition: line.disposition.clone(),
            done: 0,
            committed: 0,
            over: 0,
            closed: 0,
        })
        .collect();
    let document = from_model(model, kind, lines, &HashMap::new());
    if let Some(event_type) = event_type {
        writes.extend(record_inserts(cx, event_type, &document)?.map(Write::Insert));
    }
    crate::db::write_together(txn, writes).await?;
    Ok(document)
}

/// Replaces a draft's lines with new ones (numbered from 1 again).
pub async fn replace_lines(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    document_id: &str,
    lines: &[NewLine],
    resolved: Vec<(String, String)>,
) -> Result<(), DomainError> {
    order_line::Entity::delete_many()
        .filter(order_line::Column::TenantId.eq(tenant_id))
        .filter(order_line::Column::DocumentId.eq(document_id))
        .exec(txn)
        .await?;
    let rows: Vec<order_line::ActiveModel> = lines
        .iter()
        .zip(resolved)
        .enumerate()
        .map(|(i, (line, (item_id, location_id)))| {
            order_line::Model {
                tenant_id: tenant_id.to_owned(),
                document_id: document_id.to_owned(),
                line_no: i as i64 + 1,
                item_id,
                location_id,
                quantity: line.quantity,
                unit_cost: line.unit_cost.clone(),
                disposition: line.disposition.clone(),
                done: 0,
                committed: 0,
                over: 0,
                closed: 0,
            }
            .into()
        })
        .collect();
    order_line::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Writes a transition: the new status, the lines' new quantities, a version more, the rows its
/// posting left ([`Posted`]), and the transition's outbox event and audit row, in one round trip
/// on Postgres.
pub async fn save(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    mut document: Document,
    status: &str,
    event_type: &str,
    posted: Posted,
) -> Result<Document, DomainError> {
    let principal = cx.principal;
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let version = document.version;
    let mut update = Query::update();
    update
        .table("order_documents")
        .value("status", status)
        .value("version", Expr::col("version").add(1))
        .value("updated_at", now)
        .and_where(Expr::col("tenant_id").eq(principal.tenant_id.as_str()))
        .and_where(Expr::col("id").eq(document.id.as_str()))
        .and_where(Expr::col("version").eq(version));
    let mut writes = vec![Write::Update(update)];
    // Every line's stage quantities in one statement: `SET done = CASE line_no WHEN 1 THEN …`.
    if !document.lines.is_empty() {
        let stage = |value: fn(&Line) -> i64| {
            let mut case = sea_orm::sea_query::CaseStatement::new();
            for line in &document.lines {
                case = case.case(
                    Expr::col("line_no").eq(line.line_no),
                    Expr::val(value(line)),
                );
            }
            let expr: Expr = case.into();
            expr
        };
        let lines = Query::update()
            .table("order_lines")
            .value("done", stage(|l| l.done))
            .value("committed", stage(|l| l.committed))
            .value("over", stage(|l| l.over))
            .value("closed", stage(|l| l.closed))
            .and_where(Expr::col("tenant_id").eq(principal.tenant_id.as_str()))
            .and_where(Expr::col("document_id").eq(document.id.as_str()))
            .to_owned();
        writes.push(Write::Update(lines));
    }
    document.status = status.into();
    document.version += 1;
    document.updated_at = now;
    // The posting's movements and level events before the document's own event: the log
    // keeps them in the order they were written.
    writes.extend(posted.0);
    writes.extend(record_inserts(cx, event_type, &document)?.map(Write::Insert));
    if crate::db::write_together(txn, writes).await? != 1 {
        // The row is locked by `lock`: another version here means a bug, not a race.
        return Err(anyhow::anyhow!("document {} changed under its lock", document.id.0).into());
    }
    Ok(document)
}

/// Posts a document's stock changes through the ledger, referring to the document. The
/// levels change now; the rows recording the changes (movements and their events) come back
/// as [`Posted`], for the document's own write ([`save`], [`record`]) to carry in its round
/// trip.
pub async fn post_lines(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    document: &Document,
    reason: MovementReason,
    lines: Vec<(PostingLine, Vec<String>)>,
) -> Result<Posted, DomainError> {
    if lines.is_empty() {
        return Ok(Posted::default());
    }
    // The lines' SKUs and codes were read with the document, under its lock.
    let mut known = Known::default();
    for line in &document.lines {
        known.items.push((line.sku.clone(), line.item_id.clone()));
        known
            .locations
            .push((line.location_code.clone(), line.location_id.clone()));
    }
    let deferred = std::sync::Mutex::new(Vec::new());
    let cx = Context {
        deferred: Some(&deferred),
        ..*cx
    };
    post(
        txn,
        &cx,
        Posting {
            reason,
            reference_document_uri: &document.uri(),
            lines,
            known,
        },
    )
    .await?;
    let writes = deferred
        .into_inner()
        .map_err(|_| anyhow::anyhow!("deferred ledger writes poisoned"))?;
    Ok(Posted(writes))
}

/// The rows recording a posting's changes, not written yet: they must go out in the same
/// transaction, with the document's own write ([`save`], [`record`]) or by [`Posted::write`].
#[must_use = "a posting's movements and events are written only with the document"]
#[derive(Default)]
pub struct Posted(Vec<Write>);

impl Posted {
    /// Both postings' rows, this one's first.
    pub fn and(mut self, other: Posted) -> Posted {
        self.0.extend(other.0);
        self
    }

    /// Writes them now, on their own.
    pub async fn write(self, txn: &DatabaseTransaction) -> Result<(), DomainError> {
        crate::db::write_together(txn, self.0).await?;
        Ok(())
    }
}

/// The outbox event and the audit row of a document's creation.
pub async fn record(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    event_type: &str,
    document: &Document,
    posted: Posted,
) -> Result<(), DomainError> {
    // The event and the audit row, after what a posting left, in one round trip (one
    // statement on Postgres).
    let mut writes = posted.0;
    writes.extend(record_inserts(cx, event_type, document)?.map(Write::Insert));
    crate::db::write_together(txn, writes).await?;
    Ok(())
}

/// The outbox event and the audit row of a document's change, as statements.
fn record_inserts(
    cx: &Context<'_>,
    event_type: &str,
    document: &Document,
) -> anyhow::Result<[InsertStatement; 2]> {
    let data = serde_json::to_value(document)?;
    let event = events::insert(
        &cx.principal.tenant_id,
        event_type,
        document.kind.as_str(),
        &document.id,
        data,
    );
    let audit = audit::insert(
        cx.principal,
        AuditEntry {
            action: cx.operation,
            target_type: document.kind.as_str(),
            target_id: &document.id,
            request_id: Some(cx.request_id),
            data: serde_json::json!({
                "number": document.number,
                "status": document.status,
                "version": document.version,
                "idempotencyKey": cx.idempotency_key,
            }),
        },
    );
    Ok([event, audit])
}

/// Filters every document list takes.
#[derive(async_graphql::InputObject, Clone, Debug, Default)]
#[graphql(name = "OrderFilter")]
pub struct Filter {
    /// Raw status values, e.g. `ORDERED`.
    pub statuses: Option<Vec<String>>,
    /// Documents with a line of this SKU.
    pub sku: Option<String>,
    /// Documents with a line at this location.
    pub location_code: Option<String>,
    pub external_reference: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

/// One page of documents of a kind in id (creation) order after the cursor, with their lines
/// in one more statement; fetches `limit + 1` to tell whether another page follows.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    kind: Kind,
    filter: Filter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Document>, DbErr> {
    let mut query = order_document::Entity::find()
        .filter(order_document::Column::TenantId.eq(tenant_id))
        .filter(order_document::Column::Kind.eq(kind.as_str()));
    if let Some(statuses) = filter.statuses {
        let statuses: Vec<String> = statuses.iter().map(|s| s.to_lowercase()).collect();
        query = query.filter(order_document::Column::Status.is_in(statuses));
    }
    if let Some(reference) = filter.external_reference {
        query = query.filter(order_document::Column::ExternalReference.eq(reference));
    }
    if let Some(since) = filter.created_after {
        query = query.filter(order_document::Column::CreatedAt.gte(since));
    }
    if let Some(until) = filter.created_before {
        query = query.filter(order_document::Column::CreatedAt.lt(until));
    }
    let to_code = filter
        .location_code
        .clone()
        .filter(|_| kind == Kind::Transfer && filter.sku.is_none());
    if filter.sku.is_some() || filter.location_code.is_some() {
        let mut lines = Query::select();
        lines
            .column(("l", "document_id"))
            .from_as("order_lines", "l")
            .and_where(Expr::col(("l", "tenant_id")).eq(tenant_id));
        if let Some(sku) = filter.sku {
            lines.and_where(
                Expr::col(("l", "item_id")).in_subquery(
                    Query::select()
                        .column("id")
                        .from("items")
                        .and_where(Expr::col("tenant_id").eq(tenant_id))
                        .and_where(Expr::col("sku").eq(sku))
                        .to_owned(),
                ),
            );
        }
        if let Some(code) = filter.location_code {
            lines.and_where(
                Expr::col(("l", "location_id")).in_subquery(
                    Query::select()
                        .column("id")
                        .from("locations")
                        .and_where(Expr::col("tenant_id").eq(tenant_id))
                        .and_where(Expr::col("code").eq(code))
                        .to_owned(),
                ),
            );
        }
        let mut matching =
            Condition::any().add(order_document::Column::Id.in_subquery(lines.to_owned()));
        if let Some(code) = &to_code {
            // A transfer is at both its ends.
            matching = matching.add(
                order_document::Column::ToLocationId.in_subquery(
                    Query::select()
                        .column("id")
                        .from("locations")
                        .and_where(Expr::col("tenant_id").eq(tenant_id))
                        .and_where(Expr::col("code").eq(code.as_str()))
                        .to_owned(),
                ),
            );
        }
        query = query.filter(matching);
    }
    if let Some(after) = after {
        query = query.filter(order_document::Column::Id.gt(after));
    }
    use sea_orm::{QueryOrder, QuerySelect};
    let models = query
        .order_by_asc(order_document::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let ids: Vec<String> = models.iter().map(|m| m.id.clone()).collect();
    let mut lines = lines_of(db, tenant_id, &ids).await?;
    let codes = location_codes(db, tenant_id, &models).await?;
    Ok(models
        .into_iter()
        .map(|m| {
            let lines = lines.remove(&m.id).unwrap_or_default();
            from_model(m, kind, lines, &codes)
        })
        .collect())
}
