//! The relay, the event log and webhook delivery, against a real receiver on loopback.

use std::collections::HashMap;

use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use serde_json::{Value, json};
use twh_server::config::Config;

use crate::support::TestApp;

/// What a receiver got: (webhook-id, body) in arrival order.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A receiver on loopback answering with `answer(n)` for its n-th request (from 0).
async fn receiver(
    answer: impl Fn(usize) -> (u16, Option<&'static str>) + Send + Sync + 'static,
) -> (String, Received) {
    let received: Received = Arc::default();
    let log = received.clone();
    let answer = Arc::new(answer);
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            let answer = answer.clone();
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push((id, serde_json::from_str(&body).unwrap()));
                    log.len() - 1
                };
                let (status, retry_after) = answer(n);
                let mut response = axum::response::Response::new(axum::body::Body::from("answer"));
                *response.status_mut() = AxumStatus::from_u16(status).unwrap();
                if let Some(after) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", after.parse().unwrap());
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), received)
}

fn fast_webhooks(config: &mut Config) {
    config.webhooks.allow_private = true;
    config.webhooks.retry_schedule = vec![0.0, 0.2, 0.2];
    config.webhooks.dispatch_poll_ms = 50;
    config.events.relay_poll_ms = 50;
}

async fn create_endpoint(app: &TestApp, url: &str, types: Value) -> Value {
    let (_, body) = app
        .gql(
            "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id secret status version } userErrors { code message } } }",
            json!({ "input": { "url": url, "eventTypes": types } }),
        )
        .await;
    let endpoint = body["data"]["createWebhookEndpoint"]["endpoint"].clone();
    assert!(endpoint.is_object(), "{body}");
    endpoint
}

