//! Group commit: a tenant's concurrent writes share one transaction and every guarantee of a
//! transaction per write holds: exact counts, gap-free sequences, idempotent replays,
//! compare-and-set, a failing neighbour failing alone, and nothing acknowledged lost (nor
//! anything applied twice) when the process is killed mid-group. `on` seats every write in a
//! savepoint of a group; `runs` (the default) gathers only concurrent single adjustments, which
//! both modes write together as one batch on Postgres.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use twh_server::config::GroupCommitMode;

use crate::support::{ADJUST, TestApp, adjust_input, codes};

/// A deterministic shuffle (a linear congruential generator), so a failure can be replayed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        items.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

/// An app with group commit on (it is off by default).
async fn grouped() -> TestApp {
    TestApp::spawn_with(|c| c.database.group_commit.mode = GroupCommitMode::All).await
}

fn group_stats(app: &TestApp) -> (u64, u64) {
    app.state
        .group
        .as_ref()
        .expect("group commit is on")
        .stats()
}

async fn adjust_call(app: &TestApp, input: Value, key: Option<&str>) -> Value {
    let (status, body) = app.gql(ADJUST, json!({ "input": input, "key": key })).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["adjustStock"].clone()
}

enum Call {
    Increment(String),
    Replay(String),
    Stale,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_increments_with_replays_and_stale_compare_and_sets_end_exact() {
    let app = grouped().await;
    app.create_item("HOT").await;
    app.create_location("WH", false).await;
    let (groups_before, writes_before) = group_stats(&app);

    // 500 keyed +1s, 120 of them sent twice, and 60 compare-and-sets that can never match (the
    // level never goes below zero), all at once in a shuffled order.
    let mut calls: Vec<Call> = (0..500)
        .map(|i| Call::Increment(format!("inc-{i}")))
        .collect();
    calls.extend((0..120).map(|i| Call::Replay(format!("inc-{}", i * 4))));
    calls.extend((0..60).map(|_| Call::Stale));
    shuffle(&mut calls, 0x7e57);
    let results = join_all(calls.iter().map(|call| async {
        match call {
            Call::Increment(key) | Call::Replay(key) => {
                adjust_call(&app, adjust_input("HOT", "WH", 1, None), Some(key)).await
            }
            Call::Stale => adjust_call(&app, adjust_input("HOT", "WH", 1, Some(-5)), None).await,
        }
    }))
    .await;

    let mut by_key: HashMap<&str, Vec<&Value>> = HashMap::new();
    for (call, payload) in calls.iter().zip(&results) {
        match call {
            Call::Increment(key) | Call::Replay(key) => {
                assert_eq!(codes(payload), Vec::<String>::new(), "{payload}");
                by_key.entry(key).or_default().push(payload);
            }
            Call::Stale => {
                assert_eq!(codes(payload), ["CHANGE_FROM_QUANTITY_STALE"], "{payload}")
            }
        }
    }
    // A key sent twice answered both times with the one movement it made.
    for (key, answers) in &by_key {
        let ids: Vec<&Value> = answers.iter().map(|p| &p["movements"][0]["id"]).collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{key}: {ids:?}");
    }

    let level = app.level("HOT", "WH").await;
    assert_eq!(level["available"], 500, "{level}");
    assert_eq!(level["sequence"], 500, "{level}");
    let movements = app
        .movements(json!({ "sku": "HOT", "locationCode": "WH" }))
        .await;
    let mut sequences: Vec<i64> = movements
        .iter()
        .map(|m| m["sequence"].as_i64().unwrap())
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=500).collect::<Vec<_>>());
    for m in &movements {
        assert_eq!(m["quantityAfterChange"], m["sequence"], "{m}");
    }

    // The writes went through groups, and at least some groups held more than one write.
    let (groups, writes) = group_stats(&app);
    let (groups, writes) = (groups - groups_before, writes - writes_before);
    assert_eq!(writes, calls.len() as u64);
    assert!(groups < writes, "{groups} groups for {writes} writes");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_whose_neighbours_are_refused_still_land() {
    let app = grouped().await;
    app.create_item("A").await;
    app.create_item("EMPTY").await;
    app.create_location("WH", false).await;
    let (groups_before, writes_before) = group_stats(&app);

    // Every other write is refused: a decrement of an empty level, an unknown SKU, a stale
    // compare-and-set; the rest add 1 each.
    let inputs: Vec<(Value, Option<&str>)> = (0..120)
        .map(|i| match i % 6 {
            1 => (
                adjust_input("EMPTY", "WH", -1, None),
                Some("INSUFFICIENT_STOCK"),
            ),
            3 => (
                adjust_input("NO-SUCH-SKU", "WH", 1, None),
                Some("UNKNOWN_SKU"),
            ),
            5 => (
                adjust_input("A", "WH", 1, Some(-1)),
                Some("CHANGE_FROM_QUANTITY_STALE"),
            ),
            _ => (adjust_input("A", "WH", 1, None), None),
        })
        .collect();
    let results = join_all(
        inputs
            .iter()
            .map(|(input, _)| adjust_call(&app, input.clone(), None)),
    )
    .await;
    for ((_, refusal), payload) in inputs.iter().zip(&results) {
        match refusal {
            Some(code) => assert_eq!(codes(payload), [*code], "{payload}"),
            None => assert_eq!(codes(payload), Vec::<String>::new(), "{payload}"),
        }
    }
    assert_eq!(app.level("A", "WH").await["available"], 60);
    assert_eq!(app.level("EMPTY", "WH").await["sequence"], 0);
    assert_eq!(app.movements(json!({ "sku": "A" })).await.len(), 60);
    let (groups, writes) = group_stats(&app);
    assert!(
        groups - groups_before < writes - writes_before,
        "no group held two writes"
    );
    app.shutdown().await;
}

