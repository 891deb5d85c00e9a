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
use meilisearch_sdk::request::{HttpClient, Method};
use meilisearch_sdk::search::{MatchingStrategies, Selectors};
use meilisearch_sdk::settings::{
    FilterFeatureModes, FilterFeatures, FilterableAttribute, FilterableAttributesSettings,
    Settings, TypoToleranceSettings,
};
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
const FACETS: [&str; 2] = ["type", "status"];
/// Exact code and barcode hits a search returns at most.
const EXACT: usize = 20;
const RANKING: [&str; 7] = [
    "words",
    "typo",
    "proximity",
    "attribute",
    "sort",
    "exactness",
    "updated_at:desc",
];

/// meilisearch-sdk's HTTP client, sending each body as one buffer. The SDK's own client streams
/// every request body through a reader that sets up and zeroes an 8 MiB buffer per request:
/// in a profile of searches through the API that memset was a fifth of the server's CPU.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    fn new(api_key: Option<&str>) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = api_key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| anyhow::anyhow!("MEILISEARCH_API_KEY is not a usable header value"))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()?;
        Ok(Self { client })
    }

    async fn send<Output: serde::de::DeserializeOwned>(
        &self,
        url: String,
        verb: reqwest::Method,
        body: Option<(Vec<u8>, &str)>,
        expected_status_code: u16,
    ) -> Result<Output, Error> {
        let mut request = self.client.request(verb, &url);
        if let Some((body, content_type)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let mut text = response.text().await?;
        if text.is_empty() {
            text = "null".to_owned();
        }
        meilisearch_sdk::request::parse_response(status, expected_status_code, &text, url)
    }
}

/// `url` followed by the method's query string.
fn url_with_query<Q: serde::Serialize, B>(
    url: &str,
    method: &Method<Q, B>,
) -> Result<String, Error> {
    Ok(format!("{url}{}", yaup::to_string(method.query())?))
}

fn verb<Q, B>(method: &Method<Q, B>) -> reqwest::Method {
    match method {
        Method::Get { .. } => reqwest::Method::GET,
        Method::Post { .. } => reqwest::Method::POST,
        Method::Patch { .. } => reqwest::Method::PATCH,
        Method::Put { .. } => reqwest::Method::PUT,
        Method::Delete { .. } => reqwest::Method::DELETE,
    }
}

#[async_trait::async_trait]
impl HttpClient for Http {
    async fn request<Query, Body, Output>(
        &self,
        url: &str,
        method: Method<Query, Body>,
        expected_status_code: u16,
    ) -> Result<Output, Error>
    where
        Query: serde::Serialize + Send + Sync,
        Body: serde::Serialize + Send + Sync,
        Output: serde::de::DeserializeOwned + 'static + Send,
    {
        let body = match method.body() {
            Some(body) => Some((serde_json::to_vec(body)?, "application/json")),
            None => None,
        };
        self.send(
            url_with_query(url, &method)?,
            verb(&method),
            body,
            expected_status_code,
        )
        .await
    }

    async fn stream_request<
        Query: serde::Serialize + Send + Sync,
        Body: futures_io::AsyncRead + Send + Sync + 'static,
        Output: serde::de::DeserializeOwned + 'static,
    >(
        &self,
        url: &str,
        method: Method<Query, Body>,
        content_type: &str,
        expected_status_code: u16,
    ) -> Result<Output, Error> {
        use futures_util::AsyncReadExt;
        let (url, verb) = (url_with_query(url, &method)?, verb(&method));
        let body = match method.into_body() {
            Some(reader) => {
                let mut buf = Vec::new();
                Box::pin(reader)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| Error::Other(Box::new(e)))?;
                Some((buf, content_type))
            }
            None => None,
        };
        self.send(url, verb, body, expected_status_code).await
    }

    fn is_tokio(&self) -> bool {
        true
    }
}

pub struct Meili {
    client: Client<Http>,
    prefix: String,
    /// Indexes this process has created and configured.
    ready: tokio::sync::Mutex<HashSet<String>>,
}

