//! The write path: `adjust`, `move_stock` and `set` validate their changes, resolve SKUs and
//! location codes, then apply every bucket change with one conditional UPDATE (no read-then-write
//! race), insert the movements, the outbox events and the audit row in the same transaction.

use std::collections::{BTreeMap, HashMap};

use async_graphql::{ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Asterisk, Expr, ExprTrait, LockType, OnConflict, Query, UnionType};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, FromQueryResult};
use serde::{Deserialize, Serialize};
use twh_entity::stock_level;

use super::{
    Counterparty, MAX_CHANGES, MAX_DELTA, MAX_QUANTITY, Movement, MovementReason, QuantityState,
    StockLevel,
};
use crate::audit::{self, AuditEntry};
use crate::auth::Principal;
use crate::error::{DomainError, ErrorCode, UserError};
use crate::{events, ids};

pub mod post;
pub mod together;

pub const MAX_URI_LEN: usize = 2048;

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct AdjustStockInput {
    pub reason: MovementReason,
    /// The document that caused the change, as a URI (e.g. `gid://pos/Sale/981`).
    pub reference_document_uri: Option<String>,
    /// When the change happened in the physical world; defaults to now.
    pub effective_at: Option<DateTime<Utc>>,
    pub changes: Vec<AdjustChangeInput>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct AdjustChangeInput {
    pub sku: String,
    pub location_code: String,
    #[graphql(default_with = "QuantityState::Available")]
    pub state: QuantityState,
    /// Signed, non-zero change.
    pub delta: i64,
    /// Compare-and-set: apply only if the quantity is exactly this now.
    pub change_from_quantity: Option<i64>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct MoveStockInput {
    #[graphql(default_with = "MovementReason::Movement")]
    pub reason: MovementReason,
    pub reference_document_uri: Option<String>,
    pub effective_at: Option<DateTime<Utc>>,
    pub changes: Vec<MoveChangeInput>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct MoveChangeInput {
    pub sku: String,
    /// Positive quantity to move.
    pub quantity: i64,
    pub from: MoveEndpointInput,
    pub to: MoveEndpointInput,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct MoveEndpointInput {
    pub location_code: String,
    #[graphql(default_with = "QuantityState::Available")]
    pub state: QuantityState,
    pub change_from_quantity: Option<i64>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct SetStockInput {
    #[graphql(default_with = "MovementReason::CycleCount")]
    pub reason: MovementReason,
    pub reference_document_uri: Option<String>,
    pub effective_at: Option<DateTime<Utc>>,
    pub changes: Vec<SetChangeInput>,
}

#[derive(InputObject, Clone, Debug, Serialize)]
pub struct SetChangeInput {
    pub sku: String,
    pub location_code: String,
    #[graphql(default_with = "QuantityState::Available")]
    pub state: QuantityState,
    /// The absolute quantity to set.
    pub quantity: i64,
    pub change_from_quantity: Option<i64>,
}

/// What a stock mutation produced; stored verbatim under its idempotency key.
#[derive(SimpleObject, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockChange {
    pub group_id: ID,
    pub movements: Vec<Movement>,
    /// The resulting level of every (item, location) the mutation touched.
    pub levels: Vec<StockLevel>,
}

/// What a group of changes records besides the changes: why, the document, when.
#[derive(Clone, Copy)]
struct Group<'a> {
    reason: MovementReason,
    reference_document_uri: Option<&'a str>,
    effective_at: Option<DateTime<Utc>>,
}

impl<'a> Group<'a> {
    fn of(
        reason: MovementReason,
        reference_document_uri: &'a Option<String>,
        effective_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            reason,
            reference_document_uri: reference_document_uri.as_deref(),
            effective_at,
        }
    }
}

/// What every stock mutation shares besides its changes.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub principal: &'a Principal,
    pub request_id: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub operation: &'static str,
    /// The write belongs to a document (an order's transition), whose own audit record
    /// covers it: one record per request.
    pub audited_by_document: bool,
    /// The request answers with exactly the [`StockChange`] this write returns (adjustStock,
    /// moveStock, setStock): a keyed one stores it as the key's answer in its last statement.
    pub answers_with_change: bool,
    /// When set, the rows recording a change (movements, events, audit row) are not written
    /// here but left in this buffer for the caller, who must write them in the same
    /// transaction (a document's transition sends them with its own row: one round trip less).
    pub deferred: Option<&'a std::sync::Mutex<Vec<crate::db::Write>>>,
}

#[derive(Clone)]
struct ResolvedItem {
    id: String,
    sku: String,
}

#[derive(Clone)]
struct ResolvedLocation {
    id: String,
    code: String,
    allow_negative: bool,
}

/// One bucket change, resolved and validated.
struct Entry {
    item: ResolvedItem,
    location: ResolvedLocation,
    state: QuantityState,
    /// Signed change; for `set`, computed from the current quantity once it is locked.
    delta: i64,
    /// For `set`: the absolute target.
    target: Option<i64>,
    change_from: Option<i64>,
    counterparty: Counterparty,
    counterparty_location: Option<ResolvedLocation>,
    counterparty_state: Option<QuantityState>,
    /// Path of the input element, for error messages.
    path: Vec<String>,
}

fn path(base: &[String], leaf: &str) -> Option<Vec<String>> {
    let mut p = base.to_vec();
    p.push(leaf.to_owned());
    Some(p)
}

fn invalid(base: &[String], leaf: &str, message: impl Into<String>) -> UserError {
    UserError {
        code: ErrorCode::InvalidInput,
        field: path(base, leaf),
        message: message.into(),
    }
}

fn check_common(uri: Option<&str>, count: usize, max_changes: usize) -> Vec<UserError> {
    let mut errors = Vec::new();
    if count == 0 || count > max_changes {
        errors.push(UserError::new(
            ErrorCode::InvalidInput,
            &["input", "changes"],
            format!("send 1 to {max_changes} changes"),
        ));
    }
    if let Some(uri) = uri {
        let scheme_ok = uri.split_once(':').is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if uri.len() > MAX_URI_LEN
            || !scheme_ok
            || uri.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            errors.push(UserError::new(
                ErrorCode::InvalidInput,
                &["input", "referenceDocumentUri"],
                format!(
                    "must be a URI of at most {MAX_URI_LEN} characters, e.g. gid://pos/Sale/981"
                ),
            ));
        } else if crate::orders::Kind::from_uri(uri).is_some() {
            // The URIs of this server's own documents: only their transitions write them, so a
            // document's movements are only ever its own.
            errors.push(UserError::new(
                ErrorCode::InvalidInput,
                &["input", "referenceDocumentUri"],
                "this URI names one of the server's own documents, whose movements only its transitions make - Hint: use the transition (e.g. shipSalesOrder), or a URI of your own such as gid://pos/Sale/981",
            ));
        }
    }
    errors
}

fn check_change_from(base: &[String], value: Option<i64>, errors: &mut Vec<UserError>) {
    if value.is_some_and(|v| !(-MAX_QUANTITY..=MAX_QUANTITY).contains(&v)) {
        errors.push(invalid(
            base,
            "changeFromQuantity",
            format!("must be within ±{MAX_QUANTITY}"),
        ));
    }
}

fn element(index: usize) -> Vec<String> {
    vec!["input".into(), "changes".into(), index.to_string()]
}

/// [`Resolver::load`] on Postgres: $1 tenant, $2 the SKUs and $3 the location codes as JSON
/// arrays; each distinct key looked up by its unique index (`OFFSET 0` keeps it a look-up).
const RESOLVE_SQL: &str = "\
    SELECT 'i' AS kind, x.id, x.sku AS key, FALSE AS allow_negative \
    FROM (SELECT DISTINCT k FROM json_array_elements_text($2::json) AS a(k)) s \
    CROSS JOIN LATERAL (SELECT id, sku FROM items WHERE tenant_id = $1 AND sku = s.k OFFSET 0) x \
    UNION ALL \
    SELECT 'l', y.id, y.code, y.allow_negative \
    FROM (SELECT DISTINCT k FROM json_array_elements_text($3::json) AS a(k)) s \
    CROSS JOIN LATERAL (SELECT id, code, allow_negative FROM locations \
      WHERE tenant_id = $1 AND code = s.k OFFSET 0) y";