/// Single adjustments queued together run as one batch on Postgres (four statements for the
/// whole run): each call still gets its own movement, sequence, `quantityAfterChange`, event,
/// audit record and stored answer, exactly as if they had run one by one; replays and reused
/// keys in the mix send a run back to the one-by-one path, which answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_adjustments_written_together_answer_as_if_run_one_by_one() {
    let app = grouped().await;
    let postgres = app.state.is_postgres();
    for sku in ["A", "B"] {
        app.create_item(sku).await;
    }
    app.create_location("WH", false).await;
    // The levels exist before the run (a new level takes the one-by-one path).
    app.adjust("A", "WH", 1000, None).await;
    app.adjust("B", "WH", 1000, None).await;
    let group = app.state.group.as_ref().expect("group commit is on");
    let together_before = group.together();

    // 300 calls at once: +1 and -2 on A and B, every other one keyed.
    let calls: Vec<(&str, i64, Option<String>)> = (0..300)
        .map(|i| {
            let sku = if i % 3 == 0 { "B" } else { "A" };
            let delta = if i % 5 == 0 { -2 } else { 1 };
            (sku, delta, (i % 2 == 0).then(|| format!("run-{i}")))
        })
        .collect();
    let answers = join_all(calls.iter().map(|(sku, delta, key)| {
        adjust_call(&app, adjust_input(sku, "WH", *delta, None), key.as_deref())
    }))
    .await;
    for answer in &answers {
        assert_eq!(codes(answer), Vec::<String>::new(), "{answer}");
    }
    let together = group.together() - together_before;
    if postgres {
        assert!(together > 0, "no adjustment was written together");
    } else {
        assert_eq!(together, 0, "SQLite runs every write on its own");
    }

    // Every answer is its own movement, as the ledger holds it.
    for sku in ["A", "B"] {
        let expected: i64 = 1000
            + calls
                .iter()
                .filter(|(s, _, _)| *s == sku)
                .map(|(_, d, _)| d)
                .sum::<i64>();
        let count = calls.iter().filter(|(s, _, _)| *s == sku).count() as i64;
        let level = app.level(sku, "WH").await;
        assert_eq!(level["available"], expected, "{level}");
        assert_eq!(level["sequence"], count + 1, "{level}");
        let movements = app
            .movements(json!({ "sku": sku, "locationCode": "WH" }))
            .await;
        let stored: HashMap<&str, &Value> = movements
            .iter()
            .map(|m| (m["id"].as_str().unwrap(), m))
            .collect();
        let mut sequences: Vec<i64> = movements
            .iter()
            .map(|m| m["sequence"].as_i64().unwrap())
            .collect();
        sequences.sort_unstable();
        assert_eq!(sequences, (1..=count + 1).collect::<Vec<_>>());
        for ((s, delta, _), answer) in calls.iter().zip(&answers) {
            if *s != sku {
                continue;
            }
            let movement = &answer["movements"][0];
            let held = stored[movement["id"].as_str().unwrap()];
            for field in ["delta", "quantityAfterChange", "sequence"] {
                assert_eq!(movement[field], held[field], "{field}: {movement} {held}");
            }
            assert_eq!(movement["delta"], *delta);
            let level = &answer["levels"][0];
            assert_eq!(
                level["available"], movement["quantityAfterChange"],
                "{answer}"
            );
            assert_eq!(level["sequence"], movement["sequence"], "{answer}");
        }
    }

    // One audit record and one event per call; one stored answer per key.
    let count = |sql: &str| {
        let db = &app.state.db;
        let sql = sql.replace("$T", &app.tenant_id);
        async move {
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM audit_events WHERE tenant_id = '$T' AND action = 'stock.adjust'"
        )
        .await,
        302
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox_events WHERE tenant_id = '$T' AND event_type = 'stock.changed'")
            .await,
        302
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM movements WHERE tenant_id = '$T' AND idempotency_key LIKE 'run-%'"
        )
        .await,
        150
    );

    // Replays answer with the stored change; a key reused for another request is refused;
    // both in one more concurrent run, beside fresh calls.
    let replays = join_all((0..40usize).map(|i| {
        let (app, calls) = (&app, &calls);
        async move {
            match i % 4 {
                0 => {
                    let (sku, delta, key) = &calls[i * 2 + 2];
                    let input = adjust_input(sku, "WH", *delta, None);
                    (i, adjust_call(app, input, key.as_deref()).await)
                }
                1 => (
                    i,
                    adjust_call(app, adjust_input("B", "WH", 5, None), Some("run-4")).await,
                ),
                _ => (
                    i,
                    adjust_call(app, adjust_input("B", "WH", 1, None), None).await,
                ),
            }
        }
    }))
    .await;
    for (i, answer) in &replays {
        match i % 4 {
            0 => {
                let first = &answers[i * 2 + 2];
                assert_eq!(answer["movements"], first["movements"], "{answer}");
            }
            1 => assert_eq!(
                codes(answer),
                ["IDEMPOTENCY_KEY_PARAMETER_MISMATCH"],
                "{answer}"
            ),
            _ => assert_eq!(codes(answer), Vec::<String>::new(), "{answer}"),
        }
    }
    app.assert_reconciled().await;
    app.shutdown().await;
}

