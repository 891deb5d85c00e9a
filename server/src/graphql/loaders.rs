//! Batched look-ups for nested fields (async-graphql's dataloader): every item of a page of
//! order lines in one statement, every document's movements in two, the documents behind a
//! page of movements in three. Made on first use in a
//! request, so requests that nest nothing pay nothing.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use twh_entity::{item, location};

use crate::app::AppState;
use crate::catalog::items::Item;
use crate::catalog::locations::Location;
use crate::ledger::Movement;
use crate::ledger::query::movements_by_reference;

/// Per-request holder; the loaders are built the first time a resolver asks.
#[derive(Default)]
pub struct Loaders {
    items: OnceLock<DataLoader<ItemsById>>,
    movements: OnceLock<DataLoader<MovementsByDocument>>,
    documents: OnceLock<DataLoader<DocumentsByUri>>,
    locations: OnceLock<DataLoader<LocationsById>>,
}

impl Loaders {
    pub fn items(&self, app: &AppState, tenant_id: &str) -> &DataLoader<ItemsById> {
        self.items.get_or_init(|| {
            DataLoader::new(
                ItemsById {
                    app: app.clone(),
                    tenant_id: tenant_id.to_owned(),
                },
                tokio::spawn,
            )
        })
    }

    pub fn movements(&self, app: &AppState, tenant_id: &str) -> &DataLoader<MovementsByDocument> {
        self.movements.get_or_init(|| {
            DataLoader::new(
                MovementsByDocument {
                    app: app.clone(),
                    tenant_id: tenant_id.to_owned(),
                },
                tokio::spawn,
            )
        })
    }
}

impl Loaders {
    pub fn locations(&self, app: &AppState, tenant_id: &str) -> &DataLoader<LocationsById> {
        self.locations.get_or_init(|| {
            DataLoader::new(
                LocationsById {
                    app: app.clone(),
                    tenant_id: tenant_id.to_owned(),
                },
                tokio::spawn,
            )
        })
    }

    pub fn documents(&self, app: &AppState, tenant_id: &str) -> &DataLoader<DocumentsByUri> {
        self.documents.get_or_init(|| {
            DataLoader::new(
                DocumentsByUri {
                    app: app.clone(),
                    tenant_id: tenant_id.to_owned(),
                },
                tokio::spawn,
            )
        })
    }
}

/// Order documents by the reference URI their movements carry.
pub struct DocumentsByUri {
    app: AppState,
    tenant_id: String,
}

impl Loader<String> for DocumentsByUri {
    type Value = crate::orders::Document;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, crate::orders::Document>, Self::Error> {
        crate::orders::by_uris(&self.app.reads, &self.tenant_id, keys)
            .await
            .map_err(Arc::new)
    }
}

pub struct ItemsById {
    app: AppState,
    tenant_id: String,
}

impl Loader<String> for ItemsById {
    type Value = Item;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Item>, Self::Error> {
        let rows = item::Entity::find()
            .filter(item::Column::TenantId.eq(self.tenant_id.as_str()))
            .filter(item::Column::Id.is_in(keys.iter().cloned()))
            .all(&self.app.reads)
            .await
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .map(|m| (m.id.clone(), Item::from(m)))
            .collect())
    }
}

pub struct LocationsById {
    app: AppState,
    tenant_id: String,
}

impl Loader<String> for LocationsById {
    type Value = Location;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Location>, Self::Error> {
        let rows = location::Entity::find()
            .filter(location::Column::TenantId.eq(self.tenant_id.as_str()))
            .filter(location::Column::Id.is_in(keys.iter().cloned()))
            .all(&self.app.reads)
            .await
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .map(|m| (m.id.clone(), Location::from(m)))
            .collect())
    }
}

/// Movements by the reference URI of the document that made them.
pub struct MovementsByDocument {
    app: AppState,
    tenant_id: String,
}

impl Loader<String> for MovementsByDocument {
    type Value = Vec<Movement>;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Vec<Movement>>, Self::Error> {
        movements_by_reference(&self.app.reads, &self.tenant_id, keys)
            .await
            .map_err(Arc::new)
    }
}
