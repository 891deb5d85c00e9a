//! The test harness: `TestApp::spawn()` gives a running server, a tenant and its key.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use twh_server::app::AppState;
use twh_server::config::{Config, GroupCommitMode};
use twh_server::server::{self, Running};
use twh_server::tenancy;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        uuid_like()
    )
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}

/// A fresh database URL: a new Postgres database when `TWH_TEST_DATABASE_URL` names a server,
/// otherwise a new SQLite file.
pub async fn fresh_database() -> String {
    match std::env::var("TWH_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let name = format!("twh_t_{}", unique_suffix());
            let conn = Database::connect(admin.as_str())
                .await
                .expect("connect to the admin database");
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create a test database");
            conn.close().await.ok();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
        _ => {
            let dir = std::env::temp_dir().join(format!("twh-test-{}", unique_suffix()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!("sqlite://{}/twh.db?mode=rwc", dir.display())
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub key: String,
    pub tenant_id: String,
    pub db_url: String,
    pub state: AppState,
    running: Option<Running>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let db_url = fresh_database().await;
        let mut config = Config::for_database(&db_url);
        // With TWH_TEST_REDIS_URL every test runs its bus over Redis (CI's Postgres run).
        config.redis_url = std::env::var("TWH_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty());
        // Most tests send bursts no Free plan allows; the limits tests turn enforcement on.
        // Calls are metered either way, and flushed often so tests read them soon.
        config.limits.enforce = false;
        config.limits.flush_ms = 50;
        // Artifacts in a folder of the test's own; jobs looked for often.
        config.artifacts.local_dir =
            std::env::temp_dir().join(format!("twh-artifacts-{}", unique_suffix()));
        config.jobs.poll_ms = 50;
        config.jobs.reconcile_schedule = twh_server::config::ReconcileSchedule::Off;
        // With TWH_TEST_MEILISEARCH_URL search runs on that Meilisearch, in indexes of the
        // test's own.
        if let Ok(url) = std::env::var("TWH_TEST_MEILISEARCH_URL")
            && !url.is_empty()
        {
            config.search.meilisearch_url = Some(url);
            config.search.meilisearch_api_key = std::env::var("TWH_TEST_MEILISEARCH_KEY").ok();
            config.search.index_prefix = format!("t{}_", unique_suffix());
        }
        config.search.poll_ms = 50;
        // TWH_TEST_GROUP_COMMIT=on|runs|off runs the suite in that group commit mode; unset,
        // in the server's default (`runs`: concurrent single adjustments written together).
        if let Ok(mode) = std::env::var("TWH_TEST_GROUP_COMMIT") {
            config.database.group_commit.mode = match mode.as_str() {
                "on" | "1" | "true" => GroupCommitMode::All,
                "off" | "0" | "false" => GroupCommitMode::Off,
                _ => GroupCommitMode::Runs,
            };
        }
        configure(&mut config);
        let state = server::prepare(config).await.expect("prepare the app");
        let tenant = tenancy::create(&state.db, "Test tenant", "free", true)
            .await
            .expect("create a tenant");
        let running = server::spawn(state.clone())
            .await
            .expect("start the server");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("http client");
        Self {
            base: format!("http://{}", running.addr),
            client,
            key: tenant.api_key,
            tenant_id: tenant.tenant_id,
            db_url,
            state,
            running: Some(running),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// How many statements `work` sent through the app's pool, and what it returned. A
    /// background worker's statement may land in the count; the savepoints and other text sent
    /// unprepared are not counted.
    pub async fn statements_of<T>(&self, work: impl std::future::Future<Output = T>) -> (u64, T) {
        let before = self.state.statements.load(Ordering::SeqCst);
        let out = work.await;
        (self.state.statements.load(Ordering::SeqCst) - before, out)
    }

    /// POSTs a GraphQL request with the tenant's key; returns the status and the JSON body.
    pub async fn gql(&self, query: &str, variables: Value) -> (StatusCode, Value) {
        self.gql_as(&self.key, query, variables).await
    }

    pub async fn gql_as(&self, key: &str, query: &str, variables: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url("/graphql"))
            .bearer_auth(key)
            // The media type of GraphQL over HTTP: statuses follow the error (4xx for a
            // refused document); with plain application/json those would be 200.
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("send");
        let status = response.status();
        let body = response.json().await.expect("json body");
        (status, body)
    }

    /// Another tenant in the same database, for isolation tests.
    pub async fn other_tenant(&self) -> String {
        tenancy::create(&self.state.db, "Other tenant", "free", true)
            .await
            .expect("create a tenant")
            .api_key
    }

    pub async fn create_item(&self, sku: &str) -> Value {
        self.create_item_with(json!({ "sku": sku, "name": format!("Item {sku}") }))
            .await
    }

    /// Creates an item from a whole `CreateItemInput`; fails the test on any user error.
    pub async fn create_item_with(&self, input: Value) -> Value {
        let (_, body) = self
            .gql(
                "mutation($input: CreateItemInput!) { createItem(input: $input) { item { id sku version } userErrors { code field message } } }",
                json!({ "input": input }),
            )
            .await;
        assert_eq!(
            body["data"]["createItem"]["userErrors"],
            json!([]),
            "{body}"
        );
        body["data"]["createItem"]["item"].clone()
    }

    pub async fn create_location(&self, code: &str, allow_negative: bool) -> Value {
        let (_, body) = self
            .gql(
                "mutation($input: CreateLocationInput!) { createLocation(input: $input) { location { id code version } userErrors { code field message } } }",
                json!({ "input": { "code": code, "name": format!("Location {code}"), "allowNegative": allow_negative } }),
            )
            .await;
        assert_eq!(
            body["data"]["createLocation"]["userErrors"],
            json!([]),
            "{body}"
        );
        body["data"]["createLocation"]["location"].clone()
    }

    /// One adjustStock call; returns the payload.
    pub async fn adjust(&self, sku: &str, location: &str, delta: i64, key: Option<&str>) -> Value {
        let (status, body) = self
            .gql(
                ADJUST,
                json!({ "input": adjust_input(sku, location, delta, None), "key": key }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["adjustStock"].clone()
    }

    /// Runs the reconciliation and asserts it finds no mismatch (every level equals the sum of
    /// its movements, sequences gap-free).
    pub async fn assert_reconciled(&self) {
        let report = twh_server::ledger::reconcile::run(&self.state.db, None)
            .await
            .expect("reconcile");
        assert_eq!(
            report.mismatches,
            0,
            "{}",
            serde_json::to_string(&report).expect("a report")
        );
    }

    pub async fn level(&self, sku: &str, location: &str) -> Value {
        let (_, body) = self
            .gql(
                "query($sku: String!, $loc: String!) { stockLevel(sku: $sku, locationCode: $loc) { onHand available committed reserved incoming damaged safetyStock qualityControl sequence version } }",
                json!({ "sku": sku, "loc": location }),
            )
            .await;
        body["data"]["stockLevel"].clone()
    }

    /// Every movement matching the filter, following cursors.
    pub async fn movements(&self, filter: Value) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (_, body) = self
                .gql(
                    "query($filter: MovementFilter, $after: String) { movements(filter: $filter, first: 250, after: $after) { edges { cursor node { id groupId sku locationCode state delta quantityAfterChange sequence reason counterparty counterpartyLocationCode counterpartyState } } pageInfo { hasNextPage endCursor } } }",
                    json!({ "filter": filter, "after": after }),
                )
                .await;
            let page = &body["data"]["movements"];
            let edges = page["edges"].as_array().unwrap_or_else(|| panic!("{body}"));
            all.extend(edges.iter().map(|e| e["node"].clone()));
            if page["pageInfo"]["hasNextPage"] != json!(true) {
                return all;
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
    }

    /// Any request with the tenant's key; returns status, headers and the body (JSON, text or
    /// null when empty).
    pub async fn rest(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.key);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, body)
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
    }
}

pub const ADJUST: &str = "mutation($input: AdjustStockInput!, $key: String) { adjustStock(input: $input, idempotencyKey: $key) { groupId movements { id sku locationCode state delta quantityAfterChange sequence reason } levels { sku locationCode onHand available version sequence } userErrors { code field message } } }";

pub fn adjust_input(sku: &str, location: &str, delta: i64, change_from: Option<i64>) -> Value {
    json!({
        "reason": "CORRECTION",
        "referenceDocumentUri": "test://adjust",
        "changes": [{ "sku": sku, "locationCode": location, "delta": delta, "changeFromQuantity": change_from }]
    })
}

/// The codes of a payload's userErrors.
pub fn codes(payload: &Value) -> Vec<String> {
    payload["userErrors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