/// The look-up of SKUs and location codes on Postgres (see [`RESOLVE_SQL`]).
#[doc(hidden)]
pub fn resolve_statement(
    tenant_id: &str,
    skus: Vec<String>,
    codes: Vec<String>,
) -> sea_orm::Statement {
    sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        RESOLVE_SQL,
        [
            tenant_id.into(),
            serde_json::Value::from(skus).into(),
            serde_json::Value::from(codes).into(),
        ],
    )
}

/// Looks up every SKU and location code the changes name, in one query.
#[derive(Default)]
struct Resolver {
    items: HashMap<String, ResolvedItem>,
    locations: HashMap<String, ResolvedLocation>,
}

impl Resolver {
    async fn load(
        db: &impl ConnectionTrait,
        tenant_id: &str,
        skus: Vec<String>,
        codes: Vec<String>,
    ) -> Result<Self, DbErr> {
        let mut resolver = Self {
            items: HashMap::new(),
            locations: HashMap::new(),
        };
        let rows = if db.get_database_backend() == sea_orm::DbBackend::Postgres {
            // One text whatever the number of keys, so each connection plans it once; each key
            // found by its unique index whatever the statistics say.
            db.query_all_raw(resolve_statement(tenant_id, skus, codes))
                .await?
        } else {
            db.query_all(&Self::select(tenant_id, skus, codes)).await?
        };
        for row in rows {
            let kind: String = row.try_get("", "kind")?;
            let id: String = row.try_get("", "id")?;
            let key: String = row.try_get("", "key")?;
            if kind == "i" {
                resolver
                    .items
                    .insert(key.clone(), ResolvedItem { id, sku: key });
            } else {
                let allow_negative: bool = row.try_get("", "allow_negative")?;
                resolver.locations.insert(
                    key.clone(),
                    ResolvedLocation {
                        id,
                        code: key,
                        allow_negative,
                    },
                );
            }
        }
        Ok(resolver)
    }

    /// The look-up on SQLite: items and locations as one UNION ALL.
    fn select(
        tenant_id: &str,
        skus: Vec<String>,
        codes: Vec<String>,
    ) -> sea_orm::sea_query::SelectStatement {
        let mut select = Query::select();
        select
            .expr_as(Expr::cust("'i'"), "kind")
            .column("id")
            .expr_as(Expr::col("sku"), "key")
            .expr_as(Expr::cust("FALSE"), "allow_negative")
            .from("items")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("sku").is_in(skus));
        let mut locations = Query::select();
        locations
            .expr_as(Expr::cust("'l'"), "kind")
            .column("id")
            .expr_as(Expr::col("code"), "key")
            .column("allow_negative")
            .from("locations")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("code").is_in(codes));
        select.union(UnionType::All, locations);
        select
    }

    /// Adds what the caller resolved itself (locations as refusing negative stock).
    fn know(&mut self, items: Vec<(String, String)>, locations: Vec<(String, String)>) {
        for (sku, id) in items {
            self.items.insert(sku.clone(), ResolvedItem { id, sku });
        }
        for (code, id) in locations {
            self.locations.insert(
                code.clone(),
                ResolvedLocation {
                    id,
                    code,
                    allow_negative: false,
                },
            );
        }
    }

    fn item(
        &self,
        sku: &str,
        base: &[String],
        errors: &mut Vec<UserError>,
    ) -> Option<ResolvedItem> {
        let found = self.items.get(sku).cloned();
        if found.is_none() {
            errors.push(UserError {
                code: ErrorCode::UnknownSku,
                field: path(base, "sku"),
                message: format!("no item has SKU {sku:?}"),
            });
        }
        found
    }

    fn location(
        &self,
        code: &str,
        base: &[String],
        errors: &mut Vec<UserError>,
    ) -> Option<ResolvedLocation> {
        let found = self.locations.get(code).cloned();
        if found.is_none() {
            errors.push(UserError {
                code: ErrorCode::UnknownLocation,
                field: path(base, "locationCode"),
                message: format!("no location has code {code:?}"),
            });
        }
        found
    }
}

fn fail_if_any(errors: Vec<UserError>) -> Result<(), DomainError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DomainError::User(errors))
    }
}

/// A change that names one bucket: what `adjust` and `set` take.
struct BucketChange<'a> {
    sku: &'a str,
    location_code: &'a str,
    state: QuantityState,
    delta: i64,
    target: Option<i64>,
    change_from: Option<i64>,
}

impl<'a> BucketChange<'a> {
    /// An `adjustStock` change.
    fn adjusting(c: &'a AdjustChangeInput) -> Self {
        Self {
            sku: &c.sku,
            location_code: &c.location_code,
            state: c.state,
            delta: c.delta,
            target: None,
            change_from: c.change_from_quantity,
        }
    }
}

/// Resolves SKUs and location codes of single-bucket changes; unknown ones are user errors.
async fn resolve_bucket_changes(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    changes: Vec<BucketChange<'_>>,
) -> Result<Vec<Entry>, DomainError> {
    let resolver = Resolver::load(
        txn,
        &cx.principal.tenant_id,
        changes.iter().map(|c| c.sku.to_owned()).collect(),
        changes.iter().map(|c| c.location_code.to_owned()).collect(),
    )
    .await?;
    let mut errors = Vec::new();
    let mut entries = Vec::with_capacity(changes.len());
    for (i, change) in changes.into_iter().enumerate() {
        let base = element(i);
        let item = resolver.item(change.sku, &base, &mut errors);
        let location = resolver.location(change.location_code, &base, &mut errors);
        if let (Some(item), Some(location)) = (item, location) {
            entries.push(Entry {
                item,
                location,
                state: change.state,
                delta: change.delta,
                target: change.target,
                change_from: change.change_from,
                counterparty: Counterparty::Adjustment,
                counterparty_location: None,
                counterparty_state: None,
                path: base,
            });
        }
    }
    fail_if_any(errors)?;
    Ok(entries)
}

/// What is wrong with an adjustment before anything is looked up.
fn check_adjust(input: &AdjustStockInput) -> Vec<UserError> {
    let mut errors = check_common(
        input.reference_document_uri.as_deref(),
        input.changes.len(),
        MAX_CHANGES,
    );
    for (i, change) in input.changes.iter().enumerate() {
        let base = element(i);
        if change.delta == 0 || !(-MAX_DELTA..=MAX_DELTA).contains(&change.delta) {
            errors.push(invalid(
                &base,
                "delta",
                format!("must be non-zero and within ±{MAX_DELTA}"),
            ));
        }
        check_change_from(&base, change.change_from_quantity, &mut errors);
    }
    errors
}

/// Adds or removes quantities: each change moves `delta` between a bucket and the outside.
pub async fn adjust(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: &AdjustStockInput,
) -> Result<StockChange, DomainError> {
    fail_if_any(check_adjust(input))?;
    let now = Utc::now();
    if let [change] = input.changes.as_slice()
        && let Some((entry, level)) = adjust_one_by_keys(txn, cx, change, now).await?
    {
        return record(
            txn,
            cx,
            now,
            Group::of(
                input.reason,
                &input.reference_document_uri,
                input.effective_at,
            ),
            vec![entry],
            vec![Applied::Moved(level)],
        )
        .await;
    }
    let changes = input.changes.iter().map(BucketChange::adjusting).collect();
    let entries = resolve_bucket_changes(txn, cx, changes).await?;
    apply(
        txn,
        cx,
        Group::of(
            input.reason,
            &input.reference_document_uri,
            input.effective_at,
        ),
        entries,
    )
    .await
}