/// The default mode, `runs`: concurrent single adjustments are written together (Postgres),
/// and every other write (a move, a multi-line adjust, a compare-and-set) runs in a transaction
/// of its own, never in a lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_runs_mode_only_single_adjustments_gather() {
    let app = TestApp::spawn_with(|c| c.database.group_commit.mode = GroupCommitMode::Runs).await;
    let Some(group) = app.state.group.as_ref() else {
        // On SQLite `runs` is `off`: there is nothing to write together.
        assert!(!app.state.is_postgres());
        app.shutdown().await;
        return;
    };
    for sku in ["A", "B"] {
        app.create_item(sku).await;
    }
    app.create_location("WH", false).await;
    app.create_location("WH2", false).await;
    app.adjust("A", "WH", 100, None).await;
    app.adjust("B", "WH", 100, None).await;
    const MOVE: &str =
        "mutation($input: MoveStockInput!) { moveStock(input: $input) { userErrors { code } } }";
    // Moves and compare-and-sets, at once: none of them comes near a lane.
    let seated = group.stats().1;
    let results = join_all((0..40).map(|i| {
        let app = &app;
        async move {
            if i % 2 == 0 {
                let input = json!({ "reason": "MOVEMENT", "changes": [{ "sku": "B", "quantity": 1,
                    "from": { "locationCode": "WH" }, "to": { "locationCode": "WH2" } }] });
                let (status, body) = app.gql(MOVE, json!({ "input": input })).await;
                assert_eq!(status, 200, "{body}");
                body["data"]["moveStock"].clone()
            } else {
                adjust_call(app, adjust_input("A", "WH", 1, Some(-3)), None).await
            }
        }
    }))
    .await;
    for (i, payload) in results.iter().enumerate() {
        match i % 2 {
            0 => assert_eq!(codes(payload), Vec::<String>::new(), "{payload}"),
            _ => assert_eq!(codes(payload), ["CHANGE_FROM_QUANTITY_STALE"], "{payload}"),
        }
    }
    assert_eq!(
        group.stats().1,
        seated,
        "a move or a compare-and-set went to a lane"
    );

    // Single adjustments, at once: written together (a lone one, or a run that fell back, takes
    // a seat in its group).
    let together = group.together();
    let results =
        join_all((0..120).map(|_| adjust_call(&app, adjust_input("A", "WH", 1, None), None))).await;
    for payload in &results {
        assert_eq!(codes(payload), Vec::<String>::new(), "{payload}");
    }
    assert!(
        group.together() > together,
        "no adjustment was written together"
    );
    assert_eq!(
        group.stats().1 - seated,
        120,
        "every single adjustment went to its lane"
    );
    assert_eq!(app.level("A", "WH").await["available"], 100 + 120);
    assert_eq!(app.level("B", "WH").await["available"], 100 - 20);
    assert_eq!(app.level("B", "WH2").await["available"], 20);
    app.assert_reconciled().await;
    app.shutdown().await;
}

