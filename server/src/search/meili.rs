//! The Meilisearch engine: one index per tenant (`{prefix}{tenant id}`), so a query can only
//! ever reach the caller's documents and each tenant has its own synonyms; every query also
//! carries `tenant_id = <caller>` as a filter the caller cannot remove.
//!
//! Settings follow the built-in engine's rules: every word must match, typos by word length
//! (Meilisearch's defaults), code and barcode before title before the rest, then the most
//! recently changed document first.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use meilisearch_sdk::client::{Client, SwapIndexes};
use meilisearch_sdk::errors::{Error, ErrorCode};
use meilisearch_sdk::search::{MatchingStrategies, Selectors};
use meilisearch_sdk::settings::Settings;
use meilisearch_sdk::task_info::TaskInfo;
use meilisearch_sdk::tasks::Task;

use super::{Hit, SearchDocument, SearchError, SearchRequest, SearchResults};

const SEARCHABLE: [&str; 4] = ["code", "barcode", "title", "body"];
const FILTERABLE: [&str; 8] = [
    "id",
    "tenant_id",
    "type",
    "status",
    "location_codes",
    "in_stock",
    "code_key",
    "barcode",
];
const RANKING: [&str; 7] = [
    "words",
    "typo",
    "proximity",
    "attribute",
    "sort",
    "exactness",
    "updated_at:desc",
];

pub struct Meili {
    client: Client,
    prefix: String,
    /// Indexes this process has created and configured.
    ready: tokio::sync::Mutex<HashSet<String>>,
}