/// Moves quantities between states and/or locations; each change is two bucket entries.
pub async fn move_stock(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: &MoveStockInput,
) -> Result<StockChange, DomainError> {
    let mut errors = check_common(
        input.reference_document_uri.as_deref(),
        input.changes.len(),
        MAX_CHANGES,
    );
    for (i, change) in input.changes.iter().enumerate() {
        let base = element(i);
        if !(1..=MAX_DELTA).contains(&change.quantity) {
            errors.push(invalid(
                &base,
                "quantity",
                format!("must be within 1 and {MAX_DELTA}"),
            ));
        }
        if change.from.location_code == change.to.location_code
            && change.from.state == change.to.state
        {
            errors.push(invalid(
                &base,
                "to",
                "source and destination are the same bucket",
            ));
        }
        let mut from_base = base.clone();
        from_base.push("from".into());
        check_change_from(&from_base, change.from.change_from_quantity, &mut errors);
        let mut to_base = base.clone();
        to_base.push("to".into());
        check_change_from(&to_base, change.to.change_from_quantity, &mut errors);
    }
    fail_if_any(errors)?;
    let codes = input
        .changes
        .iter()
        .flat_map(|c| [c.from.location_code.clone(), c.to.location_code.clone()])
        .collect();
    let resolver = Resolver::load(
        txn,
        &cx.principal.tenant_id,
        input.changes.iter().map(|c| c.sku.clone()).collect(),
        codes,
    )
    .await?;
    let mut errors = Vec::new();
    let mut entries = Vec::with_capacity(input.changes.len() * 2);
    for (i, change) in input.changes.iter().enumerate() {
        let base = element(i);
        let item = resolver.item(&change.sku, &base, &mut errors);
        let mut from_base = base.clone();
        from_base.push("from".into());
        let mut to_base = base.clone();
        to_base.push("to".into());
        let from = resolver.location(&change.from.location_code, &from_base, &mut errors);
        let to = resolver.location(&change.to.location_code, &to_base, &mut errors);
        let (Some(item), Some(from), Some(to)) = (item, from, to) else {
            continue;
        };
        entries.push(Entry {
            item: item.clone(),
            location: from.clone(),
            state: change.from.state,
            delta: -change.quantity,
            target: None,
            change_from: change.from.change_from_quantity,
            counterparty: Counterparty::Bucket,
            counterparty_location: Some(to.clone()),
            counterparty_state: Some(change.to.state),
            path: from_base,
        });
        entries.push(Entry {
            item,
            location: to,
            state: change.to.state,
            delta: change.quantity,
            target: None,
            change_from: change.to.change_from_quantity,
            counterparty: Counterparty::Bucket,
            counterparty_location: Some(from),
            counterparty_state: Some(change.from.state),
            path: to_base,
        });
    }
    fail_if_any(errors)?;
    apply(
        txn,
        cx,
        Group::of(
            input.reason,
            &input.reference_document_uri,
            input.effective_at,
        ),
        entries,
    )
    .await
}

/// Sets absolute quantities (cycle counts); the ledger records the difference.
pub async fn set(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: &SetStockInput,
) -> Result<StockChange, DomainError> {
    set_up_to(txn, cx, input, MAX_CHANGES).await
}

/// Changes an import batch may set in one call: more than a request may send, since the
/// set-based path writes a batch in a few statements whatever its size (at 18 parameters a
/// movement, 1000 stay well within Postgres' 65535 parameters a statement).
pub const MAX_IMPORT_CHANGES: usize = 1000;

/// [`set`] for an import batch of up to [`MAX_IMPORT_CHANGES`] changes.
pub(crate) async fn set_batch(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: &SetStockInput,
) -> Result<StockChange, DomainError> {
    set_up_to(txn, cx, input, MAX_IMPORT_CHANGES).await
}

async fn set_up_to(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    input: &SetStockInput,
    max_changes: usize,
) -> Result<StockChange, DomainError> {
    let mut errors = check_common(
        input.reference_document_uri.as_deref(),
        input.changes.len(),
        max_changes,
    );
    for (i, change) in input.changes.iter().enumerate() {
        let base = element(i);
        if !(0..=MAX_QUANTITY).contains(&change.quantity) {
            errors.push(invalid(
                &base,
                "quantity",
                format!("must be within 0 and {MAX_QUANTITY}"),
            ));
        }
        check_change_from(&base, change.change_from_quantity, &mut errors);
    }
    fail_if_any(errors)?;
    let changes = input
        .changes
        .iter()
        .map(|c| BucketChange {
            sku: &c.sku,
            location_code: &c.location_code,
            state: c.state,
            delta: 0,
            target: Some(c.quantity),
            change_from: c.change_from_quantity,
        })
        .collect();
    let entries = resolve_bucket_changes(txn, cx, changes).await?;
    let group = Group::of(
        input.reason,
        &input.reference_document_uri,
        input.effective_at,
    );
    // Many counts of distinct levels (an import's batch, a stocktake): set-based, a few
    // statements for the whole batch instead of three per change.
    let mut keys: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.item.id.as_str(), e.location.id.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if entries.len() > 1 && keys.len() == entries.len() {
        return apply_sets_at_once(txn, cx, group, entries).await;
    }
    apply(txn, cx, group, entries).await
}

/// Absolute sets of distinct levels, all at once: one INSERT makes the missing level rows (on
/// Postgres already holding their targets), one SELECT locks the rows that existed (in key
/// order, as `apply` locks them), their targets become deltas against the locked quantities
/// (every stale `changeFromQuantity` is reported, not only the first), one UPDATE per state
/// writes them, and `record` adds the movements and events. A set's target is within bounds
/// by validation, so the floor and ceiling rules of `conditional_update` hold by construction
/// once the row is locked.
async fn apply_sets_at_once(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    group: Group<'_>,
    mut entries: Vec<Entry>,
) -> Result<StockChange, DomainError> {
    let tenant_id = cx.principal.tenant_id.as_str();
    let backend = txn.get_database_backend();
    let postgres = backend == sea_orm::DbBackend::Postgres;
    let now = Utc::now();
    let mut errors = Vec::new();
    let mut applied: Vec<Option<Applied>> = vec![None; entries.len()];
    // The entries whose level this batch made (settled above, or refused).
    let mut made = vec![false; entries.len()];
    if postgres {
        // A level the batch creates is written with its counted quantity (it held 0, and no
        // one else sees it before the commit), so only the levels that existed are locked and
        // updated below: a first stock load is one INSERT.
        for (i, level) in insert_counted_levels(txn, tenant_id, now, &entries).await? {
            made[i] = true;
            let entry = &mut entries[i];
            if entry.change_from.is_some_and(|expected| expected != 0) {
                errors.push(stale(entry, 0));
                continue;
            }
            entry.delta = entry.target.unwrap_or_default();
            applied[i] = Some(if entry.delta == 0 {
                Applied::Unchanged(level)
            } else {
                Applied::Moved(level)
            });
        }
    } else {
        let mut insert = Query::insert();
        insert.into_table("stock_levels").columns([
            "tenant_id",
            "item_id",
            "location_id",
            "updated_at",
        ]);
        for e in &entries {
            insert.values_panic([
                tenant_id.into(),
                e.item.id.clone().into(),
                e.location.id.clone().into(),
                now.into(),
            ]);
        }
        insert.on_conflict(
            OnConflict::columns(["tenant_id", "item_id", "location_id"])
                .do_nothing()
                .to_owned(),
        );
        txn.execute(&insert).await?;
    }

    // The levels that existed: locked in key order (as `apply` locks them), their targets
    // made deltas against the locked quantities (every stale `changeFromQuantity` is reported,
    // not only the first).
    let existing: Vec<usize> = (0..entries.len()).filter(|&i| !made[i]).collect();
    let mut current: HashMap<(String, String), stock_level::Model> = HashMap::new();
    if !existing.is_empty() {
        // On Postgres the keys travel as one JSON parameter joined through
        // `json_to_recordset`: the planner then walks the primary key once per row, where a
        // `VALUES` list of pairs is planned as a scan of every level of the tenant (a batch's
        // cost grew with the size of the table), and one parameter binds faster than
        // thousands.
        let select = if postgres {
            let keys: Vec<(&str, &str)> = existing
                .iter()
                .map(|&i| (entries[i].item.id.as_str(), entries[i].location.id.as_str()))
                .collect();
            lock_levels_statement(tenant_id, &keys)?
        } else {
            let mut values: Vec<sea_orm::Value> = vec![tenant_id.into()];
            let mut pairs = Vec::with_capacity(existing.len());
            for &i in &existing {
                values.push(entries[i].item.id.clone().into());
                values.push(entries[i].location.id.clone().into());
                pairs.push(format!("(${}, ${})", values.len() - 1, values.len()));
            }
            sea_orm::Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT * FROM stock_levels WHERE tenant_id = $1 \
                     AND (item_id, location_id) IN (VALUES {}) ORDER BY item_id, location_id",
                    pairs.join(", ")
                ),
                values,
            )
        };
        for row in txn.query_all_raw(select).await? {
            let level = stock_level::Model::from_query_result(&row, "")?;
            current.insert((level.item_id.clone(), level.location_id.clone()), level);
        }
    }

    let mut changed: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    for i in existing {
        let entry = &mut entries[i];
        let level = current
            .get(&(entry.item.id.clone(), entry.location.id.clone()))
            .ok_or_else(|| anyhow::anyhow!("stock level row missing right after its insert"))?;
        let quantity = entry.state.of(level);
        if entry
            .change_from
            .is_some_and(|expected| expected != quantity)
        {
            errors.push(stale(entry, quantity));
            continue;
        }
        entry.delta = entry.target.unwrap_or(quantity) - quantity;
        if entry.delta == 0 {
            applied[i] = Some(Applied::Unchanged(level.clone()));
        } else {
            changed.entry(entry.state.column()).or_default().push(i);
        }
    }
    fail_if_any(errors)?;

    for (column, indexes) in changed {
        let update = if postgres {
            let targets: Vec<(&str, &str, i64)> = indexes
                .iter()
                .map(|&i| {
                    let e = &entries[i];
                    (
                        e.item.id.as_str(),
                        e.location.id.as_str(),
                        e.target.unwrap_or_default(),
                    )
                })
                .collect();
            set_levels_statement(tenant_id, column, &targets, now)?
        } else {
            let mut values: Vec<sea_orm::Value> = vec![tenant_id.into(), now.into()];
            let mut rows = Vec::with_capacity(indexes.len());
            for &i in &indexes {
                let e = &entries[i];
                values.push(e.item.id.clone().into());
                values.push(e.location.id.clone().into());
                values.push(e.target.unwrap_or_default().into());
                let n = values.len();
                rows.push(format!("(${}, ${}, CAST(${n} AS BIGINT))", n - 2, n - 1));
            }
            sea_orm::Statement::from_sql_and_values(
                backend,
                format!(
                    "WITH v(v_item, v_location, v_quantity) AS (VALUES {}) \
                     UPDATE stock_levels SET {column} = v_quantity, sequence = sequence + 1, \
                       version = version + 1, updated_at = $2 \
                     FROM v \
                     WHERE tenant_id = $1 AND item_id = v_item AND location_id = v_location \
                     RETURNING *",
                    rows.join(", ")
                ),
                values,
            )
        };
        let mut after: HashMap<(String, String), stock_level::Model> = HashMap::new();
        for row in txn.query_all_raw(update).await? {
            let level = stock_level::Model::from_query_result(&row, "")?;
            after.insert((level.item_id.clone(), level.location_id.clone()), level);
        }
        for i in indexes {
            let key = (entries[i].item.id.clone(), entries[i].location.id.clone());
            let level = after
                .remove(&key)
                .ok_or_else(|| anyhow::anyhow!("a locked stock level row was not updated"))?;
            applied[i] = Some(Applied::Moved(level));
        }
    }
    let applied = applied.into_iter().flatten().collect();
    record(txn, cx, now, group, entries, applied).await
}

