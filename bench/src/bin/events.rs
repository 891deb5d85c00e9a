//! Events benchmark against a running server (bench/events.sh starts one):
//!
//! - `webhooks`: signed deliveries per second from the dispatcher to a local receiver that
//!   verifies every signature, against a baseline of the same receiver fed by a plain loop of
//!   signed POSTs at the same concurrency; and commit-to-delivery latency (from the write's
//!   acknowledgement to the receiver) at a steady write rate.
//! - `subscriptions`: commit-to-subscriber latency with 1 subscription (the baseline) and with
//!   N open subscriptions on one process, and the server memory each subscription costs.
//!
//! Prints one JSON object per measurement.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser, Clone)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:18182")]
    url: String,
    #[arg(long, env = "TWH_BENCH_KEY")]
    key: String,
    /// The server's process id, to read its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// `webhooks` or `subscriptions`.
    #[arg(long)]
    mode: String,
    /// Deliveries in the throughput run.
    #[arg(long, default_value_t = 20_000)]
    deliveries: usize,
    /// Concurrency of the baseline loop (set it to the server's per-endpoint concurrency).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Writes per second in the latency runs.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// Seconds of each latency run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Open subscriptions in the subscription run.
    #[arg(long, default_value_t = 10_000)]
    subscriptions: usize,
    /// Subscriptions per WebSocket connection.
    #[arg(long, default_value_t = 100)]
    per_connection: usize,
    #[arg(long, default_value = "run")]
    label: String,
}

const SKUS: usize = 50;

fn sku(i: usize) -> String {
    format!("EVB-{i:03}")
}

