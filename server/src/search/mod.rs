//! Search over a tenant's items, locations and order documents: one API, two engines.
//!
//! The built-in engine ([`embedded`]) keeps its index in the database (SQLite FTS5, Postgres
//! pg_trgm), so a server with no configuration searches out of the box; with `MEILISEARCH_URL`
//! the [`meili`] engine serves the same queries from Meilisearch (one index per tenant, so a
//! tenant's documents and synonyms are its own by construction). Both are fed by the
//! [`indexer`], which follows the event log from its own cursor and re-reads the current state
//! of whatever an event touched, so a replayed batch changes nothing and a missed one is
//! caught up.
//!
//! A query's words must all match, each with the typos its length allows, the last one also
//! as a prefix; an exact code (SKU, location code, order number) or barcode comes first.

pub mod documents;
pub mod embedded;
pub mod indexer;
pub mod meili;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::Enum;
use serde::{Deserialize, Serialize};

use crate::config::SearchConfig;

/// What a search hit is.
#[derive(
    Enum, Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum SearchType {
    Item,
    Location,
    PurchaseOrder,
    SalesOrder,
    Transfer,
    ReturnOrder,
}

impl SearchType {
    pub const ALL: [SearchType; 6] = [
        SearchType::Item,
        SearchType::Location,
        SearchType::PurchaseOrder,
        SearchType::SalesOrder,
        SearchType::Transfer,
        SearchType::ReturnOrder,
    ];

    /// The stored name, the same as the event log's aggregate type.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchType::Item => "item",
            SearchType::Location => "location",
            SearchType::PurchaseOrder => "purchase_order",
            SearchType::SalesOrder => "sales_order",
            SearchType::Transfer => "transfer",
            SearchType::ReturnOrder => "return_order",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }
}

/// What the index holds for one document. The same shape goes into both engines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchDocument {
    /// The document's id (`itm_…`, `loc_…`, `po_…`, …): unique in a tenant.
    pub id: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub doc_type: String,
    /// Item or location name, or the order's number and party.
    pub title: String,
    /// SKU, location code or order number.
    pub code: String,
    /// `code` lowercased: what an exact look-up compares.
    pub code_key: String,
    pub barcode: Option<String>,
    /// Everything else worth finding: unit and attributes, party, references, notes, line SKUs.
    pub body: String,
    pub status: String,
    /// Items: where some is available; orders: the locations their lines and moves touch.
    pub location_codes: Vec<String>,
    pub in_stock: bool,
    /// Items: the quantity available over all locations.
    pub available: i64,
    /// Milliseconds since the epoch: ranks recent documents first among equals.
    pub updated_at: i64,
}

/// One search, as both engines take it. Text and filters are checked by [`SearchRequest::new`].
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub text: String,
    /// Query words (at most [`text::MAX_QUERY_WORDS`]).
    pub words: Vec<String>,
    pub types: Vec<SearchType>,
    pub statuses: Vec<String>,
    pub location_code: Option<String>,
    pub in_stock: Option<bool>,
    pub offset: usize,
    pub limit: usize,
    /// Each query word's synonyms for this tenant (same order as `words`).
    pub synonyms: Vec<Vec<String>>,
    /// Whether to count facets and mark highlights (skipped when nobody reads them).
    pub facets: bool,
    pub highlights: bool,
}

/// The longest query text.
pub const MAX_QUERY_CHARS: usize = 256;
/// How far a search can page: results past this many are not reachable (as in Meilisearch's
/// default `maxTotalHits`).
pub const MAX_RESULTS: usize = 1000;

impl SearchRequest {
    pub fn new(
        text: &str,
        types: Vec<SearchType>,
        statuses: Vec<String>,
        location_code: Option<String>,
        in_stock: Option<bool>,
        offset: usize,
        limit: usize,
    ) -> Result<Self, SearchError> {
        let text = text.trim();
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(SearchError::Invalid {
                field: "query",
                message: format!(
                    "the query is longer than {MAX_QUERY_CHARS} characters; search for a few words, a SKU or a barcode"
                ),
            });
        }
        if text.chars().any(char::is_control) {
            return Err(SearchError::Invalid {
                field: "query",
                message: "the query contains control characters; send plain text".into(),
            });
        }
        for (field, value) in statuses
            .iter()
            .map(|s| ("filter.statuses", s))
            .chain(location_code.iter().map(|c| ("filter.locationCode", c)))
        {
            if value.is_empty() || value.len() > 100 || value.chars().any(char::is_control) {
                return Err(SearchError::Invalid {
                    field,
                    message: "a filter value is 1 to 100 characters of plain text".into(),
                });
            }
        }
        if offset >= MAX_RESULTS {
            return Err(SearchError::Invalid {
                field: "after",
                message: format!(
                    "search pages reach the first {MAX_RESULTS} results; narrow the query or the filter"
                ),
            });
        }
        // Statuses are compared as the API spells them.
        let statuses = statuses.iter().map(|s| s.to_uppercase()).collect();
        let mut words = text::words(text);
        words.truncate(text::MAX_QUERY_WORDS);
        Ok(Self {
            text: text.to_owned(),
            words,
            types,
            statuses,
            location_code,
            in_stock,
            offset,
            limit: limit.min(MAX_RESULTS - offset),
            synonyms: Vec::new(),
            facets: true,
            highlights: true,
        })
    }

    /// Whether the text could be a SKU, code, order number or barcode (one token: codes hold
    /// no spaces), so an exact look-up is worth making.
    pub fn code_like(&self) -> bool {
        !self.text.is_empty() && !self.text.chars().any(char::is_whitespace)
    }

    pub fn type_names(&self) -> Vec<&'static str> {
        self.types.iter().map(|t| t.as_str()).collect()
    }
}