impl Meili {
    pub fn new(url: &str, api_key: Option<&str>, prefix: &str) -> anyhow::Result<Self> {
        let client =
            Client::new_with_client(url.trim_end_matches('/'), api_key, Http::new(api_key)?);
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
        // Equality filters only, no facet search, proximity by attribute, no typos on
        // numbers (the built-in engine's rule): less to build per write, less per query.
        let filterable = FilterableAttribute::Settings(FilterableAttributesSettings {
            attribute_patterns: FILTERABLE.map(String::from).to_vec(),
            features: FilterFeatures {
                facet_search: false,
                filter: FilterFeatureModes {
                    equality: true,
                    comparison: false,
                },
            },
        });
        Settings::new()
            .with_searchable_attributes(SEARCHABLE)
            .with_filterable_attributes_advanced([filterable])
            .with_sortable_attributes(["updated_at"])
            .with_ranking_rules(RANKING)
            .with_proximity_precision("byAttribute")
            .with_typo_tolerance(TypoToleranceSettings {
                enabled: Some(true),
                disable_on_attributes: None,
                disable_on_words: None,
                min_word_size_for_typos: None,
                disable_on_numbers: Some(true),
            })
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

    /// Whether this process has set up the tenant's index (then [`Meili::apply`] does not
    /// need its synonyms).
    pub async fn is_ready(&self, tenant_id: &str) -> bool {
        self.ready.lock().await.contains(&self.uid(tenant_id))
    }

    /// Upserts and deletes documents of one tenant; returns once they are searchable.
    /// `synonyms` set up the index the first time this process writes to it.
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

    /// One round trip: for a text that could be a code, a multi-search of the exact look-up
    /// (code or barcode equal to the text) and the fuzzy query without those documents; else
    /// the fuzzy query alone. Facets only when the caller asked for them; highlights are
    /// marked here, as the built-in engine marks them (cheaper than the engine's formatting).
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
        let facets = Selectors::Some(&FACETS[..]);
        let exact_lookup = req.code_like();
        let base = base.join(" AND ");
        // A code-like text: the exact filter, and the fuzzy one without what it finds.
        let (exact_filter, fuzzy_filter) = if exact_lookup {
            let is_code = format!(
                "(code_key = {} OR barcode = {})",
                quote(&req.text.to_lowercase()),
                quote(&req.text)
            );
            (
                format!("{base} AND {is_code}"),
                format!("{base} AND NOT {is_code}"),
            )
        } else {
            (String::new(), base)
        };
        // The exact hits (at most EXACT) come first; not knowing how many yet, the fuzzy page
        // starts up to EXACT earlier and is cut once they are known.
        let fuzzy_from = if exact_lookup {
            req.offset.saturating_sub(EXACT)
        } else {
            req.offset
        };
        let words = req.words.join(" ");
        let mut fuzzy = index.search();
        fuzzy
            .with_query(&words)
            .with_filter(&fuzzy_filter)
            .with_offset(fuzzy_from)
            .with_limit(req.offset + req.limit - fuzzy_from)
            .with_matching_strategy(MatchingStrategies::ALL);
        if req.facets {
            fuzzy.with_facets(facets.clone());
        }
        let (exact, found) = if exact_lookup {
            let mut exact = index.search();
            exact
                .with_filter(&exact_filter)
                .with_limit(EXACT)
                .with_sort(&["updated_at:desc"]);
            if req.facets {
                exact.with_facets(facets);
            }
            let mut multi = self.client.multi_search();
            multi
                .with_search_query(exact.build())
                .with_search_query(fuzzy.build());
            let mut results = match multi.execute::<SearchDocument>().await {
                Ok(response) => response.results,
                Err(err) if not_found(&err) => return Ok(SearchResults::default()),
                Err(err) => return Err(query_error(err)),
            };
            let (Some(found), Some(exact)) = (results.pop(), results.pop()) else {
                return Err(SearchError::Engine(
                    "a multi-search answered with fewer results than queries".into(),
                ));
            };
            (Some(exact), found)
        } else {
            match fuzzy.execute::<SearchDocument>().await {
                Ok(found) => (None, found),
                Err(err) if not_found(&err) => return Ok(SearchResults::default()),
                Err(err) => return Err(query_error(err)),
            }
        };

        let mut facet_counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let exact: Vec<SearchDocument> = match exact {
            Some(exact) => {
                merge_facets(&mut facet_counts, exact.facet_distribution);
                exact.hits.into_iter().map(|h| h.result).collect()
            }
            None => Vec::new(),
        };
        merge_facets(&mut facet_counts, found.facet_distribution);
        let exact_n = exact.len();
        let total = exact_n + found.estimated_total_hits.unwrap_or(found.hits.len());
        // Global position p: exact[p] while p < exact_n, else fuzzy hit p - exact_n, which
        // is at index p - exact_n - fuzzy_from of what was fetched.
        let exact_page: Vec<SearchDocument> =
            exact.into_iter().skip(req.offset).take(req.limit).collect();
        let fuzzy_skip = (req.offset.max(exact_n) - exact_n).saturating_sub(fuzzy_from);
        let fuzzy_take = req.limit - exact_page.len();
        let mut hits: Vec<Hit> = exact_page
            .into_iter()
            .map(|doc| Hit {
                highlights: super::highlights(&doc, req),
                document: doc,
                exact: true,
            })
            .collect();
        hits.extend(
            found
                .hits
                .into_iter()
                .skip(fuzzy_skip)
                .take(fuzzy_take)
                .map(|h| Hit {
                    highlights: super::highlights(&h.result, req),
                    document: h.result,
                    exact: false,
                }),
        );
        let facets = if req.facets {
            FACETS
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
                .collect()
        } else {
            Vec::new()
        };
        Ok(SearchResults {
            hits,
            total: total.min(super::MAX_RESULTS),
            facets,
        })
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
