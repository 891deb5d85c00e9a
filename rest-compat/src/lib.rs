//! The REST compatibility layer: a curated route table whose every route runs a GraphQL
//! operation in process through the same schema, plus the OpenAPI and Postman generators.
//! The GraphQL surface stays the one source of behaviour; REST is a view of it.

pub mod handler;
pub mod openapi;
pub mod postman;
pub mod routes;
pub mod types;

use std::future::Future;

use axum::http::HeaderMap;

/// A request-level failure the backend reports before or instead of a GraphQL response.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// What the server supplies: executing GraphQL as the caller named by the headers, and the
/// error-code table.
pub trait Backend: Clone + Send + Sync + 'static {
    /// Who is calling, as the backend knows them.
    type Caller: Clone + Send + Sync;

    /// Checks the caller's credentials first, so an unauthenticated request is answered 401
    /// before anything about its parameters is said.
    fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Self::Caller, Failure>> + Send;

    /// Executes the request through the schema as that caller.
    fn execute(
        &self,
        caller: Self::Caller,
        request_id: &str,
        request: async_graphql::Request,
    ) -> impl Future<Output = Result<async_graphql::Response, Failure>> + Send;

    /// The HTTP status and RFC 9457 problem type of an error code (`VERSION_CONFLICT` → 412).
    fn describe(&self, code: &str) -> (u16, String);

    /// Counts a request-level failure (metrics); business failures are counted by the backend.
    fn record_failure(&self, code: &str);

    /// Every error code with its status, for the OpenAPI document.
    fn codes(&self) -> Vec<(&'static str, u16)>;
}
