//! Who may run what: one table for every root field, applied to every surface (GraphQL, REST
//! through the same schema, WebSocket operations) by the schema's extension before a resolver
//! runs. A root field missing from the table is refused, so a new operation cannot ship
//! unguarded (and the role matrix test enumerates the schema against it).
//!
//! Roles rank viewer < operator < developer < admin < owner: viewers read; operators also move
//! stock, work orders and keep the catalog; developers also manage webhooks and API keys; admins
//! also read the audit log; owners everything. Tenants, plans and suspension belong to the
//! platform operator alone, whose credential in turn runs nothing of a tenant's.

use super::Role;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Needs {
    /// A tenant key of this role or above.
    Role(Role),
    /// The platform operator's credential (`TWH_ADMIN_TOKEN`).
    PlatformOperator,
}

use Needs::{PlatformOperator, Role as R};

const VIEWER: Needs = R(Role::Viewer);
const OPERATOR: Needs = R(Role::Operator);
const DEVELOPER: Needs = R(Role::Developer);
const ADMIN: Needs = R(Role::Admin);

/// `(root type, field, what it needs)`.
pub const GUARDS: &[(&str, &str, Needs)] = &[
    // Reads.
    ("Query", "item", VIEWER),
    ("Query", "items", VIEWER),
    ("Query", "location", VIEWER),
    ("Query", "locations", VIEWER),
    ("Query", "stockLevel", VIEWER),
    ("Query", "stockLevels", VIEWER),
    ("Query", "movements", VIEWER),
    ("Query", "events", VIEWER),
    ("Query", "purchaseOrder", VIEWER),
    ("Query", "purchaseOrders", VIEWER),
    ("Query", "salesOrder", VIEWER),
    ("Query", "salesOrders", VIEWER),
    ("Query", "reservation", VIEWER),
    ("Query", "reservations", VIEWER),
    ("Query", "transfer", VIEWER),
    ("Query", "transfers", VIEWER),
    ("Query", "returnOrder", VIEWER),
    ("Query", "returnOrders", VIEWER),
    ("Query", "webhookEndpoint", DEVELOPER),
    ("Query", "webhookEndpoints", DEVELOPER),
    ("Query", "webhookDelivery", DEVELOPER),
    ("Query", "webhookDeliveries", DEVELOPER),
    ("Query", "apiKey", DEVELOPER),
    ("Query", "apiKeys", DEVELOPER),
    ("Query", "auditEvents", ADMIN),
    ("Query", "usage", VIEWER),
    ("Query", "recentErrors", DEVELOPER),
    ("Mutation", "createSession", VIEWER),
    ("Query", "usageRecords", ADMIN),
    ("Query", "tenants", PlatformOperator),
    ("Query", "platformHealth", PlatformOperator),
    // The catalog and the stock.
    ("Mutation", "createItem", OPERATOR),
    ("Mutation", "updateItem", OPERATOR),
    ("Mutation", "createLocation", OPERATOR),
    ("Mutation", "updateLocation", OPERATOR),
    ("Mutation", "adjustStock", OPERATOR),
    ("Mutation", "moveStock", OPERATOR),
    ("Mutation", "setStock", OPERATOR),
    // Orders.
    ("Mutation", "createPurchaseOrder", OPERATOR),
    ("Mutation", "updatePurchaseOrder", OPERATOR),
    ("Mutation", "submitPurchaseOrder", OPERATOR),
    ("Mutation", "receivePurchaseOrder", OPERATOR),
    ("Mutation", "cancelPurchaseOrder", OPERATOR),
    ("Mutation", "createSalesOrder", OPERATOR),
    ("Mutation", "allocateSalesOrder", OPERATOR),
    ("Mutation", "shipSalesOrder", OPERATOR),
    ("Mutation", "cancelSalesOrder", OPERATOR),
    ("Mutation", "createReservation", OPERATOR),
    ("Mutation", "releaseReservation", OPERATOR),
    ("Mutation", "createTransfer", OPERATOR),
    ("Mutation", "shipTransfer", OPERATOR),
    ("Mutation", "receiveTransfer", OPERATOR),
    ("Mutation", "cancelTransfer", OPERATOR),
    ("Mutation", "createReturnOrder", OPERATOR),
    ("Mutation", "receiveReturnOrder", OPERATOR),
    // Integration: webhooks and keys.
    ("Mutation", "createWebhookEndpoint", DEVELOPER),
    ("Mutation", "updateWebhookEndpoint", DEVELOPER),
    ("Mutation", "deleteWebhookEndpoint", DEVELOPER),
    ("Mutation", "rotateWebhookEndpointSecret", DEVELOPER),
    ("Mutation", "sendTestWebhook", DEVELOPER),
    ("Mutation", "replayWebhookDeliveries", DEVELOPER),
    ("Mutation", "createApiKey", DEVELOPER),
    ("Mutation", "revokeApiKey", DEVELOPER),
    // Jobs, reports and the reconciliation.
    ("Query", "job", VIEWER),
    ("Query", "jobs", VIEWER),
    ("Mutation", "startJob", OPERATOR),
    ("Mutation", "cancelJob", OPERATOR),
    ("Mutation", "setReorderPoint", OPERATOR),
    ("Mutation", "runReconciliation", ADMIN),
    ("Mutation", "repairReconciliation", ADMIN),
    // Search: anyone reads; synonyms are kept with the catalog.
    ("Query", "search", VIEWER),
    ("Query", "searchSynonyms", VIEWER),
    ("Mutation", "updateSearchSynonyms", OPERATOR),
    // The platform.
    ("Mutation", "createTenant", PlatformOperator),
    ("Mutation", "updateTenantPlan", PlatformOperator),
    ("Mutation", "suspendTenant", PlatformOperator),
    ("Mutation", "resumeTenant", PlatformOperator),
    // Live reads.
    ("Subscription", "stockChanged", VIEWER),
    ("Subscription", "events", VIEWER),
    ("Subscription", "purchaseOrderUpdated", VIEWER),
    ("Subscription", "salesOrderUpdated", VIEWER),
    ("Subscription", "transferUpdated", VIEWER),
    ("Subscription", "returnOrderUpdated", VIEWER),
    ("Subscription", "reservationUpdated", VIEWER),
    ("Subscription", "jobUpdated", VIEWER),
];

