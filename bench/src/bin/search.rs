//! Search benchmark against a running server (bench/search.sh starts one per engine):
//!
//! - `setup`: N items (names from a small vocabulary, unique SKUs and barcodes) imported through
//!   an `IMPORT_ITEMS` job, then the time until the search index has caught up (the lag metric
//!   reads zero): documents per second from the write to the index.
//! - `load`: search p50/p99 and throughput at C clients over a mix of queries (typos,
//!   prefixes, several words, exact SKUs and barcodes), against two baselines measured in the
//!   same run at the same concurrency: an exact SKU look-up through the same API
//!   (`items(filter: {sku})`), and, with `--meili-url`, the same queries sent straight to
//!   Meilisearch (what the API adds on top of the engine).
//! - `lag`: write-to-searchable latency under a steady write load: `adjustStock` at R writes
//!   per second in the background while a prober creates an item with a unique word every
//!   100 ms and searches for it until it shows.
//!
//! Prints one JSON object per measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Parser, Clone)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:18183")]
    url: String,
    #[arg(long, env = "TWH_BENCH_KEY")]
    key: String,
    /// `setup`, `load` or `lag`.
    #[arg(long)]
    mode: String,
    #[arg(long, default_value_t = 100_000)]
    items: usize,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Background writes per second in the lag run.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Meilisearch itself, for the direct baseline (`url`, `key`, index uid).
    #[arg(long)]
    meili_url: Option<String>,
    #[arg(long)]
    meili_key: Option<String>,
    #[arg(long)]
    meili_index: Option<String>,
    #[arg(long, default_value = "run")]
    label: String,
}

const COLORS: [&str; 12] = [
    "Blue", "Red", "Green", "Black", "White", "Grey", "Navy", "Orange", "Pink", "Purple", "Yellow",
    "Brown",
];
const MATERIALS: [&str; 10] = [
    "Ceramic", "Glass", "Cotton", "Steel", "Wooden", "Leather", "Bamboo", "Plastic", "Linen",
    "Wool",
];
const NOUNS: [&str; 20] = [
    "Mug", "Tumbler", "Tee", "Bottle", "Bowl", "Plate", "Jacket", "Scarf", "Basket", "Lamp",
    "Chair", "Table", "Cap", "Sock", "Towel", "Pillow", "Candle", "Vase", "Kettle", "Spoon",
];

fn item(i: usize) -> (String, String, String) {
    let name = format!(
        "{} {} {} model {}",
        COLORS[i % 12],
        MATERIALS[(i / 12) % 10],
        NOUNS[(i / 120) % 20],
        i % 997
    );
    (format!("SKU-{i:06}"), name, format!("40{i:011}"))
}

/// The query mix: what a clerk or a merchant types.
fn query(n: u64, items: usize) -> String {
    let i = (n.wrapping_mul(2_654_435_761) as usize) % items.max(1);
    match n % 8 {
        0 => "ceramc mug".to_owned(),
        1 => "blue glass tumb".to_owned(),
        2 => format!("{} {}", NOUNS[i % 20].to_lowercase(), i % 997),
        3 => item(i).0,
        4 => item(i).2,
        5 => "navy cotton te".to_owned(),
        6 => "wodden chair".to_owned(),
        _ => "lether jackt".to_owned(),
    }
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
    if body["errors"].is_array() {
        bail!("GraphQL errors: {body}");
    }
    Ok(body["data"].clone())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn lag_is_zero(client: &reqwest::Client, args: &Args) -> anyhow::Result<bool> {
    let text = client
        .get(format!("{}/metrics", args.url))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .any(|l| l.starts_with("twh_search_index_lag_seconds ") && l.trim_end().ends_with(" 0")))
}