/// A new level of [`apply_sets_at_once`] as a row of a JSON recordset: its state's column and
/// the quantity it starts with.
#[derive(Serialize)]
struct CountedLevel<'a> {
    i: &'a str,
    l: &'a str,
    s: &'static str,
    q: i64,
}

/// Postgres: inserts the levels of `entries` that do not exist yet, each holding its set's
/// target (sequence and version 1, or 0 when the target is 0, which writes no movement), in
/// key order; returns the index of each entry whose level it made, with that row. An entry
/// whose `changeFromQuantity` is not 0 would be refused: its level starts at 0.
async fn insert_counted_levels(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    now: DateTime<Utc>,
    entries: &[Entry],
) -> Result<Vec<(usize, stock_level::Model)>, DbErr> {
    let mut rows: Vec<CountedLevel> = entries
        .iter()
        .map(|e| CountedLevel {
            i: &e.item.id,
            l: &e.location.id,
            s: e.state.column(),
            q: if e.change_from.is_none_or(|expected| expected == 0) {
                e.target.unwrap_or_default()
            } else {
                0
            },
        })
        .collect();
    rows.sort_unstable_by(|a, b| (a.i, a.l).cmp(&(b.i, b.l)));
    let quantities: Vec<String> = QuantityState::ALL
        .iter()
        .map(|s| format!("CASE WHEN r.s = '{0}' THEN r.q ELSE 0 END", s.column()))
        .collect();
    let columns: Vec<&str> = QuantityState::ALL.iter().map(|s| s.column()).collect();
    let statement = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        format!(
            "INSERT INTO stock_levels (tenant_id, item_id, location_id, {}, sequence, version, \
               updated_at) \
             SELECT $1, r.i, r.l, {}, CASE WHEN r.q = 0 THEN 0 ELSE 1 END, \
               CASE WHEN r.q = 0 THEN 0 ELSE 1 END, $2 \
             FROM json_to_recordset($3::json) AS r(i text, l text, s text, q bigint) \
             ON CONFLICT (tenant_id, item_id, location_id) DO NOTHING \
             RETURNING *",
            columns.join(", "),
            quantities.join(", "),
        ),
        [
            tenant_id.into(),
            now.into(),
            json_rows(&rows).map_err(|e| DbErr::Custom(e.to_string()))?,
        ],
    );
    let index: HashMap<(&str, &str), usize> = entries
        .iter()
        .enumerate()
        .map(|(n, e)| ((e.item.id.as_str(), e.location.id.as_str()), n))
        .collect();
    let mut made = Vec::new();
    for row in txn.query_all_raw(statement).await? {
        let level = stock_level::Model::from_query_result(&row, "")?;
        let n = index
            .get(&(level.item_id.as_str(), level.location_id.as_str()))
            .copied()
            .ok_or_else(|| DbErr::Custom("a level was made that no change asked for".into()))?;
        made.push((n, level));
    }
    Ok(made)
}

/// The common case, one change to an existing level, in one statement on Postgres: the
/// conditional UPDATE finds the item and the location by SKU and code itself, which saves the
/// lookup's round trip. `None` when it changed nothing (an unknown SKU or location, no level
/// row yet, a rule refusing the change): the general path then does the change, or explains
/// why not. Elsewhere always `None`.
async fn adjust_one_by_keys(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    change: &AdjustChangeInput,
    now: DateTime<Utc>,
) -> Result<Option<(Entry, stock_level::Model)>, DbErr> {
    if txn.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(None);
    }
    let update = conditional_update(
        &cx.principal.tenant_id,
        LevelRow::ByKeys {
            sku: &change.sku,
            code: &change.location_code,
        },
        change.state,
        change.delta,
        change.change_from_quantity,
        now,
    );
    let Some(row) = txn.query_one(&update).await? else {
        return Ok(None);
    };
    let level = stock_level::Model::from_query_result(&row, "")?;
    let entry = Entry {
        item: ResolvedItem {
            id: level.item_id.clone(),
            sku: change.sku.clone(),
        },
        location: ResolvedLocation {
            id: level.location_id.clone(),
            code: change.location_code.clone(),
            allow_negative: row.try_get("", "location_allows_negative")?,
        },
        state: change.state,
        delta: change.delta,
        target: None,
        change_from: change.change_from_quantity,
        counterparty: Counterparty::Adjustment,
        counterparty_location: None,
        counterparty_state: None,
        path: element(0),
    };
    Ok(Some((entry, level)))
}

/// Which level row a conditional update targets.
enum LevelRow<'a> {
    /// By the ids the caller resolved, with the location's negative-stock rule.
    Resolved {
        item_id: &'a str,
        location_id: &'a str,
        allow_negative: bool,
    },
    /// By SKU and location code, resolved inside the statement as scalar subqueries, so the row
    /// is found by all three key columns whatever plan Postgres makes (a join could scan every
    /// level of the location). Also returns `location_allows_negative`.
    ByKeys { sku: &'a str, code: &'a str },
}

