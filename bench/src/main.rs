//! Load generator for `adjustStock` over GraphQL: N concurrent clients for a fixed time over a
//! set of SKUs (or one hot SKU), reporting throughput, latency percentiles and a lost-update check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
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
}

const ADJUST: &str = "mutation($sku: String!) { adjustStock(input: {reason: CORRECTION, changes: [{sku: $sku, locationCode: \"BENCH-WH\", delta: 1}]}) { movements { sequence } userErrors { code } } }";

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

#[tokio::main]
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
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..args.skus)
            .map(|i| {
                serde_json::to_vec(&json!({ "query": ADJUST, "variables": { "sku": sku(i) } }))
            })
            .collect::<Result<_, _>>()?,
    );
    let endpoint = format!("{}/graphql", args.url);
    let mut tasks = Vec::new();
    for worker in 0..args.clients {
        let (client, args, bodies, endpoint) = (
            client.clone(),
            args.clone(),
            bodies.clone(),
            endpoint.clone(),
        );
        let (ok, refused, failed) = (ok.clone(), refused.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut applied = 0u64;
            let mut n = worker;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let body = bodies[(n >> 33) % args.skus].clone();
                let started = Instant::now();
                let result = client
                    .post(&endpoint)
                    .bearer_auth(&args.key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let outcome = match result {
                    Ok(response) if response.status().is_success() => {
                        response.bytes().await.map_err(anyhow::Error::from)
                    }
                    Ok(response) => Err(anyhow::anyhow!("HTTP {}", response.status())),
                    Err(err) => Err(err.into()),
                };
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
                    }
                }
            }
            (histogram, applied)
        }));
    }
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
