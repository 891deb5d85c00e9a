//! Jobs and artifacts over HTTP: uploads, each job kind, dry runs, error policies, the error
//! report, cancellation, fairness, the schedule, repair after a reconciliation, and a worker
//! process killed mid-import.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::support::TestApp;

const JOB: &str = "query($id: ID!) { job(id: $id) { id kind status progress processedRows totalRows result errors errorCount attempts cancelRequested artifacts { id name url purpose contentType sizeBytes } } }";

const START: &str = "mutation($input: StartJobInput!) { startJob(input: $input) { job { id status kind } userErrors { code field message } } }";

async fn upload(app: &TestApp, name: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(&format!("/v1/artifacts?name={name}")))
        .bearer_auth(&app.key)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("upload");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn upload_csv(app: &TestApp, body: &str) -> String {
    let (status, artifact) = upload(app, "input.csv", "text/csv", body).await;
    assert_eq!(status, StatusCode::CREATED, "{artifact}");
    artifact["id"].as_str().expect("artifact id").to_owned()
}

async fn start(app: &TestApp, kind: &str, params: Value, input: Option<&str>) -> String {
    let (_, body) = app
        .gql(
            START,
            json!({ "input": { "kind": kind, "params": params, "inputArtifact": input } }),
        )
        .await;
    let payload = &body["data"]["startJob"];
    assert_eq!(payload["userErrors"], json!([]), "{body}");
    assert_eq!(payload["job"]["status"], "QUEUED");
    payload["job"]["id"].as_str().expect("job id").to_owned()
}

/// Uploads `csv`, starts a `kind` job on it and waits for the job to end.
async fn import(app: &TestApp, kind: &str, params: Value, csv: &str) -> Value {
    let input = upload_csv(app, csv).await;
    let id = start(app, kind, params, Some(&input)).await;
    finished(app, &id).await
}

async fn job(app: &TestApp, id: &str) -> Value {
    let (_, body) = app.gql(JOB, json!({ "id": id })).await;
    body["data"]["job"].clone()
}