async fn deliveries(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let (_, body) = app
        .gql(
            "query($e: ID) { webhookDeliveries(filter: {endpointId: $e}, first: 250) { edges { node { id eventId eventType status attemptCount attempts { number statusCode latencyMs error attemptedAt } } } } }",
            json!({ "e": endpoint }),
        )
        .await;
    body["data"]["webhookDeliveries"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Polls until `check` holds (10 s at most).
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn concurrent_writes_reach_the_log_gap_free_in_per_level_sequence_order() {
    let app = TestApp::spawn_with(|c| c.events.relay_poll_ms = 20).await;
    for sku in ["EV-A", "EV-B"] {
        app.create_item(sku).await;
    }
    app.create_location("EV-WH", false).await;
    // A second process's state on the same database, relaying at the same time.
    let other = twh_server::server::prepare(Config::for_database(&app.db_url))
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relay = {
        let (other, stop) = (other.clone(), stop.clone());
        tokio::spawn(async move {
            let mut relayed = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                relayed += twh_server::events::relay::drain(&other).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            relayed
        })
    };
    let writes = (0..60).map(|i| {
        let app = &app;
        async move {
            let sku = if i % 2 == 0 { "EV-A" } else { "EV-B" };
            app.adjust(sku, "EV-WH", 1, None).await;
        }
    });
    futures_util::future::join_all(writes).await;
    let log = eventually("every event relayed", async || {
        let (_, body) = app
            .gql(
                "{ events(filter: {types: [\"stock.changed\"]}, first: 250) { edges { node { position data } } } }",
                json!({}),
            )
            .await;
        let edges = body["data"]["events"]["edges"].as_array().cloned()?;
        (edges.len() == 60).then_some(edges)
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let relayed_by_other = relay.await.unwrap();
    // Every event once in the whole log, positions gap-free from 1.
    let all: Vec<i64> = {
        use sea_orm::{ConnectionTrait, Statement};
        let rows = app
            .state
            .db
            .query_all_raw(Statement::from_string(
                app.state.db.get_database_backend(),
                "SELECT position FROM outbox_events ORDER BY position",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                r.try_get::<Option<i64>>("", "position")
                    .unwrap()
                    .expect("relayed")
            })
            .collect()
    };
    assert_eq!(
        all,
        (1..=all.len() as i64).collect::<Vec<_>>(),
        "gap-free, no position twice"
    );
    // Per level, the log holds the level's sequence in order.
    let mut last: HashMap<String, i64> = HashMap::new();
    for edge in &log {
        let level = &edge["node"]["data"]["level"];
        let sku = level["sku"].as_str().unwrap().to_owned();
        let sequence = level["sequence"].as_i64().unwrap();
        let previous = last.insert(sku.clone(), sequence).unwrap_or(0);
        assert_eq!(
            sequence,
            previous + 1,
            "{sku}: sequence {sequence} after {previous}"
        );
    }
    // Paging from a cursor returns only later events.
    let cursor = log[29]["node"]["position"].as_i64().unwrap().to_string();
    let (_, body) = app
        .gql(
            "query($after: String) { events(filter: {types: [\"stock.changed\"]}, first: 250, after: $after) { edges { node { position } } } }",
            json!({ "after": cursor }),
        )
        .await;
    assert_eq!(
        body["data"]["events"]["edges"].as_array().unwrap().len(),
        30
    );
    let (_, body) = app
        .gql(
            "{ events(after: \"nope\") { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INVALID_INPUT",
        "{body}"
    );
    println!("relayed by the second process: {relayed_by_other}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_one_webhook_id_until_it_answers() {
    let app = TestApp::spawn_with(fast_webhooks).await;
    app.create_item("WH-A").await;
    app.create_location("WH-L", false).await;
    let (url, received) = receiver(|n| if n < 2 { (500, None) } else { (204, None) }).await;
    let endpoint = create_endpoint(&app, &url, json!(["stock.changed"])).await;
    let id = endpoint["id"].as_str().unwrap();
    app.adjust("WH-A", "WH-L", 3, None).await;
    let delivery = eventually("the third attempt", async || {
        let d = deliveries(&app, id).await.pop()?;
        (d["status"] == "SUCCEEDED").then_some(d)
    })
    .await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|(wid, _)| *wid == got[0].0),
        "one webhook-id: {got:?}"
    );
    assert_eq!(got[0].0, delivery["eventId"].as_str().unwrap());
    assert_eq!(got[0].1["type"], "stock.changed");
    assert_eq!(got[0].1["data"]["level"]["available"], 3);
    let codes: Vec<i64> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 500, 204]);
    assert_eq!(delivery["attemptCount"], 3);
    app.shutdown().await;
}

#[tokio::test]
async fn exhausted_deliveries_die_and_a_replay_delivers_them() {
    let app = TestApp::spawn_with(fast_webhooks).await;
    app.create_item("WH-D").await;
    app.create_location("WH-L", false).await;
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy.clone();
    let (url, received) = receiver(move |_| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            (200, None)
        } else {
            (503, None)
        }
    })
    .await;
    let endpoint = create_endpoint(&app, &url, json!(["stock.*"])).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    app.adjust("WH-D", "WH-L", 1, None).await;
    let dead = eventually("a dead delivery", async || {
        let d = deliveries(&app, &id).await.pop()?;
        (d["status"] == "DEAD").then_some(d)
    })
    .await;
    assert_eq!(
        dead["attemptCount"], 3,
        "the schedule has three attempts: {dead}"
    );
    let metrics = eventually("the dead-letter gauge", async || {
        let m = app.metrics().await;
        m.contains("twh_webhook_deliveries_total{outcome=\"dead\"}")
            .then_some(m)
    })
    .await;
    assert!(metrics.contains("twh_outbox_lag_seconds"), "{metrics}");
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let (_, body) = app
        .gql(
            "mutation($e: ID) { replayWebhookDeliveries(input: {endpointId: $e}) { replayedCount userErrors { code } } }",
            json!({ "e": id }),
        )
        .await;
    assert_eq!(
        body["data"]["replayWebhookDeliveries"]["replayedCount"], 1,
        "{body}"
    );
    let replayed = eventually("the replay", async || {
        let d = deliveries(&app, &id).await.pop()?;
        (d["status"] == "SUCCEEDED").then_some(d)
    })
    .await;
    assert_eq!(replayed["attemptCount"], 4);
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 4);
    assert!(
        got.iter().all(|(wid, _)| *wid == got[0].0),
        "a replay keeps the webhook-id"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_tells_the_tenant() {
    let app = TestApp::spawn_with(fast_webhooks).await;
    app.create_item("WH-G").await;
    app.create_location("WH-L", false).await;
    let (url, received) = receiver(|_| (410, None)).await;
    let endpoint = create_endpoint(&app, &url, json!(["stock.changed"])).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    app.adjust("WH-G", "WH-L", 1, None).await;
    let disabled = eventually("the endpoint disabled", async || {
        let (_, body) = app
            .gql(
                "query($id: ID!) { webhookEndpoint(id: $id) { status disabledReason } }",
                json!({ "id": id }),
            )
            .await;
        let e = body["data"]["webhookEndpoint"].clone();
        (e["status"] == "DISABLED").then_some(e)
    })
    .await;
    assert!(
        disabled["disabledReason"].as_str().unwrap().contains("410"),
        "{disabled}"
    );
    eventually("the disabled event", async || {
        let (_, body) = app
            .gql(
                "{ events(filter: {types: [\"webhook_endpoint.disabled\"]}) { edges { node { aggregateId } } } }",
                json!({}),
            )
            .await;
        (body["data"]["events"]["edges"][0]["node"]["aggregateId"] == id.as_str()).then_some(())
    })
    .await;
    // Nothing more goes to a disabled endpoint.
    app.adjust("WH-G", "WH-L", 1, None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().unwrap().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_failing_past_the_limit_is_disabled_and_retry_after_is_honoured() {
    let app = TestApp::spawn_with(|c| {
        fast_webhooks(c);
        c.webhooks.retry_schedule = vec![0.0, 0.05, 0.05, 0.05];
        c.webhooks.disable_after_secs = 1;
    })
    .await;
    app.create_item("WH-F").await;
    app.create_location("WH-L", false).await;
    let (url, received) = receiver(|_| (429, Some("1"))).await;
    let endpoint = create_endpoint(&app, &url, json!(["stock.changed"])).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    app.adjust("WH-F", "WH-L", 1, None).await;
    eventually("the endpoint disabled", async || {
        let (_, body) = app
            .gql(
                "query($id: ID!) { webhookEndpoint(id: $id) { status disabledReason } }",
                json!({ "id": id }),
            )
            .await;
        (body["data"]["webhookEndpoint"]["status"] == "DISABLED").then_some(())
    })
    .await;
    let d = deliveries(&app, &id).await;
    let attempts = d
        .iter()
        .find(|d| d["eventType"] == "stock.changed")
        .unwrap()["attempts"]
        .clone();
    // Retry-After: 1 stretched the 50 ms schedule to a second; the second failure came a
    // second after the first, past the 1 s limit, and disabled the endpoint.
    let attempts = attempts.as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[i]["attemptedAt"].as_str().unwrap()).unwrap()
    };
    assert!(
        at(1) - at(0) >= chrono::Duration::milliseconds(1000),
        "{attempts:?}"
    );
    assert_eq!(received.lock().unwrap().len(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn private_targets_are_refused_at_registration_and_at_send_time() {
    let app = TestApp::spawn().await;
    for url in [
        "http://127.0.0.1:9000/x",
        "http://localhost/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/x",
        "ftp://example.com/x",
    ] {
        let (_, body) = app
            .gql(
                "mutation($url: String!) { createWebhookEndpoint(input: {url: $url}) { endpoint { id } userErrors { code field } } }",
                json!({ "url": url }),
            )
            .await;
        let payload = &body["data"]["createWebhookEndpoint"];
        assert_eq!(
            payload["userErrors"][0]["code"], "INVALID_INPUT",
            "{url}: {body}"
        );
        assert_eq!(payload["userErrors"][0]["field"], json!(["input", "url"]));
    }
    // At send time the address a name resolves to is checked again: an endpoint registered
    // while private targets were allowed is refused once they are not.
    let (url, received) = receiver(|_| (200, None)).await;
    let mut config = twh_server::config::Config::default().webhooks;
    config.allow_private = false;
    let client = twh_server::webhooks::dispatch::client(&config);
    for target in [url.replace("127.0.0.1", "localhost"), url.clone()] {
        let now = chrono::Utc::now();
        let endpoint = twh_entity::webhook_endpoint::Model {
            tenant_id: "t".into(),
            id: "whe_x".into(),
            url: target.clone(),
            description: None,
            event_types: "[]".into(),
            status: "ENABLED".into(),
            disabled_reason: None,
            secret: twh_server::webhooks::signing::new_secret(),
            previous_secret: None,
            previous_secret_until: None,
            failing_since: None,
            lease_owner: None,
            lease_until: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let delivery = twh_entity::webhook_delivery::Model {
            tenant_id: "t".into(),
            id: "whd_x".into(),
            endpoint_id: "whe_x".into(),
            event_id: "evt_x".into(),
            event_type: "webhook.test".into(),
            position: 0,
            ordering_key: "k".into(),
            body: "{}".into(),
            status: "PENDING".into(),
            attempt_count: 0,
            schedule_step: 0,
            next_attempt_at: Some(now),
            last_attempt_at: None,
            created_at: now,
            updated_at: now,
        };
        let attempt =
            twh_server::webhooks::dispatch::attempt(&client, &config, &endpoint, delivery).await;
        assert_eq!(attempt.status_code, None, "{target}");
        assert!(
            attempt
                .error
                .as_deref()
                .unwrap_or("")
                .starts_with("refused"),
            "{target}: {:?}",
            attempt.error
        );
    }
    assert!(
        received.lock().unwrap().is_empty(),
        "no request reached the private receiver"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn replicas_share_events_over_redis() {
    let Ok(redis_url) = std::env::var("TWH_TEST_REDIS_URL") else {
        eprintln!("skipped: set TWH_TEST_REDIS_URL (CI's Postgres run does) to run over Redis");
        return;
    };
    let app = TestApp::spawn().await;
    // A second replica on the same database and Redis: only its bus runs.
    let mut config = Config::for_database(&app.db_url);
    config.redis_url = Some(redis_url.clone());
    let replica = twh_server::server::prepare(config).await.unwrap();
    let (stop, _) = tokio::sync::watch::channel(false);
    replica
        .bus
        .start(replica.background_db.clone(), stop.subscribe());
    let channel = eventually("the replica's channel", async || {
        replica.bus.channel().map(str::to_owned)
    })
    .await;
    assert_ne!(
        channel,
        format!("{}0", twh_server::events::bus::CHANNEL_PREFIX)
    );
    assert_eq!(
        Some(channel.as_str()),
        app.state.bus.channel(),
        "one database, one channel"
    );
    let mut on_replica = replica.bus.subscribe(&app.tenant_id);
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut raw = client.get_async_pubsub().await.unwrap();
    raw.subscribe(&channel).await.unwrap();
    // Let the replica's listener subscribe too before the write.
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.create_item("RD-A").await;
    let message = tokio::time::timeout(Duration::from_secs(5), raw.on_message().next())
        .await
        .expect("a message on the Redis channel")
        .unwrap();
    let batch: Vec<twh_server::events::Published> =
        serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
    assert!(
        batch
            .iter()
            .any(|e| e.tenant_id == app.tenant_id && e.event_type == "item.created")
    );
    let event = tokio::time::timeout(Duration::from_secs(5), on_replica.recv())
        .await
        .expect("the replica's subscriber got the event")
        .unwrap();
    assert_eq!(event.event_type, "item.created");
    assert_eq!(event.tenant_id, app.tenant_id);
    let _ = stop.send(true);
    app.shutdown().await;
}

#[tokio::test]
async fn a_slow_receiver_does_not_hold_up_another_endpoint() {
    let app = TestApp::spawn_with(|c| {
        fast_webhooks(c);
        c.webhooks.endpoint_concurrency = 2;
    })
    .await;
    app.create_item("WH-S").await;
    app.create_location("WH-L", false).await;
    let (slow_url, slow) = receiver(|_| (200, None)).await;
    // The slow receiver takes 2 s per request (a proxy in front of the recorder).
    let proxy = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let slow_url = slow_url.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = reqwest::Client::new()
                    .post(slow_url)
                    .header("webhook-id", headers["webhook-id"].to_str().unwrap())
                    .body(body)
                    .send()
                    .await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, proxy).await.unwrap() });
    let (fast_url, fast) = receiver(|_| (200, None)).await;
    create_endpoint(&app, &proxy_url, json!(["stock.changed"])).await;
    create_endpoint(&app, &fast_url, json!(["stock.changed"])).await;
    for _ in 0..10 {
        app.adjust("WH-S", "WH-L", 1, None).await;
    }
    eventually("the fast endpoint's ten deliveries", async || {
        (fast.lock().unwrap().len() == 10).then_some(())
    })
    .await;
    // The slow one needs 20 s for its ten (one at a time: they share a stock level); the fast
    // one had all of its own before that.
    let slow_done = slow.lock().unwrap().len();
    assert!(
        slow_done < 10,
        "the fast endpoint waited for the slow one ({slow_done} slow deliveries done first)"
    );
    app.shutdown().await;
}