/// The conditional UPDATE: applies `delta` to `state` only if every rule holds, returning the
/// new row. The rules live here and nowhere else.
fn conditional_update(
    tenant_id: &str,
    row: LevelRow<'_>,
    state: QuantityState,
    delta: i64,
    change_from: Option<i64>,
    now: DateTime<Utc>,
) -> sea_orm::sea_query::UpdateStatement {
    let col = state.column();
    let floor = Expr::col(col).add(delta).gte(0);
    let mut update = Query::update();
    update
        .table("stock_levels")
        .value(col, Expr::col(col).add(delta))
        .value("sequence", Expr::col("sequence").add(1))
        .value("version", Expr::col("version").add(1))
        .value("updated_at", now)
        .and_where(Expr::col("tenant_id").eq(tenant_id));
    match row {
        LevelRow::Resolved {
            item_id,
            location_id,
            allow_negative,
        } => {
            update
                .and_where(Expr::col("item_id").eq(item_id))
                .and_where(Expr::col("location_id").eq(location_id));
            // Below zero only for AVAILABLE at a location that allows it.
            if !(allow_negative && state == QuantityState::Available) {
                update.and_where(floor);
            }
            update.returning_all();
        }
        LevelRow::ByKeys { sku, code } => {
            let lookup = |sql: &'static str, key: &str| {
                Expr::cust_with_values(sql, [tenant_id.to_owned(), key.to_owned()])
            };
            let allows_negative = || {
                lookup(
                    "(SELECT allow_negative FROM locations WHERE tenant_id = $1 AND code = $2)",
                    code,
                )
            };
            update
                .and_where(Expr::col("item_id").eq(lookup(
                    "(SELECT id FROM items WHERE tenant_id = $1 AND sku = $2)",
                    sku,
                )))
                .and_where(Expr::col("location_id").eq(lookup(
                    "(SELECT id FROM locations WHERE tenant_id = $1 AND code = $2)",
                    code,
                )))
                .and_where(if state == QuantityState::Available {
                    floor.or(allows_negative())
                } else {
                    floor
                });
            update.returning(Query::returning().exprs([
                Expr::col(Asterisk),
                lookup(
                    "(SELECT allow_negative FROM locations WHERE tenant_id = $1 AND code = $2) \
                     AS location_allows_negative",
                    code,
                ),
            ]));
        }
    }
    update.and_where(Expr::col(col).add(delta).lte(MAX_QUANTITY));
    if let Some(expected) = change_from {
        update.and_where(Expr::col(col).eq(expected));
    }
    update.to_owned()
}

async fn select_level(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    entry: &Entry,
    for_update: bool,
) -> Result<Option<stock_level::Model>, DbErr> {
    let mut select = stock_level::Entity::find_by_id((
        tenant_id.to_owned(),
        entry.item.id.clone(),
        entry.location.id.clone(),
    ));
    if for_update && txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        sea_orm::QuerySelect::query(&mut select).lock(LockType::Update);
    }
    select.one(txn).await
}

async fn ensure_level(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    entry: &Entry,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let insert = Query::insert()
        .into_table("stock_levels")
        .columns(["tenant_id", "item_id", "location_id", "updated_at"])
        .values_panic([
            tenant_id.into(),
            entry.item.id.clone().into(),
            entry.location.id.clone().into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::columns(["tenant_id", "item_id", "location_id"])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    txn.execute(&insert).await?;
    Ok(())
}

fn stale(entry: &Entry, current: i64) -> UserError {
    let expected = entry.change_from.unwrap_or_default();
    UserError {
        code: ErrorCode::ChangeFromQuantityStale,
        field: path(&entry.path, "changeFromQuantity"),
        message: format!(
            "{} of {} at {} is {current}, not {expected} - Hint: read the level again and retry with changeFromQuantity {current}",
            entry.state.column(),
            entry.item.sku,
            entry.location.code
        ),
    }
}

/// Why a conditional update matched no row, judged against the current quantity; `None` when
/// the change would pass now (the row appeared or moved since the update ran: try again).
fn refusal(entry: &Entry, current: i64) -> Option<UserError> {
    if entry
        .change_from
        .is_some_and(|expected| expected != current)
    {
        return Some(stale(entry, current));
    }
    let state = entry.state.column();
    let leaf = if entry.target.is_some() || entry.counterparty == Counterparty::Bucket {
        "quantity"
    } else {
        "delta"
    };
    let may_go_negative = entry.location.allow_negative && entry.state == QuantityState::Available;
    if current + entry.delta < 0 && !may_go_negative {
        return Some(UserError {
            code: ErrorCode::InsufficientStock,
            field: path(&entry.path, leaf),
            message: format!(
                "{state} of {} at {} is {current}; a change of {} would take it below zero",
                entry.item.sku, entry.location.code, entry.delta
            ),
        });
    }
    if current + entry.delta > MAX_QUANTITY {
        return Some(UserError {
            code: ErrorCode::QuantityOutOfRange,
            field: path(&entry.path, leaf),
            message: format!(
                "{state} of {} at {} would exceed {MAX_QUANTITY}",
                entry.item.sku, entry.location.code
            ),
        });
    }
    None
}

/// What applying one bucket change did.
#[derive(Clone)]
enum Applied {
    /// The quantity changed; the level row after the change.
    Moved(stock_level::Model),
    /// A set to the quantity the bucket already had: no movement, the level as it is.
    Unchanged(stock_level::Model),
}

impl Applied {
    fn level(&self) -> &stock_level::Model {
        match self {
            Applied::Moved(level) | Applied::Unchanged(level) => level,
        }
    }
}

/// Applies one bucket change; returns the level row after it, or why it was refused.
async fn apply_entry(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    entry: &mut Entry,
    now: DateTime<Utc>,
) -> Result<Applied, DomainError> {
    if let Some(target) = entry.target {
        // Absolute set: lock the row, derive the delta, and guard the update with the value read.
        ensure_level(txn, tenant_id, entry, now).await?;
        let level = select_level(txn, tenant_id, entry, true)
            .await?
            .ok_or_else(|| anyhow::anyhow!("stock level row missing right after its insert"))?;
        let current = entry.state.of(&level);
        if entry
            .change_from
            .is_some_and(|expected| expected != current)
        {
            return Err(DomainError::user(stale(entry, current)));
        }
        entry.delta = target - current;
        if entry.delta == 0 {
            return Ok(Applied::Unchanged(level));
        }
        entry.change_from = Some(current);
    }
    // The first change of an (item, location) finds no row: create it and try again. A row
    // created or changed by a concurrent writer between our update and our look is retried too.
    for _attempt in 0..5 {
        let update = conditional_update(
            tenant_id,
            LevelRow::Resolved {
                item_id: &entry.item.id,
                location_id: &entry.location.id,
                allow_negative: entry.location.allow_negative,
            },
            entry.state,
            entry.delta,
            entry.change_from,
            now,
        );
        if let Some(row) = txn.query_one(&update).await? {
            return Ok(Applied::Moved(stock_level::Model::from_query_result(
                &row, "",
            )?));
        }
        match select_level(txn, tenant_id, entry, false).await? {
            Some(level) => {
                if let Some(refused) = refusal(entry, entry.state.of(&level)) {
                    return Err(DomainError::user(refused));
                }
            }
            None => ensure_level(txn, tenant_id, entry, now).await?,
        }
    }
    Err(DomainError::Internal(anyhow::anyhow!(
        "stock level update kept missing its row after 5 attempts"
    )))
}

async fn apply(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    group: Group<'_>,
    mut entries: Vec<Entry>,
) -> Result<StockChange, DomainError> {
    let tenant_id = cx.principal.tenant_id.as_str();
    let now = Utc::now();

    // Lock level rows in one global order so concurrent groups never deadlock; the stable
    // sort keeps the input order of changes to the same row.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|a, b| {
        (&entries[*a].item.id, &entries[*a].location.id)
            .cmp(&(&entries[*b].item.id, &entries[*b].location.id))
    });

    if let Some(applied) = apply_deltas_at_once(txn, tenant_id, &entries, &order, now).await? {
        return record(txn, cx, now, group, entries, applied).await;
    }
    let mut applied: Vec<Option<Applied>> = vec![None; entries.len()];
    for index in order {
        applied[index] = Some(apply_entry(txn, tenant_id, &mut entries[index], now).await?);
    }
    let applied = applied.into_iter().flatten().collect();
    record(txn, cx, now, group, entries, applied).await
}

