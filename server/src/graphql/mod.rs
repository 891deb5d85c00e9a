//! The GraphQL schema: per-domain Query and Mutation objects merged into one schema, with depth
//! and complexity limits and an extension that gives parse and validation failures their codes.

mod access;
mod catalog;
mod depth;
pub mod events;
mod jobs;
pub mod loaders;
pub mod metering;
mod operator;
pub mod orders;
mod search;
mod stock;
pub mod usage;
mod webhooks;

use std::future::Future;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextResolve,
    NextValidation, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Context, MergedObject, OutputType, Schema, SchemaBuilder, ServerError, ServerResult,
    ValidationResult, Variables,
};
use sea_orm::DatabaseTransaction;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::auth::{Principal, request_id, writer};
use crate::error::{DomainError, ErrorCode, UserError, internal_error, request_error};
use crate::idempotency;

#[derive(MergedObject, Default)]
pub struct Query(
    catalog::CatalogQuery,
    stock::StockQuery,
    orders::OrdersQuery,
    events::EventsQuery,
    webhooks::WebhooksQuery,
    jobs::JobsQuery,
    search::SearchQuery,
    access::AccessQuery,
    usage::UsageQuery,
    operator::OperatorQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    catalog::CatalogMutation,
    stock::StockMutation,
    orders::OrdersMutation,
    webhooks::WebhooksMutation,
    jobs::JobsMutation,
    search::SearchMutation,
    access::AccessMutation,
    operator::OperatorMutation,
);

pub type TwhSchema = Schema<Query, Mutation, events::Subscription>;

fn builder() -> SchemaBuilder<Query, Mutation, events::Subscription> {
    Schema::build(Query::default(), Mutation::default(), events::Subscription)
}

pub fn build(state: AppState) -> TwhSchema {
    let limits = state.config.graphql.clone();
    builder()
        .data(state)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(32)
        .limit_directives(16)
        .extension(ErrorCodes {
            max_depth: limits.max_depth,
        })
        .finish()
}

/// The SDL of a schema, with sorted fields so diffs stay readable.
pub fn sdl_of(schema: &TwhSchema) -> String {
    let options = async_graphql::SDLExportOptions::new()
        .sorted_fields()
        .sorted_arguments()
        .sorted_enum_items()
        .include_specified_by();
    schema.sdl_with_options(options)
}

/// The schema without application state: for exporting the contract, not for serving.
pub fn bare() -> TwhSchema {
    builder().finish()
}

/// The SDL the server serves (`schema.graphql` is this, checked in).
pub fn sdl() -> String {
    sdl_of(&bare())
}

/// Tags parse and validation failures with `extensions.code`, and limits how deep a query
/// nests (data and introspection apart, see [`depth`]).
struct ErrorCodes {
    max_depth: usize,
}

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes {
            max_depth: self.max_depth,
        })
    }
}

impl ErrorCodes {
    fn check_depth(&self, doc: &ExecutableDocument) -> ServerResult<()> {
        let measured = depth::measure(doc);
        let too_deep = |what: &str, levels: usize, limit: usize| {
            tag(
                ServerError::new(
                    format!(
                        "Query is nested too deep: {what} {levels} levels, the limit is {limit} - Hint: fetch nested data with a second query"
                    ),
                    None,
                ),
                ErrorCode::GraphqlValidationFailed,
            )
        };
        if measured.data > self.max_depth {
            return Err(too_deep("fields nest", measured.data, self.max_depth));
        }
        if measured.introspection_lists > depth::INTROSPECTION_MAX_LISTS {
            return Err(too_deep(
                "introspection lists (fields, inputFields, interfaces, possibleTypes) nest",
                measured.introspection_lists,
                depth::INTROSPECTION_MAX_LISTS,
            ));
        }
        if measured.introspection > depth::INTROSPECTION_MAX_DEPTH {
            return Err(too_deep(
                "introspection nests",
                measured.introspection,
                depth::INTROSPECTION_MAX_DEPTH,
            ));
        }
        Ok(())
    }
}