/// Polls until the job has ended.
async fn finished(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current = job(app, id).await;
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&current["status"].as_str().unwrap_or(""))
        {
            return current;
        }
        assert!(Instant::now() < deadline, "job did not end: {current}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn download(app: &TestApp, url: &str) -> (StatusCode, String) {
    let response = app
        .client
        .get(app.url(url))
        .bearer_auth(&app.key)
        .send()
        .await
        .expect("download");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

fn artifact<'a>(job: &'a Value, purpose: &str) -> &'a Value {
    job["artifacts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["purpose"] == purpose))
        .unwrap_or_else(|| panic!("no {purpose} artifact in {job}"))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let row = app
        .state
        .db
        .query_one_raw(Statement::from_string(
            app.state.db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a number")
}

async fn stock(app: &TestApp) {
    for sku in ["A", "B", "C"] {
        app.create_item(sku).await;
    }
    app.create_location("WH", false).await;
    app.adjust("A", "WH", 10, None).await;
    app.adjust("B", "WH", 4, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stock_count_import_sets_levels_through_the_ledger() {
    let app = TestApp::spawn().await;
    stock(&app).await;
    // A BOM, quoted fields, header names in another case, a blank optional cell.
    let input = upload_csv(
        &app,
        "\u{feff}SKU,Location,Quantity,change_from_quantity\nA,WH,7,10\n\"B\",\"WH\",\"4\",\n\"C\",WH,12,\n",
    )
    .await;
    let id = start(&app, "IMPORT_STOCK_COUNTS", json!({}), Some(&input)).await;
    let done = finished(&app, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["rows"], 3, "{done}");
    assert_eq!(done["result"]["changed"], 2, "{done}");
    assert_eq!(done["result"]["unchanged"], 1, "{done}");
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["processedRows"], 3);
    assert_eq!(app.level("A", "WH").await["available"], 7);
    assert_eq!(app.level("B", "WH").await["available"], 4);
    assert_eq!(app.level("C", "WH").await["available"], 12);
    let moved = app
        .movements(json!({ "referenceDocumentUri": format!("twh://jobs/{id}") }))
        .await;
    assert_eq!(moved.len(), 2, "{moved:?}");
    assert!(moved.iter().all(|m| m["reason"] == "CYCLE_COUNT"));
    // The upload is the job's first artifact and downloads as it was sent.
    let (status, text) = download(&app, artifact(&done, "upload")["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("\"C\",WH,12"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_reports_exactly_what_would_change_and_changes_nothing() {
    let app = TestApp::spawn().await;
    stock(&app).await;
    let movements_before = count(&app, "SELECT COUNT(*) FROM movements").await;
    let events_before = count(
        &app,
        "SELECT COUNT(*) FROM outbox_events WHERE event_type = 'stock.changed'",
    )
    .await;
    let done = import(
        &app,
        "IMPORT_STOCK_COUNTS",
        json!({ "dryRun": true, "errorPolicy": "REJECT_FAILED_ROWS" }),
        "sku,location,quantity\nA,WH,3\nB,WH,4\nNOPE,WH,1\n",
    )
    .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["dryRun"], true);
    assert_eq!(done["result"]["changed"], 1);
    assert_eq!(done["result"]["unchanged"], 1);
    assert_eq!(done["result"]["failed"], 1);
    assert_eq!(
        done["result"]["changes"][0],
        json!({ "row": 1, "sku": "A", "location": "WH", "action": "set", "before": 10, "after": 3 })
    );
    assert_eq!(done["errors"][0]["code"], "UNKNOWN_SKU");
    assert_eq!(app.level("A", "WH").await["available"], 10);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM movements").await,
        movements_before
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM outbox_events WHERE event_type = 'stock.changed'"
        )
        .await,
        events_before
    );
    let (status, report) = download(&app, artifact(&done, "dryRun")["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        report.lines().collect::<Vec<_>>(),
        vec![
            "row,sku,location,action,before,after,change",
            "1,A,WH,set,10,3,-7",
            "2,B,WH,unchanged,4,4,0",
        ]
    );
}

const BAD_ROWS: &str = "sku,location,quantity,change_from_quantity\nA,WH,8,\nNOPE,WH,1,\nB,WH,-2,\nB,WH,9,3\nC,GONE,1,\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reject_everything_applies_nothing_when_a_row_fails() {
    let app = TestApp::spawn().await;
    stock(&app).await;
    let done = import(
        &app,
        "IMPORT_STOCK_COUNTS",
        json!({ "errorPolicy": "REJECT_EVERYTHING" }),
        BAD_ROWS,
    )
    .await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["result"]["failed"], 4, "{done}");
    assert_eq!(done["result"]["applied"], 0);
    assert_eq!(done["errorCount"], 4);
    let rows: Vec<(i64, String, String)> = done["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_i64().unwrap(),
                e["column"].as_str().unwrap_or("").to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (2, "sku".into(), "UNKNOWN_SKU".into()),
            (3, "quantity".into(), "INVALID_INPUT".into()),
            (
                4,
                "change_from_quantity".into(),
                "CHANGE_FROM_QUANTITY_STALE".into()
            ),
            (5, "location".into(), "UNKNOWN_LOCATION".into()),
        ]
    );
    // Row 1 was fine, and still nothing moved.
    assert_eq!(app.level("A", "WH").await["available"], 10);
    let (status, report) = download(&app, artifact(&done, "errors")["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "row,column,code,message");
    assert_eq!(lines.len(), 5, "{report}");
    assert!(lines[1].starts_with("2,sku,UNKNOWN_SKU,"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reject_failed_rows_applies_the_good_rows_and_reports_the_rest() {
    let app = TestApp::spawn().await;
    stock(&app).await;
    let done = import(
        &app,
        "IMPORT_STOCK_COUNTS",
        json!({ "errorPolicy": "REJECT_FAILED_ROWS" }),
        BAD_ROWS,
    )
    .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["changed"], 1, "{done}");
    assert_eq!(done["result"]["failed"], 4, "{done}");
    assert_eq!(done["errorCount"], 4);
    assert_eq!(app.level("A", "WH").await["available"], 8);
    assert_eq!(app.level("B", "WH").await["available"], 4);
    let (_, report) = download(&app, artifact(&done, "errors")["url"].as_str().unwrap()).await;
    assert_eq!(report.lines().count(), 5, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_header_fails_the_job_with_a_hint_and_changes_nothing() {
    let app = TestApp::spawn().await;
    stock(&app).await;
    let done = import(
        &app,
        "IMPORT_STOCK_COUNTS",
        json!({}),
        "sku,loc,quantity\nA,WH,1\n",
    )
    .await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["errors"][0]["code"], "INVALID_INPUT");
    let message = done["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("unknown column \"loc\""), "{message}");
    assert!(message.contains("sku,location,quantity"), "{message}");
    assert_eq!(done["attempts"], 1, "a bad file is not retried");
    assert_eq!(app.level("A", "WH").await["available"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_items_import_creates_and_updates_by_sku() {
    let app = TestApp::spawn().await;
    let before = app.create_item("X").await;
    let input = upload_csv(
        &app,
        "sku,name,barcode,unit\nX,Renamed X,,\nY,\"Mug, blue\",4006381333931,box\nZ,,,\nX,Renamed X,,\n",
    )
    .await;
    let id = start(
        &app,
        "IMPORT_ITEMS",
        json!({ "errorPolicy": "REJECT_FAILED_ROWS" }),
        Some(&input),
    )
    .await;
    let done = finished(&app, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["created"], 1, "{done}");
    assert_eq!(done["result"]["updated"], 1, "{done}");
    assert_eq!(done["result"]["unchanged"], 1, "{done}");
    assert_eq!(done["result"]["failed"], 1, "{done}");
    assert_eq!(done["errors"][0]["row"], 3);
    assert_eq!(done["errors"][0]["column"], "name");
    let (_, body) = app
        .gql(
            "{ x: items(filter: {sku: \"X\"}) { edges { node { name version } } } y: items(filter: {sku: \"Y\"}) { edges { node { name barcode unit } } } }",
            json!({}),
        )
        .await;
    let x = &body["data"]["x"]["edges"][0]["node"];
    assert_eq!(x["name"], "Renamed X");
    assert_eq!(x["version"], before["version"].as_i64().unwrap() + 1);
    let y = &body["data"]["y"]["edges"][0]["node"];
    assert_eq!(
        y,
        &json!({ "name": "Mug, blue", "barcode": "4006381333931", "unit": "box" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_are_checked_and_an_oversized_one_stores_nothing() {
    let dir = std::env::temp_dir().join(format!("twh-upload-limit-{}", std::process::id()));
    let artifacts_dir = dir.clone();
    let app = TestApp::spawn_with(move |config| {
        config.artifacts.max_upload_bytes = 1000;
        config.artifacts.local_dir = artifacts_dir;
    })
    .await;
    let big = format!("sku,location,quantity\n{}", "A,WH,1\n".repeat(500));
    let (status, problem) = upload(&app, "big.csv", "text/csv", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert_eq!(problem["code"], "PAYLOAD_TOO_LARGE");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was stored")
    );
    // Without a length up front, the stream is cut off at the limit instead.
    assert_eq!(chunked_upload(&app, 50, &"A,WH,1\n".repeat(10)).await, 413);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM artifacts").await, 0);
    let files: Vec<_> = walk(&dir);
    assert!(files.is_empty(), "files left behind: {files:?}");

    let (status, problem) = upload(&app, "x.png", "image/png", "PNG").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{problem}");
    // A slash, or a control character even at an end (a trimmed name once hid it).
    for name in ["a%2Fb.csv", "%0Dstock.csv", "stock.csv%0A", "%09", "%20%20"] {
        let (status, problem) = upload(&app, name, "text/csv", "sku\n").await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {problem}"
        );
    }
    let response = app
        .client
        .post(app.url("/v1/artifacts"))
        .header("content-type", "text/csv")
        .body("sku\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Tenant-scoped: another tenant neither downloads the file nor sees the job.
    let id = upload_csv(&app, "sku,location,quantity\n").await;
    let other = app.other_tenant().await;
    let response = app
        .client
        .get(app.url(&format!("/v1/artifacts/{id}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let job_id = start(
        &app,
        "IMPORT_STOCK_COUNTS",
        json!({ "dryRun": true }),
        Some(&id),
    )
    .await;
    let (_, body) = app.gql_as(&other, JOB, json!({ "id": job_id })).await;
    assert_eq!(body["data"]["job"], Value::Null, "{body}");
    let (_, body) = app
        .gql_as(
            &other,
            START,
            json!({ "input": { "kind": "IMPORT_STOCK_COUNTS", "inputArtifact": id } }),
        )
        .await;
    assert_eq!(
        body["data"]["startJob"]["userErrors"][0]["code"], "NOT_FOUND",
        "{body}"
    );
    let (status, _) = download(&app, "/v1/artifacts/art_nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Uploads `chunks` chunks with `Transfer-Encoding: chunked` (no length up front) over a raw
/// socket; returns the status code.
async fn chunked_upload(app: &TestApp, chunks: usize, chunk: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/artifacts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        let piece = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        // The server may answer and close before the last chunk: that is the point.
        if socket.write_all(piece.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text}"))
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_job_refuses_bad_parameters() {
    let app = TestApp::spawn().await;
    let (_, body) = app
        .gql(START, json!({ "input": { "kind": "IMPORT_ITEMS" } }))
        .await;
    assert_eq!(
        body["data"]["startJob"]["userErrors"][0]["field"],
        json!(["input", "inputArtifact"]),
        "{body}"
    );
    let (_, body) = app
        .gql(START, json!({ "input": { "kind": "EXPORT_MOVEMENTS", "params": { "since": "yesterday", "colour": 1 } } }))
        .await;
    let fields: Vec<Value> = body["data"]["startJob"]["userErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert!(
        fields.contains(&json!(["input", "params", "colour"])),
        "{body}"
    );
    assert!(
        fields.contains(&json!(["input", "params", "since"])),
        "{body}"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM jobs").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exports_and_reports_write_csv_artifacts() {
    let app = TestApp::spawn().await;
    stock(&app).await;
    app.adjust("A", "WH", -3, None).await;
    // Exports: every level, then the movements of one SKU (through REST this time).
    let id = start(&app, "EXPORT_STOCK_LEVELS", json!({}), None).await;
    let done = finished(&app, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["rows"], 2);
    let (_, csv) = download(&app, artifact(&done, "output")["url"].as_str().unwrap()).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "sku,location,on_hand,available,committed,reserved,incoming,damaged,safety_stock,quality_control,sequence,updated_at"
    );
    assert!(lines[1].starts_with("A,WH,7,7,0,0,0,0,0,0,2,"), "{csv}");
    assert!(lines[2].starts_with("B,WH,4,4,"), "{csv}");

    let (status, _, body) = app
        .rest(
            Method::POST,
            "/v1/jobs",
            Some(json!({ "kind": "EXPORT_MOVEMENTS", "params": { "sku": "A" } })),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let done = finished(&app, body["id"].as_str().unwrap()).await;
    assert_eq!(done["result"]["rows"], 2, "{done}");
    let (_, csv) = download(&app, artifact(&done, "output")["url"].as_str().unwrap()).await;
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .contains(",A,WH,AVAILABLE,10,10,1,CORRECTION,"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .nth(2)
            .unwrap()
            .contains(",A,WH,AVAILABLE,-3,7,2,CORRECTION,"),
        "{csv}"
    );

    // Low stock: B has a reorder point of 5 (4 available); A falls under the default of 8.
    let (_, body) = app
        .gql(
            "mutation { setReorderPoint(input: {sku: \"B\", locationCode: \"WH\", reorderPoint: 5}) { reorderPoint { sku reorderPoint } userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["setReorderPoint"]["reorderPoint"]["reorderPoint"], 5,
        "{body}"
    );
    let id = start(&app, "REPORT_LOW_STOCK", json!({}), None).await;
    let done = finished(&app, &id).await;
    assert_eq!(
        done["result"]["levels"],
        json!([{ "sku": "B", "locationCode": "WH", "available": 4, "incoming": 0, "reorderPoint": 5, "shortfall": 1 }]),
        "{done}"
    );
    let id = start(
        &app,
        "REPORT_LOW_STOCK",
        json!({ "defaultReorderPoint": 8 }),
        None,
    )
    .await;
    let done = finished(&app, &id).await;
    let skus: Vec<&str> = done["result"]["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, vec!["A", "B"], "{done}");

    let id = start(
        &app,
        "REPORT_MOVEMENT_SUMMARY",
        json!({ "period": "MONTH" }),
        None,
    )
    .await;
    let done = finished(&app, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let summary = done["result"]["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 1, "{done}");
    assert_eq!(summary[0]["reason"], "CORRECTION");
    assert_eq!(summary[0]["movements"], 3);
    assert_eq!(summary[0]["unitsIn"], 14);
    assert_eq!(summary[0]["unitsOut"], 3);
    assert_eq!(
        summary[0]["period"],
        chrono::Utc::now().format("%Y-%m").to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reconcile_job_finds_tampering_and_a_repair_makes_the_next_run_clean() {
    let app = TestApp::spawn().await;
    stock(&app).await;
    assert_eq!(reconcile_mismatches(&app).await, 0);

    app.state
        .db
        .execute_unprepared("UPDATE stock_levels SET available = available + 5 WHERE item_id IN (SELECT id FROM items WHERE sku = 'A')")
        .await
        .unwrap();
    let id = start(&app, "RECONCILE", json!({}), None).await;
    let done = finished(&app, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["mismatches"], 1, "{done}");
    let run_id = done["result"]["runId"].as_str().unwrap().to_owned();
    let (_, report) = download(&app, artifact(&done, "report")["url"].as_str().unwrap()).await;
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["rows"][0]["field"], "available");
    assert_eq!(report["rows"][0]["snapshot"], 15);
    assert_eq!(report["rows"][0]["ledger"], 10);
    // The mismatch is an event of the tenant's log.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = app
            .gql("{ events(filter: {types: [\"reconciliation.mismatch\"]}) { edges { node { data } } } }", json!({}))
            .await;
        if let Some(event) = body["data"]["events"]["edges"][0]["node"]["data"].as_object() {
            assert_eq!(event["runId"], json!(run_id));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reconciliation.mismatch event: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        app.metrics()
            .await
            .contains("twh_reconciliation_mismatches_total")
    );

    let (_, body) = app
        .gql(
            "mutation($id: ID!) { repairReconciliation(runId: $id) { repair { repairedLevels unrepaired movements { sku state delta quantityAfterChange reason sequence } } userErrors { code } } }",
            json!({ "id": run_id }),
        )
        .await;
    let repair = &body["data"]["repairReconciliation"]["repair"];
    assert_eq!(repair["repairedLevels"], 1, "{body}");
    assert_eq!(
        repair["movements"],
        json!([{ "sku": "A", "state": "AVAILABLE", "delta": 5, "quantityAfterChange": 15, "reason": "RECONCILIATION", "sequence": 2 }])
    );
    assert_eq!(repair["unrepaired"], json!([]));
    assert_eq!(app.level("A", "WH").await["available"], 15);

    assert_eq!(reconcile_mismatches(&app).await, 0);
    // Writes go on after the repair with the next sequence number.
    let after = app.adjust("A", "WH", 1, None).await;
    assert_eq!(after["movements"][0]["sequence"], 3, "{after}");

    let (_, body) = app
        .gql(
            "mutation { repairReconciliation(runId: \"rec_nope\") { userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["repairReconciliation"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_job_is_cancelled_at_once_and_only_once() {
    let app = TestApp::spawn_with(|config| config.jobs.workers = 0).await;
    let id = start(&app, "EXPORT_STOCK_LEVELS", json!({}), None).await;
    let cancel =
        "mutation($id: ID!) { cancelJob(id: $id) { job { status } userErrors { code message } } }";
    let (_, body) = app.gql(cancel, json!({ "id": id })).await;
    assert_eq!(
        body["data"]["cancelJob"]["job"]["status"], "CANCELLED",
        "{body}"
    );
    let (_, body) = app.gql(cancel, json!({ "id": id })).await;
    assert_eq!(
        body["data"]["cancelJob"]["userErrors"][0]["code"], "INVALID_TRANSITION",
        "{body}"
    );
    assert!(
        body["data"]["cancelJob"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("CANCELLED")
    );
    let (status, _, body) = app
        .rest(Method::GET, "/v1/jobs?status=CANCELLED", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["id"], json!(id), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_take_turns_in_the_queue() {
    let app = TestApp::spawn_with(|config| config.jobs.workers = 0).await;
    let mut a_jobs = Vec::new();
    for _ in 0..3 {
        a_jobs.push(start(&app, "EXPORT_STOCK_LEVELS", json!({}), None).await);
    }
    let other = app.other_tenant().await;
    let (_, body) = app
        .gql_as(
            &other,
            START,
            json!({ "input": { "kind": "EXPORT_STOCK_LEVELS" } }),
        )
        .await;
    let b_job = body["data"]["startJob"]["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lease = chrono::Duration::seconds(30);
    let mut order = Vec::new();
    for _ in 0..4 {
        let claimed = twh_server::jobs::queue::claim(&app.state, "test-worker", lease)
            .await
            .unwrap()
            .expect("a due job");
        order.push(claimed.job.id.0);
    }
    assert_eq!(
        order,
        vec![
            a_jobs[0].clone(),
            b_job,
            a_jobs[1].clone(),
            a_jobs[2].clone()
        ]
    );
    assert!(
        twh_server::jobs::queue::claim(&app.state, "test-worker", lease)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduled_reconciliation_is_enqueued_once_per_slot() {
    let app = TestApp::spawn_with(|config| config.jobs.workers = 0).await;
    app.other_tenant().await;
    let first = twh_server::jobs::worker::enqueue_scheduled(&app.state, "reconcile:test-slot")
        .await
        .unwrap();
    let again = twh_server::jobs::worker::enqueue_scheduled(&app.state, "reconcile:test-slot")
        .await
        .unwrap();
    assert_eq!((first, again), (2, 0));
    let (_, body) = app
        .gql(
            "{ jobs(filter: {kind: RECONCILE}) { edges { node { status actor } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["jobs"]["edges"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    assert_eq!(
        body["data"]["jobs"]["edges"][0]["node"]["actor"],
        "scheduler"
    );
}

fn worker(db_url: &str, dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_twh"))
        .arg("worker")
        .env("DATABASE_URL", db_url)
        .env("TWH_DATA_DIR", dir)
        .env("TWH_JOB_BATCH_ROWS", "5")
        .env("TWH_JOB_LEASE_SECS", "2")
        .env("TWH_JOB_POLL_MS", "50")
        .env("TWH_RECONCILE_SCHEDULE", "off")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start twh worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_import_is_taken_over_and_applies_every_row_once() {
    let data = std::env::temp_dir().join(format!(
        "twh-kill-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    let artifacts_dir = data.join("artifacts");
    let app = TestApp::spawn_with(move |config| {
        config.jobs.workers = 0;
        config.artifacts.local_dir = artifacts_dir;
    })
    .await;
    app.create_location("WH", false).await;
    let rows = 400;
    let items: String = (0..rows).map(|i| format!("K{i},Item {i},,\n")).collect();
    let input = upload_csv(&app, &format!("sku,name,barcode,unit\n{items}")).await;
    let id = start(&app, "IMPORT_ITEMS", json!({}), Some(&input)).await;
    let done = finished_with_worker(&app, &id, &data).await;
    assert_eq!(done["result"]["created"], rows, "{done}");
    let counts: String = (0..rows).map(|i| format!("K{i},WH,{}\n", i + 1)).collect();
    let input = upload_csv(&app, &format!("sku,location,quantity\n{counts}")).await;
    let id = start(
        &app,
        "IMPORT_STOCK_COUNTS",
        json!({ "errorPolicy": "REJECT_FAILED_ROWS" }),
        Some(&input),
    )
    .await;

    // The first worker starts; once some rows (not all) have committed it is killed.
    let mut first = worker(&app.db_url, &data);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current = job(&app, &id).await;
        let processed = current["processedRows"].as_i64().unwrap_or(0);
        if processed > 0 {
            assert!(
                processed < rows,
                "the import finished before the kill: {current}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import never started: {current}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().expect("kill -9 the worker");
    first.wait().ok();
    let at_kill = job(&app, &id).await;
    assert_eq!(at_kill["status"], "RUNNING", "{at_kill}");

    // Another worker takes it up once the lease has run out, from the checkpoint.
    let mut second = worker(&app.db_url, &data);
    let done = finished(&app, &id).await;
    second.kill().ok();
    second.wait().ok();
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["result"]["changed"], rows, "{done}");
    assert_eq!(done["result"]["failed"], 0, "{done}");
    // Every row applied exactly once: one movement per level, each level at its count.
    let uri = format!("twh://jobs/{id}");
    let moved = count(
        &app,
        &format!("SELECT COUNT(*) FROM movements WHERE reference_document_uri = '{uri}'"),
    )
    .await;
    assert_eq!(moved, rows);
    let distinct = count(
        &app,
        &format!("SELECT COUNT(*) FROM (SELECT DISTINCT item_id FROM movements WHERE reference_document_uri = '{uri}') d"),
    )
    .await;
    assert_eq!(distinct, rows);
    assert_eq!(app.level("K399", "WH").await["available"], 400);
    assert_eq!(app.level("K0", "WH").await["available"], 1);
}

/// Runs a `twh worker` process until the job ends.
async fn finished_with_worker(app: &TestApp, id: &str, data: &std::path::Path) -> Value {
    let mut child = worker(&app.db_url, data);
    let done = finished(app, id).await;
    child.kill().ok();
    child.wait().ok();
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_import_stops_at_a_batch_when_cancelled() {
    let app = TestApp::spawn_with(|config| {
        config.jobs.batch_rows = 2;
        config.jobs.lease_secs = 1;
    })
    .await;
    app.create_location("WH", false).await;
    let rows = 3000;
    let items: String = (0..rows).map(|i| format!("C{i},Item {i},,\n")).collect();
    let input = upload_csv(&app, &format!("sku,name,barcode,unit\n{items}")).await;
    let id = start(
        &app,
        "IMPORT_ITEMS",
        json!({ "errorPolicy": "REJECT_FAILED_ROWS" }),
        Some(&input),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while job(&app, &id).await["processedRows"].as_i64().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the import never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, body) = app
        .gql(
            "mutation($id: ID!) { cancelJob(id: $id) { job { status cancelRequested } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    let asked = &body["data"]["cancelJob"]["job"];
    assert_eq!(asked["cancelRequested"], true, "{body}");
    let done = finished(&app, &id).await;
    if done["status"] == "SUCCEEDED" {
        // Finished between the request and the next batch: nothing left to stop.
        assert_eq!(done["result"]["created"], rows);
        return;
    }
    assert_eq!(done["status"], "CANCELLED", "{done}");
    let committed = done["result"]["rowsCommittedBeforeCancel"]
        .as_i64()
        .unwrap();
    assert!(committed > 0 && committed < rows, "{done}");
    // What was committed stays, and is exactly the rows before the checkpoint.
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM items WHERE sku LIKE 'C%'").await,
        committed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_artifacts_are_deleted_with_their_bytes() {
    let dir = std::env::temp_dir().join(format!(
        "twh-retention-{}",
        chrono::Utc::now().timestamp_micros()
    ));
    let artifacts_dir = dir.clone();
    let app = TestApp::spawn_with(move |config| config.artifacts.local_dir = artifacts_dir).await;
    let kept = upload_csv(&app, "sku\nA\n").await;
    let gone = upload_csv(&app, "sku\nB\n").await;
    assert_eq!(walk(&dir).len(), 2);
    app.state
        .db
        .execute_unprepared(&format!(
            "UPDATE artifacts SET expires_at = created_at WHERE id = '{gone}'"
        ))
        .await
        .unwrap();
    let (status, _) = download(&app, &format!("/v1/artifacts/{gone}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an expired file is not served"
    );
    let removed = twh_server::artifacts::sweep_expired(&app.state.artifacts, &app.state.db)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(walk(&dir).len(), 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM artifacts").await, 1);
    let (status, text) = download(&app, &format!("/v1/artifacts/{kept}")).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "sku\nA\n"));
}

/// Runs a reconciliation job; returns how many mismatches it found.
async fn reconcile_mismatches(app: &TestApp) -> Value {
    let id = start(app, "RECONCILE", json!({}), None).await;
    let done = finished(app, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    done["result"]["mismatches"].clone()
}

/// A stock-count import under `REJECT_FAILED_ROWS`, which must succeed (bad rows aside).
async fn import_counts(app: &TestApp, rows: &str) -> Value {
    let done = import(
        app,
        "IMPORT_STOCK_COUNTS",
        json!({ "errorPolicy": "REJECT_FAILED_ROWS" }),
        rows,
    )
    .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    done
}

/// The movements of an import job whose quantity after and sequence are their level's now
/// (`and` narrows them further).
async fn movements_agreeing_with_levels(app: &TestApp, job: &Value, and: &str) -> i64 {
    let uri = format!("twh://jobs/{}", job["id"].as_str().unwrap());
    count(
        app,
        &format!(
            "SELECT COUNT(*) FROM movements m JOIN stock_levels s ON s.tenant_id = m.tenant_id \
             AND s.item_id = m.item_id AND s.location_id = m.location_id \
             WHERE m.reference_document_uri = '{uri}' \
             AND m.quantity_after = s.available AND m.sequence = s.sequence{and}"
        ),
    )
    .await
}

/// A batch big enough for the bulk path (on Postgres its rows travel as JSON parameters): one
/// movement and one `stock.changed` event per changed level, each movement agreeing with its
/// level, a stale row refused on its own, and the next reconciliation clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_count_import_writes_a_movement_and_an_event_per_level() {
    let app = TestApp::spawn().await;
    app.create_location("A1", false).await;
    app.create_location("B1", false).await;
    let items: String = (0..100).map(|i| format!("L{i},Item {i},,\n")).collect();
    let csv = format!("sku,name,barcode,unit\n{items}");
    let done = import(&app, "IMPORT_ITEMS", json!({}), &csv).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    app.adjust("L7", "A1", 5, None).await;
    let events_before = count(
        &app,
        "SELECT COUNT(*) FROM outbox_events WHERE event_type = 'stock.changed'",
    )
    .await;

    let mut rows = String::from("sku,location,quantity,change_from_quantity\n");
    for i in 0..100 {
        for (l, code) in ["A1", "B1"].iter().enumerate() {
            // L7 at A1 holds 5, not 0: its count was taken against a stale quantity.
            let change_from = if i == 7 && l == 0 { "0" } else { "" };
            rows.push_str(&format!("L{i},{code},{},{change_from}\n", i * 2 + l + 1));
        }
    }
    let done = import_counts(&app, &rows).await;
    assert_eq!(
        (
            done["result"]["changed"].as_i64(),
            done["result"]["failed"].as_i64()
        ),
        (Some(199), Some(1)),
        "{done}"
    );
    assert_eq!(done["errors"][0]["row"], 15, "{done}");
    assert_eq!(app.level("L7", "A1").await["available"], 5);
    assert_eq!(app.level("L99", "B1").await["available"], 200);

    let agreeing = movements_agreeing_with_levels(
        &app,
        &done,
        " AND m.reason = 'cycle_count' AND m.delta = m.quantity_after",
    )
    .await;
    assert_eq!(agreeing, 199);
    let events = count(
        &app,
        "SELECT COUNT(*) FROM outbox_events WHERE event_type = 'stock.changed'",
    )
    .await;
    assert_eq!(events - events_before, 199);

    assert_eq!(reconcile_mismatches(&app).await, 0);
}

/// A count batch mixing levels that exist with levels it creates: a new level is written
/// holding its count (sequence 1, one movement), a count of 0 for a new level writes no
/// movement, a `changeFromQuantity` other than 0 for a new level is stale (it held 0), the
/// existing levels are set against their locked quantities, and the next reconciliation is
/// clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_count_import_creates_levels_holding_their_counts_beside_existing_ones() {
    let app = TestApp::spawn().await;
    app.create_location("A1", false).await;
    let items: String = (0..40).map(|i| format!("N{i},Item {i},,\n")).collect();
    let done = import(
        &app,
        "IMPORT_ITEMS",
        json!({}),
        &format!("sku,name,barcode,unit\n{items}"),
    )
    .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    for i in 0..10 {
        app.adjust(&format!("N{i}"), "A1", 5, None).await;
    }

    let mut rows = String::from("sku,location,quantity,change_from_quantity\n");
    for i in 0..40 {
        let (quantity, change_from) = match i {
            0 => (20, "5"),  // exists, counted against the right quantity
            1 => (20, "4"),  // exists, stale
            10 => (10, "0"), // new, counted against 0: right
            11 => (11, "3"), // new, stale: it held 0
            12 => (0, ""),   // new, counted 0: nothing moves
            i if i < 10 => (20, ""),
            i => (i, ""),
        };
        rows.push_str(&format!("N{i},A1,{quantity},{change_from}\n"));
    }
    let done = import_counts(&app, &rows).await;
    assert_eq!(
        (
            done["result"]["changed"].as_i64(),
            done["result"]["unchanged"].as_i64(),
            done["result"]["failed"].as_i64()
        ),
        (Some(37), Some(1), Some(2)),
        "{done}"
    );
    let failed: Vec<i64> = done["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_i64().unwrap())
        .collect();
    assert_eq!(failed, vec![2, 12], "the rows of N1 and N11: {done}");
    for (sku, available, sequence) in [
        ("N0", 20, 2),
        ("N1", 5, 1),
        ("N9", 20, 2),
        ("N10", 10, 1),
        ("N11", 0, 0),
        ("N12", 0, 0),
        ("N39", 39, 1),
    ] {
        let level = app.level(sku, "A1").await;
        assert_eq!(
            (level["available"].as_i64(), level["sequence"].as_i64()),
            (Some(available), Some(sequence)),
            "{sku}: {level}"
        );
    }
    assert_eq!(movements_agreeing_with_levels(&app, &done, "").await, 37);

    assert_eq!(reconcile_mismatches(&app).await, 0);
}