/// The group commit itself: a write whose statement fails (which aborts a Postgres transaction
/// until its savepoint is rolled back) leaves the writes before and after it in its group.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_statement_fails_only_its_own_write_in_the_group() {
    // The first write holds its group open on purpose, longer than the default window.
    let app = TestApp::spawn_with(|c| {
        c.database.group_commit.mode = GroupCommitMode::All;
        c.database.group_commit.window_ms = 60_000;
    })
    .await;
    let group = app.state.group.as_ref().expect("group commit is on");
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let tenant = app.tenant_id.clone();
    db.execute_raw(Statement::from_string(
        backend,
        "CREATE TABLE group_probe (name TEXT PRIMARY KEY)",
    ))
    .await
    .unwrap();
    let insert = |name: &str| {
        Statement::from_string(
            backend,
            format!("INSERT INTO group_probe (name) VALUES ('{name}')"),
        )
    };

    // The first write holds the lane until the other two are queued behind it.
    let first = group.join(&tenant).await.unwrap();
    let second = tokio::spawn({
        let app = app.state.clone();
        let tenant = tenant.clone();
        async move {
            let seat = app.group.as_ref().unwrap().join(&tenant).await.unwrap();
            // A duplicate key: the statement fails.
            let failed = seat
                .txn
                .execute_raw(Statement::from_string(
                    backend,
                    "INSERT INTO group_probe (name) VALUES ('first')",
                ))
                .await;
            assert!(failed.is_err());
            seat.txn.rollback().await.unwrap();
            let group = seat.ticket.group;
            seat.ticket.leave().await.unwrap();
            group
        }
    });
    let third = tokio::spawn({
        let app = app.state.clone();
        let tenant = tenant.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let seat = app.group.as_ref().unwrap().join(&tenant).await.unwrap();
            seat.txn
                .execute_raw(Statement::from_string(
                    backend,
                    "INSERT INTO group_probe (name) VALUES ('third')",
                ))
                .await
                .unwrap();
            seat.txn.commit().await.unwrap();
            let group = seat.ticket.group;
            seat.ticket.leave().await.unwrap();
            group
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.txn.execute_raw(insert("first")).await.unwrap();
    first.txn.commit().await.unwrap();
    let first_group = first.ticket.group;
    first.ticket.leave().await.unwrap();
    let (second_group, third_group) = (second.await.unwrap(), third.await.unwrap());
    assert_eq!(
        (second_group, third_group),
        (first_group, first_group),
        "the three writes shared a group"
    );
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT name FROM group_probe ORDER BY name",
        ))
        .await
        .unwrap();
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    assert_eq!(names, ["first", "third"]);
    app.shutdown().await;
}