fn tag(mut err: ServerError, code: ErrorCode) -> ServerError {
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
    err
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    /// Every error of every execution (GraphQL or REST) is counted here, once.
    async fn request(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextRequest<'_>,
    ) -> async_graphql::Response {
        let response = next.run(ctx).await;
        for error in &response.errors {
            let code = error_code(error).unwrap_or(ErrorCode::BadRequest);
            metrics::counter!("twh_errors_total", "code" => code.as_str()).increment(1);
        }
        response
    }

    /// Every root field passes the guard table ([`crate::auth::guards`]) before it runs.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<async_graphql::Value>> {
        if info.path_node.parent.is_none() {
            let role = ctx.data_opt::<crate::auth::Principal>().map(|p| p.role);
            let operator = ctx.data_opt::<crate::auth::Operator>().is_some();
            if let Err(message) =
                crate::auth::guards::check(info.parent_type, info.name, role, operator)
            {
                return Err(tag(ServerError::new(message, None), ErrorCode::Forbidden));
            }
        }
        next.run(ctx, info).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next
            .run(ctx, query, variables)
            .await
            .map_err(|e| tag(e, ErrorCode::GraphqlParseFailed))?;
        self.check_depth(&doc)?;
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| tag(e, ErrorCode::GraphqlValidationFailed))
                .collect::<Vec<_>>()
        })?;
        // A valid operation is metered and passes the tenant's limits before it runs.
        metering::check(ctx, &result).await.map_err(|e| vec![e])?;
        Ok(result)
    }
}

/// The code an error carries in `extensions.code`, if it is one of ours.
pub fn error_code(error: &ServerError) -> Option<ErrorCode> {
    match error.extensions.as_ref().and_then(|ext| ext.get("code")) {
        Some(async_graphql::Value::String(code)) => ErrorCode::parse(code),
        _ => None,
    }
}

pub fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| request_error(ErrorCode::Internal, "application state missing"))
}

/// Parsed GraphQL documents by their text: clients (and every REST route) send the same few
/// documents over and over, and parsing is a visible share of a small request's cost.
#[derive(Default)]
pub struct DocumentCache {
    documents: std::sync::RwLock<std::collections::HashMap<String, ExecutableDocument>>,
    /// Automatic persisted queries: query texts by their SHA-256 (lower-case hex).
    persisted: std::sync::RwLock<std::collections::HashMap<String, String>>,
}

/// Why a request's `extensions.persistedQuery` could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum PersistedRefusal {
    /// The hash alone was sent and this server does not know it (yet).
    NotFound,
    /// The extension is malformed, or its hash is not the query's.
    Invalid(&'static str),
}

impl DocumentCache {
    const MAX_ENTRIES: usize = 1024;
    const MAX_QUERY_BYTES: usize = 16 * 1024;
    const MAX_PERSISTED: usize = 2048;