async fn gql(
    client: &reqwest::Client,
    args: &Args,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let body: Value = client
        .post(format!("{}/graphql", args.url))
        .bearer_auth(&args.key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?;
    if body.get("errors").is_some() {
        bail!("GraphQL errors: {body}");
    }
    Ok(body)
}

async fn setup(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    gql(client, args, "mutation { createLocation(input: {code: \"EVB-WH\", name: \"Events bench\"}) { userErrors { code } } }", json!({})).await?;
    for i in 0..SKUS {
        gql(
            client,
            args,
            "mutation($sku: String!) { createItem(input: {sku: $sku, name: $sku}) { userErrors { code } } }",
            json!({ "sku": sku(i) }),
        )
        .await?;
    }
    Ok(())
}

/// One write touching `changes` levels (one stock.changed event each); returns its group id.
async fn write(
    client: &reqwest::Client,
    args: &Args,
    first: usize,
    changes: usize,
) -> anyhow::Result<String> {
    let changes: Vec<Value> = (0..changes)
        .map(|i| json!({ "sku": sku((first + i) % SKUS), "locationCode": "EVB-WH", "delta": 1 }))
        .collect();
    let body = gql(
        client,
        args,
        "mutation($changes: [AdjustChangeInput!]!) { adjustStock(input: {reason: CORRECTION, changes: $changes}) { movements { groupId } userErrors { code message } } }",
        json!({ "changes": changes }),
    )
    .await?;
    body["data"]["adjustStock"]["movements"][0]["groupId"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no movement: {body}"))
}

fn verify(secret: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap_or_default();
    let (Some(id), Some(ts), Some(sig)) = (
        headers.get("webhook-id").and_then(|v| v.to_str().ok()),
        headers
            .get("webhook-timestamp")
            .and_then(|v| v.to_str().ok()),
        headers
            .get("webhook-signature")
            .and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    sig.split(' ').any(|s| s == expected)
}

#[derive(Default)]
struct Receiver {
    secret: Mutex<String>,
    received: AtomicU64,
    bad: AtomicU64,
    /// When each group id arrived first.
    arrivals: Mutex<HashMap<String, Instant>>,
    track: std::sync::atomic::AtomicBool,
}

async fn start_receiver(state: Arc<Receiver>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    let secret = state.secret.lock().unwrap().clone();
                    if !verify(&secret, &headers, &body) {
                        state.bad.fetch_add(1, Ordering::Relaxed);
                    }
                    state.received.fetch_add(1, Ordering::Relaxed);
                    if state.track.load(Ordering::Relaxed)
                        && let Ok(v) = serde_json::from_slice::<Value>(&body)
                        && let Some(group) = v["data"]["groupId"].as_str()
                    {
                        state
                            .arrivals
                            .lock()
                            .unwrap()
                            .entry(group.to_owned())
                            .or_insert_with(Instant::now);
                    }
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/hook"))
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn wait_for(count: &AtomicU64, target: u64, limit: Duration) -> bool {
    let start = Instant::now();
    while count.load(Ordering::Relaxed) < target {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

async fn webhooks(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let receiver = Arc::new(Receiver::default());
    let url = start_receiver(receiver.clone()).await?;
    let body = gql(
        client,
        args,
        "mutation($url: String!) { createWebhookEndpoint(input: {url: $url, eventTypes: [\"stock.changed\"]}) { endpoint { id secret } userErrors { code message } } }",
        json!({ "url": url }),
    )
    .await?;
    let endpoint = &body["data"]["createWebhookEndpoint"]["endpoint"];
    let endpoint_id = endpoint["id"].as_str().context("endpoint")?.to_owned();
    *receiver.secret.lock().unwrap() = endpoint["secret"].as_str().unwrap_or_default().to_owned();

    // Fill: N events, delivered once as they are written.
    let per_write = SKUS;
    let writes = args.deliveries.div_ceil(per_write);
    let total = (writes * per_write) as u64;
    for w in 0..writes {
        write(client, args, w, per_write).await?;
    }
    if !wait_for(&receiver.received, total, Duration::from_secs(300)).await {
        bail!("the first delivery of {total} events did not finish");
    }
    // Throughput: replay all of them at once and time the dispatcher alone.
    receiver.received.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let replay = gql(
        client,
        args,
        "mutation($e: ID) { replayWebhookDeliveries(input: {endpointId: $e, statuses: [SUCCEEDED]}) { replayedCount userErrors { code message } } }",
        json!({ "e": endpoint_id }),
    )
    .await?;
    let replayed = replay["data"]["replayWebhookDeliveries"]["replayedCount"]
        .as_u64()
        .unwrap_or(0);
    if !wait_for(&receiver.received, replayed, Duration::from_secs(300)).await {
        bail!("the replay of {replayed} deliveries did not finish");
    }
    let elapsed = started.elapsed();
    let per_s = replayed as f64 / elapsed.as_secs_f64();

    // Baseline: the same receiver, fed by a plain loop of signed POSTs.
    receiver.received.store(0, Ordering::Relaxed);
    let secret = receiver.secret.lock().unwrap().clone();
    let key = STANDARD.decode(secret.trim_start_matches("whsec_"))?;
    let body = r#"{"type":"stock.changed","timestamp":"2026-01-01T00:00:00.000Z","data":{"groupId":"grp_baseline","level":{"sku":"EVB-000","available":1,"sequence":1}}}"#;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, url, key, next) = (client.clone(), url.clone(), key.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < replayed {
                let id = format!("evt_{}", next.load(Ordering::Relaxed));
                let ts = chrono_now();
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                mac.update(format!("{id}.{ts}.{body}").as_bytes());
                let sig = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
                let _ = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sig)
                    .body(body)
                    .send()
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let baseline_per_s = replayed as f64 / started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "label": args.label, "measure": "webhook_throughput", "deliveries": replayed,
            "seconds": elapsed.as_secs_f64(), "deliveries_per_s": per_s,
            "baseline_plain_signed_posts_per_s": baseline_per_s, "ratio_to_baseline": per_s / baseline_per_s,
            "bad_signatures": receiver.bad.load(Ordering::Relaxed),
        })
    );

    // Latency: steady writes (one event each), acknowledgement to first arrival.
    receiver.arrivals.lock().unwrap().clear();
    receiver.track.store(true, Ordering::Relaxed);
    let acks = latency_writes(client, args).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    let mut h = Histogram::<u64>::new(3)?;
    let mut missing = 0;
    for (group, acked) in &acks {
        match arrivals.get(group) {
            Some(at) => h.record(at.saturating_duration_since(*acked).as_micros() as u64)?,
            None => missing += 1,
        }
    }
    println!(
        "{}",
        json!({
            "label": args.label, "measure": "commit_to_delivery", "writes": acks.len(), "rate_per_s": args.rate,
            "p50_ms": ms(&h, 0.5), "p99_ms": ms(&h, 0.99), "max_ms": h.max() as f64 / 1000.0, "missing": missing,
            "bad_signatures": receiver.bad.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes at `rate` per second for `seconds`, one level each; the group id and the time of
/// each acknowledgement.
async fn latency_writes(
    client: &reqwest::Client,
    args: &Args,
) -> anyhow::Result<Vec<(String, Instant)>> {
    let mut acks = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
    let total = args.rate * args.seconds;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..total as usize {
        tick.tick().await;
        let (client, args, tx) = (client.clone(), args.clone(), tx.clone());
        tokio::spawn(async move {
            if let Ok(group) = write(&client, &args, i, 1).await {
                let _ = tx.send((group, Instant::now()));
            }
        });
    }
    drop(tx);
    while let Some(ack) = rx.recv().await {
        acks.push(ack);
    }
    Ok(acks)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// Opens one WebSocket with `count` stockChanged subscriptions (SKUs round robin from `first`),
/// recording every arrival by group id. Resolves once every subscription is started.
async fn open_connection(
    args: &Args,
    first: usize,
    count: usize,
    arrivals: Arrivals,
) -> anyhow::Result<()> {
    let ws_url = format!("{}/graphql/ws", args.url.replacen("http", "ws", 1));
    let mut request = ws_url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", args.key)}}).to_string(),
        ))
        .await?;
    match socket.next().await {
        Some(Ok(Message::Text(t))) if t.contains("connection_ack") => {}
        other => bail!("no ack: {other:?}"),
    }
    for i in 0..count {
        let query = format!(
            "subscription {{ stockChanged(sku: \"{}\") {{ groupId sequence }} }}",
            sku((first + i) % SKUS)
        );
        socket
            .send(Message::text(
                json!({"id": i.to_string(), "type": "subscribe", "payload": {"query": query}})
                    .to_string(),
            ))
            .await?;
    }
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            match message {
                Message::Text(text) => {
                    let now = Instant::now();
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if v["type"] == "ping" {
                        let _ = socket.send(Message::text(r#"{"type":"pong"}"#)).await;
                        continue;
                    }
                    if let Some(group) = v["payload"]["data"]["stockChanged"]["groupId"].as_str() {
                        arrivals
                            .lock()
                            .unwrap()
                            .entry(group.to_owned())
                            .or_default()
                            .push(now);
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    Ok(())
}

async fn subscription_run(
    client: &reqwest::Client,
    args: &Args,
    subscriptions: usize,
) -> anyhow::Result<Value> {
    let arrivals: Arrivals = Arc::default();
    let before = args.server_pid.and_then(rss_kib);
    let per = args.per_connection.max(1);
    let mut opened = 0;
    while opened < subscriptions {
        let count = per.min(subscriptions - opened);
        open_connection(args, opened, count, arrivals.clone()).await?;
        opened += count;
    }
    // Let every subscribe reach the server.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = args.server_pid.and_then(rss_kib);
    let acks = latency_writes(client, args).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let arrivals = arrivals.lock().unwrap().clone();
    let mut h = Histogram::<u64>::new(3)?;
    let mut delivered = 0u64;
    let mut missing_writes = 0;
    for (group, acked) in &acks {
        match arrivals.get(group) {
            Some(times) => {
                for t in times {
                    h.record(t.saturating_duration_since(*acked).as_micros() as u64)?;
                    delivered += 1;
                }
            }
            None => missing_writes += 1,
        }
    }
    // Each write reaches every subscription of its SKU (subscription j watches SKU j % 50;
    // write i changes SKU i % 50, and the writes cycle through the SKUs evenly).
    let per_sku = |s: usize| (0..subscriptions).filter(|j| j % SKUS == s).count() as u64;
    let expected: u64 = (0..acks.len()).map(|i| per_sku(i % SKUS)).sum();
    Ok(json!({
        "label": args.label, "measure": "commit_to_subscriber", "subscriptions": subscriptions,
        "writes": acks.len(), "rate_per_s": args.rate, "messages": delivered, "messages_expected": expected,
        "writes_never_seen": missing_writes,
        "p50_ms": ms(&h, 0.5), "p99_ms": ms(&h, 0.99), "max_ms": h.max() as f64 / 1000.0,
        "server_rss_kib_before": before, "server_rss_kib_after": after,
        "server_kib_per_subscription": match (before, after) {
            (Some(b), Some(a)) => Some((a.saturating_sub(b)) as f64 / subscriptions as f64),
            _ => None,
        },
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    if args.mode == "setup" {
        return setup(&client, &args).await;
    }
    match args.mode.as_str() {
        "webhooks" => webhooks(&client, &args).await,
        "subscriptions" => {
            let baseline = subscription_run(&client, &args, 1).await?;
            println!("{baseline}");
            let loaded = subscription_run(&client, &args, args.subscriptions).await?;
            println!("{loaded}");
            // A latency over some of the messages is no figure: fail rather than report it.
            for run in [&baseline, &loaded] {
                if run["messages"] != run["messages_expected"] {
                    bail!(
                        "{} of {} expected messages arrived at {} subscriptions (refused subscriptions? a slow consumer?)",
                        run["messages"],
                        run["messages_expected"],
                        run["subscriptions"]
                    );
                }
            }
            Ok(())
        }
        other => bail!("unknown mode {other}: use setup, webhooks or subscriptions"),
    }
}