/// A `twh serve` process killed with SIGKILL while groups are in flight: every write it
/// acknowledged is in the ledger, and retrying every key afterwards applies each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_group_loses_no_acknowledged_write() {
    let app = grouped().await;
    app.create_item("KILL").await;
    app.create_location("WH", false).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twh"))
        .arg("serve")
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", &app.db_url)
        .env(
            "TWH_DATA_DIR",
            std::env::temp_dir().join(format!("twh-group-kill-{}", std::process::id())),
        )
        .env("TWH_BIND", "127.0.0.1:0")
        .env("TWH_RATE_LIMITS", "off")
        .env("TWH_GROUP_COMMIT", "on")
        .env("TWH_RECONCILE_SCHEDULE", "off")
        .env("TWH_JOB_WORKERS", "0")
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start twh serve");
    let url = {
        use std::io::BufRead;
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            let line = lines
                .next()
                .expect("twh serve printed its address")
                .expect("a line");
            if let Some(url) = line.strip_prefix("The Warehouse Hub is listening on ") {
                // The rest is drained: a closed pipe would end the process at its next line.
                std::thread::spawn(move || lines.for_each(drop));
                break url.trim().to_owned();
            }
        }
    };

    // 24 clients send keyed +1s back to back; the process is killed once 300 were answered.
    let client = reqwest::Client::new();
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let wrong = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let senders: Vec<_> = (0..24)
        .map(|c| {
            let (client, url, key) = (client.clone(), url.clone(), app.key.clone());
            let (acknowledged, sent, wrong) = (acknowledged.clone(), sent.clone(), wrong.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let idempotency_key = format!("kill-{c}-{n}");
                    sent.lock().unwrap().push(idempotency_key.clone());
                    let response = client
                        .post(format!("{url}/graphql"))
                        .bearer_auth(&key)
                        .json(&json!({
                            "query": ADJUST,
                            "variables": { "input": adjust_input("KILL", "WH", 1, None), "key": idempotency_key },
                        }))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let body = match response {
                        Ok(response) => response.json::<Value>().await,
                        Err(err) => Err(err),
                    };
                    let body = match body {
                        Ok(body) => body,
                        Err(err) => {
                            // Killed mid-request; anything else before the kill is wrong.
                            if n == 0 {
                                wrong.lock().unwrap().push(json!(err.to_string()));
                            }
                            return;
                        }
                    };
                    if body["data"]["adjustStock"]["userErrors"] == json!([]) {
                        acknowledged.lock().unwrap().push(idempotency_key);
                    } else {
                        wrong.lock().unwrap().push(body);
                        return;
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 300 {
        assert!(
            Instant::now() < deadline,
            "the writes did not get going: {} answered, {:?}",
            acknowledged.lock().unwrap().len(),
            wrong.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().expect("kill -9");
    child.wait().ok();
    for sender in senders {
        let _ = sender.await;
    }
    assert_eq!(*wrong.lock().unwrap(), Vec::<Value>::new());
    let acknowledged = acknowledged.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();

    // Every acknowledged write is there.
    let level = app.level("KILL", "WH").await;
    let applied = level["available"].as_i64().unwrap();
    assert!(
        applied >= acknowledged.len() as i64,
        "{applied} applied, {} acknowledged",
        acknowledged.len()
    );
    assert!(
        applied <= sent.len() as i64,
        "{applied} applied, {} sent",
        sent.len()
    );
    // Retrying every key sent: each is applied exactly once in the end, and an acknowledged
    // one is a replay of what it answered.
    for key in &sent {
        let payload = adjust_call(&app, adjust_input("KILL", "WH", 1, None), Some(key)).await;
        assert_eq!(codes(&payload), Vec::<String>::new(), "{payload}");
    }
    let level = app.level("KILL", "WH").await;
    assert_eq!(level["available"], sent.len() as i64, "{level}");
    assert_eq!(level["sequence"], sent.len() as i64, "{level}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn turned_off_every_write_has_its_own_transaction() {
    let app = TestApp::spawn_with(|c| c.database.group_commit.mode = GroupCommitMode::Off).await;
    assert!(app.state.group.is_none());
    app.create_item("OWN").await;
    app.create_location("WH", false).await;
    let results = join_all((0..50).map(|i| {
        let key = format!("own-{}", i % 40);
        let app = &app;
        async move { adjust_call(app, adjust_input("OWN", "WH", 1, None), Some(&key)).await }
    }))
    .await;
    // Ten keys were sent twice at once: the second waits for the first and replays it, or is
    // told the first is still in progress.
    for payload in &results {
        let codes = codes(payload);
        assert!(
            codes.is_empty() || codes == ["IDEMPOTENCY_CONCURRENT_REQUEST"],
            "{payload}"
        );
    }
    assert_eq!(app.level("OWN", "WH").await["available"], 40);
    app.shutdown().await;
}
