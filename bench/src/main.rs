//! Load generator over GraphQL: N concurrent clients for a fixed time over a set of SKUs (or one
//! hot SKU), each call an `adjustStock` or (with `--orders`) each client running the sales-order
//! flow (create an order of 3 lines, allocate, ship); throughput, latency percentiles and a
//! lost-update check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

#[derive(Parser, Clone)]
#[command(about = "adjustStock load generator")]
struct Args {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:18181")]
    url: String,
    /// API key of the tenant to load.
    #[arg(long, env = "TWH_BENCH_KEY")]
    key: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds to run (after a 2 s warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Number of SKUs to spread writes over (1 = one hot SKU).
    #[arg(long, default_value_t = 1000)]
    skus: usize,
    /// Create the SKUs and the location first.
    #[arg(long)]
    setup: bool,
    /// A label for the report.
    #[arg(long, default_value = "run")]
    label: String,
    /// Send a fresh idempotency key with every call, as production clients should.
    #[arg(long)]
    keyed: bool,
    /// Run the sales-order flow instead of adjustStock: each step (create, allocate, ship) is
    /// one call in the throughput.
    #[arg(long)]
    orders: bool,
    /// Read instead of write: `lookup` (`stockLevel` of a random SKU at the bench location) or
    /// `page` (the first 50 `stockLevels`).
    #[arg(long, value_parser = ["lookup", "page"])]
    reads: Option<String>,
    /// Open loop: send this many calls per second in all (each client on its own fixed
    /// schedule) instead of each client sending its next call when the last one answered.
    /// Latency is measured from when a call was due, so a server falling behind shows in it.
    #[arg(long)]
    rate: Option<f64>,
}

const LOOKUP: &str = "query($sku: String!) { stockLevel(sku: $sku, locationCode: \"BENCH-WH\") { sku locationCode available onHand version } }";
const PAGE: &str = "{ stockLevels(first: 50) { nodes { sku locationCode available onHand version } pageInfo { hasNextPage endCursor } } }";

const CREATE_ORDER: &str = "mutation($lines: [SalesOrderLineInput!]!, $key: String) { createSalesOrder(input: {customer: \"Bench\", lines: $lines}, idempotencyKey: $key) { salesOrder { id } userErrors { code } } }";
const ALLOCATE: &str = "mutation($id: ID!, $key: String) { allocateSalesOrder(id: $id, idempotencyKey: $key) { salesOrder { status } userErrors { code } } }";
const SHIP: &str = "mutation($id: ID!, $key: String) { shipSalesOrder(id: $id, idempotencyKey: $key) { salesOrder { status } userErrors { code } } }";
/// Stock each SKU gets before an order run, so the flow never runs out.
const ORDER_STOCK: i64 = 1_000_000;

const ADJUST: &str = "mutation($sku: String!, $key: String) { adjustStock(input: {reason: CORRECTION, changes: [{sku: $sku, locationCode: \"BENCH-WH\", delta: 1}]}, idempotencyKey: $key) { movements { sequence } userErrors { code } } }";

fn sku(i: usize) -> String {
    format!("BENCH-{i:05}")
}

async fn gql(
    client: &reqwest::Client,
    args: &Args,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let response = client
        .post(format!("{}/graphql", args.url))
        .bearer_auth(&args.key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("HTTP {status}: {body}");
    }
    Ok(body)
}

async fn setup(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    gql(
        client,
        args,
        "mutation { createLocation(input: {code: \"BENCH-WH\", name: \"Bench warehouse\"}) { userErrors { code } } }",
        json!({}),
    )
    .await?;
    for i in 0..args.skus {
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

/// Tops every SKU up by `ORDER_STOCK`, 250 changes a call.
async fn stock_for_orders(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let skus: Vec<usize> = (0..args.skus).collect();
    for chunk in skus.chunks(250) {
        let changes: Vec<Value> = chunk
            .iter()
            .map(|i| json!({ "sku": sku(*i), "locationCode": "BENCH-WH", "delta": ORDER_STOCK }))
            .collect();
        let body = gql(
            client,
            args,
            "mutation($changes: [AdjustChangeInput!]!) { adjustStock(input: {reason: RECEIVED, changes: $changes}) { userErrors { code message } } }",
            json!({ "changes": changes }),
        )
        .await?;
        if body["data"]["adjustStock"]["userErrors"] != json!([]) {
            bail!("stocking for the order run failed: {body}");
        }
    }
    Ok(())
}

/// The value of the first `"id":"…"` in a response.
fn first_id(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("\"id\":\"")? + 6;
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_owned())
}

async fn total_available(client: &reqwest::Client, args: &Args) -> anyhow::Result<i64> {
    let mut total = 0;
    let mut after: Option<String> = None;
    loop {
        let body = gql(
            client,
            args,
            "query($after: String) { stockLevels(filter: {locationCode: \"BENCH-WH\"}, first: 250, after: $after) { edges { node { sku available } } pageInfo { hasNextPage endCursor } } }",
            json!({ "after": after }),
        )
        .await?;
        let page = &body["data"]["stockLevels"];
        for edge in page["edges"].as_array().context("levels")? {
            if edge["node"]["sku"]
                .as_str()
                .is_some_and(|s| s.starts_with("BENCH-"))
            {
                total += edge["node"]["available"].as_i64().unwrap_or(0);
            }
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return Ok(total);
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`.
fn own_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports in USER_HZ, which is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// One client: a keep-alive HTTP/1.1 connection of its own, requests one after another, as
/// pgbench's connections send their transactions.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    async fn open(authority: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("connection closed: {err}");
            }
        });
        Ok(Self { sender })
    }

    async fn post(&mut self, request: hyper::Request<Full<Bytes>>) -> anyhow::Result<Bytes> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("HTTP {status}");
        }
        Ok(body)
    }
}

// One thread is plenty for the load and keeps the generator's own CPU small and measurable.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    if args.setup {
        setup(&client, &args).await?;
    }
    if args.orders {
        if args.rate.is_some() {
            bail!("--rate paces single calls; the order flow runs closed-loop");
        }
        stock_for_orders(&client, &args).await?;
        return run_orders(&client, &args).await;
    }
    let before = total_available(&client, &args).await?;

    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let warmup_end = Instant::now() + Duration::from_secs(2);
    let end = warmup_end + Duration::from_secs(args.seconds);
    // Request bodies are rendered once and responses only searched, so the load generator's
    // own CPU (which shares the machine with the server) stays small.
    let query = match args.reads.as_deref() {
        Some("lookup") => LOOKUP,
        Some(_) => PAGE,
        None => ADJUST,
    };
    let reading = args.reads.is_some();
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..args.skus)
            .map(|i| {
                serde_json::to_vec(&json!({ "query": query, "variables": { "sku": sku(i) } }))
                    .map(Bytes::from)
            })
            .collect::<Result<_, _>>()?,
    );
    let url: hyper::Uri = format!("{}/graphql", args.url).parse()?;
    let authority = url
        .authority()
        .context("the URL needs a host and port")?
        .to_string();
    let bearer = hyper::header::HeaderValue::from_str(&format!("Bearer {}", args.key))?;
    // Keys unique across runs against the same database.
    let run = format!(
        "{}-{}",
        args.label,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    // With --rate: each client's interval between calls, and where in it the client starts.
    let interval = match args.rate {
        Some(rate) if rate > 0.0 => Some(Duration::from_secs_f64(args.clients as f64 / rate)),
        Some(_) => bail!("--rate must be above 0"),
        None => None,
    };
    let clients = args.clients;
    let mut tasks = Vec::new();
    for worker in 0..args.clients {
        let mut connection = Connection::open(&authority).await?;
        let mut due = Instant::now()
            + interval.map_or(Duration::ZERO, |i| {
                i.mul_f64(worker as f64 / clients as f64)
            });
        let (bodies, authority, bearer, skus, keyed, run) = (
            bodies.clone(),
            authority.clone(),
            bearer.clone(),
            args.skus,
            args.keyed,
            run.clone(),
        );
        let (ok, refused, failed) = (ok.clone(), refused.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut applied = 0u64;
            let mut n = worker;
            let mut calls = 0u64;
            loop {
                if interval.is_some() {
                    if due >= end {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                let now = Instant::now();
                if now >= end {
                    break;
                }
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let index = (n >> 33) % skus;
                let body = if keyed && !reading {
                    // A unique key per call: this run, this client, this call.
                    calls += 1;
                    let key = format!("{run}-{worker}-{calls}");
                    Bytes::from(
                        serde_json::to_vec(&json!({ "query": ADJUST, "variables": { "sku": sku(index), "key": key } }))
                            .expect("a JSON body"),
                    )
                } else {
                    bodies[index].clone()
                };
                let request = hyper::Request::post("/graphql")
                    .header(hyper::header::HOST, authority.as_str())
                    .header(hyper::header::AUTHORIZATION, bearer.clone())
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))
                    .expect("a valid request");
                // Open loop: from when the call was due (coordinated omission otherwise hides
                // the queue a slow server builds).
                let started = match interval {
                    Some(interval) => {
                        let was_due = due;
                        due += interval;
                        was_due
                    }
                    None => Instant::now(),
                };
                let outcome = connection.post(request).await;
                let micros = started.elapsed().as_micros() as u64;
                let measured = started >= warmup_end;
                let succeeded = |bytes: &Bytes| {
                    if reading {
                        contains(bytes, b"\"data\":{\"stockLevel") && !contains(bytes, b"\"errors\"")
                    } else {
                        contains(bytes, b"\"userErrors\":[]")
                    }
                };
                match outcome {
                    Ok(bytes) if succeeded(&bytes) => {
                        applied += 1;
                        if measured {
                            ok.fetch_add(1, Ordering::Relaxed);
                            let _ = histogram.record(micros.max(1));
                        }
                    }
                    Ok(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("request failed: {err:#}");
                        match Connection::open(&authority).await {
                            Ok(fresh) => connection = fresh,
                            Err(err) => {
                                eprintln!("reconnect failed: {err:#}");
                                break;
                            }
                        }
                    }
                }
            }
            (histogram, applied)
        }));
    }
    // The generator's CPU over the measured window, to show what it takes from the machine.
    tokio::time::sleep_until(warmup_end.into()).await;
    let cpu_start = own_cpu();
    tokio::time::sleep_until(end.into()).await;
    let cpu_used = own_cpu().zip(cpu_start).map(|(b, a)| b.saturating_sub(a));
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut applied = 0;
    for task in tasks {
        let (h, a) = task.await?;
        histogram.add(h)?;
        applied += a;
    }
    let after = total_available(&client, &args).await?;
    // Reads change nothing: the stock must not have moved either.
    let expected_delta = if reading { 0 } else { applied as i64 };
    let ok = ok.load(Ordering::Relaxed);
    let report = json!({
        "label": args.label,
        "keyed": args.keyed,
        "clients": args.clients,
        "rate": args.rate,
        "skus": args.skus,
        "seconds": args.seconds,
        "requests_ok": ok,
        "throughput_per_s": ok as f64 / args.seconds as f64,
        "p50_ms": histogram.value_at_quantile(0.50) as f64 / 1000.0,
        "p99_ms": histogram.value_at_quantile(0.99) as f64 / 1000.0,
        "refused": refused.load(Ordering::Relaxed),
        "failed": failed.load(Ordering::Relaxed),
        "applied_including_warmup": applied,
        "stock_delta": after - before,
        "lost_updates": expected_delta - (after - before),
        "client_cpu_ms": cpu_used.map(|d| d.as_secs_f64() * 1000.0),
    });
    println!("{report}");
    if expected_delta != after - before {
        bail!(
            "lost or phantom updates: {expected_delta} expected, stock moved by {}",
            after - before
        );
    }
    Ok(())
}

/// The sales-order flow: each client creates an order of 3 lines (random SKUs, 1 each),
/// allocates it and ships it, again and again. Every step is a call; afterwards the stock of
/// the bench location must have dropped by exactly 3 per allocated order.
async fn run_orders(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let before = total_available(client, args).await?;
    let steps_ok = Arc::new(AtomicU64::new(0));
    let flows_ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let warmup_end = Instant::now() + Duration::from_secs(2);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let url: hyper::Uri = format!("{}/graphql", args.url).parse()?;
    let authority = url
        .authority()
        .context("the URL needs a host and port")?
        .to_string();
    let bearer = hyper::header::HeaderValue::from_str(&format!("Bearer {}", args.key))?;
    let run = format!(
        "{}-{}",
        args.label,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let mut tasks = Vec::new();
    for worker in 0..args.clients {
        let mut connection = Connection::open(&authority).await?;
        let (authority, bearer, skus, keyed, run) = (
            authority.clone(),
            bearer.clone(),
            args.skus,
            args.keyed,
            run.clone(),
        );
        let (steps_ok, flows_ok, refused, failed) = (
            steps_ok.clone(),
            flows_ok.clone(),
            refused.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut allocated = 0u64;
            let mut n = worker;
            let mut calls = 0u64;
            'flows: while Instant::now() < end {
                let mut lines = Vec::with_capacity(3);
                for _ in 0..3 {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    lines.push(json!({ "sku": sku((n >> 33) % skus), "locationCode": "BENCH-WH", "quantity": 1 }));
                }
                let mut order_id = String::new();
                for step in 0..3 {
                    calls += 1;
                    let key = keyed.then(|| format!("{run}-{worker}-{calls}"));
                    let body = match step {
                        0 => json!({ "query": CREATE_ORDER, "variables": { "lines": lines, "key": key } }),
                        1 => json!({ "query": ALLOCATE, "variables": { "id": order_id, "key": key } }),
                        _ => json!({ "query": SHIP, "variables": { "id": order_id, "key": key } }),
                    };
                    let request = hyper::Request::post("/graphql")
                        .header(hyper::header::HOST, authority.as_str())
                        .header(hyper::header::AUTHORIZATION, bearer.clone())
                        .header(hyper::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(
                            serde_json::to_vec(&body).expect("a JSON body"),
                        )))
                        .expect("a valid request");
                    let started = Instant::now();
                    let outcome = connection.post(request).await;
                    let micros = started.elapsed().as_micros() as u64;
                    let measured = started >= warmup_end && Instant::now() <= end;
                    match outcome {
                        Ok(bytes) if contains(&bytes, b"\"userErrors\":[]") => {
                            if step == 0 {
                                match first_id(&bytes) {
                                    Some(id) => order_id = id,
                                    None => {
                                        refused.fetch_add(1, Ordering::Relaxed);
                                        continue 'flows;
                                    }
                                }
                            }
                            if step == 1 {
                                allocated += 1;
                            }
                            if measured {
                                steps_ok.fetch_add(1, Ordering::Relaxed);
                                let _ = histogram.record(micros.max(1));
                                if step == 2 {
                                    flows_ok.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Ok(bytes) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            eprintln!("refused: {}", String::from_utf8_lossy(&bytes));
                            continue 'flows;
                        }
                        Err(err) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("request failed: {err:#}");
                            match Connection::open(&authority).await {
                                Ok(fresh) => connection = fresh,
                                Err(err) => {
                                    eprintln!("reconnect failed: {err:#}");
                                    break 'flows;
                                }
                            }
                            continue 'flows;
                        }
                    }
                }
            }
            (histogram, allocated)
        }));
    }
    tokio::time::sleep_until(warmup_end.into()).await;
    let cpu_start = own_cpu();
    tokio::time::sleep_until(end.into()).await;
    let cpu_used = own_cpu().zip(cpu_start).map(|(b, a)| b.saturating_sub(a));
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut allocated = 0;
    for task in tasks {
        let (h, a) = task.await?;
        histogram.add(h)?;
        allocated += a;
    }
    let after = total_available(client, args).await?;
    let steps = steps_ok.load(Ordering::Relaxed);
    let expected = -3 * allocated as i64;
    let report = json!({
        "label": args.label,
        "keyed": args.keyed,
        "clients": args.clients,
        "skus": args.skus,
        "seconds": args.seconds,
        "requests_ok": steps,
        "throughput_per_s": steps as f64 / args.seconds as f64,
        "flows_per_s": flows_ok.load(Ordering::Relaxed) as f64 / args.seconds as f64,
        "p50_ms": histogram.value_at_quantile(0.50) as f64 / 1000.0,
        "p99_ms": histogram.value_at_quantile(0.99) as f64 / 1000.0,
        "refused": refused.load(Ordering::Relaxed),
        "failed": failed.load(Ordering::Relaxed),
        // Calls that moved stock, for the CPU-per-call figure: allocations (and their ships).
        "applied_including_warmup": allocated * 3,
        "stock_delta": after - before,
        "lost_updates": expected - (after - before),
        "client_cpu_ms": cpu_used.map(|d| d.as_secs_f64() * 1000.0),
    });
    println!("{report}");
    if after - before != expected {
        bail!(
            "lost or phantom updates: {allocated} orders allocated, stock moved by {}",
            after - before
        );
    }
    Ok(())
}
