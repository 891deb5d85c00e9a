//! The route table: for each REST route, the GraphQL root field it runs, where each argument
//! comes from (exactly one place), what part of the result is the body, and the status.

/// Where an argument's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A path segment `{name}`.
    Path(&'static str),
    /// A query parameter.
    Query(&'static str),
    /// The fields of an input-object argument, each from a query parameter; `(param, field)`.
    QueryObject(&'static [(&'static str, &'static str)]),
    /// The JSON request body.
    Body,
    /// One top-level field of the JSON request body (a route may have several; absent fields
    /// are left to the argument's default).
    BodyField(&'static str),
    /// The `Idempotency-Key` header.
    IdempotencyKey,
    /// The version in the `If-Match` header (required: 428 without it).
    IfMatch,
    /// The version in `If-Match` when sent (transitions: without it the change is unconditional).
    IfMatchOptional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
}

/// How the GraphQL result becomes the REST response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A nullable object: null → 404.
    Object,
    /// A Relay connection: `{ data: [nodes], pageInfo }` plus a `Link` header.
    List,
    /// A mutation payload: `userErrors` → problem; else the named field is the body.
    Payload(&'static str),
    /// A mutation payload whose every field but `userErrors` is the body.
    WholePayload,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: Method,
    /// Path with `{param}` segments, e.g. `/v1/items/{id}`.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// The GraphQL root field (`Query` for GET, `Mutation` otherwise).
    pub field: &'static str,
    pub args: &'static [(&'static str, Source)],
    pub shape: Shape,
    /// Success status: 200 or 201.
    pub status: u16,
    /// Whether the body is a versioned document (strong ETag from `version`).
    pub versioned: bool,
    /// For 201: the path of the created resource, `{id}` taken from the body.
    pub location: Option<&'static str>,
    /// Body fields a collection run makes unique (SKUs, codes, names of what a create makes),
    /// so it can run again against the same tenant.
    pub unique: &'static [&'static str],
    /// The request body (JSON) the OpenAPI document shows and the Postman collection sends,
    /// for routes with a body. It works against the sandbox's sample data (SKUs TSHIRT-BLK-M,
    /// TSHIRT-BLK-L, MUG-12OZ, CAP-NAVY at WH-MAIN and STORE-1).
    pub example: Option<&'static str>,
}

const ITEM_FILTER: &[(&str, &str)] = &[("sku", "sku"), ("status", "status"), ("search", "search")];
const LOCATION_FILTER: &[(&str, &str)] = &[("code", "code"), ("kind", "kind")];
const LEVEL_FILTER: &[(&str, &str)] = &[("sku", "sku"), ("location", "locationCode")];
const ORDER_FILTER: &[(&str, &str)] = &[
    ("status", "statuses"),
    ("sku", "sku"),
    ("location", "locationCode"),
    ("externalReference", "externalReference"),
    ("createdAfter", "createdAfter"),
    ("createdBefore", "createdBefore"),
];
const MOVEMENT_FILTER: &[(&str, &str)] = &[
    ("sku", "sku"),
    ("location", "locationCode"),
    ("state", "state"),
    ("reason", "reason"),
    ("groupId", "groupId"),
    ("reference", "referenceDocumentUri"),
    ("since", "since"),
    ("until", "until"),
];

const EVENT_FILTER: &[(&str, &str)] = &[("type", "types"), ("since", "since"), ("until", "until")];
const DELIVERY_FILTER: &[(&str, &str)] = &[
    ("endpointId", "endpointId"),
    ("status", "status"),
    ("eventType", "eventType"),
];

const AUDIT_FILTER: &[(&str, &str)] = &[
    ("action", "action"),
    ("actor", "actor"),
    ("targetType", "targetType"),
    ("targetId", "targetId"),
    ("since", "since"),
    ("until", "until"),
];

const PAGE: [(&str, Source); 2] = [
    ("first", Source::Query("first")),
    ("after", Source::Query("after")),
];

