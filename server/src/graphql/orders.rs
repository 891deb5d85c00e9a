//! GraphQL for order documents: purchase orders, sales orders and reservations. Resolvers are
//! thin: they call `orders::*` inside `mutate` (key, transaction, user errors) and resolve
//! nested items and movements through the request's loaders.

use async_graphql::connection::Connection;
use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::loaders::Loaders;
use super::{connection, db_error, mutate, page_size, state};
use crate::auth::principal;
use crate::catalog::items::Item;
use crate::error::{ErrorCode, UserError, request_error};
use crate::ledger::write::Context as WriteContext;
use crate::ledger::{Movement, MovementReason};
use crate::orders::purchase::{
    self, CreatePurchaseOrderInput, PurchaseOrderStatus, ReceiptLineInput, UpdatePurchaseOrderInput,
};
use crate::orders::reservations::{self, CreateReservationInput, ReservationStatus};
use crate::orders::returns::{self, CreateReturnOrderInput, Disposition, ReturnOrderStatus};
use crate::orders::sales::{self, CreateSalesOrderInput, SalesOrderStatus, ShipmentLineInput};
use crate::orders::transfers::{
    self, CreateTransferInput, TransferReceiptLineInput, TransferStatus,
};
use crate::orders::{self, Document, Filter, Kind, Line};

async fn movements_of(
    ctx: &Context<'_>,
    document: &Document,
) -> async_graphql::Result<Vec<Movement>> {
    let app = state(ctx)?;
    let tenant = &principal(ctx)?.tenant_id;
    let loaders = ctx
        .data::<Loaders>()
        .map_err(|_| request_error(ErrorCode::Internal, "loaders missing"))?;
    Ok(loaders
        .movements(app, tenant)
        .load_one(document.uri())
        .await
        .map_err(|e| db_error(ctx, (*e).clone()))?
        .unwrap_or_default())
}

async fn item_of(ctx: &Context<'_>, line: &Line) -> async_graphql::Result<Option<Item>> {
    let app = state(ctx)?;
    let tenant = &principal(ctx)?.tenant_id;
    let loaders = ctx
        .data::<Loaders>()
        .map_err(|_| request_error(ErrorCode::Internal, "loaders missing"))?;
    loaders
        .items(app, tenant)
        .load_one(line.item_id.clone())
        .await
        .map_err(|e| db_error(ctx, (*e).clone()))
}

/// A purchase order: what was ordered from a supplier, and what has arrived.
pub struct PurchaseOrder(pub Document);

