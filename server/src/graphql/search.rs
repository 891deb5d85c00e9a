//! GraphQL for search: `search(query, types, filter, first, after)` over items, locations and
//! order documents, and the tenant's synonyms. Each hit carries its summary fields (what REST
//! returns) and, for GraphQL clients, the document itself as the `SearchNode` union, loaded
//! through the request's loaders (one statement per kind for a whole page).

use async_graphql::connection::PageInfo;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject, Union};
use chrono::{DateTime, Utc};

use super::loaders::Loaders;
use super::orders::{PurchaseOrder, ReturnOrder, SalesOrder, Transfer};
use super::{db_error, mutate, state};
use crate::audit::{self, AuditEntry};
use crate::auth::{principal, request_id};
use crate::catalog::items::Item;
use crate::catalog::locations::Location;
use crate::error::{DomainError, ErrorCode, UserError, internal_error, request_error};
use crate::orders::Kind;
use crate::search::{self, Hit, SearchError, SearchRequest, SearchType};

/// Narrows a search.
#[derive(InputObject, Clone, Debug, Default)]
pub struct SearchFilter {
    /// Raw status values, e.g. `ACTIVE`, `ORDERED`.
    pub statuses: Option<Vec<String>>,
    /// Items available at this location; documents with a line or move there.
    pub location_code: Option<String>,
    /// Items with (true) or without (false) stock available somewhere.
    pub in_stock: Option<bool>,
}

/// A part of a hit that matched, with the matching words in `<mark>`…`</mark>`.
#[derive(SimpleObject, Clone, Debug)]
pub struct SearchHighlight {
    /// `code`, `barcode`, `title` or `body`.
    pub field: String,
    pub snippet: String,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct SearchFacetValue {
    pub value: String,
    pub count: i32,
}

/// Counts of the matching documents by one field.
#[derive(SimpleObject, Clone, Debug)]
pub struct SearchFacet {
    /// `type` or `status`.
    pub field: String,
    pub values: Vec<SearchFacetValue>,
}

/// The document behind a hit.
#[derive(Union)]
pub enum SearchNode {
    Item(Item),
    Location(Location),
    PurchaseOrder(PurchaseOrder),
    SalesOrder(SalesOrder),
    Transfer(Transfer),
    ReturnOrder(ReturnOrder),
}

/// One hit: what it is, its summary as indexed, and the fields that matched.
pub struct SearchHit(Hit);

#[Object]
impl SearchHit {
    #[graphql(name = "type")]
    async fn kind(&self) -> SearchType {
        SearchType::parse(&self.0.document.doc_type).unwrap_or(SearchType::Item)
    }
    async fn id(&self) -> ID {
        ID(self.0.document.id.clone())
    }
    /// Item or location name; order number and party.
    async fn title(&self) -> &str {
        &self.0.document.title
    }
    /// SKU, location code or order number.
    async fn code(&self) -> &str {
        &self.0.document.code
    }
    async fn barcode(&self) -> Option<&str> {
        self.0.document.barcode.as_deref()
    }
    async fn status(&self) -> &str {
        &self.0.document.status
    }
    /// Items: where some is available; documents: the locations they touch.
    async fn location_codes(&self) -> &[String] {
        &self.0.document.location_codes
    }
    /// Items: the quantity available over all locations, as indexed.
    async fn available(&self) -> i64 {
        self.0.document.available
    }
    async fn in_stock(&self) -> bool {
        self.0.document.in_stock
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0.document.updated_at)
    }
    /// The query was this hit's code or barcode, exactly: such hits come first.
    async fn exact_match(&self) -> bool {
        self.0.exact
    }
    async fn highlights(&self) -> Vec<SearchHighlight> {
        self.0
            .highlights
            .iter()
            .map(|(field, snippet)| SearchHighlight {
                field: field.clone(),
                snippet: snippet.clone(),
            })
            .collect()
    }
    /// The document as it is now (null if it is gone since it was indexed).
    async fn node(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<SearchNode>> {
        let app = state(ctx)?;
        let tenant = &principal(ctx)?.tenant_id;
        let loaders = ctx
            .data::<Loaders>()
            .map_err(|_| request_error(ErrorCode::Internal, "loaders missing"))?;
        let id = self.0.document.id.clone();
        let kind = SearchType::parse(&self.0.document.doc_type);
        let node = match kind {
            Some(SearchType::Item) => loaders
                .items(app, tenant)
                .load_one(id)
                .await
                .map_err(|e| db_error(ctx, (*e).clone()))?
                .map(SearchNode::Item),
            Some(SearchType::Location) => loaders
                .locations(app, tenant)
                .load_one(id)
                .await
                .map_err(|e| db_error(ctx, (*e).clone()))?
                .map(SearchNode::Location),
            Some(t) => {
                let kind = match t {
                    SearchType::PurchaseOrder => Kind::PurchaseOrder,
                    SearchType::SalesOrder => Kind::SalesOrder,
                    SearchType::Transfer => Kind::Transfer,
                    _ => Kind::Return,
                };
                loaders
                    .documents(app, tenant)
                    .load_one(kind.uri(&id))
                    .await
                    .map_err(|e| db_error(ctx, (*e).clone()))?
                    .map(|d| match kind {
                        Kind::PurchaseOrder => SearchNode::PurchaseOrder(PurchaseOrder(d)),
                        Kind::SalesOrder | Kind::Reservation => {
                            SearchNode::SalesOrder(SalesOrder(d))
                        }
                        Kind::Transfer => SearchNode::Transfer(Transfer(d)),
                        Kind::Return => SearchNode::ReturnOrder(ReturnOrder(d)),
                    })
            }
            None => None,
        };
        Ok(node)
    }
}

/// A page of search results, best first.
#[derive(SimpleObject)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// How many documents match, at most 1000. An estimate on Meilisearch; on the built-in
    /// engine, while the exact-word matches alone fill the pages asked for so far, a count of
    /// those (matches with typos are counted once a page reaches past them).
    pub total_count: i32,
    /// Counts of every matching document by `type` and by `status`.
    pub facets: Vec<SearchFacet>,
    pub page_info: PageInfo,
}