async fn setup(args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut csv = String::from("sku,name,barcode,unit\n");
    for i in 0..args.items {
        let (sku, name, barcode) = item(i);
        csv.push_str(&format!("{sku},{name},{barcode},each\n"));
    }
    let data = gql(&client, args, "mutation { createLocation(input: { code: \"BENCH\", name: \"Bench\", allowNegative: true }) { userErrors { code } } }", json!({})).await?;
    let _ = data;
    let started = Instant::now();
    let artifact: Value = client
        .post(format!("{}/v1/artifacts", args.url))
        .bearer_auth(&args.key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?
        .json()
        .await?;
    let artifact = artifact["id"].as_str().context("artifact id")?.to_owned();
    let data = gql(
        &client,
        args,
        "mutation($a: ID!) { startJob(input: { kind: IMPORT_ITEMS, params: { dryRun: false, errorPolicy: \"REJECT_FAILED_ROWS\" }, inputArtifact: $a }) { job { id } userErrors { code message } } }",
        json!({ "a": artifact }),
    )
    .await?;
    let job = data["startJob"]["job"]["id"]
        .as_str()
        .with_context(|| format!("job: {data}"))?
        .to_owned();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let data = gql(
            &client,
            args,
            "query($id: ID!) { job(id: $id) { status errors } }",
            json!({ "id": job }),
        )
        .await?;
        match data["job"]["status"].as_str() {
            Some("SUCCEEDED") => break,
            Some("FAILED" | "CANCELLED") => bail!("import: {data}"),
            _ => {}
        }
    }
    let imported = started.elapsed().as_secs_f64();
    while !lag_is_zero(&client, args).await? {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let indexed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "label": args.label, "mode": "setup", "items": args.items,
            "import_seconds": imported, "searchable_seconds": indexed,
            "items_per_second_to_searchable": args.items as f64 / indexed,
        })
    );
    Ok(())
}