#[Object]
impl PurchaseOrder {
    async fn id(&self) -> &ID {
        &self.0.id
    }
    /// Human-readable, per tenant: `PO-000001`.
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn status(&self) -> PurchaseOrderStatus {
        PurchaseOrderStatus::parse(&self.0.status)
    }
    /// Send it back as `expectedVersion`; every transition adds one.
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn supplier(&self) -> Option<&str> {
        self.0.party.as_deref()
    }
    async fn expected_at(&self) -> Option<DateTime<Utc>> {
        self.0.expected_at
    }
    async fn external_reference(&self) -> Option<&str> {
        self.0.external_reference.as_deref()
    }
    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }
    /// The URI its movements carry as `referenceDocumentUri`.
    async fn reference_document_uri(&self) -> String {
        self.0.uri()
    }
    async fn lines(&self) -> Vec<PurchaseOrderLine> {
        self.0
            .lines
            .iter()
            .cloned()
            .map(PurchaseOrderLine)
            .collect()
    }
    /// Every movement this order made, in order.
    async fn movements(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Movement>> {
        movements_of(ctx, &self.0).await
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

pub struct PurchaseOrderLine(Line);

#[Object]
impl PurchaseOrderLine {
    async fn line_number(&self) -> i64 {
        self.0.line_no
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn item(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Item>> {
        item_of(ctx, &self.0).await
    }
    async fn location_code(&self) -> &str {
        &self.0.location_code
    }
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }
    async fn unit_cost(&self) -> Option<&str> {
        self.0.unit_cost.as_deref()
    }
    /// Received against this line, up to its quantity.
    async fn received(&self) -> i64 {
        self.0.done
    }
    /// Received beyond the quantity (only with `allowOverReceipt`).
    async fn over_received(&self) -> i64 {
        self.0.over
    }
    /// Closed without arriving (the order was cancelled).
    async fn cancelled(&self) -> i64 {
        self.0.closed
    }
    /// Still expected.
    async fn outstanding(&self) -> i64 {
        (self.0.quantity - self.0.done - self.0.closed).max(0)
    }
}

/// A sales order: what a customer ordered, allocated, shipped.
pub struct SalesOrder(pub Document);

/// One shipment of a sales order: the movements of one `shipSalesOrder` call.
#[derive(SimpleObject)]
pub struct Shipment {
    pub group_id: ID,
    pub shipped_at: DateTime<Utc>,
    pub lines: Vec<ShipmentLine>,
}

#[derive(SimpleObject)]
pub struct ShipmentLine {
    pub sku: String,
    pub location_code: String,
    pub quantity: i64,
}

#[Object]
impl SalesOrder {
    async fn id(&self) -> &ID {
        &self.0.id
    }
    /// Human-readable, per tenant: `SO-000001`.
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn status(&self) -> SalesOrderStatus {
        SalesOrderStatus::parse(&self.0.status)
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn customer(&self) -> Option<&str> {
        self.0.party.as_deref()
    }
    async fn external_reference(&self) -> Option<&str> {
        self.0.external_reference.as_deref()
    }
    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }
    async fn reference_document_uri(&self) -> String {
        self.0.uri()
    }
    async fn lines(&self) -> Vec<SalesOrderLine> {
        self.0.lines.iter().cloned().map(SalesOrderLine).collect()
    }
    /// Each `shipSalesOrder` call, with what it shipped.
    async fn shipments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Shipment>> {
        let mut shipments: Vec<Shipment> = Vec::new();
        for m in movements_of(ctx, &self.0).await? {
            if m.reason != MovementReason::Shipment {
                continue;
            }
            let line = ShipmentLine {
                sku: m.sku.clone(),
                location_code: m.location_code.clone(),
                quantity: -m.delta,
            };
            match shipments.iter_mut().find(|s| s.group_id == m.group_id) {
                Some(shipment) => shipment.lines.push(line),
                None => shipments.push(Shipment {
                    group_id: m.group_id.clone(),
                    shipped_at: m.recorded_at,
                    lines: vec![line],
                }),
            }
        }
        Ok(shipments)
    }
    async fn movements(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Movement>> {
        movements_of(ctx, &self.0).await
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

pub struct SalesOrderLine(Line);

#[Object]
impl SalesOrderLine {
    async fn line_number(&self) -> i64 {
        self.0.line_no
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn item(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Item>> {
        item_of(ctx, &self.0).await
    }
    async fn location_code(&self) -> &str {
        &self.0.location_code
    }
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }
    async fn unit_price(&self) -> Option<&str> {
        self.0.unit_cost.as_deref()
    }
    /// Committed to this order and not shipped yet.
    async fn allocated(&self) -> i64 {
        self.0.committed
    }
    async fn shipped(&self) -> i64 {
        self.0.done
    }
    /// Neither allocated nor shipped: waiting for stock.
    async fn backordered(&self) -> i64 {
        (self.0.quantity - self.0.committed - self.0.done - self.0.closed).max(0)
    }
    /// Released by a cancellation.
    async fn cancelled(&self) -> i64 {
        self.0.closed
    }
}

/// A hold on stock (a cart, a checkout) until it is released, converted or expires.
pub struct Reservation(pub Document);

#[Object]
impl Reservation {
    async fn id(&self) -> &ID {
        &self.0.id
    }
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn status(&self) -> ReservationStatus {
        ReservationStatus::parse(&self.0.status)
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn sku(&self) -> &str {
        &self.0.lines[0].sku
    }
    async fn item(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Item>> {
        item_of(ctx, &self.0.lines[0]).await
    }
    async fn location_code(&self) -> &str {
        &self.0.lines[0].location_code
    }
    async fn quantity(&self) -> i64 {
        self.0.lines[0].quantity
    }
    /// What went into a sales order's allocation.
    async fn converted(&self) -> i64 {
        self.0.lines[0].done
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// The sales order it was converted into.
    async fn sales_order_id(&self) -> Option<ID> {
        self.0.sales_order_id.clone().map(ID)
    }
    async fn external_reference(&self) -> Option<&str> {
        self.0.external_reference.as_deref()
    }
    async fn reference_document_uri(&self) -> String {
        self.0.uri()
    }
    async fn movements(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Movement>> {
        movements_of(ctx, &self.0).await
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(SimpleObject)]
pub struct PurchaseOrderPayload {
    pub purchase_order: Option<PurchaseOrder>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct SalesOrderPayload {
    pub sales_order: Option<SalesOrder>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ReservationPayload {
    pub reservation: Option<Reservation>,
    pub user_errors: Vec<UserError>,
}

/// Stock moving between two locations of the tenant.
pub struct Transfer(pub Document);

#[Object]
impl Transfer {
    async fn id(&self) -> &ID {
        &self.0.id
    }
    /// Human-readable, per tenant: `TR-000001`.
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn status(&self) -> TransferStatus {
        TransferStatus::parse(&self.0.status)
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn from_location_code(&self) -> Option<&str> {
        self.0.from_location_code.as_deref()
    }
    async fn to_location_code(&self) -> Option<&str> {
        self.0.to_location_code.as_deref()
    }
    async fn external_reference(&self) -> Option<&str> {
        self.0.external_reference.as_deref()
    }
    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }
    async fn reference_document_uri(&self) -> String {
        self.0.uri()
    }
    async fn lines(&self) -> Vec<TransferLine> {
        self.0.lines.iter().cloned().map(TransferLine).collect()
    }
    async fn movements(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Movement>> {
        movements_of(ctx, &self.0).await
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

pub struct TransferLine(Line);

#[Object]
impl TransferLine {
    async fn line_number(&self) -> i64 {
        self.0.line_no
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn item(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Item>> {
        item_of(ctx, &self.0).await
    }
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }
    /// Arrived at the destination.
    async fn received(&self) -> i64 {
        self.0.done
    }
    /// Closed without arriving: written off as a discrepancy, or sent back by a cancellation.
    async fn closed(&self) -> i64 {
        self.0.closed
    }
    /// Still on its way.
    async fn in_transit(&self) -> i64 {
        (self.0.quantity - self.0.done - self.0.closed).max(0)
    }
}

/// Goods a customer sends back.
pub struct ReturnOrder(pub Document);

#[Object]
impl ReturnOrder {
    async fn id(&self) -> &ID {
        &self.0.id
    }
    /// Human-readable, per tenant: `RT-000001`.
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn status(&self) -> ReturnOrderStatus {
        ReturnOrderStatus::parse(&self.0.status)
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    /// The sales order the goods were shipped on, if any.
    async fn sales_order_id(&self) -> Option<ID> {
        self.0.sales_order_id.clone().map(ID)
    }
    async fn customer(&self) -> Option<&str> {
        self.0.party.as_deref()
    }
    async fn external_reference(&self) -> Option<&str> {
        self.0.external_reference.as_deref()
    }
    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }
    async fn reference_document_uri(&self) -> String {
        self.0.uri()
    }
    async fn lines(&self) -> Vec<ReturnLine> {
        self.0.lines.iter().cloned().map(ReturnLine).collect()
    }
    async fn movements(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Movement>> {
        movements_of(ctx, &self.0).await
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

pub struct ReturnLine(Line);

#[Object]
impl ReturnLine {
    async fn line_number(&self) -> i64 {
        self.0.line_no
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn item(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Item>> {
        item_of(ctx, &self.0).await
    }
    async fn location_code(&self) -> &str {
        &self.0.location_code
    }
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }
    async fn disposition(&self) -> Disposition {
        Disposition::parse(self.0.disposition.as_deref().unwrap_or_default())
    }
    async fn received(&self) -> i64 {
        self.0.done
    }
}

#[derive(SimpleObject)]
pub struct TransferPayload {
    pub transfer: Option<Transfer>,
    pub user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct ReturnOrderPayload {
    pub return_order: Option<ReturnOrder>,
    pub user_errors: Vec<UserError>,
}

/// The document a movement's reference URI names, when it is one of ours.
#[derive(async_graphql::Union)]
pub enum OrderDocument {
    PurchaseOrder(PurchaseOrder),
    SalesOrder(SalesOrder),
    Reservation(Reservation),
    Transfer(Transfer),
    ReturnOrder(ReturnOrder),
}

impl OrderDocument {
    fn of(document: Document) -> Self {
        match document.kind {
            Kind::PurchaseOrder => Self::PurchaseOrder(PurchaseOrder(document)),
            Kind::SalesOrder => Self::SalesOrder(SalesOrder(document)),
            Kind::Reservation => Self::Reservation(Reservation(document)),
            Kind::Transfer => Self::Transfer(Transfer(document)),
            Kind::Return => Self::ReturnOrder(ReturnOrder(document)),
        }
    }
}

#[ComplexObject]
impl Movement {
    /// The order document behind this movement (from `referenceDocumentUri`), if any.
    async fn document(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<OrderDocument>> {
        let Some(uri) = self
            .reference_document_uri
            .as_ref()
            .filter(|uri| Kind::from_uri(uri).is_some())
        else {
            return Ok(None);
        };
        let app = state(ctx)?;
        let tenant = &principal(ctx)?.tenant_id;
        let loaders = ctx
            .data::<Loaders>()
            .map_err(|_| request_error(ErrorCode::Internal, "loaders missing"))?;
        let document = loaders
            .documents(app, tenant)
            .load_one(uri.clone())
            .await
            .map_err(|e| db_error(ctx, (*e).clone()))?;
        Ok(document.map(OrderDocument::of))
    }
}

async fn one(ctx: &Context<'_>, kind: Kind, id: &ID) -> async_graphql::Result<Option<Document>> {
    let tenant = &principal(ctx)?.tenant_id;
    orders::get(&state(ctx)?.reads, tenant, kind, id)
        .await
        .map_err(|e| db_error(ctx, e))
}

async fn page(
    ctx: &Context<'_>,
    kind: Kind,
    filter: Option<Filter>,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<(Vec<Document>, u64, bool)> {
    let tenant = &principal(ctx)?.tenant_id;
    let limit = page_size(first)?;
    let rows = orders::list(
        &state(ctx)?.reads,
        tenant,
        kind,
        filter.unwrap_or_default(),
        after.as_deref(),
        limit,
    )
    .await
    .map_err(|e| db_error(ctx, e))?;
    Ok((rows, limit, after.is_some()))
}

#[derive(Default)]
pub struct OrdersQuery;

#[Object]
impl OrdersQuery {
    async fn purchase_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<PurchaseOrder>> {
        Ok(one(ctx, Kind::PurchaseOrder, &id).await?.map(PurchaseOrder))
    }

    /// Purchase orders in creation order.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn purchase_orders(
        &self,
        ctx: &Context<'_>,
        filter: Option<Filter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, PurchaseOrder>> {
        let (rows, limit, had) = page(ctx, Kind::PurchaseOrder, filter, first, after).await?;
        let rows = rows.into_iter().map(PurchaseOrder).collect();
        Ok(connection(rows, limit, had, |d: &PurchaseOrder| {
            d.0.id.0.clone()
        }))
    }

    async fn sales_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<SalesOrder>> {
        Ok(one(ctx, Kind::SalesOrder, &id).await?.map(SalesOrder))
    }

    /// Sales orders in creation order.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn sales_orders(
        &self,
        ctx: &Context<'_>,
        filter: Option<Filter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, SalesOrder>> {
        let (rows, limit, had) = page(ctx, Kind::SalesOrder, filter, first, after).await?;
        let rows = rows.into_iter().map(SalesOrder).collect();
        Ok(connection(rows, limit, had, |d: &SalesOrder| {
            d.0.id.0.clone()
        }))
    }

    async fn reservation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Reservation>> {
        Ok(one(ctx, Kind::Reservation, &id).await?.map(Reservation))
    }

    /// Reservations in creation order.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn reservations(
        &self,
        ctx: &Context<'_>,
        filter: Option<Filter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Reservation>> {
        let (rows, limit, had) = page(ctx, Kind::Reservation, filter, first, after).await?;
        let rows = rows.into_iter().map(Reservation).collect();
        Ok(connection(rows, limit, had, |d: &Reservation| {
            d.0.id.0.clone()
        }))
    }

    async fn transfer(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Transfer>> {
        Ok(one(ctx, Kind::Transfer, &id).await?.map(Transfer))
    }

    /// Transfers in creation order (a location filter matches either end).
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn transfers(
        &self,
        ctx: &Context<'_>,
        filter: Option<Filter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Transfer>> {
        let (rows, limit, had) = page(ctx, Kind::Transfer, filter, first, after).await?;
        let rows = rows.into_iter().map(Transfer).collect();
        Ok(connection(rows, limit, had, |d: &Transfer| {
            d.0.id.0.clone()
        }))
    }

    async fn return_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ReturnOrder>> {
        Ok(one(ctx, Kind::Return, &id).await?.map(ReturnOrder))
    }

    /// Returns in creation order.
    #[graphql(
        complexity = "first.unwrap_or(super::DEFAULT_PAGE).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn return_orders(
        &self,
        ctx: &Context<'_>,
        filter: Option<Filter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, ReturnOrder>> {
        let (rows, limit, had) = page(ctx, Kind::Return, filter, first, after).await?;
        let rows = rows.into_iter().map(ReturnOrder).collect();
        Ok(connection(rows, limit, had, |d: &ReturnOrder| {
            d.0.id.0.clone()
        }))
    }
}

/// Runs one document transition inside `mutate`: key, transaction, user errors.
async fn transition<I, F, Fut>(
    ctx: &Context<'_>,
    operation: &'static str,
    action: &'static str,
    key: Option<String>,
    input: I,
    work: F,
) -> async_graphql::Result<(Option<Document>, Vec<UserError>)>
where
    I: serde::Serialize + Send,
    F: FnOnce(sea_orm::DatabaseTransaction, WriteArgs, I) -> Fut,
    Fut: std::future::Future<
            Output = (
                sea_orm::DatabaseTransaction,
                Result<Document, crate::error::DomainError>,
            ),
        >,
{
    let idempotency_key = key.clone();
    mutate(
        ctx,
        operation,
        key,
        input,
        |txn, principal, request_id, input| {
            work(
                txn,
                WriteArgs {
                    principal,
                    request_id,
                    idempotency_key,
                    action,
                },
                input,
            )
        },
    )
    .await
}

/// What a transition needs to build the ledger's write context.
pub struct WriteArgs {
    principal: crate::auth::Principal,
    request_id: String,
    idempotency_key: Option<String>,
    action: &'static str,
}

impl WriteArgs {
    fn cx(&self) -> WriteContext<'_> {
        WriteContext {
            principal: &self.principal,
            request_id: &self.request_id,
            idempotency_key: self.idempotency_key.as_deref(),
            operation: self.action,
            audited_by_document: true,
            answers_with_change: false,
            deferred: None,
        }
    }
}

fn purchase_payload(
    (document, user_errors): (Option<Document>, Vec<UserError>),
) -> PurchaseOrderPayload {
    PurchaseOrderPayload {
        purchase_order: document.map(PurchaseOrder),
        user_errors,
    }
}

fn sales_payload((document, user_errors): (Option<Document>, Vec<UserError>)) -> SalesOrderPayload {
    SalesOrderPayload {
        sales_order: document.map(SalesOrder),
        user_errors,
    }
}

fn reservation_payload(
    (document, user_errors): (Option<Document>, Vec<UserError>),
) -> ReservationPayload {
    ReservationPayload {
        reservation: document.map(Reservation),
        user_errors,
    }
}

fn transfer_payload(
    (document, user_errors): (Option<Document>, Vec<UserError>),
) -> TransferPayload {
    TransferPayload {
        transfer: document.map(Transfer),
        user_errors,
    }
}

fn return_payload(
    (document, user_errors): (Option<Document>, Vec<UserError>),
) -> ReturnOrderPayload {
    ReturnOrderPayload {
        return_order: document.map(ReturnOrder),
        user_errors,
    }
}

#[derive(Default)]
pub struct OrdersMutation;

#[Object]
impl OrdersMutation {
    /// Creates a purchase order in status DRAFT (no stock effect yet).
    async fn create_purchase_order(
        &self,
        ctx: &Context<'_>,
        input: CreatePurchaseOrderInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<PurchaseOrderPayload> {
        transition(
            ctx,
            "createPurchaseOrder",
            "purchase_order.create",
            idempotency_key,
            input,
            |txn, w, input| async move {
                let result = purchase::create(&txn, &w.cx(), input).await;
                (txn, result)
            },
        )
        .await
        .map(purchase_payload)
    }

    /// Edits a DRAFT (header fields, and all lines when given) if its version is still
    /// `expectedVersion`; an ORDERED order changes only through its transitions.
    async fn update_purchase_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i64,
        input: UpdatePurchaseOrderInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<PurchaseOrderPayload> {
        transition(
            ctx,
            "updatePurchaseOrder",
            "purchase_order.update",
            idempotency_key,
            (id, expected_version, input),
            |txn, w, (id, version, input)| async move {
                let result = purchase::update(&txn, &w.cx(), &id, version, input).await;
                (txn, result)
            },
        )
        .await
        .map(purchase_payload)
    }

    /// DRAFT → ORDERED: every line's quantity becomes `incoming` at its location.
    async fn submit_purchase_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<PurchaseOrderPayload> {
        transition(
            ctx,
            "submitPurchaseOrder",
            "purchase_order.submit",
            idempotency_key,
            (id, expected_version),
            |txn, w, (id, version)| async move {
                let result = purchase::submit(&txn, &w.cx(), &id, version).await;
                (txn, result)
            },
        )
        .await
        .map(purchase_payload)
    }

    /// Receives goods: incoming → available per line. More than still expected is refused
    /// unless `allowOverReceipt`; then the excess is recorded as over-received.
    async fn receive_purchase_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        lines: Vec<ReceiptLineInput>,
        #[graphql(default = false)] allow_over_receipt: bool,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<PurchaseOrderPayload> {
        transition(
            ctx,
            "receivePurchaseOrder",
            "purchase_order.receive",
            idempotency_key,
            (id, expected_version, lines, allow_over_receipt),
            |txn, w, (id, version, lines, over)| async move {
                let result = purchase::receive(&txn, &w.cx(), &id, version, lines, over).await;
                (txn, result)
            },
        )
        .await
        .map(purchase_payload)
    }

    /// Cancels the order; whatever is still incoming is released.
    async fn cancel_purchase_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<PurchaseOrderPayload> {
        transition(
            ctx,
            "cancelPurchaseOrder",
            "purchase_order.cancel",
            idempotency_key,
            (id, expected_version),
            |txn, w, (id, version)| async move {
                let result = purchase::cancel(&txn, &w.cx(), &id, version).await;
                (txn, result)
            },
        )
        .await
        .map(purchase_payload)
    }

    /// Creates a sales order in status DRAFT (nothing allocated yet).
    async fn create_sales_order(
        &self,
        ctx: &Context<'_>,
        input: CreateSalesOrderInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<SalesOrderPayload> {
        transition(
            ctx,
            "createSalesOrder",
            "sales_order.create",
            idempotency_key,
            input,
            |txn, w, input| async move {
                let result = sales::create(&txn, &w.cx(), input).await;
                (txn, result)
            },
        )
        .await
        .map(sales_payload)
    }

    /// Allocates: available → committed, all lines or none; with `partial`, what is available
    /// now and the rest backordered. Named reservations are converted first.
    async fn allocate_sales_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        #[graphql(default = false)] partial: bool,
        reservation_ids: Option<Vec<ID>>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<SalesOrderPayload> {
        let reservation_ids: Vec<String> = reservation_ids
            .unwrap_or_default()
            .into_iter()
            .map(|id| id.0)
            .collect();
        transition(
            ctx,
            "allocateSalesOrder",
            "sales_order.allocate",
            idempotency_key,
            (id, expected_version, partial, reservation_ids),
            |txn, w, (id, version, partial, reservations)| async move {
                let result =
                    sales::allocate(&txn, &w.cx(), &id, version, partial, reservations).await;
                (txn, result)
            },
        )
        .await
        .map(sales_payload)
    }

    /// Ships: committed → customer. Without `lines`, everything allocated; with them, a
    /// partial shipment.
    async fn ship_sales_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        lines: Option<Vec<ShipmentLineInput>>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<SalesOrderPayload> {
        transition(
            ctx,
            "shipSalesOrder",
            "sales_order.ship",
            idempotency_key,
            (id, expected_version, lines),
            |txn, w, (id, version, lines)| async move {
                let result = sales::ship(&txn, &w.cx(), &id, version, lines).await;
                (txn, result)
            },
        )
        .await
        .map(sales_payload)
    }

    /// Cancels the order; what is committed and not shipped goes back to available.
    async fn cancel_sales_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<SalesOrderPayload> {
        transition(
            ctx,
            "cancelSalesOrder",
            "sales_order.cancel",
            idempotency_key,
            (id, expected_version),
            |txn, w, (id, version)| async move {
                let result = sales::cancel(&txn, &w.cx(), &id, version).await;
                (txn, result)
            },
        )
        .await
        .map(sales_payload)
    }

    /// Holds stock: available → reserved until released, converted or expired.
    async fn create_reservation(
        &self,
        ctx: &Context<'_>,
        input: CreateReservationInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ReservationPayload> {
        transition(
            ctx,
            "createReservation",
            "reservation.create",
            idempotency_key,
            input,
            |txn, w, input| async move {
                let result = reservations::create(&txn, &w.cx(), input).await;
                (txn, result)
            },
        )
        .await
        .map(reservation_payload)
    }

    /// Gives an active hold back to available.
    async fn release_reservation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ReservationPayload> {
        transition(
            ctx,
            "releaseReservation",
            "reservation.release",
            idempotency_key,
            (id, expected_version),
            |txn, w, (id, version)| async move {
                let result = reservations::release(&txn, &w.cx(), &id, version).await;
                (txn, result)
            },
        )
        .await
        .map(reservation_payload)
    }

    /// Creates a transfer in status DRAFT (no stock effect yet).
    async fn create_transfer(
        &self,
        ctx: &Context<'_>,
        input: CreateTransferInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<TransferPayload> {
        transition(
            ctx,
            "createTransfer",
            "transfer.create",
            idempotency_key,
            input,
            |txn, w, input| async move {
                let result = transfers::create(&txn, &w.cx(), input).await;
                (txn, result)
            },
        )
        .await
        .map(transfer_payload)
    }

    /// DRAFT → IN_TRANSIT: the lines leave the origin and show as incoming at the destination.
    async fn ship_transfer(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<TransferPayload> {
        transition(
            ctx,
            "shipTransfer",
            "transfer.ship",
            idempotency_key,
            (id, expected_version),
            |txn, w, (id, version)| async move {
                let result = transfers::ship(&txn, &w.cx(), &id, version).await;
                (txn, result)
            },
        )
        .await
        .map(transfer_payload)
    }

    /// Receives at the destination (all in transit, or the given lines); `closeShortfall`
    /// writes off what did not arrive as a DISCREPANCY movement.
    async fn receive_transfer(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        lines: Option<Vec<TransferReceiptLineInput>>,
        #[graphql(default = false)] close_shortfall: bool,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<TransferPayload> {
        transition(
            ctx,
            "receiveTransfer",
            "transfer.receive",
            idempotency_key,
            (id, expected_version, lines, close_shortfall),
            |txn, w, (id, version, lines, close)| async move {
                let result = transfers::receive(&txn, &w.cx(), &id, version, lines, close).await;
                (txn, result)
            },
        )
        .await
        .map(transfer_payload)
    }

    /// Cancels: a draft closes; in transit, what has not arrived goes back to the origin.
    async fn cancel_transfer(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<TransferPayload> {
        transition(
            ctx,
            "cancelTransfer",
            "transfer.cancel",
            idempotency_key,
            (id, expected_version),
            |txn, w, (id, version)| async move {
                let result = transfers::cancel(&txn, &w.cx(), &id, version).await;
                (txn, result)
            },
        )
        .await
        .map(transfer_payload)
    }

    /// Records a return in status DRAFT; against a sales order, never more than it shipped.
    async fn create_return_order(
        &self,
        ctx: &Context<'_>,
        input: CreateReturnOrderInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ReturnOrderPayload> {
        transition(
            ctx,
            "createReturnOrder",
            "return.create",
            idempotency_key,
            input,
            |txn, w, input| async move {
                let result = returns::create(&txn, &w.cx(), input).await;
                (txn, result)
            },
        )
        .await
        .map(return_payload)
    }

    /// DRAFT → RECEIVED: each line comes back into its disposition's state.
    async fn receive_return_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ReturnOrderPayload> {
        transition(
            ctx,
            "receiveReturnOrder",
            "return.receive",
            idempotency_key,
            (id, expected_version),
            |txn, w, (id, version)| async move {
                let result = returns::receive(&txn, &w.cx(), &id, version).await;
                (txn, result)
            },
        )
        .await
        .map(return_payload)
    }
}