/// A tenant's synonyms: each group's words find each other.
#[derive(SimpleObject, Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SearchSynonyms {
    pub groups: Vec<Vec<String>>,
}

#[derive(InputObject, Clone, Debug, serde::Serialize)]
pub struct UpdateSearchSynonymsInput {
    /// Groups of single words (2 to 20 each, at most 200 groups); replaces every group.
    pub groups: Vec<Vec<String>>,
}

#[derive(SimpleObject)]
pub struct SearchSynonymsPayload {
    pub synonyms: Option<SearchSynonyms>,
    pub user_errors: Vec<UserError>,
}

fn search_error(ctx: &Context<'_>, err: SearchError) -> async_graphql::Error {
    match err {
        SearchError::Invalid { message, .. } => request_error(ErrorCode::InvalidInput, message),
        SearchError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "search engine unavailable");
            request_error(
                ErrorCode::Unavailable,
                "search is unavailable for now; retry shortly (writes are not affected)",
            )
        }
        SearchError::Db(err) => db_error(ctx, err),
        SearchError::Engine(cause) => {
            internal_error(&request_id(ctx), &anyhow::anyhow!("search engine: {cause}"))
        }
    }
}

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Items, locations and order documents whose words match `query` (typos allowed by word
    /// length, the last word as a prefix); an exact SKU, code, order number or barcode first,
    /// then by relevance, then the most recently changed. No query (or an empty one) lists
    /// every document of the filter, most recent first.
    #[graphql(
        complexity = "first.unwrap_or(20).clamp(1, super::MAX_PAGE) as usize * child_complexity"
    )]
    async fn search(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] query: String,
        types: Option<Vec<SearchType>>,
        filter: Option<SearchFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<SearchResults> {
        let tenant = principal(ctx)?.tenant_id.clone();
        let app = state(ctx)?;
        let limit = super::page_size(Some(first.unwrap_or(20)))? as usize;
        let offset = match after.as_deref() {
            None => 0,
            Some(cursor) => cursor.parse::<usize>().map_err(|_| {
                request_error(
                    ErrorCode::InvalidInput,
                    "after is not a cursor of this search; pass pageInfo.endCursor",
                )
            })?,
        };
        let filter = filter.unwrap_or_default();
        let mut request = SearchRequest::new(
            &query,
            types.unwrap_or_default(),
            filter.statuses.unwrap_or_default(),
            filter.location_code,
            filter.in_stock,
            offset,
            limit,
        )
        .map_err(|e| search_error(ctx, e))?;
        let wanted = ctx.look_ahead();
        request.facets = wanted.field("facets").exists();
        request.highlights = wanted.field("hits").field("highlights").exists();
        let started = std::time::Instant::now();
        let found = search::query(app, &tenant, request)
            .await
            .map_err(|e| search_error(ctx, e))?;
        metrics::histogram!("twh_search_seconds", "engine" => app.search.engine_name())
            .record(started.elapsed().as_secs_f64());
        let end = offset + found.hits.len();
        let page_info = PageInfo {
            has_previous_page: offset > 0,
            has_next_page: end < found.total,
            start_cursor: (!found.hits.is_empty()).then(|| offset.to_string()),
            end_cursor: (!found.hits.is_empty()).then(|| end.to_string()),
        };
        Ok(SearchResults {
            hits: found.hits.into_iter().map(SearchHit).collect(),
            total_count: found.total as i32,
            facets: found
                .facets
                .into_iter()
                .map(|(field, values)| SearchFacet {
                    values: values
                        .into_iter()
                        .map(|(value, count)| SearchFacetValue {
                            // Types as the `types` argument spells them (ITEM, PURCHASE_ORDER),
                            // so a facet can be sent back as a filter.
                            value: if field == "type" {
                                value.to_uppercase()
                            } else {
                                value
                            },
                            count: count as i32,
                        })
                        .collect(),
                    field,
                })
                .collect(),
            page_info,
        })
    }

    /// This tenant's search synonyms.
    async fn search_synonyms(&self, ctx: &Context<'_>) -> async_graphql::Result<SearchSynonyms> {
        let tenant = &principal(ctx)?.tenant_id;
        let groups = search::synonyms(&state(ctx)?.db, tenant)
            .await
            .map_err(|e| db_error(ctx, e))?;
        Ok(SearchSynonyms { groups })
    }
}