/// Several relative changes (a document's lines, a multi-line adjust or move) on Postgres, in
/// two statements instead of one per change: the levels are locked in the order `apply` locks
/// them, the changes to one level are summed per state, and every rule `conditional_update`
/// applies to each change in turn is checked against the locked row (the lowest and the
/// highest point each state passes through). All of it or nothing: `None` when any level is
/// missing or any rule refuses, and `apply` then goes change by change, creating the missing
/// rows or explaining the refusal exactly. Changes with a target or a `changeFromQuantity`
/// always go change by change.
async fn apply_deltas_at_once(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    entries: &[Entry],
    order: &[usize],
    now: DateTime<Utc>,
) -> Result<Option<Vec<Applied>>, DbErr> {
    if txn.get_database_backend() != sea_orm::DbBackend::Postgres
        || entries.len() < 2
        || entries
            .iter()
            .any(|e| e.target.is_some() || e.change_from.is_some())
    {
        return Ok(None);
    }
    // The changes of each level, in lock order and, within a level, in input order.
    let mut levels: Vec<Vec<usize>> = Vec::new();
    for &i in order {
        let same = levels.last().is_some_and(|last: &Vec<usize>| {
            let e = &entries[last[0]];
            e.item.id == entries[i].item.id && e.location.id == entries[i].location.id
        });
        if same {
            levels.last_mut().expect("checked above").push(i);
        } else {
            levels.push(vec![i]);
        }
    }
    let mut rows = Vec::with_capacity(levels.len());
    for indexes in &levels {
        let first = &entries[indexes[0]];
        let mut row = serde_json::Map::new();
        row.insert("i".into(), first.item.id.as_str().into());
        row.insert("l".into(), first.location.id.as_str().into());
        row.insert("n".into(), indexes.len().into());
        for state in QuantityState::ALL {
            let (mut sum, mut low, mut high, mut touched) = (0i64, i64::MAX, i64::MIN, false);
            for &i in indexes.iter().filter(|&&i| entries[i].state == state) {
                sum += entries[i].delta;
                low = std::cmp::min(low, sum);
                high = std::cmp::max(high, sum);
                touched = true;
            }
            if !touched {
                continue;
            }
            let column = state.column();
            row.insert(format!("d_{column}"), sum.into());
            // Below zero only for AVAILABLE at a location that allows it.
            if !(first.location.allow_negative && state == QuantityState::Available) {
                row.insert(format!("lo_{column}"), low.into());
            }
            row.insert(format!("hi_{column}"), high.into());
        }
        rows.push(serde_json::Value::Object(row));
    }
    // First lock every level by its key, in lock order (the rows' order), and judge each
    // state's running floor and ceiling against it; then write them all by row address, under
    // those locks. Two statements so that each look-up goes by primary key whatever the
    // planner believes of the tables (without statistics it takes a tenant for a handful of
    // rows, and one statement joining the changes to their levels scanned all the tenant's).
    let locked = txn
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            LOCK_DELTAS_SQL.as_str(),
            [
                tenant_id.into(),
                json_rows(&rows).map_err(|e| DbErr::Custom(e.to_string()))?,
            ],
        ))
        .await?;
    let mut row_ids: HashMap<(String, String), String> = HashMap::new();
    for row in &locked {
        if !row.try_get::<bool>("", "ok")? {
            // A rule refuses: change by change gives the exact error.
            return Ok(None);
        }
        row_ids.insert(
            (row.try_get("", "i")?, row.try_get("", "l")?),
            row.try_get("", "row_id")?,
        );
    }
    if row_ids.len() != levels.len() {
        // A level row is missing: change by change creates it.
        return Ok(None);
    }
    for (row, indexes) in rows.iter_mut().zip(&levels) {
        let first = &entries[indexes[0]];
        let row_id = row_ids
            .remove(&(first.item.id.clone(), first.location.id.clone()))
            .ok_or_else(|| DbErr::Custom("a level was locked twice".into()))?;
        if let serde_json::Value::Object(row) = row {
            row.insert("t".into(), row_id.into());
        }
    }
    let statement = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        UPDATE_DELTAS_SQL.as_str(),
        [
            json_rows(&rows).map_err(|e| DbErr::Custom(e.to_string()))?,
            now.into(),
        ],
    );
    let mut after: HashMap<(String, String), stock_level::Model> = HashMap::new();
    for row in txn.query_all_raw(statement).await? {
        let level = stock_level::Model::from_query_result(&row, "")?;
        after.insert((level.item_id.clone(), level.location_id.clone()), level);
    }
    if after.len() != levels.len() {
        // Every locked row is written: a part means the statement is wrong, and going on
        // change by change would apply that part twice.
        return Err(DbErr::Custom(format!(
            "{} of {} levels changed at once",
            after.len(),
            levels.len()
        )));
    }
    // Each change's level is the final row less the changes after it on that level.
    let mut applied: Vec<Option<Applied>> = vec![None; entries.len()];
    for indexes in levels {
        let first = &entries[indexes[0]];
        let mut level = after
            .remove(&(first.item.id.clone(), first.location.id.clone()))
            .ok_or_else(|| DbErr::Custom("a level changed at once came back twice".into()))?;
        for &i in indexes.iter().rev() {
            applied[i] = Some(Applied::Moved(level.clone()));
            *entries[i].state.of_mut(&mut level) -= entries[i].delta;
            level.sequence -= 1;
            level.version -= 1;
        }
    }
    Ok(Some(applied.into_iter().flatten().collect()))
}

/// The columns of [`apply_deltas_at_once`]'s JSON rows: `i`, `l`, `n` changes and, per state,
/// `d_` the sum, `lo_` and `hi_` the lowest and highest running sum (absent when no rule
/// applies); the update's rows also carry `t`, the locked row's address.
fn delta_columns() -> String {
    QuantityState::ALL
        .iter()
        .map(|s| {
            let c = s.column();
            format!("d_{c} bigint, lo_{c} bigint, hi_{c} bigint")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Locks the levels of [`apply_deltas_at_once`] in the rows' order, each by its key (`OFFSET 0`
/// keeps every look-up a look-up), answering per level its row address and whether every rule
/// holds. $1 tenant, $2 the rows.
static LOCK_DELTAS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let columns: Vec<&str> = QuantityState::ALL.iter().map(|s| s.column()).collect();
    let rules: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "(r.lo_{c} IS NULL OR s.{c} + r.lo_{c} >= 0) \
                 AND (r.hi_{c} IS NULL OR s.{c} + r.hi_{c} <= {MAX_QUANTITY})"
            )
        })
        .collect();
    format!(
        "SELECT r.i, r.l, CAST(s.row_id AS text) AS row_id, ({}) AS ok \
         FROM json_to_recordset($2::json) AS r(i text, l text, n bigint, {}) \
         CROSS JOIN LATERAL (SELECT ctid AS row_id, {} FROM stock_levels \
           WHERE tenant_id = $1 AND item_id = r.i AND location_id = r.l OFFSET 0 FOR UPDATE) s",
        rules.join(" AND "),
        delta_columns(),
        columns.join(", "),
    )
});

/// The statement locking levels for a group of relative changes on Postgres (see
/// [`apply_deltas_at_once`]), with each level taking one away from `available`: for tests of
/// its plan.
#[doc(hidden)]
pub fn lock_deltas_statement(tenant_id: &str, levels: &[(&str, &str)]) -> sea_orm::Statement {
    let rows: Vec<serde_json::Value> = levels
        .iter()
        .map(|(item, location)| {
            serde_json::json!({
                "i": item, "l": location, "n": 1,
                "d_available": -1, "lo_available": -1, "hi_available": -1,
            })
        })
        .collect();
    sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        LOCK_DELTAS_SQL.as_str(),
        [
            tenant_id.into(),
            serde_json::Value::Array(rows).to_string().into(),
        ],
    )
}

/// Writes the levels [`LOCK_DELTAS_SQL`] locked, by row address (`t`): the rows cannot have
/// moved, since this transaction holds their locks. $1 the rows, $2 the time.
static UPDATE_DELTAS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let sets: Vec<String> = QuantityState::ALL
        .iter()
        .map(|s| {
            let c = s.column();
            format!("{c} = s.{c} + COALESCE(r.d_{c}, 0)")
        })
        .collect();
    format!(
        "UPDATE stock_levels s SET {}, sequence = s.sequence + r.n, version = s.version + r.n, \
           updated_at = $2 \
         FROM json_to_recordset($1::json) AS r(t tid, n bigint, {}) \
         WHERE s.ctid = ANY(ARRAY(SELECT x.t FROM json_to_recordset($1::json) AS x(t tid))) \
           AND s.ctid = r.t \
         RETURNING s.*",
        sets.join(", "),
        delta_columns(),
    )
});