/// One hit: the document, whether it matched a code or barcode exactly, and the fields that
/// matched with the matching words marked.
#[derive(Clone, Debug)]
pub struct Hit {
    pub document: SearchDocument,
    pub exact: bool,
    pub highlights: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    /// Matching documents (Meilisearch: its estimate), at most [`MAX_RESULTS`].
    pub total: usize,
    /// Counts by `type` and by `status` over every matching document.
    pub facets: Vec<(String, Vec<(String, usize)>)>,
}

/// Why a search or an index update failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The engine cannot be reached (Meilisearch down): retry later.
    #[error("the search engine is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("search engine error: {0}")]
    Engine(String),
}

/// The configured engine.
pub enum Engine {
    Embedded,
    Meilisearch(meili::Meili),
}

pub struct Search {
    pub engine: Engine,
    /// One indexing round at a time in this process (other processes: the cursor row's lock).
    pub(crate) indexing: tokio::sync::Mutex<()>,
    /// Each tenant's synonym groups as last read, for [`SYNONYMS_TTL`]: searches read them
    /// on every call otherwise.
    synonyms: std::sync::Mutex<SynonymsCache>,
}

/// Per tenant: when its synonym groups were read, and the groups.
type SynonymsCache = HashMap<String, (Instant, Arc<Vec<Vec<String>>>)>;

/// How long a process serves a tenant's synonyms from memory: a change made through another
/// process applies to this one's searches within this time (at once on the process that
/// made it).
pub const SYNONYMS_TTL: Duration = Duration::from_secs(2);

impl Search {
    /// The tenant's synonym groups, from memory when read within [`SYNONYMS_TTL`].
    async fn tenant_synonyms(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        tenant_id: &str,
    ) -> Result<Arc<Vec<Vec<String>>>, sea_orm::DbErr> {
        let cached = self
            .cached_synonyms()
            .get(tenant_id)
            .filter(|(read, _)| read.elapsed() < SYNONYMS_TTL)
            .map(|(_, groups)| groups.clone());
        if let Some(groups) = cached {
            return Ok(groups);
        }
        let groups = Arc::new(synonyms(db, tenant_id).await?);
        let mut cache = self.cached_synonyms();
        if cache.len() >= 10_000 {
            cache.retain(|_, (read, _)| read.elapsed() < SYNONYMS_TTL);
        }
        cache.insert(tenant_id.to_owned(), (Instant::now(), groups.clone()));
        Ok(groups)
    }

    /// Drops a tenant's synonyms from memory (this process changed them).
    pub fn forget_synonyms(&self, tenant_id: &str) {
        self.cached_synonyms().remove(tenant_id);
    }

    fn cached_synonyms(&self) -> std::sync::MutexGuard<'_, SynonymsCache> {
        // A panic while holding the lock leaves a map that is still whole.
        self.synonyms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Search {
    pub fn new(config: &SearchConfig) -> anyhow::Result<Self> {
        let engine = match &config.meilisearch_url {
            Some(url) => Engine::Meilisearch(meili::Meili::new(
                url,
                config.meilisearch_api_key.as_deref(),
                &config.index_prefix,
            )?),
            None => Engine::Embedded,
        };
        Ok(Self {
            engine,
            indexing: tokio::sync::Mutex::new(()),
            synonyms: Default::default(),
        })
    }

    pub fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Embedded => "built-in",
            Engine::Meilisearch(_) => "meilisearch",
        }
    }

    /// The indexer's cursor row: one per engine, so switching engines indexes from scratch.
    pub fn cursor_name(&self) -> &'static str {
        match self.engine {
            Engine::Embedded => "search:embedded",
            Engine::Meilisearch(_) => "search:meilisearch",
        }
    }
}

/// Runs a search for a tenant on the configured engine.
pub async fn query(
    app: &crate::app::App,
    tenant_id: &str,
    mut req: SearchRequest,
) -> Result<SearchResults, SearchError> {
    match &app.search.engine {
        Engine::Embedded => {
            let groups = app.search.tenant_synonyms(&app.db, tenant_id).await?;
            req.synonyms = expand(&groups, &req.words);
            Ok(embedded::search(&app.db, tenant_id, &req).await?)
        }
        Engine::Meilisearch(meili) => {
            // Meilisearch applies the synonyms itself; marking them in highlights needs them.
            if req.highlights {
                let groups = app.search.tenant_synonyms(&app.db, tenant_id).await?;
                req.synonyms = expand(&groups, &req.words);
            }
            meili.search(tenant_id, &req).await
        }
    }
}