    /// Automatic persisted queries (Apollo's protocol): a request whose
    /// `extensions.persistedQuery` is `{"version": 1, "sha256Hash": "<hex>"}` may leave its
    /// query out once this server has seen the text with that hash. A request with both is
    /// checked (the hash must be the text's) and remembered; one with the hash alone gets the
    /// text filled in, or `PERSISTED_QUERY_NOT_FOUND`, after which the client sends both. Each
    /// process learns on its own; a client re-sends the text to a replica that has not seen it.
    pub fn resolve_persisted(
        &self,
        request: &mut async_graphql::Request,
    ) -> Result<(), PersistedRefusal> {
        use async_graphql::Value;
        use sha2::{Digest, Sha256};
        const SHAPE: &str = "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": \"<64 hex digits>\"}";
        let Some(extension) = request.extensions.get("persistedQuery") else {
            return Ok(());
        };
        let Value::Object(extension) = extension else {
            return Err(PersistedRefusal::Invalid(SHAPE));
        };
        let version_one =
            matches!(extension.get("version"), Some(Value::Number(n)) if n.as_i64() == Some(1));
        let hash = match extension.get("sha256Hash") {
            Some(Value::String(hash))
                if version_one
                    && hash.len() == 64
                    && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                hash.to_ascii_lowercase()
            }
            _ => return Err(PersistedRefusal::Invalid(SHAPE)),
        };
        if request.query.is_empty() {
            let known = self
                .persisted
                .read()
                .ok()
                .and_then(|p| p.get(&hash).cloned());
            return match known {
                Some(text) => {
                    request.query = text;
                    Ok(())
                }
                None => Err(PersistedRefusal::NotFound),
            };
        }
        if hex::encode(Sha256::digest(request.query.as_bytes())) != hash {
            return Err(PersistedRefusal::Invalid(
                "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query - Hint: hash the query text exactly as sent (its UTF-8 bytes, as hex)",
            ));
        }
        if request.query.len() <= Self::MAX_QUERY_BYTES
            && let Ok(mut persisted) = self.persisted.write()
        {
            if persisted.len() >= Self::MAX_PERSISTED {
                persisted.clear();
            }
            persisted.insert(hash, request.query.clone());
        }
        Ok(())
    }

    /// Attaches the parsed document to the request, parsing and remembering it if new. A text
    /// that does not parse is left for the executor to report.
    pub fn attach(&self, request: &mut async_graphql::Request) {
        if request.query.len() > Self::MAX_QUERY_BYTES {
            return;
        }
        if let Some(doc) = self
            .documents
            .read()
            .ok()
            .and_then(|d| d.get(&request.query).cloned())
        {
            request.set_parsed_query(doc);
            return;
        }
        let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
            return;
        };
        if let Ok(mut documents) = self.documents.write() {
            if documents.len() >= Self::MAX_ENTRIES {
                documents.clear();
            }
            documents.insert(request.query.clone(), doc.clone());
        }
        request.set_parsed_query(doc);
    }
}

pub const DEFAULT_PAGE: i32 = 50;
pub const MAX_PAGE: i32 = 250;

/// Validates `first`, returning the page size.
pub fn page_size(first: Option<i32>) -> async_graphql::Result<u64> {
    match first.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n as u64),
        n => Err(request_error(
            ErrorCode::InvalidInput,
            format!("first must be between 1 and {MAX_PAGE}, got {n}"),
        )),
    }
}

/// Builds a connection from a page fetched with `limit + 1` rows.
pub fn connection<T: OutputType>(
    mut rows: Vec<T>,
    limit: u64,
    had_cursor: bool,
    cursor: impl Fn(&T) -> String,
) -> Connection<String, T> {
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let mut conn = Connection::new(had_cursor, has_next);
    conn.edges
        .extend(rows.into_iter().map(|row| Edge::new(cursor(&row), row)));
    conn
}

/// Appends the audit record of a mutation request that changed nothing (its target is the
/// request). A failure to write it is logged, not returned: the caller's answer stands.
pub async fn audit_request(
    app: &crate::app::App,
    principal: &Principal,
    operation: &str,
    request_id: &str,
    data: serde_json::Value,
) {
    let entry = crate::audit::AuditEntry {
        action: operation,
        target_type: "request",
        target_id: request_id,
        request_id: Some(request_id),
        data,
    };
    if let Err(err) = crate::audit::record(&app.db, principal, entry).await {
        tracing::warn!(error = %err, operation, "writing the audit record of a refused request failed");
    }
}

/// Maps a storage failure to an opaque, logged error.
pub fn db_error(ctx: &Context<'_>, err: sea_orm::DbErr) -> async_graphql::Error {
    internal_error(&request_id(ctx), &anyhow::Error::new(err))
}

/// Runs a mutation: role check, idempotency key, one transaction; business failures come back
/// as `userErrors`, internal ones as an opaque top-level error.
pub async fn mutate<I, T, F, Fut>(
    ctx: &Context<'_>,
    operation: &'static str,
    key: Option<String>,
    input: I,
    work: F,
) -> async_graphql::Result<(Option<T>, Vec<UserError>)>
where
    I: Serialize,
    T: Serialize + DeserializeOwned,
    F: FnOnce(DatabaseTransaction, Principal, String, I) -> Fut,
    Fut: Future<Output = (DatabaseTransaction, Result<T, DomainError>)>,
{
    mutate_together(ctx, operation, key, input, |_| None, work).await
}

