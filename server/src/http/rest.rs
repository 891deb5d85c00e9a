//! The REST surface: the route table of `twh-rest` served through this server's GraphQL
//! schema and authentication, and the OpenAPI document built from both.

use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::Value;
use twh_rest::handler::{self, Prepared};
use twh_rest::routes::ROUTES;
use twh_rest::types::{INTROSPECTION, Types};
use twh_rest::{Backend, Failure};

use super::graphql;
use crate::app::AppState;
use crate::auth::{Caller, RequestMeta};
use crate::error::ErrorCode;
use crate::graphql::TwhSchema;
use crate::tenancy::limits::RequestMeter;

#[derive(Clone)]
pub struct RestBackend {
    pub state: AppState,
    pub schema: TwhSchema,
}

/// A REST request's caller and its metering, which every execution of the request shares (a
/// conditional update reads the version first; `If-Match: *` retries a conflict): the request
/// is checked and counted once.
#[derive(Clone)]
pub struct Metered {
    caller: Caller,
    meter: Arc<RequestMeter>,
}

impl Backend for RestBackend {
    type Caller = Metered;

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Metered, Failure> {
        let caller = graphql::caller(&self.state, headers)
            .await
            .map_err(failure)?;
        Ok(Metered {
            caller,
            meter: Default::default(),
        })
    }

    async fn execute(
        &self,
        caller: Metered,
        request_id: &str,
        request: async_graphql::Request,
    ) -> Result<async_graphql::Response, Failure> {
        let meta = RequestMeta {
            request_id: request_id.to_owned(),
            meter: caller.meter,
        };
        graphql::run_as(&self.state, &self.schema, caller.caller, meta, request)
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

/// The codes a REST route can answer with (persisted queries are GraphQL's alone).
pub fn codes() -> Vec<(&'static str, u16)> {
    ErrorCode::ALL
        .iter()
        .filter(|c| **c != ErrorCode::PersistedQueryNotFound)
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
    let mut document = twh_rest::openapi::document(&types, &prepared, &codes());
    super::artifacts::describe(&mut document);
    Ok((types, prepared, document))
}