/// The fields of a hit that matched, with the matching part of each word marked (`<mark>`):
/// the whole value when it equals the query (an exact code or barcode). The same marks on
/// both engines.
pub(crate) fn highlights(doc: &SearchDocument, req: &SearchRequest) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !req.highlights {
        return out;
    }
    let exact = |v: &str| !req.text.is_empty() && v.eq_ignore_ascii_case(&req.text);
    for (field, value) in [
        ("code", Some(doc.code.as_str())),
        ("barcode", doc.barcode.as_deref()),
        ("title", Some(doc.title.as_str())),
        ("body", Some(doc.body.as_str())),
    ] {
        let Some(value) = value else { continue };
        if exact(value) {
            out.push((field.to_owned(), format!("<mark>{value}</mark>")));
        } else if let Some(marked) = text::highlight(value, &req.words, &req.synonyms) {
            out.push((field.to_owned(), marked));
        }
    }
    out
}

/// Each query word's synonyms: the other words of every group it is in.
fn expand(groups: &[Vec<String>], words: &[String]) -> Vec<Vec<String>> {
    words
        .iter()
        .map(|w| {
            let mut out: Vec<String> = groups
                .iter()
                .filter(|g| g.contains(w))
                .flat_map(|g| g.iter().filter(|s| *s != w).cloned())
                .collect();
            out.sort();
            out.dedup();
            out
        })
        .collect()
}

/// The event of a change of a tenant's synonyms.
pub const SYNONYMS_UPDATED: &str = "search_synonyms.updated";

/// Groups of synonyms most a tenant may have, and words in a group.
pub const MAX_SYNONYM_GROUPS: usize = 200;
pub const MAX_SYNONYM_WORDS: usize = 20;

/// A tenant's synonym groups (each a set of single words that find each other).
pub async fn synonyms(
    db: &impl sea_orm::ConnectionTrait,
    tenant_id: &str,
) -> Result<Vec<Vec<String>>, sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            crate::events::relay::dialect(
                backend,
                "SELECT groups FROM search_synonyms WHERE tenant_id = $1",
            ),
            [tenant_id.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => {
            let raw: String = row.try_get("", "groups")?;
            serde_json::from_str(&raw).unwrap_or_default()
        }
        None => Vec::new(),
    })
}

/// Checks and normalises synonym groups: each word one search word (lowercase), each group
/// two to [`MAX_SYNONYM_WORDS`] distinct words.
pub fn normalize_synonyms(groups: Vec<Vec<String>>) -> Result<Vec<Vec<String>>, SearchError> {
    if groups.len() > MAX_SYNONYM_GROUPS {
        return Err(SearchError::Invalid {
            field: "groups",
            message: format!("at most {MAX_SYNONYM_GROUPS} synonym groups"),
        });
    }
    let mut out = Vec::with_capacity(groups.len());
    for (i, group) in groups.into_iter().enumerate() {
        let mut words = Vec::with_capacity(group.len());
        for word in group {
            let parts = text::words(&word);
            if parts.len() != 1 || parts[0].chars().count() > 50 {
                return Err(SearchError::Invalid {
                    field: "groups",
                    message: format!(
                        "group {i}: {word:?} is not one word of letters and digits (at most 50)"
                    ),
                });
            }
            words.push(parts[0].clone());
        }
        words.sort();
        words.dedup();
        if !(2..=MAX_SYNONYM_WORDS).contains(&words.len()) {
            return Err(SearchError::Invalid {
                field: "groups",
                message: format!("group {i}: a group has 2 to {MAX_SYNONYM_WORDS} different words"),
            });
        }
        out.push(words);
    }
    Ok(out)
}

/// Replaces a tenant's synonyms in the caller's transaction; a Meilisearch index's settings
/// change first, so a refusal there changes nothing.
pub async fn save_synonyms(
    txn: &impl sea_orm::ConnectionTrait,
    engine: &Engine,
    tenant_id: &str,
    groups: Vec<Vec<String>>,
) -> Result<Vec<Vec<String>>, SearchError> {
    let groups = normalize_synonyms(groups)?;
    if let Engine::Meilisearch(meili) = engine {
        meili.set_synonyms(tenant_id, &groups).await?;
    }
    let raw = serde_json::to_string(&groups).map_err(|e| SearchError::Engine(e.to_string()))?;
    let backend = txn.get_database_backend();
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
        backend,
        crate::events::relay::dialect(
            backend,
            "INSERT INTO search_synonyms (tenant_id, groups, version) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant_id) DO UPDATE SET groups = excluded.groups, \
             version = search_synonyms.version + 1",
        ),
        [tenant_id.into(), raw.into()],
    ))
    .await?;
    crate::events::record(
        txn,
        tenant_id,
        SYNONYMS_UPDATED,
        "search_synonyms",
        tenant_id,
        serde_json::json!({ "groups": groups }),
    )
    .await?;
    Ok(groups)
}
