//! Load generator for `adjustStock` over GraphQL: N concurrent clients for a fixed time over a
//! set of SKUs (or one hot SKU), reporting throughput, latency percentiles and a lost-update check.

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
}

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
    let before = total_available(&client, &args).await?;

    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let warmup_end = Instant::now() + Duration::from_secs(2);
    let end = warmup_end + Duration::from_secs(args.seconds);
    // Request bodies are rendered once and responses only searched, so the load generator's
    // own CPU (which shares the machine with the server) stays small.
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..args.skus)
            .map(|i| {
                serde_json::to_vec(&json!({ "query": ADJUST, "variables": { "sku": sku(i) } }))
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
    let mut tasks = Vec::new();
    for worker in 0..args.clients {
        let mut connection = Connection::open(&authority).await?;
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
                let now = Instant::now();
                if now >= end {
                    break;
                }
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let index = (n >> 33) % skus;
                let body = if keyed {
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
                let started = Instant::now();
                let outcome = connection.post(request).await;
                let micros = started.elapsed().as_micros() as u64;
                let measured = started >= warmup_end;
                match outcome {
                    Ok(bytes) if contains(&bytes, b"\"userErrors\":[]") => {
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
    let ok = ok.load(Ordering::Relaxed);
    let report = json!({
        "label": args.label,
        "keyed": args.keyed,
        "clients": args.clients,
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
        "lost_updates": applied as i64 - (after - before),
        "client_cpu_ms": cpu_used.map(|d| d.as_secs_f64() * 1000.0),
    });
    println!("{report}");
    if applied as i64 != after - before {
        bail!(
            "lost or phantom updates: {applied} applied, stock moved by {}",
            after - before
        );
    }
    Ok(())
}