/// Records applied changes: the movements, one `stock.changed` event per touched level and the
/// audit row. `applied[i]` is what applying entry i did.
async fn record(
    txn: &DatabaseTransaction,
    cx: &Context<'_>,
    now: DateTime<Utc>,
    group: Group<'_>,
    entries: Vec<Entry>,
    applied: Vec<Applied>,
) -> Result<StockChange, DomainError> {
    let tenant_id = cx.principal.tenant_id.as_str();
    let Recorded {
        change,
        changed,
        reason,
        reference_document_uri,
    } = recorded(cx, now, group, &entries, &applied);
    // The movements, one `stock.changed` event per touched level, and the audit row go in
    // together: one round trip on Postgres.
    let mut inserts = Vec::with_capacity(3);
    // A keyed adjust/move/set stores its answer with the statement below.
    let store = if cx.answers_with_change {
        crate::idempotency::store_with(&change)
    } else {
        None
    };
    let movements = &change.movements;
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres && movements.len() >= BULK_ROWS {
        txn.execute_raw(insert_bulk_postgres(
            tenant_id,
            movements,
            cx.idempotency_key,
            &changed,
            now,
        )?)
        .await?;
    } else {
        if !movements.is_empty() {
            inserts.push(insert_movements(tenant_id, movements, cx.idempotency_key));
        }
        if !changed.is_empty() {
            inserts.push(events::insert_many(tenant_id, changed));
        }
    }
    if !cx.audited_by_document {
        inserts.push(audit::insert(
            cx.principal,
            audit_entry(cx, &change, reason, reference_document_uri),
        ));
    }
    match cx.deferred {
        Some(deferred) if store.is_none() => deferred
            .lock()
            .map_err(|_| anyhow::anyhow!("deferred ledger writes poisoned"))?
            .extend(inserts.into_iter().map(crate::db::Write::Insert)),
        _ => crate::db::insert_all_and(txn, inserts, store).await?,
    }
    metrics::counter!("twh_ledger_movements_total").increment(movements.len() as u64);
    Ok(change)
}

/// What a group of changes leaves on record, before it is written: the answer (its movements
/// and the last level of each (item, location) it touched) and a `stock.changed` event per
/// touched level.
struct Recorded<'a> {
    change: StockChange,
    changed: Vec<events::NewEvent<'static>>,
    reason: MovementReason,
    reference_document_uri: Option<&'a str>,
}

fn recorded<'a>(
    cx: &Context<'_>,
    now: DateTime<Utc>,
    group: Group<'a>,
    entries: &[Entry],
    applied: &[Applied],
) -> Recorded<'a> {
    let Group {
        reason,
        reference_document_uri,
        effective_at,
    } = group;
    let effective_at = effective_at.unwrap_or(now);
    let group_id = ids::new_id(ids::MOVEMENT_GROUP);
    let actor = cx.principal.actor();

    // The last level each (item, location) reached, in lock order.
    let mut last_level: BTreeMap<(String, String), (stock_level::Model, String, String)> =
        BTreeMap::new();
    for (entry, level) in entries.iter().zip(applied.iter().map(Applied::level)) {
        let key = (level.item_id.clone(), level.location_id.clone());
        let newer = last_level
            .get(&key)
            .is_none_or(|(seen, _, _)| level.sequence >= seen.sequence);
        if newer {
            last_level.insert(
                key,
                (
                    level.clone(),
                    entry.item.sku.clone(),
                    entry.location.code.clone(),
                ),
            );
        }
    }

    let mut movements = Vec::new();
    for (entry, applied) in entries.iter().zip(applied) {
        let Applied::Moved(level) = applied else {
            continue;
        };
        movements.push(Movement {
            id: ID(ids::new_id(ids::MOVEMENT)),
            group_id: ID(group_id.clone()),
            item_id: ID(entry.item.id.clone()),
            sku: entry.item.sku.clone(),
            location_id: ID(entry.location.id.clone()),
            location_code: entry.location.code.clone(),
            state: entry.state,
            delta: entry.delta,
            quantity_after_change: entry.state.of(level),
            sequence: level.sequence,
            counterparty: entry.counterparty,
            counterparty_location_code: entry
                .counterparty_location
                .as_ref()
                .map(|l| l.code.clone()),
            counterparty_location_id: entry.counterparty_location.as_ref().map(|l| l.id.clone()),
            counterparty_state: entry.counterparty_state,
            reason,
            reference_document_uri: reference_document_uri.map(str::to_owned),
            actor: actor.clone(),
            effective_at,
            recorded_at: now,
        });
    }
    let levels: Vec<StockLevel> = last_level
        .values()
        .map(|(level, sku, code)| StockLevel::from_model(level, sku, code))
        .collect();
    let changed = levels
        .iter()
        .map(|level| events::NewEvent {
            event_type: events::STOCK_CHANGED,
            aggregate_type: "stock_level",
            aggregate_id: format!("{}:{}", level.item_id.0, level.location_id.0),
            payload: serde_json::json!({
                "groupId": group_id,
                "operation": cx.operation,
                "level": level,
            }),
        })
        .collect();
    Recorded {
        change: StockChange {
            group_id: ID(group_id),
            movements,
            levels,
        },
        changed,
        reason,
        reference_document_uri,
    }
}

/// The audit record of a change that no document audits.
fn audit_entry<'a>(
    cx: &Context<'a>,
    change: &'a StockChange,
    reason: MovementReason,
    reference_document_uri: Option<&str>,
) -> AuditEntry<'a> {
    AuditEntry {
        action: cx.operation,
        target_type: "movement_group",
        target_id: &change.group_id.0,
        request_id: Some(cx.request_id),
        data: serde_json::json!({
            "reason": reason.as_str(),
            "referenceDocumentUri": reference_document_uri,
            "movements": change.movements.len(),
            "idempotencyKey": cx.idempotency_key,
        }),
    }
}

/// From this many movements on, Postgres gets them (and their events) as JSON parameters in
/// one statement: thousands of bound parameters cost more to bind and plan than one
/// `json_to_recordset` costs to read.
const BULK_ROWS: usize = 32;

/// Locks stock levels on Postgres and reads them whole, each by its primary key (`OFFSET 0`
/// keeps every look-up a look-up, so a table without statistics is never scanned for them), in
/// the ledger's lock order: the keys are sorted here by their bytes, as `COLLATE "C"` orders
/// them, and the rows are locked in that order. $1 tenant, $2 the keys.
#[doc(hidden)]
pub fn lock_levels_statement(
    tenant_id: &str,
    keys: &[(&str, &str)],
) -> anyhow::Result<sea_orm::Statement> {
    let mut keys: Vec<LevelKey> = keys
        .iter()
        .map(|&(i, l)| LevelKey { i, l, q: None })
        .collect();
    keys.sort_by(|a, b| (a.i, a.l).cmp(&(b.i, b.l)));
    keys.dedup_by(|a, b| (a.i, a.l) == (b.i, b.l));
    Ok(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT s.* FROM json_to_recordset($2::json) AS r(i text, l text) \
         CROSS JOIN LATERAL (SELECT * FROM stock_levels \
           WHERE tenant_id = $1 AND item_id = r.i AND location_id = r.l OFFSET 0 FOR UPDATE) s",
        [tenant_id.into(), json_rows(&keys)?],
    ))
}

/// Sets one quantity column of locked levels on Postgres: each row found by its key in a
/// fenced look-up (`OFFSET 0`), then written by its row address; the tenant is named only in
/// the look-ups, or the planner may take `tenant_id = $1` for the way in and scan the tenant's
/// levels. The address is read in this statement, after any earlier change of this
/// transaction to the same row. $1 tenant, $2 the time, $3 the rows `(i, l, q)`.
#[doc(hidden)]
pub fn set_levels_statement(
    tenant_id: &str,
    column: &str,
    targets: &[(&str, &str, i64)],
    now: DateTime<Utc>,
) -> anyhow::Result<sea_orm::Statement> {
    let rows: Vec<LevelKey> = targets
        .iter()
        .map(|&(i, l, q)| LevelKey { i, l, q: Some(q) })
        .collect();
    Ok(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        format!(
            "UPDATE stock_levels s SET {column} = r.q, sequence = s.sequence + 1, \
               version = s.version + 1, updated_at = $2 \
             FROM json_to_recordset($3::json) AS r(i text, l text, q bigint) \
             WHERE s.ctid = ANY(ARRAY(SELECT (SELECT ctid FROM stock_levels \
                 WHERE tenant_id = $1 AND item_id = x.i AND location_id = x.l OFFSET 0) \
               FROM json_to_recordset($3::json) AS x(i text, l text))) \
               AND s.item_id = r.i AND s.location_id = r.l \
             RETURNING s.*"
        ),
        [tenant_id.into(), now.into(), json_rows(&rows)?],
    ))
}

/// A level (and, for an update, its new quantity) as a row of a JSON recordset.
#[derive(Serialize)]
struct LevelKey<'a> {
    i: &'a str,
    l: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<i64>,
}