impl Meili {
    pub fn new(url: &str, api_key: Option<&str>, prefix: &str) -> anyhow::Result<Self> {
        let client = Client::new(url.trim_end_matches('/'), api_key)
            .map_err(|e| anyhow::anyhow!("MEILISEARCH_URL is not usable: {e}"))?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            ready: Default::default(),
        })
    }

    pub fn uid(&self, tenant_id: &str) -> String {
        format!("{}{}", self.prefix, tenant_id)
    }

    pub async fn healthy(&self) -> bool {
        self.client.is_healthy().await
    }

    async fn wait(&self, task: TaskInfo) -> Result<(), SearchError> {
        let done = self
            .client
            .wait_for_task(
                task,
                Some(Duration::from_millis(5)),
                Some(Duration::from_secs(120)),
            )
            .await
            .map_err(engine_error)?;
        match done {
            Task::Failed { content } => Err(SearchError::Engine(format!(
                "task failed: {}",
                content.error.error_message
            ))),
            _ => Ok(()),
        }
    }

    fn settings(synonyms: &[Vec<String>]) -> Settings {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for group in synonyms {
            for word in group {
                let others: Vec<String> = group.iter().filter(|w| *w != word).cloned().collect();
                map.entry(word.clone()).or_default().extend(others);
            }
        }
        Settings::new()
            .with_searchable_attributes(SEARCHABLE)
            .with_filterable_attributes(FILTERABLE)
            .with_sortable_attributes(["updated_at"])
            .with_ranking_rules(RANKING)
            .with_synonyms(map)
    }

    /// Creates and configures an index (idempotent).
    async fn configure(&self, uid: &str, synonyms: &[Vec<String>]) -> Result<(), SearchError> {
        match self.client.create_index(uid, Some("id")).await {
            Ok(task) => {
                // "Already exists" comes back as a failed task: fine.
                let done = self
                    .client
                    .wait_for_task(
                        task,
                        Some(Duration::from_millis(5)),
                        Some(Duration::from_secs(60)),
                    )
                    .await
                    .map_err(engine_error)?;
                if let Task::Failed { content } = done
                    && content.error.error_code != ErrorCode::IndexAlreadyExists
                {
                    return Err(SearchError::Engine(content.error.error_message));
                }
            }
            Err(err) => return Err(engine_error(err)),
        }
        let task = self
            .client
            .index(uid)
            .set_settings(&Self::settings(synonyms))
            .await
            .map_err(engine_error)?;
        self.wait(task).await
    }

    async fn ensure(
        &self,
        tenant_id: &str,
        synonyms: &[Vec<String>],
    ) -> Result<String, SearchError> {
        let uid = self.uid(tenant_id);
        let mut ready = self.ready.lock().await;
        if !ready.contains(&uid) {
            self.configure(&uid, synonyms).await?;
            ready.insert(uid.clone());
        }
        Ok(uid)
    }

    /// Upserts and deletes documents of one tenant; returns once they are searchable.
    pub async fn apply(
        &self,
        tenant_id: &str,
        upserts: &[SearchDocument],
        deletes: &[String],
        synonyms: &[Vec<String>],
    ) -> Result<(), SearchError> {
        let uid = self.ensure(tenant_id, synonyms).await?;
        let index = self.client.index(&uid);
        if !upserts.is_empty() {
            let task = index
                .add_or_replace(upserts, Some("id"))
                .await
                .map_err(engine_error)?;
            self.wait(task).await?;
        }
        if !deletes.is_empty() {
            let task = index
                .delete_documents(deletes)
                .await
                .map_err(engine_error)?;
            self.wait(task).await?;
        }
        Ok(())
    }

    /// A tenant's synonyms changed: its index's settings follow.
    pub async fn set_synonyms(
        &self,
        tenant_id: &str,
        synonyms: &[Vec<String>],
    ) -> Result<(), SearchError> {
        let uid = self.uid(tenant_id);
        self.configure(&uid, synonyms).await?;
        self.ready.lock().await.insert(uid);
        Ok(())
    }

    /// Rebuilds a tenant's index aside and swaps it in: searches see the old index until the
    /// new one is complete. `pages` yields the documents.
    pub async fn rebuild(
        &self,
        tenant_id: &str,
        documents: &[SearchDocument],
        synonyms: &[Vec<String>],
    ) -> Result<(), SearchError> {
        let uid = self.uid(tenant_id);
        let aside = format!("{uid}__rebuild");
        // A rebuild that died half-way left its index: start again from nothing.
        if let Ok(task) = self.client.delete_index(&aside).await {
            let _ = self.wait(task).await;
        }
        self.configure(&aside, synonyms).await?;
        let index = self.client.index(&aside);
        for chunk in documents.chunks(5000) {
            let task = index
                .add_or_replace(chunk, Some("id"))
                .await
                .map_err(engine_error)?;
            self.wait(task).await?;
        }
        // The live index must exist to be swapped.
        self.configure(&uid, synonyms).await?;
        let task = self
            .client
            .swap_indexes([&SwapIndexes {
                indexes: (uid.clone(), aside.clone()),
                rename: None,
            }])
            .await
            .map_err(engine_error)?;
        self.wait(task).await?;
        let task = self
            .client
            .delete_index(&aside)
            .await
            .map_err(engine_error)?;
        self.wait(task).await?;
        self.ready.lock().await.insert(uid);
        Ok(())
    }

    pub async fn search(
        &self,
        tenant_id: &str,
        req: &SearchRequest,
    ) -> Result<SearchResults, SearchError> {
        let uid = self.uid(tenant_id);
        let index = self.client.index(&uid);
        let mut base = vec![format!("tenant_id = {}", quote(tenant_id))];
        if !req.types.is_empty() {
            base.push(format!("type IN [{}]", list(req.type_names())));
        }
        if !req.statuses.is_empty() {
            base.push(format!(
                "status IN [{}]",
                list(req.statuses.iter().map(String::as_str))
            ));
        }
        if let Some(code) = &req.location_code {
            base.push(format!("location_codes = {}", quote(code)));
        }
        if let Some(in_stock) = req.in_stock {
            base.push(format!("in_stock = {in_stock}"));
        }
        let highlight = Selectors::Some(&SEARCHABLE[..]);
        let facets = Selectors::Some(&["type", "status"][..]);

        // Exact codes and barcodes first.
        let mut exact: Vec<SearchDocument> = Vec::new();
        let mut facet_counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
        if !req.text.is_empty() {
            let mut filter = base.clone();
            filter.push(format!(
                "(code_key = {} OR barcode = {})",
                quote(&req.text.to_lowercase()),
                quote(&req.text)
            ));
            let filter = filter.join(" AND ");
            let found = match index
                .search()
                .with_filter(&filter)
                .with_limit(20)
                .with_facets(facets.clone())
                .with_sort(&["updated_at:desc"])
                .execute::<SearchDocument>()
                .await
            {
                Ok(found) => found,
                Err(err) if not_found(&err) => return Ok(SearchResults::default()),
                Err(err) => return Err(query_error(err)),
            };
            merge_facets(&mut facet_counts, found.facet_distribution);
            exact = found.hits.into_iter().map(|h| h.result).collect();
        }
        let mut filter = base;
        if !exact.is_empty() {
            filter.push(format!(
                "NOT id IN [{}]",
                list(exact.iter().map(|d| d.id.as_str()))
            ));
        }
        let filter = filter.join(" AND ");
        let exact_n = exact.len();
        let fuzzy_offset = req.offset.saturating_sub(exact_n);
        let exact_page: Vec<SearchDocument> =
            exact.into_iter().skip(req.offset).take(req.limit).collect();
        let fuzzy_limit = req.limit - exact_page.len();
        let words = req.words.join(" ");
        let mut query = index.search();
        query
            .with_query(&words)
            .with_filter(&filter)
            .with_offset(fuzzy_offset)
            .with_limit(fuzzy_limit)
            .with_facets(facets)
            .with_matching_strategy(MatchingStrategies::ALL)
            .with_attributes_to_highlight(highlight)
            .with_highlight_pre_tag("<mark>")
            .with_highlight_post_tag("</mark>");
        let found = match query.execute::<SearchDocument>().await {
            Ok(found) => found,
            Err(err) if not_found(&err) => return Ok(SearchResults::default()),
            Err(err) => return Err(query_error(err)),
        };
        merge_facets(&mut facet_counts, found.facet_distribution);
        let total = exact_n + found.estimated_total_hits.unwrap_or(found.hits.len());
        let mut hits: Vec<Hit> = exact_page
            .into_iter()
            .map(|doc| {
                let highlights = SEARCHABLE
                    .iter()
                    .filter_map(|f| {
                        let v = field(&doc, f)?;
                        v.eq_ignore_ascii_case(&req.text)
                            .then(|| (f.to_string(), format!("<mark>{v}</mark>")))
                    })
                    .collect();
                Hit {
                    document: doc,
                    exact: true,
                    highlights,
                }
            })
            .collect();
        hits.extend(found.hits.into_iter().map(|h| {
            let highlights = h
                .formatted_result
                .map(|formatted| {
                    SEARCHABLE
                        .iter()
                        .filter_map(|f| {
                            let v = formatted.get(*f)?.as_str()?;
                            v.contains("<mark>").then(|| (f.to_string(), v.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Hit {
                document: h.result,
                exact: false,
                highlights,
            }
        }));
        let facets = ["type", "status"]
            .into_iter()
            .map(|name| {
                let mut values: Vec<(String, usize)> = facet_counts
                    .remove(name)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                values.sort();
                (name.to_owned(), values)
            })
            .collect();
        Ok(SearchResults {
            hits,
            total: total.min(super::MAX_RESULTS),
            facets,
        })
    }
}

fn field<'a>(doc: &'a SearchDocument, name: &str) -> Option<&'a str> {
    match name {
        "code" => Some(&doc.code),
        "barcode" => doc.barcode.as_deref(),
        "title" => Some(&doc.title),
        "body" => Some(&doc.body),
        _ => None,
    }
}

fn merge_facets(
    into: &mut HashMap<String, HashMap<String, usize>>,
    from: Option<HashMap<String, HashMap<String, usize>>>,
) {
    for (name, values) in from.unwrap_or_default() {
        let counts = into.entry(name).or_default();
        for (value, n) in values {
            *counts.entry(value).or_default() += n;
        }
    }
}

/// A filter string value: quoted, with quotes and backslashes escaped.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values.into_iter().map(quote).collect::<Vec<_>>().join(", ")
}

fn not_found(err: &Error) -> bool {
    matches!(err, Error::Meilisearch(e) if e.error_code == ErrorCode::IndexNotFound)
}

/// An engine failure, never its raw text for the caller: unreachable is `Unavailable`, the rest
/// an engine error (logged, shown as internal).
fn engine_error(err: Error) -> SearchError {
    match err {
        Error::HttpError(_) | Error::MeilisearchCommunication(_) | Error::Timeout => {
            SearchError::Unavailable(err.to_string())
        }
        other => SearchError::Engine(other.to_string()),
    }
}

/// A query the engine refused is the caller's to fix.
fn query_error(err: Error) -> SearchError {
    match &err {
        Error::Meilisearch(e)
            if e.error_type == meilisearch_sdk::errors::ErrorType::InvalidRequest =>
        {
            tracing::debug!(error = %e.error_message, "the search engine refused a query");
            SearchError::Invalid {
                field: "query",
                message: "the search engine could not read this query; search for plain words, a SKU, an order number or a barcode".into(),
            }
        }
        _ => engine_error(err),
    }
}
