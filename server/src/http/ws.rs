//! GraphQL over WebSocket, the `graphql-transport-ws` protocol (what the `graphql-ws` client
//! speaks), at `/graphql/ws` and by upgrade at `/graphql`.
//!
//! - `connection_init` carries `{"authorization": "Bearer <key>"}` (or nothing, from the console:
//!   its cookie session counts when the upgrade came from this server's own origin); a missing or bad key closes
//!   with 4403, no init within `TWH_WS_INIT_TIMEOUT_MS` with 4408, a second init with 4429, and
//!   a tenant past `TWH_WS_MAX_CONNECTIONS_PER_TENANT` open connections with 4429.
//! - `subscribe` runs any operation (a query or mutation answers once); past
//!   `TWH_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION` the operation gets an `error` (LIMIT_EXCEEDED).
//!   A duplicate id closes with 4409, a subscribe before the ack with 4401, an unreadable
//!   message with 4400.
//! - The server pings every `TWH_WS_PING_SECS`, and closes a connection that has not answered
//!   or sent anything for three intervals.
//! - A connection whose key is revoked, or whose tenant is suspended, on any replica, closes
//!   with 4403 as soon as the event reaches this one.
//! - Backpressure: each operation's results pass through a bounded queue; a client that stops
//!   reading stalls its operations, their bus receivers fall behind and end with SLOW_CONSUMER,
//!   and a socket that accepts nothing for 10 s is closed. Nothing buffers without bound.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::app::AppState;
use crate::auth::{Principal, RequestMeta};
use crate::error::ErrorCode;
use crate::graphql::TwhSchema;

pub const PROTOCOL: &str = "graphql-transport-ws";
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Results of one operation queued for the socket before the operation waits.
const QUEUE: usize = 64;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        payload: Option<serde_json::Value>,
    },
    Ping {
        payload: Option<serde_json::Value>,
    },
    Pong {
        #[allow(dead_code)]
        payload: Option<serde_json::Value>,
    },
    Subscribe {
        id: String,
        payload: SubscribePayload,
    },
    Complete {
        id: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribePayload {
    query: String,
    #[serde(default)]
    variables: Option<serde_json::Value>,
    #[serde(default)]
    operation_name: Option<String>,
}

enum Outgoing {
    Next(String, serde_json::Value),
    /// The operation's request-level failure: an `error` message, no `complete`.
    Error(String, serde_json::Value),
    Complete(String),
}

/// Upgrades to a WebSocket speaking `graphql-transport-ws`.
pub fn upgrade(
    state: AppState,
    schema: TwhSchema,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let offered = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL);
    let cookie_session = super::console::websocket_session(headers);
    ws.protocols([PROTOCOL])
        .on_upgrade(move |socket| async move {
            if offered {
                let mut connection = Connection::new(state, schema);
                connection.cookie_session = cookie_session;
                connection.serve(socket).await;
            } else {
                let mut socket = socket;
                let _ = socket
                    .send(close(
                        4406,
                        "Subprotocol not acceptable: use graphql-transport-ws",
                    ))
                    .await;
            }
        })
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    }))
}

/// Holds a tenant's connection slot; gives it back when dropped.
struct TenantSlot {
    state: AppState,
    tenant_id: String,
}

impl TenantSlot {
    fn take(state: &AppState, tenant_id: &str) -> Option<Self> {
        let limit = state.config.events.ws_max_connections_per_tenant;
        let mut open = state
            .ws_connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = open.entry(tenant_id.to_owned()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        metrics::gauge!("twh_ws_connections_open").increment(1.0);
        Some(Self {
            state: state.clone(),
            tenant_id: tenant_id.to_owned(),
        })
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        metrics::gauge!("twh_ws_connections_open").decrement(1.0);
        let mut open = self
            .state
            .ws_connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.tenant_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.tenant_id);
            }
        }
    }
}