pub const ROUTES: &[Route] = &[
    Route {
        method: Method::Post,
        path: "/v1/items",
        operation_id: "createItem",
        summary: "Create an item",
        tag: "Items",
        field: "createItem",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("item"),
        status: 201,
        versioned: true,
        location: Some("/v1/items/{id}"),
        example: Some(
            r#"{"sku": "TSHIRT-BLK-XL", "name": "T-shirt, black, XL", "unit": "each", "attributes": {"color": "black", "size": "XL"}}"#,
        ),
        unique: &["sku", "name"],
    },
    Route {
        method: Method::Get,
        path: "/v1/items",
        operation_id: "listItems",
        summary: "List items",
        tag: "Items",
        field: "items",
        args: &[
            ("filter", Source::QueryObject(ITEM_FILTER)),
            PAGE[0],
            PAGE[1],
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/items/{id}",
        operation_id: "getItem",
        summary: "Get an item",
        tag: "Items",
        field: "item",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Patch,
        path: "/v1/items/{id}",
        operation_id: "updateItem",
        summary: "Update an item (If-Match required)",
        tag: "Items",
        field: "updateItem",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatch),
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("item"),
        status: 200,
        versioned: true,
        location: None,
        example: Some(r#"{"name": "T-shirt, black, XL (organic cotton)"}"#),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/locations",
        operation_id: "createLocation",
        summary: "Create a location",
        tag: "Locations",
        field: "createLocation",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("location"),
        status: 201,
        versioned: true,
        location: Some("/v1/locations/{id}"),
        example: Some(r#"{"code": "STORE-2", "name": "Station kiosk", "kind": "STORE"}"#),
        unique: &["code", "name"],
    },
    Route {
        method: Method::Get,
        path: "/v1/locations",
        operation_id: "listLocations",
        summary: "List locations",
        tag: "Locations",
        field: "locations",
        args: &[
            ("filter", Source::QueryObject(LOCATION_FILTER)),
            PAGE[0],
            PAGE[1],
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/locations/{id}",
        operation_id: "getLocation",
        summary: "Get a location",
        tag: "Locations",
        field: "location",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Patch,
        path: "/v1/locations/{id}",
        operation_id: "updateLocation",
        summary: "Update a location (If-Match required)",
        tag: "Locations",
        field: "updateLocation",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatch),
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("location"),
        status: 200,
        versioned: true,
        location: None,
        example: Some(r#"{"name": "Station kiosk, east entrance", "allowNegative": false}"#),
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/stock/levels",
        operation_id: "listStockLevels",
        summary: "List stock levels (filter by sku and location)",
        tag: "Stock",
        field: "stockLevels",
        args: &[
            ("filter", Source::QueryObject(LEVEL_FILTER)),
            PAGE[0],
            PAGE[1],
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/stock/movements",
        operation_id: "listMovements",
        summary: "List ledger movements",
        tag: "Stock",
        field: "movements",
        args: &[
            ("filter", Source::QueryObject(MOVEMENT_FILTER)),
            PAGE[0],
            PAGE[1],
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/stock/adjustments",
        operation_id: "adjustStock",
        summary: "Adjust quantities (deltas), atomically",
        tag: "Stock",
        field: "adjustStock",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::WholePayload,
        status: 201,
        versioned: false,
        location: None,
        example: Some(
            r#"{"reason": "RECEIVED", "changes": [{"sku": "MUG-12OZ", "locationCode": "WH-MAIN", "delta": 5}]}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/stock/moves",
        operation_id: "moveStock",
        summary: "Move quantities between states or locations, atomically",
        tag: "Stock",
        field: "moveStock",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::WholePayload,
        status: 201,
        versioned: false,
        location: None,
        example: Some(
            r#"{"reason": "MOVEMENT", "changes": [{"sku": "TSHIRT-BLK-M", "quantity": 2, "from": {"locationCode": "WH-MAIN"}, "to": {"locationCode": "STORE-1"}}]}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/stock/sets",
        operation_id: "setStock",
        summary: "Set absolute quantities (cycle counts), atomically",
        tag: "Stock",
        field: "setStock",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::WholePayload,
        status: 201,
        versioned: false,
        location: None,
        example: Some(
            r#"{"reason": "CYCLE_COUNT", "changes": [{"sku": "CAP-NAVY", "locationCode": "STORE-1", "quantity": 15}]}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/purchase-orders",
        operation_id: "createPurchaseOrder",
        summary: "Create a purchase order",
        tag: "Purchase orders",
        field: "createPurchaseOrder",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("purchaseOrder"),
        status: 201,
        versioned: true,
        location: Some("/v1/purchase-orders/{id}"),
        example: Some(
            r#"{"supplier": "Acme Ceramics", "externalReference": "ACME-PO-77", "lines": [{"sku": "MUG-12OZ", "locationCode": "WH-MAIN", "quantity": 2, "unitCost": "4.25"}]}"#,
        ),
        unique: &["supplier"],
    },
    Route {
        method: Method::Get,
        path: "/v1/purchase-orders",
        operation_id: "listPurchaseOrders",
        summary: "List purchase orders",
        tag: "Purchase orders",
        field: "purchaseOrders",
        args: &[
            ("filter", Source::QueryObject(ORDER_FILTER)),
            ("first", Source::Query("first")),
            ("after", Source::Query("after")),
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/purchase-orders/{id}",
        operation_id: "getPurchaseOrder",
        summary: "Get a purchase order",
        tag: "Purchase orders",
        field: "purchaseOrder",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Patch,
        path: "/v1/purchase-orders/{id}",
        operation_id: "updatePurchaseOrder",
        summary: "Edit a draft purchase order (If-Match required)",
        tag: "Purchase orders",
        field: "updatePurchaseOrder",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatch),
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("purchaseOrder"),
        status: 200,
        versioned: true,
        location: None,
        example: Some(
            r#"{"notes": "Deliver to dock 2", "lines": [{"sku": "MUG-12OZ", "locationCode": "WH-MAIN", "quantity": 3, "unitCost": "4.10"}]}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/purchase-orders/{id}/submit",
        operation_id: "submitPurchaseOrder",
        summary: "Submit a draft: its quantities become incoming",
        tag: "Purchase orders",
        field: "submitPurchaseOrder",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("purchaseOrder"),
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/purchase-orders/{id}/receive",
        operation_id: "receivePurchaseOrder",
        summary: "Receive goods: incoming to available",
        tag: "Purchase orders",
        field: "receivePurchaseOrder",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("lines", Source::BodyField("lines")),
            ("allowOverReceipt", Source::BodyField("allowOverReceipt")),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("purchaseOrder"),
        status: 200,
        versioned: true,
        location: None,
        example: Some(
            r#"{"lines": [{"sku": "MUG-12OZ", "locationCode": "WH-MAIN", "quantity": 1}]}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/purchase-orders/{id}/cancel",
        operation_id: "cancelPurchaseOrder",
        summary: "Cancel: what is still incoming is released",
        tag: "Purchase orders",
        field: "cancelPurchaseOrder",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("purchaseOrder"),
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/sales-orders",
        operation_id: "createSalesOrder",
        summary: "Create a sales order",
        tag: "Sales orders",
        field: "createSalesOrder",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("salesOrder"),
        status: 201,
        versioned: true,
        location: Some("/v1/sales-orders/{id}"),
        example: Some(
            r#"{"customer": "Jane Doe", "externalReference": "SHOP-1001", "lines": [{"sku": "MUG-12OZ", "locationCode": "WH-MAIN", "quantity": 2, "unitPrice": "12.00"}]}"#,
        ),
        unique: &["customer"],
    },
    Route {
        method: Method::Get,
        path: "/v1/sales-orders",
        operation_id: "listSalesOrders",
        summary: "List sales orders",
        tag: "Sales orders",
        field: "salesOrders",
        args: &[
            ("filter", Source::QueryObject(ORDER_FILTER)),
            ("first", Source::Query("first")),
            ("after", Source::Query("after")),
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/sales-orders/{id}",
        operation_id: "getSalesOrder",
        summary: "Get a sales order",
        tag: "Sales orders",
        field: "salesOrder",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/sales-orders/{id}/allocate",
        operation_id: "allocateSalesOrder",
        summary: "Allocate: available to committed (all lines, or partial)",
        tag: "Sales orders",
        field: "allocateSalesOrder",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("partial", Source::BodyField("partial")),
            ("reservationIds", Source::BodyField("reservationIds")),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("salesOrder"),
        status: 200,
        versioned: true,
        location: None,
        example: Some(r#"{"partial": false}"#),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/sales-orders/{id}/ship",
        operation_id: "shipSalesOrder",
        summary: "Ship: committed to the customer (all allocated, or the given lines)",
        tag: "Sales orders",
        field: "shipSalesOrder",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("lines", Source::BodyField("lines")),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("salesOrder"),
        status: 200,
        versioned: true,
        location: None,
        example: Some(
            r#"{"lines": [{"sku": "MUG-12OZ", "locationCode": "WH-MAIN", "quantity": 1}]}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/sales-orders/{id}/cancel",
        operation_id: "cancelSalesOrder",
        summary: "Cancel: what is committed goes back to available",
        tag: "Sales orders",
        field: "cancelSalesOrder",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("salesOrder"),
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/reservations",
        operation_id: "createReservation",
        summary: "Create a reservation",
        tag: "Reservations",
        field: "createReservation",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("reservation"),
        status: 201,
        versioned: true,
        location: Some("/v1/reservations/{id}"),
        example: Some(
            r#"{"sku": "MUG-12OZ", "locationCode": "WH-MAIN", "quantity": 1, "expiresInSeconds": 900, "externalReference": "cart-42"}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/reservations",
        operation_id: "listReservations",
        summary: "List reservations",
        tag: "Reservations",
        field: "reservations",
        args: &[
            ("filter", Source::QueryObject(ORDER_FILTER)),
            ("first", Source::Query("first")),
            ("after", Source::Query("after")),
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/reservations/{id}",
        operation_id: "getReservation",
        summary: "Get a reservation",
        tag: "Reservations",
        field: "reservation",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/reservations/{id}/release",
        operation_id: "releaseReservation",
        summary: "Release a hold: reserved back to available",
        tag: "Reservations",
        field: "releaseReservation",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("reservation"),
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/transfers",
        operation_id: "createTransfer",
        summary: "Create a transfer",
        tag: "Transfers",
        field: "createTransfer",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("transfer"),
        status: 201,
        versioned: true,
        location: Some("/v1/transfers/{id}"),
        example: Some(
            r#"{"fromLocationCode": "WH-MAIN", "toLocationCode": "STORE-1", "lines": [{"sku": "MUG-12OZ", "quantity": 2}]}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/transfers",
        operation_id: "listTransfers",
        summary: "List transfers",
        tag: "Transfers",
        field: "transfers",
        args: &[
            ("filter", Source::QueryObject(ORDER_FILTER)),
            ("first", Source::Query("first")),
            ("after", Source::Query("after")),
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/transfers/{id}",
        operation_id: "getTransfer",
        summary: "Get a transfer",
        tag: "Transfers",
        field: "transfer",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/transfers/{id}/ship",
        operation_id: "shipTransfer",
        summary: "Ship: the lines leave the origin, incoming at the destination",
        tag: "Transfers",
        field: "shipTransfer",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("transfer"),
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/transfers/{id}/receive",
        operation_id: "receiveTransfer",
        summary: "Receive at the destination (all, or the given lines; closeShortfall writes off the rest)",
        tag: "Transfers",
        field: "receiveTransfer",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("lines", Source::BodyField("lines")),
            ("closeShortfall", Source::BodyField("closeShortfall")),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("transfer"),
        status: 200,
        versioned: true,
        location: None,
        example: Some(r#"{"lines": [{"sku": "MUG-12OZ", "quantity": 1}]}"#),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/transfers/{id}/cancel",
        operation_id: "cancelTransfer",
        summary: "Cancel: what is still in transit goes back to the origin",
        tag: "Transfers",
        field: "cancelTransfer",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("transfer"),
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/returns",
        operation_id: "createReturnOrder",
        summary: "Create a return",
        tag: "Returns",
        field: "createReturnOrder",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("returnOrder"),
        status: 201,
        versioned: true,
        location: Some("/v1/returns/{id}"),
        example: Some(
            r#"{"customer": "Jane Doe", "externalReference": "RMA-1001", "lines": [{"sku": "MUG-12OZ", "locationCode": "WH-MAIN", "quantity": 1, "disposition": "RESTOCK"}]}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/returns",
        operation_id: "listReturnOrders",
        summary: "List returns",
        tag: "Returns",
        field: "returnOrders",
        args: &[
            ("filter", Source::QueryObject(ORDER_FILTER)),
            ("first", Source::Query("first")),
            ("after", Source::Query("after")),
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/returns/{id}",
        operation_id: "getReturnOrder",
        summary: "Get a return",
        tag: "Returns",
        field: "returnOrder",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/returns/{id}/receive",
        operation_id: "receiveReturnOrder",
        summary: "Receive the return: each line into its disposition's state",
        tag: "Returns",
        field: "receiveReturnOrder",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatchOptional),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("returnOrder"),
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/events",
        operation_id: "listEvents",
        summary: "The event log, oldest first (poll with after=<endCursor> to catch up)",
        tag: "Events",
        field: "events",
        args: &[
            ("filter", Source::QueryObject(EVENT_FILTER)),
            PAGE[0],
            PAGE[1],
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/webhook-endpoints",
        operation_id: "createWebhookEndpoint",
        summary: "Register a webhook endpoint (the response carries its signing secret)",
        tag: "Webhooks",
        field: "createWebhookEndpoint",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("endpoint"),
        status: 201,
        versioned: true,
        location: Some("/v1/webhook-endpoints/{id}"),
        example: Some(
            r#"{"url": "https://hooks.example.com/twh", "eventTypes": ["stock.changed", "sales_order.*"], "description": "ERP sync"}"#,
        ),
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/webhook-endpoints",
        operation_id: "listWebhookEndpoints",
        summary: "List webhook endpoints",
        tag: "Webhooks",
        field: "webhookEndpoints",
        args: &[PAGE[0], PAGE[1]],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/webhook-endpoints/{id}",
        operation_id: "getWebhookEndpoint",
        summary: "Get a webhook endpoint",
        tag: "Webhooks",
        field: "webhookEndpoint",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: true,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Patch,
        path: "/v1/webhook-endpoints/{id}",
        operation_id: "updateWebhookEndpoint",
        summary: "Update a webhook endpoint; {\"enabled\": false} disables it",
        tag: "Webhooks",
        field: "updateWebhookEndpoint",
        args: &[
            ("id", Source::Path("id")),
            ("expectedVersion", Source::IfMatch),
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("endpoint"),
        status: 200,
        versioned: true,
        location: None,
        example: Some(r#"{"description": "ERP sync (orders and stock)"}"#),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/webhook-endpoints/{id}/rotate-secret",
        operation_id: "rotateWebhookEndpointSecret",
        summary: "Rotate the signing secret; the old one keeps signing for overlapSeconds",
        tag: "Webhooks",
        field: "rotateWebhookEndpointSecret",
        args: &[
            ("id", Source::Path("id")),
            ("overlapSeconds", Source::BodyField("overlapSeconds")),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("endpoint"),
        status: 200,
        versioned: true,
        location: None,
        example: Some(r#"{"overlapSeconds": 3600}"#),
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/webhook-endpoints/{id}/test",
        operation_id: "sendTestWebhook",
        summary: "Send a webhook.test event to the endpoint",
        tag: "Webhooks",
        field: "sendTestWebhook",
        args: &[
            ("endpointId", Source::Path("id")),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("delivery"),
        status: 201,
        versioned: false,
        location: Some("/v1/webhook-deliveries/{id}"),
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/webhook-deliveries",
        operation_id: "listWebhookDeliveries",
        summary: "List deliveries, newest first, with every attempt",
        tag: "Webhooks",
        field: "webhookDeliveries",
        args: &[
            ("filter", Source::QueryObject(DELIVERY_FILTER)),
            PAGE[0],
            PAGE[1],
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/webhook-deliveries/{id}",
        operation_id: "getWebhookDelivery",
        summary: "Get a delivery with every attempt",
        tag: "Webhooks",
        field: "webhookDelivery",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/webhook-deliveries/replay",
        operation_id: "replayWebhookDeliveries",
        summary: "Replay deliveries: given ids, or an endpoint's dead ones (optionally in a time range)",
        tag: "Webhooks",
        field: "replayWebhookDeliveries",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::WholePayload,
        status: 200,
        versioned: false,
        location: None,
        example: Some(r#"{"deliveryIds": ["whd_00000000000000000000000000000000"]}"#),
        unique: &[],
    },
    Route {
        method: Method::Delete,
        path: "/v1/webhook-endpoints/{id}",
        operation_id: "deleteWebhookEndpoint",
        summary: "Delete a webhook endpoint and its deliveries",
        tag: "Webhooks",
        field: "deleteWebhookEndpoint",
        args: &[
            ("id", Source::Path("id")),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::WholePayload,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/api-keys",
        operation_id: "createApiKey",
        summary: "Issue an API key (the answer's secret is shown only this once)",
        tag: "Access",
        field: "createApiKey",
        args: &[
            ("input", Source::Body),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("apiKey"),
        status: 201,
        versioned: false,
        location: Some("/v1/api-keys/{id}"),
        example: Some(r#"{"role": "VIEWER", "name": "Dashboard (read only)"}"#),
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/api-keys",
        operation_id: "listApiKeys",
        summary: "List API keys (never their secrets)",
        tag: "Access",
        field: "apiKeys",
        args: &[PAGE[0], PAGE[1]],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/api-keys/{id}",
        operation_id: "getApiKey",
        summary: "Get an API key",
        tag: "Access",
        field: "apiKey",
        args: &[("id", Source::Path("id"))],
        shape: Shape::Object,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/api-keys/{id}/revoke",
        operation_id: "revokeApiKey",
        summary: "Revoke an API key (on every replica within a second)",
        tag: "Access",
        field: "revokeApiKey",
        args: &[
            ("id", Source::Path("id")),
            ("idempotencyKey", Source::IdempotencyKey),
        ],
        shape: Shape::Payload("apiKey"),
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/audit-events",
        operation_id: "listAuditEvents",
        summary: "The audit log, newest first",
        tag: "Access",
        field: "auditEvents",
        args: &[
            ("filter", Source::QueryObject(AUDIT_FILTER)),
            PAGE[0],
            PAGE[1],
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Post,
        path: "/v1/sessions",
        operation_id: "createSession",
        summary: "Mint a console session (a JWT standing for the calling key, shown this once)",
        tag: "Access",
        field: "createSession",
        args: &[("input", Source::Body)],
        shape: Shape::Payload("session"),
        status: 201,
        versioned: false,
        location: None,
        example: Some(r#"{"role": "VIEWER", "ttlSeconds": 3600}"#),
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/usage",
        operation_id: "getUsage",
        summary: "This month's metered calls against the plan's quota, rate and limits",
        tag: "Access",
        field: "usage",
        args: &[],
        shape: Shape::Object,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
    Route {
        method: Method::Get,
        path: "/v1/usage/records",
        operation_id: "listUsageRecords",
        summary: "Metered calls per UTC day, oldest first (for billing and export)",
        tag: "Access",
        field: "usageRecords",
        args: &[
            ("from", Source::Query("from")),
            ("to", Source::Query("to")),
            PAGE[0],
            PAGE[1],
        ],
        shape: Shape::List,
        status: 200,
        versioned: false,
        location: None,
        example: None,
        unique: &[],
    },
];

/// Root fields with no route of their own, and why.
pub const EXCLUDED: &[(&str, &str)] = &[
    (
        "stockLevel",
        "GET /v1/stock/levels?sku=&location= returns the same level; SKUs may contain '/', so they do not belong in a path",
    ),
    // The platform operator's surface is GraphQL only for now: the collection and the
    // contract tests run with a tenant's key.
    ("tenants", "platform operator only (GraphQL)"),
    ("createTenant", "platform operator only (GraphQL)"),
    ("updateTenantPlan", "platform operator only (GraphQL)"),
    ("suspendTenant", "platform operator only (GraphQL)"),
    ("resumeTenant", "platform operator only (GraphQL)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_and_method_paths_are_unique() {
        let mut ids = std::collections::HashSet::new();
        let mut endpoints = std::collections::HashSet::new();
        for route in ROUTES {
            assert!(ids.insert(route.operation_id), "{}", route.operation_id);
            assert!(
                endpoints.insert((route.method, route.path)),
                "{}",
                route.path
            );
        }
    }

    #[test]
    fn every_path_parameter_has_exactly_one_source() {
        for route in ROUTES {
            let params: Vec<&str> = route
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            for p in &params {
                let n = route
                    .args
                    .iter()
                    .filter(|(_, s)| *s == Source::Path(p))
                    .count();
                assert_eq!(n, 1, "{} {p}", route.path);
            }
            let bodies = route
                .args
                .iter()
                .filter(|(_, s)| *s == Source::Body)
                .count();
            let fields = route
                .args
                .iter()
                .filter(|(_, s)| matches!(s, Source::BodyField(_)))
                .count();
            assert!(
                bodies <= 1 && (bodies == 0 || fields == 0),
                "{}",
                route.path
            );
            if route.method == Method::Get {
                assert_eq!(bodies + fields, 0, "{}", route.path);
            }
        }
    }

    #[test]
    fn every_route_with_a_body_has_an_example_object() {
        for route in ROUTES {
            let has_body = route
                .args
                .iter()
                .any(|(_, s)| matches!(s, Source::Body | Source::BodyField(_)));
            match route.example {
                Some(example) => {
                    let parsed: serde_json::Value = serde_json::from_str(example)
                        .unwrap_or_else(|e| panic!("{}: {e}", route.operation_id));
                    assert!(parsed.is_object(), "{}", route.operation_id);
                    assert!(has_body, "{} has no body", route.operation_id);
                }
                None => assert!(!has_body, "{} needs an example", route.operation_id),
            }
        }
    }
}