#[derive(Default)]
pub struct SearchMutation;

#[Object]
impl SearchMutation {
    /// Replaces this tenant's search synonyms (e.g. `[["mug", "cup"]]`).
    async fn update_search_synonyms(
        &self,
        ctx: &Context<'_>,
        input: UpdateSearchSynonymsInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<SearchSynonymsPayload> {
        let app = state(ctx)?.clone();
        let (synonyms, user_errors) = mutate(
            ctx,
            "updateSearchSynonyms",
            idempotency_key,
            input,
            |txn, p, rid, input| async move {
                let result = async {
                    let groups = search::save_synonyms(
                        &txn,
                        &app.search.engine,
                        &p.tenant_id,
                        input.groups,
                    )
                    .await
                    .map_err(|e| match e {
                        SearchError::Invalid { field, message } => DomainError::user(
                            UserError::new(ErrorCode::InvalidInput, &["input", field], message),
                        ),
                        SearchError::Unavailable(cause) => {
                            tracing::warn!(error = %cause, "search engine unavailable");
                            DomainError::user(UserError::new(
                                ErrorCode::Unavailable,
                                &[],
                                "the search engine is unavailable; nothing changed, retry shortly",
                            ))
                        }
                        other => DomainError::Internal(anyhow::Error::new(other)),
                    })?;
                    audit::record(
                        &txn,
                        &p,
                        AuditEntry {
                            action: "updateSearchSynonyms",
                            target_type: "search_synonyms",
                            target_id: &p.tenant_id,
                            request_id: Some(&rid),
                            data: serde_json::json!({ "groups": groups }),
                        },
                    )
                    .await
                    .map_err(|e| DomainError::Internal(e.into()))?;
                    Ok(SearchSynonyms { groups })
                }
                .await;
                (txn, result)
            },
        )
        .await?;
        if let (Ok(p), Ok(app)) = (principal(ctx), state(ctx)) {
            app.search.forget_synonyms(&p.tenant_id);
        }
        Ok(SearchSynonymsPayload {
            synonyms,
            user_errors,
        })
    }
}
