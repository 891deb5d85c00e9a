//! The REST surface: the route table of `twh-rest` served through this server's GraphQL
//! schema and authentication, and the OpenAPI document built from both.

use axum::http::HeaderMap;
use serde_json::Value;
use twh_rest::handler::{self, Prepared};
use twh_rest::routes::ROUTES;
use twh_rest::types::{INTROSPECTION, Types};
use twh_rest::{Backend, Failure};

use super::graphql;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ErrorCode;
use crate::graphql::TwhSchema;

#[derive(Clone)]
pub struct RestBackend {
    pub state: AppState,
    pub schema: TwhSchema,
}

impl Backend for RestBackend {
    type Caller = Caller;

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Failure> {
        graphql::caller(&self.state, headers).await.map_err(failure)
    }

    async fn execute(
        &self,
        caller: Caller,
        request_id: &str,
        request: async_graphql::Request,
    ) -> Result<async_graphql::Response, Failure> {
        graphql::run_as(&self.state, &self.schema, caller, request_id, request)
            .await
            .map_err(failure)
    }

    fn describe(&self, code: &str) -> (u16, String) {
        let code = ErrorCode::parse(code).unwrap_or(ErrorCode::BadRequest);
        (code.http_status(), code.problem_type())
    }

    fn record_failure(&self, code: &str) {
        let code = ErrorCode::parse(code).unwrap_or(ErrorCode::BadRequest);
        metrics::counter!("twh_errors_total", "code" => code.as_str()).increment(1);
    }

    fn codes(&self) -> Vec<(&'static str, u16)> {
        codes()
    }
}

fn failure((code, message): (ErrorCode, &'static str)) -> Failure {
    Failure {
        code: code.as_str().to_owned(),
        message: message.to_owned(),
    }
}

pub fn codes() -> Vec<(&'static str, u16)> {
    ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str(), c.http_status()))
        .collect()
}

/// The schema's types, read through introspection (needs no caller).
pub async fn types(schema: &TwhSchema) -> anyhow::Result<Types> {
    let response = schema.execute(INTROSPECTION).await;
    anyhow::ensure!(
        response.errors.is_empty(),
        "introspection failed: {:?}",
        response.errors
    );
    Types::from_introspection(&response.data.into_json()?).map_err(anyhow::Error::msg)
}

/// The prepared routes and the OpenAPI document for a schema.
pub async fn contract(schema: &TwhSchema) -> anyhow::Result<(Types, Vec<Prepared>, Value)> {
    let types = types(schema).await?;
    let prepared = handler::prepare(&types, ROUTES).map_err(anyhow::Error::msg)?;
    let document = twh_rest::openapi::document(&types, &prepared, &codes());
    Ok((types, prepared, document))
}