/// Rows as one JSON parameter, for `json_to_recordset`.
fn json_rows<T: Serialize>(rows: &T) -> anyhow::Result<sea_orm::Value> {
    Ok(serde_json::to_string(rows)?.into())
}

/// The columns of `movements` with their Postgres types, in the order both inserts write them.
const MOVEMENT_COLUMNS: [(&str, &str); 18] = [
    ("tenant_id", "text"),
    ("id", "text"),
    ("group_id", "text"),
    ("item_id", "text"),
    ("location_id", "text"),
    ("state", "text"),
    ("delta", "bigint"),
    ("quantity_after", "bigint"),
    ("sequence", "bigint"),
    ("counterparty", "text"),
    ("counterparty_location_id", "text"),
    ("counterparty_state", "text"),
    ("reason", "text"),
    ("reference_document_uri", "text"),
    ("actor", "text"),
    ("idempotency_key", "text"),
    ("effective_at", "timestamptz"),
    ("recorded_at", "timestamptz"),
];

/// A movement as a row of a JSON recordset: its fields are [`MOVEMENT_COLUMNS`] but the two
/// every movement of a change shares (`tenant_id`, `idempotency_key`), which are parameters.
#[derive(Serialize)]
struct MovementRow<'a> {
    id: &'a str,
    group_id: &'a str,
    item_id: &'a str,
    location_id: &'a str,
    state: &'static str,
    delta: i64,
    quantity_after: i64,
    sequence: i64,
    counterparty: &'static str,
    counterparty_location_id: Option<&'a str>,
    counterparty_state: Option<&'static str>,
    reason: &'static str,
    reference_document_uri: Option<&'a str>,
    actor: &'a str,
    // Microseconds, as Postgres keeps them (and as a bound timestamp is sent).
    effective_at: String,
    recorded_at: String,
}

impl<'a> From<&'a Movement> for MovementRow<'a> {
    fn from(m: &'a Movement) -> Self {
        use chrono::SecondsFormat::Micros;
        MovementRow {
            id: &m.id.0,
            group_id: &m.group_id.0,
            item_id: &m.item_id.0,
            location_id: &m.location_id.0,
            state: m.state.column(),
            delta: m.delta,
            quantity_after: m.quantity_after_change,
            sequence: m.sequence,
            counterparty: m.counterparty.as_str(),
            counterparty_location_id: m.counterparty_location_id.as_deref(),
            counterparty_state: m.counterparty_state.map(QuantityState::column),
            reason: m.reason.as_str(),
            reference_document_uri: m.reference_document_uri.as_deref(),
            actor: &m.actor,
            effective_at: m.effective_at.to_rfc3339_opts(Micros, true),
            recorded_at: m.recorded_at.to_rfc3339_opts(Micros, true),
        }
    }
}

/// An event as a row of a JSON recordset; `o` keeps their order.
#[derive(Serialize)]
struct EventRow<'a> {
    o: usize,
    id: String,
    event_type: &'a str,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    payload: &'a serde_json::Value,
}

impl<'a> EventRow<'a> {
    /// The events as rows, each with a new id, in their order.
    fn rows(events: &'a [events::NewEvent<'a>]) -> Vec<Self> {
        events
            .iter()
            .enumerate()
            .map(|(o, e)| EventRow {
                o,
                id: ids::new_id(ids::EVENT),
                event_type: e.event_type,
                aggregate_type: e.aggregate_type,
                aggregate_id: &e.aggregate_id,
                payload: &e.payload,
            })
            .collect()
    }
}

/// The SQL of [`insert_bulk_postgres`]: $1 tenant, $2 idempotency key, $3 movements, $4 the
/// events' time, $5 events.
static BULK_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH m AS ({}) {}",
        insert_movements_from_json("$3", |name| match name {
            "tenant_id" => Some("$1"),
            "idempotency_key" => Some("$2"),
            _ => None,
        }),
        insert_events_from_json("$5", "$1", "$4"),
    )
});

/// An INSERT of the events in the JSON recordset parameter `rows` ([`EventRow`]s), in their
/// order, for the tenant and time in the parameters `tenant` and `time`.
fn insert_events_from_json(rows: &str, tenant: &str, time: &str) -> String {
    format!(
        "INSERT INTO outbox_events (tenant_id, id, event_type, aggregate_type, aggregate_id, \
           payload, created_at) \
         SELECT {tenant}, r.id, r.event_type, r.aggregate_type, r.aggregate_id, r.payload, {time} \
         FROM json_to_recordset({rows}::json) AS r(o bigint, id text, event_type text, \
           aggregate_type text, aggregate_id text, payload json) \
         ORDER BY r.o"
    )
}

/// An INSERT of movements read from the JSON recordset parameter `rows` ([`MovementRow`]s),
/// with the columns `shared` names taken from other parameters.
fn insert_movements_from_json(rows: &str, shared: impl Fn(&str) -> Option<&'static str>) -> String {
    let names: Vec<&str> = MOVEMENT_COLUMNS.iter().map(|(name, _)| *name).collect();
    let selected: Vec<String> = names
        .iter()
        .map(|name| shared(name).map_or_else(|| format!("r.{name}"), str::to_owned))
        .collect();
    let defined: Vec<String> = MOVEMENT_COLUMNS
        .iter()
        .filter(|(name, _)| shared(name).is_none())
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect();
    format!(
        "INSERT INTO movements ({}) SELECT {} FROM json_to_recordset({rows}::json) AS r({})",
        names.join(", "),
        selected.join(", "),
        defined.join(", "),
    )
}

/// The movements and the events of a bulk change in one Postgres statement, each set as one
/// JSON parameter. Events keep their order (their outbox positions follow it).
fn insert_bulk_postgres(
    tenant_id: &str,
    movements: &[Movement],
    idempotency_key: Option<&str>,
    events: &[events::NewEvent],
    now: DateTime<Utc>,
) -> anyhow::Result<sea_orm::Statement> {
    let movements: Vec<MovementRow> = movements.iter().map(MovementRow::from).collect();
    let events = EventRow::rows(events);
    Ok(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        BULK_SQL.as_str(),
        [
            tenant_id.into(),
            idempotency_key.map(str::to_owned).into(),
            json_rows(&movements)?,
            now.into(),
            json_rows(&events)?,
        ],
    ))
}

pub(crate) fn insert_movements(
    tenant_id: &str,
    movements: &[Movement],
    idempotency_key: Option<&str>,
) -> sea_orm::sea_query::InsertStatement {
    let mut insert = Query::insert();
    insert
        .into_table("movements")
        .columns(MOVEMENT_COLUMNS.map(|(name, _)| name));
    for m in movements {
        insert.values_panic([
            tenant_id.into(),
            m.id.0.clone().into(),
            m.group_id.0.clone().into(),
            m.item_id.0.clone().into(),
            m.location_id.0.clone().into(),
            m.state.column().into(),
            m.delta.into(),
            m.quantity_after_change.into(),
            m.sequence.into(),
            m.counterparty.as_str().into(),
            m.counterparty_location_id.clone().into(),
            m.counterparty_state.map(|s| s.column().to_owned()).into(),
            m.reason.as_str().into(),
            m.reference_document_uri.clone().into(),
            m.actor.clone().into(),
            idempotency_key.map(str::to_owned).into(),
            m.effective_at.into(),
            m.recorded_at.into(),
        ]);
    }
    insert
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::PostgresQueryBuilder;

    #[test]
    fn the_update_by_keys_finds_the_row_through_scalar_subqueries() {
        let (sql, values) = conditional_update(
            "ten_1",
            LevelRow::ByKeys {
                sku: "MUG",
                code: "WH",
            },
            QuantityState::Available,
            -2,
            Some(5),
            Utc::now(),
        )
        .build(PostgresQueryBuilder);
        // Equality with scalar subqueries, never a join: the plan then uses all three key
        // columns even before Postgres has statistics (see migration m0002).
        assert!(!sql.contains(" FROM \"items\""), "{sql}");
        for lookup in [
            "\"item_id\" = ((SELECT id FROM items WHERE tenant_id = $6 AND sku = $7))",
            "\"location_id\" = ((SELECT id FROM locations WHERE tenant_id = $8 AND code = $9))",
            "OR ((SELECT allow_negative FROM locations",
            "AS location_allows_negative",
        ] {
            assert!(sql.contains(lookup), "missing {lookup} in {sql}");
        }
        assert_eq!(values.0[6], sea_orm::Value::from("MUG"));
        assert_eq!(values.0[8], sea_orm::Value::from("WH"));
    }
}