/// What a root field needs; `None` for a field the table does not know (refused).
pub fn needs(root: &str, field: &str) -> Option<Needs> {
    GUARDS
        .iter()
        .find(|(r, f, _)| *r == root && *f == field)
        .map(|(_, _, n)| *n)
}

/// Whether a caller may run a root field: `Err` carries the refusal's message.
pub fn check(root: &str, field: &str, role: Option<Role>, operator: bool) -> Result<(), String> {
    if field.starts_with("__") {
        return Ok(());
    }
    match (needs(root, field), operator, role) {
        (None, _, _) => Err(format!("{root}.{field} has no guard, so no one may run it")),
        (Some(PlatformOperator), true, _) => Ok(()),
        (Some(PlatformOperator), false, _) => Err(format!(
            "{field} is for the platform operator (TWH_ADMIN_TOKEN) only"
        )),
        (Some(R(_)), true, _) => Err(format!(
            "the platform operator credential runs operator operations only; {field} needs a tenant's API key"
        )),
        (Some(R(least)), false, Some(role)) if role.rank() < least.rank() => Err(format!(
            "{field} needs the {} role or above; this key is {}",
            least.as_str(),
            role.as_str()
        )),
        // Allowed, or no caller at all (the resolver answers UNAUTHENTICATED).
        (Some(R(_)), false, _) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_rank_and_the_operator_stays_apart() {
        assert!(check("Mutation", "adjustStock", Some(Role::Operator), false).is_ok());
        assert!(check("Mutation", "adjustStock", Some(Role::Viewer), false).is_err());
        assert!(check("Mutation", "createApiKey", Some(Role::Operator), false).is_err());
        assert!(check("Mutation", "createApiKey", Some(Role::Developer), false).is_ok());
        assert!(check("Query", "auditEvents", Some(Role::Developer), false).is_err());
        assert!(check("Query", "auditEvents", Some(Role::Admin), false).is_ok());
        assert!(check("Mutation", "suspendTenant", Some(Role::Owner), false).is_err());
        assert!(check("Mutation", "suspendTenant", None, true).is_ok());
        assert!(check("Query", "items", None, true).is_err());
        assert!(check("Query", "unknownField", Some(Role::Owner), false).is_err());
        assert!(check("Query", "__schema", None, false).is_ok());
    }
}
