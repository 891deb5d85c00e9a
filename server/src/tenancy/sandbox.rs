//! The sandbox tenant: created on an empty database so a new user can make a first stock change
//! within minutes, with sample items, locations and stock put through the real ledger.

use crate::app::App;
use crate::auth::{Principal, Role};
use crate::catalog::items::{self, CreateItemInput};
use crate::catalog::locations::{self, CreateLocationInput, LocationKind};
use crate::error::DomainError;
use crate::idempotency;
use crate::ledger::write::{self, AdjustChangeInput, AdjustStockInput};
use crate::ledger::{MovementReason, QuantityState};

use super::CreatedTenant;

const ITEMS: [(&str, &str); 4] = [
    ("TSHIRT-BLK-M", "T-shirt, black, M"),
    ("TSHIRT-BLK-L", "T-shirt, black, L"),
    ("MUG-12OZ", "Mug, 12 oz"),
    ("CAP-NAVY", "Cap, navy"),
];

/// Creates the sandbox tenant with sample data when the database has no tenant yet.
pub async fn ensure(app: &App) -> anyhow::Result<Option<CreatedTenant>> {
    if super::count(&app.db).await? > 0 {
        return Ok(None);
    }
    let created = super::create(&app.db, "Sandbox", "free", true).await?;
    let principal = Principal {
        tenant_id: created.tenant_id.clone(),
        key_id: created.api_key_id.clone(),
        role: Role::Owner,
        session: None,
    };
    seed(app, &principal).await?;
    Ok(Some(created))
}

fn internal(err: DomainError) -> anyhow::Error {
    anyhow::anyhow!("seeding the sandbox: {err:?}")
}

async fn seed(app: &App, principal: &Principal) -> anyhow::Result<()> {
    let outcome = idempotency::run(
        app,
        principal,
        "sandbox.seed",
        None,
        String::new(),
        |txn| async move {
            let result = async {
                for (code, name, kind) in [
                    ("WH-MAIN", "Main warehouse", LocationKind::Warehouse),
                    ("STORE-1", "High Street store", LocationKind::Store),
                ] {
                    let input = CreateLocationInput {
                        code: code.into(),
                        name: name.into(),
                        kind: Some(kind),
                        allow_negative: Some(false),
                    };
                    locations::create(&txn, principal, "sandbox", input).await?;
                }
                for (sku, name) in ITEMS {
                    let input = CreateItemInput {
                        sku: sku.into(),
                        name: name.into(),
                        barcode: None,
                        unit: None,
                        attributes: None,
                        status: None,
                    };
                    items::create(&txn, principal, "sandbox", input).await?;
                }
                let changes = ITEMS
                    .iter()
                    .enumerate()
                    .flat_map(|(i, (sku, _))| {
                        [("WH-MAIN", 100 + 10 * i as i64), ("STORE-1", 12 + i as i64)].map(
                            |(code, qty)| AdjustChangeInput {
                                sku: (*sku).into(),
                                location_code: code.into(),
                                state: QuantityState::Available,
                                delta: qty,
                                change_from_quantity: None,
                            },
                        )
                    })
                    .collect();
                let input = AdjustStockInput {
                    reason: MovementReason::Received,
                    reference_document_uri: Some("twh://sandbox/opening-stock".into()),
                    effective_at: None,
                    changes,
                };
                let cx = write::Context {
                    principal,
                    request_id: "sandbox",
                    idempotency_key: None,
                    operation: "stock.adjust",
                    audited_by_document: false,
                    // The sandbox's answer is `()`, not the change.
                    answers_with_change: false,
                    deferred: None,
                };
                write::adjust(&txn, &cx, &input).await.map(|_| ())
            }
            .await;
            (txn, result)
        },
    )
    .await;
    outcome.result.map_err(internal)
}