/// What a mutation that group commit may run together with others is made of.
pub struct Parts<'a, I> {
    pub principal: &'a Principal,
    pub request_id: &'a str,
    pub key: Option<&'a str>,
    pub fingerprint: &'a str,
    pub input: &'a I,
}

/// [`mutate`], for a mutation that group commit may write together with others: `together`
/// makes it one, if it can be (see [`idempotency::run_together`]).
pub async fn mutate_together<I, T, F, Fut, G>(
    ctx: &Context<'_>,
    operation: &'static str,
    key: Option<String>,
    input: I,
    together: G,
    work: F,
) -> async_graphql::Result<(Option<T>, Vec<UserError>)>
where
    I: Serialize,
    T: Serialize + DeserializeOwned,
    F: FnOnce(DatabaseTransaction, Principal, String, I) -> Fut,
    Fut: Future<Output = (DatabaseTransaction, Result<T, DomainError>)>,
    G: FnOnce(Parts<'_, I>) -> Option<idempotency::Together<T>>,
{
    let principal = writer(ctx)?.clone();
    let app = state(ctx)?;
    let rid = request_id(ctx);
    if let Err(e) = idempotency::validate_key(key.as_deref()) {
        return Ok((None, vec![e]));
    }
    // Only a keyed request is ever compared with another; skip the hashing otherwise.
    let fingerprint = match &key {
        Some(_) => idempotency::fingerprint(operation, &input),
        None => String::new(),
    };
    let together = match &app.group {
        Some(_) => together(Parts {
            principal: &principal,
            request_id: &rid,
            key: key.as_deref(),
            fingerprint: &fingerprint,
            input: &input,
        }),
        None => None,
    };
    let outcome = idempotency::run_together(
        app,
        &principal,
        operation,
        key.as_deref(),
        fingerprint,
        together,
        |txn| {
            crate::audit::with_idempotency_key(
                key.clone(),
                work(txn, principal.clone(), rid.clone(), input),
            )
        },
    )
    .await;
    // A change audits itself in its own transaction; a request that changed nothing (refused,
    // or a replay answered from the stored result) is audited here, so every mutation request
    // leaves exactly one record.
    let unaudited = match &outcome.result {
        _ if outcome.replayed => Some(serde_json::json!({ "outcome": "replayed" })),
        Ok(_) => None,
        Err(DomainError::User(errors)) => Some(serde_json::json!({
            "outcome": "rejected",
            "codes": errors.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(),
        })),
        Err(DomainError::Internal(_)) => Some(serde_json::json!({ "outcome": "failed" })),
    };
    if let Some(mut data) = unaudited {
        data["idempotencyKey"] = serde_json::json!(key);
        audit_request(app, &principal, operation, &rid, data).await;
    }
    if outcome.replayed {
        ctx.insert_http_header("Idempotent-Replayed", "true");
    } else if outcome.result.is_ok() {
        // What it committed may carry events: the relay takes them now, not at its next poll.
        app.wake.relay.notify_one();
    }
    let result_label = match &outcome.result {
        Ok(_) => "ok",
        Err(DomainError::User(_)) => "user_error",
        Err(DomainError::Internal(_)) => "internal_error",
    };
    metrics::counter!("twh_mutations_total", "operation" => operation, "outcome" => result_label)
        .increment(1);
    match outcome.result {
        Ok(value) => Ok((Some(value), Vec::new())),
        Err(DomainError::User(errors)) => {
            for e in &errors {
                metrics::counter!("twh_errors_total", "code" => e.code.as_str()).increment(1);
            }
            Ok((None, errors))
        }
        Err(DomainError::Internal(err)) => Err(internal_error(&rid, &err)),
    }
}