struct Connection {
    state: AppState,
    schema: TwhSchema,
    principal: Option<Principal>,
    init_received: bool,
    _slot: Option<TenantSlot>,
    operations: HashMap<String, AbortHandle>,
    id: String,
    /// The console session in the upgrade's cookie (same origin only): the credential when
    /// `connection_init` carries none.
    cookie_session: Option<String>,
}

/// What the read side decided.
enum Step {
    Continue,
    Reply(serde_json::Value),
    Close(u16, String),
}

impl Connection {
    fn new(state: AppState, schema: TwhSchema) -> Self {
        Self {
            state,
            schema,
            principal: None,
            init_received: false,
            _slot: None,
            operations: HashMap::new(),
            id: uuid::Uuid::now_v7().simple().to_string(),
            cookie_session: None,
        }
    }

    async fn serve(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(QUEUE);
        let events = self.state.config.events.clone();
        let init_deadline = tokio::time::sleep(Duration::from_millis(events.ws_init_timeout_ms));
        tokio::pin!(init_deadline);
        let ping_every = Duration::from_secs(events.ws_ping_secs);
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        let mut last_heard = Instant::now();
        let mut revoked = self.state.revoked.subscribe();
        let outcome: Option<(u16, String)> = loop {
            let message = tokio::select! {
                gone = revoked.recv(), if self.principal.is_some() => {
                    let Some(principal) = &self.principal else { continue };
                    match gone {
                        Ok(crate::app::Revoked::Key(id)) if id == principal.key_id => {
                            break Some((4403, "Forbidden: the key was revoked".into()));
                        }
                        Ok(crate::app::Revoked::Tenant(id)) if id == principal.tenant_id => {
                            break Some((4403, "Forbidden: the tenant is suspended".into()));
                        }
                        _ => continue,
                    }
                }
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        last_heard = Instant::now();
                        match self.handle(text.as_str(), &out_tx).await {
                            Step::Continue => continue,
                            Step::Reply(value) => Message::Text(value.to_string().into()),
                            Step::Close(code, reason) => break Some((code, reason)),
                        }
                    }
                    Some(Ok(Message::Binary(_))) => break Some((4400, "Binary messages are not part of graphql-transport-ws".into())),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => { last_heard = Instant::now(); continue }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
                },
                Some(out) = out_rx.recv() => match out {
                    Outgoing::Next(id, payload) => Message::Text(json!({"id": id, "type": "next", "payload": payload}).to_string().into()),
                    Outgoing::Error(id, errors) => {
                        self.operations.remove(&id);
                        Message::Text(json!({"id": id, "type": "error", "payload": errors}).to_string().into())
                    }
                    Outgoing::Complete(id) => {
                        if self.operations.remove(&id).is_none() {
                            continue; // the client completed it first
                        }
                        Message::Text(json!({"id": id, "type": "complete"}).to_string().into())
                    }
                },
                _ = &mut init_deadline, if self.principal.is_none() => {
                    break Some((4408, "Connection initialisation timeout".into()));
                }
                _ = ping.tick(), if self.principal.is_some() => {
                    if last_heard.elapsed() > ping_every * 3 {
                        break Some((4408, "Keep-alive timeout: no pong or message for three ping intervals".into()));
                    }
                    Message::Text(json!({"type": "ping"}).to_string().into())
                }
            };
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break None,
                Err(_) => {
                    tracing::info!(connection = %self.id, "closing a WebSocket that accepts nothing");
                    break None;
                }
            }
        };
        for (_, op) in self.operations.drain() {
            op.abort();
        }
        if let Some((code, reason)) = outcome {
            let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close(code, &reason))).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    }

    async fn handle(&mut self, text: &str, out: &mpsc::Sender<Outgoing>) -> Step {
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(err) => return Step::Close(4400, format!("Invalid message received: {err}")),
        };
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.init_received {
                    return Step::Close(4429, "Too many initialisation requests".into());
                }
                self.init_received = true;
                let Some(principal) = self.authenticate(payload.as_ref()).await else {
                    return Step::Close(4403, "Forbidden".into());
                };
                let Some(slot) = TenantSlot::take(&self.state, &principal.tenant_id) else {
                    return Step::Close(
                        4429,
                        format!(
                            "Too many connections: this tenant has {} open, the limit (TWH_WS_MAX_CONNECTIONS_PER_TENANT)",
                            self.state.config.events.ws_max_connections_per_tenant
                        ),
                    );
                };
                self._slot = Some(slot);
                self.principal = Some(principal);
                Step::Reply(json!({"type": "connection_ack"}))
            }
            ClientMessage::Ping { payload } => match payload {
                Some(payload) => Step::Reply(json!({"type": "pong", "payload": payload})),
                None => Step::Reply(json!({"type": "pong"})),
            },
            ClientMessage::Pong { .. } => Step::Continue,
            ClientMessage::Complete { id } => {
                if let Some(op) = self.operations.remove(&id) {
                    op.abort();
                }
                Step::Continue
            }
            ClientMessage::Subscribe { id, payload } => {
                let Some(principal) = self.principal.clone() else {
                    return Step::Close(4401, "Unauthorized".into());
                };
                if self.operations.contains_key(&id) {
                    return Step::Close(4409, format!("Subscriber for {id} already exists"));
                }
                let limit = self.state.config.events.ws_max_subscriptions_per_connection;
                if self.operations.len() >= limit {
                    return Step::Reply(json!({
                        "id": id,
                        "type": "error",
                        "payload": [{
                            "message": format!("this connection has {limit} operations open, the limit (TWH_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION) - Hint: complete one, or open another connection"),
                            "extensions": {"code": ErrorCode::LimitExceeded.as_str()}
                        }]
                    }));
                }
                let handle = self.start(id.clone(), payload, principal, out.clone());
                self.operations.insert(id, handle);
                Step::Continue
            }
        }
    }

    async fn authenticate(&self, payload: Option<&serde_json::Value>) -> Option<Principal> {
        let header = payload
            .and_then(|p| p.get("authorization").or_else(|| p.get("Authorization")))
            .and_then(|v| v.as_str());
        let token = match header {
            Some(header) => header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .unwrap_or(header)
                .trim(),
            None => self.cookie_session.as_deref()?,
        };
        match crate::auth::verify(&self.state, token).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "WebSocket authentication lookup failed"
                );
                None
            }
        }
    }

    fn start(
        &self,
        id: String,
        payload: SubscribePayload,
        principal: Principal,
        out: mpsc::Sender<Outgoing>,
    ) -> AbortHandle {
        let mut request = async_graphql::Request::new(payload.query);
        if let Some(variables) = payload.variables {
            request = request.variables(async_graphql::Variables::from_json(variables));
        }
        request.operation_name = payload.operation_name;
        self.state.documents.attach(&mut request);
        let meta = RequestMeta {
            meter: Default::default(),
            request_id: format!("{}-{}", self.id, id),
        };
        let request = crate::http::graphql::for_caller(request, principal, meta);
        let schema = self.schema.clone();
        let task = tokio::spawn(async move {
            let mut responses = schema.execute_stream(request);
            let mut first = true;
            while let Some(response) = responses.next().await {
                // A request refused before it ran (parse, validation, auth) is an `error`.
                if first
                    && response.data == async_graphql::Value::Null
                    && !response.errors.is_empty()
                {
                    let errors = serde_json::to_value(&response.errors).unwrap_or_default();
                    let _ = out.send(Outgoing::Error(id, errors)).await;
                    return;
                }
                first = false;
                let payload = serde_json::to_value(&response).unwrap_or_default();
                if out.send(Outgoing::Next(id.clone(), payload)).await.is_err() {
                    return;
                }
            }
            let _ = out.send(Outgoing::Complete(id)).await;
        });
        task.abort_handle()
    }
}