/// Runs `work` from `clients` tasks for `seconds`; returns the latency histogram (µs), the
/// requests done and the failures.
async fn drive<F, Fut>(
    clients: usize,
    seconds: u64,
    work: F,
) -> anyhow::Result<(Histogram<u64>, u64, u64)>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let work = Arc::new(work);
    let counter = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (work, counter, failures) = (work.clone(), counter.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match work(n).await {
                    Ok(()) => h.record(t.elapsed().as_micros() as u64).expect("record"),
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            h
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for task in tasks {
        all.add(task.await?)?;
    }
    let failed = failures.load(Ordering::Relaxed);
    Ok((all, counter.load(Ordering::Relaxed), failed))
}

fn report(
    args: &Args,
    run: &str,
    h: &Histogram<u64>,
    done: u64,
    failed: u64,
    baseline_p99: Option<f64>,
) {
    let p99 = ms(h, 0.99);
    println!(
        "{}",
        json!({
            "label": args.label, "mode": "load", "run": run, "clients": args.clients,
            "requests": done, "failed": failed,
            "per_second": h.len() as f64 / args.seconds as f64,
            "p50_ms": ms(h, 0.5), "p99_ms": p99,
            "p99_ratio_to_baseline": baseline_p99.map(|b| p99 / b),
        })
    );
}

async fn load(args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let search = "query($q: String!) { search(query: $q, first: 20) { totalCount hits { type id code title highlights { field snippet } } } }";
    // Warm up (caches, connections).
    for n in 0..64 {
        gql(&client, args, search, json!({ "q": query(n, args.items) })).await?;
    }
    let (a, c) = (Arc::new(args.clone()), client.clone());
    let items = args.items;
    let (baseline, done, failed) = drive(args.clients, args.seconds, move |n| {
        let (a, c) = (a.clone(), c.clone());
        async move {
            gql(&c, &a, "query($sku: String) { items(filter: { sku: $sku }, first: 1) { edges { node { id sku name } } } }", json!({ "sku": item((n as usize * 7919) % items).0 })).await?;
            Ok(())
        }
    })
    .await?;
    report(
        args,
        "baseline: items(filter: {sku}) through the API",
        &baseline,
        done,
        failed,
        None,
    );
    let base_p99 = ms(&baseline, 0.99);
    let (a, c) = (Arc::new(args.clone()), client.clone());
    let (h, done, failed) = drive(args.clients, args.seconds, move |n| {
        let (a, c) = (a.clone(), c.clone());
        async move {
            let data = gql(&c, &a, search, json!({ "q": query(n, a.items) })).await?;
            if data["search"]["hits"]
                .as_array()
                .is_none_or(|h| h.is_empty())
            {
                bail!("no hit for {}", query(n, a.items));
            }
            Ok(())
        }
    })
    .await?;
    report(
        args,
        "search through the API",
        &h,
        done,
        failed,
        Some(base_p99),
    );
    if let (Some(url), Some(index)) = (&args.meili_url, &args.meili_index) {
        let (a, c) = (Arc::new(args.clone()), client.clone());
        let (url, index, key) = (
            url.clone(),
            index.clone(),
            args.meili_key.clone().unwrap_or_default(),
        );
        let (h, done, failed) = drive(args.clients, args.seconds, move |n| {
            let (a, c, url, index, key) = (a.clone(), c.clone(), url.clone(), index.clone(), key.clone());
            async move {
                let body: Value = c
                    .post(format!("{url}/indexes/{index}/search"))
                    .bearer_auth(key)
                    .json(&json!({ "q": query(n, a.items), "limit": 20, "matchingStrategy": "all", "attributesToHighlight": ["code", "barcode", "title", "body"] }))
                    .send()
                    .await?
                    .json()
                    .await?;
                if body["hits"].as_array().is_none_or(|h| h.is_empty()) {
                    bail!("no hit");
                }
                Ok(())
            }
        })
        .await?;
        report(
            args,
            "baseline: the same queries straight to Meilisearch",
            &h,
            done,
            failed,
            None,
        );
    }
    Ok(())
}

async fn lag(args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // The steady background load: adjustStock at `rate` per second on random items.
    let writer = {
        let (a, c, stop, writes) = (
            Arc::new(args.clone()),
            client.clone(),
            stop.clone(),
            writes.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / a.rate.max(1)));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                let (a, c, writes) = (a.clone(), c.clone(), writes.clone());
                tokio::spawn(async move {
                    let sku = item((n as usize * 104_729) % a.items).0;
                    let r = gql(&c, &a, "mutation($sku: String!) { adjustStock(input: { reason: CORRECTION, changes: [{ sku: $sku, locationCode: \"BENCH\", delta: 1 }] }) { userErrors { code } } }", json!({ "sku": sku })).await;
                    if r.is_ok() {
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        })
    };
    let mut h = Histogram::<u64>::new(3)?;
    let run = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut probe = 0u64;
    let mut timeouts = 0u64;
    while Instant::now() < deadline {
        probe += 1;
        // Ten letters drawn anew for each probe: no two probes are within a typo of each other
        // (a word one letter off an earlier probe's would find that one first).
        let word: String = {
            let mut x = (u64::from(run) << 32 | probe).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (0..10)
                .map(|_| {
                    x ^= x >> 29;
                    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    char::from(b'a' + (x >> 59) as u8 % 26)
                })
                .collect()
        };
        let sku = format!("LAG-{run}-{probe}");
        gql(&client, args, "mutation($sku: String!, $name: String!) { createItem(input: { sku: $sku, name: $name }) { userErrors { code } } }", json!({ "sku": sku, "name": format!("Probe {word}") })).await?;
        let committed = Instant::now();
        let mut found = false;
        while committed.elapsed() < Duration::from_secs(30) {
            let data = gql(
                &client,
                args,
                "query($q: String!) { search(query: $q, first: 5) { hits { code } } }",
                json!({ "q": word }),
            )
            .await?;
            let hits = data["search"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if hits.iter().any(|h| h["code"] == sku.as_str()) {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if found {
            h.record(committed.elapsed().as_micros() as u64)?;
        } else {
            timeouts += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    println!(
        "{}",
        json!({
            "label": args.label, "mode": "lag", "probes": h.len(), "timeouts": timeouts,
            "background_writes_per_second": writes.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
            "p50_ms": ms(&h, 0.5), "p99_ms": ms(&h, 0.99), "max_ms": h.max() as f64 / 1000.0,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.mode.as_str() {
        "setup" => setup(&args).await,
        "load" => load(&args).await,
        "lag" => lag(&args).await,
        other => bail!("unknown mode {other}"),
    }
}
