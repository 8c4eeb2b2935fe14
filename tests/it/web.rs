//! The web dashboard: the JSON API, SSE, WebSocket, /metrics and the token, each against a
//! real server on an ephemeral port with a real client (reqwest, tokio-tungstenite).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use mmm_web::{self as web, AppState};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::chromium;
use crate::harness::{Killed, Workspace, wait_until};

/// A server on 127.0.0.1 and a free port, reading the workspace's store.
pub(crate) async fn start(ws: &Workspace, token: Option<&str>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(ws.store(), token.map(str::to_string));
    tokio::spawn(web::serve(listener, state, std::future::pending()));
    addr
}

/// A one-liner job with one dead-lettered item (`bad`) out of three.
fn job_with_one_dead_letter() -> Workspace {
    let ws = Workspace::new();
    ws.run(&[
        "run",
        "-j",
        "2",
        "--progress",
        "none",
        "--",
        "test",
        "{}",
        "=",
        "ok",
        ":::",
        "ok",
        "bad",
        "ok",
    ])
    .code_is(3);
    ws
}

/// A job file whose 30 items each sleep, so it runs for a few seconds on 2 agents.
pub(crate) fn slow_job(ws: &Workspace, items: usize, sleep: &str) {
    write_items(ws, items);
    ws.write(
        "job.yml",
        &format!(
            r#"
map:
  input: items.jsonl
  key: "${{item.id}}"
  steps:
    - name: work
      shell: sleep {sleep}
"#
        ),
    );
}

/// `items.jsonl`: `items` items `{"id": "iN"}`.
fn write_items(ws: &Workspace, items: usize) {
    let lines: String = (0..items)
        .map(|i| format!("{{\"id\":\"i{i}\"}}\n"))
        .collect();
    ws.write("items.jsonl", &lines);
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    /// The `Link` header, if any.
    pub(crate) link: Option<String>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub(crate) async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = reqwest::Client::new().get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let link = response
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.text().await.expect("a body");
    Reply {
        status,
        content_type,
        link,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_jobs_and_pages_items_with_the_dlq_error() {
    let ws = job_with_one_dead_letter();
    let job = ws.only_job();
    let addr = start(&ws, None).await;

    let jobs = get(addr, "/api/jobs", &[]).await;
    assert_eq!(jobs.status, 200);
    assert!(jobs.content_type.starts_with("application/json"));
    let jobs = jobs.json();
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    let first = &jobs[0];
    assert_eq!(first["id"], json!(job.id.to_string()));
    assert_eq!(first["status"], "completed_with_failures");
    assert_eq!(first["counts"]["dead_lettered"], 1);
    assert_eq!(first["counts"]["completed"], 2);
    assert_eq!(first["percent"], 100.0);
    assert_eq!(first["resumable"], false);

    let state = get(addr, &format!("/api/jobs/{}", job.id.short()), &[]).await;
    assert_eq!(state.status, 200);
    let state = state.json();
    assert_eq!(state["job"]["id"], json!(job.id.to_string()));
    assert!(!state["recent_events"].as_array().unwrap().is_empty());

    let dlq = get(
        addr,
        &format!("/api/jobs/{}/items?status=dead_lettered", job.id),
        &[],
    )
    .await
    .json();
    assert_eq!(dlq["total"], 1);
    let item = &dlq["items"][0];
    assert_eq!(item["status"], "dead_lettered");
    assert!(item["value"].as_str().unwrap().contains("bad"), "{item}");
    assert_eq!(item["last_attempt"]["exit_code"], 1);
    assert!(item["last_attempt"]["error"].as_str().is_some(), "{item}");

    let page = get(
        addr,
        &format!("/api/jobs/{}/items?offset=1&limit=1", job.id),
        &[],
    )
    .await
    .json();
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["index"], 1);

    let snapshots = get(addr, &format!("/api/jobs/{}/snapshots", job.id), &[])
        .await
        .json();
    assert!(snapshots["snapshots"].is_array());
    let ledger = get(addr, &format!("/api/jobs/{}/ledger", job.id), &[]).await;
    assert_eq!(ledger.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_and_parameters_get_json_errors() {
    let ws = job_with_one_dead_letter();
    let job = ws.only_job();
    let addr = start(&ws, None).await;
    for (path, status) in [
        ("/api/jobs/zzz".to_string(), 404),
        ("/api/jobs/0000000000".to_string(), 404),
        (format!("/api/jobs/{}/items?status=nope", job.id), 400),
        (format!("/api/jobs/{}/items?limit=0", job.id), 400),
        (format!("/api/jobs/{}/items?offset=-1", job.id), 400),
        (format!("/api/jobs/{}/snapshots?after=x", job.id), 400),
        ("/api/nothing".to_string(), 404),
        ("/assets/nothing.js".to_string(), 404),
    ] {
        let reply = get(addr, &path, &[]).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert!(reply.json()["error"].is_string(), "{path}: {}", reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let ws = Workspace::new();
    ws.run(&["run", "--progress", "none", "--", "true", ":::", "a"])
        .success();
    let addr = start(&ws, None).await;
    let page = get(addr, "/", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("assets/app.js"));
    assert!(!page.body.contains("https://"), "no CDN");
    let js = get(addr, "/assets/app.js", &[]).await;
    assert_eq!(js.status, 200);
    assert!(js.content_type.starts_with("text/javascript"));
    let style = get(addr, "/assets/style.css", &[]).await;
    assert!(style.body.contains("prefers-color-scheme: dark"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_in_the_openmetrics_format() {
    let ws = job_with_one_dead_letter();
    let job = ws.only_job();
    let addr = start(&ws, None).await;
    let reply = get(addr, "/metrics", &[]).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{}",
        reply.content_type
    );
    let labels = format!("job=\"{}\",name=\"{}\"", job.id, job.name);
    let line = |name: &str, extra: &str| -> Option<f64> {
        let prefix = format!("{name}{{{labels}{extra}}} ");
        reply
            .body
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
    };
    assert_eq!(
        line("mmm_job_items", ",status=\"dead_lettered\""),
        Some(1.0)
    );
    assert_eq!(line("mmm_job_items", ",status=\"completed\""), Some(2.0));
    assert_eq!(line("mmm_job_percent", ""), Some(100.0));
    assert_eq!(line("mmm_job_live", ""), Some(0.0));
    assert!(
        reply
            .body
            .contains("mmm_jobs{status=\"completed_with_failures\"} 1"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("# TYPE mmm_job_items gauge"));
    assert_eq!(reply.body.lines().last(), Some("# EOF"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_checked_on_http_and_websocket() {
    let ws = job_with_one_dead_letter();
    let addr = start(&ws, Some("s3cret")).await;
    assert_eq!(get(addr, "/api/jobs", &[]).await.status, 401);
    assert_eq!(get(addr, "/", &[]).await.status, 401);
    // The page's static assets hold no data, and the page cannot pass the token to them.
    assert_eq!(get(addr, "/assets/app.js", &[]).await.status, 200);
    let wrong = get(addr, "/api/jobs", &[("authorization", "Bearer nope")]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.json()["error"].is_string());
    assert_eq!(get(addr, "/api/jobs?token=nope", &[]).await.status, 401);
    let right = get(addr, "/api/jobs", &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(right.status, 200);
    assert_eq!(get(addr, "/api/jobs?token=s3cret", &[]).await.status, 200);
    assert_eq!(get(addr, "/metrics?token=s3cret", &[]).await.status, 200);

    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token=nope")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401)
        }
        other => panic!("a wrong token must get 401, got {other:?}"),
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token=s3cret"))
        .await
        .expect("the right token connects");
    socket
        .send(Message::text(json!({"subscribe": "jobs"}).to_string()))
        .await
        .unwrap();
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_from_another_origin_is_refused() {
    let ws = job_with_one_dead_letter();
    let addr = start(&ws, None).await;
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403)
        }
        other => panic!("another origin must get 403, got {other:?}"),
    }
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", format!("http://{addr}").parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .expect("the same origin connects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_the_events_in_order_and_resumes_after_last_event_id() {
    let ws = job_with_one_dead_letter();
    let job = ws.only_job();
    let addr = start(&ws, None).await;
    let path = format!("/api/jobs/{}/events", job.id);
    let reply = get(addr, &path, &[]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/event-stream"));
    let ids = sse_ids(&reply.body);
    let stored: Vec<i64> = ws
        .store()
        .events(job.id, 0, 10_000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(ids, stored, "every event, in order");
    assert!(
        reply.body.contains("event: end"),
        "a finished job's stream ends: {}",
        reply.body
    );
    let middle = stored[stored.len() / 2].to_string();
    let resumed = get(addr, &path, &[("last-event-id", middle.as_str())]).await;
    assert_eq!(
        sse_ids(&resumed.body),
        stored[stored.len() / 2 + 1..].to_vec()
    );
    let bad = get(addr, &path, &[("last-event-id", "x")]).await;
    assert_eq!(bad.status, 400);
}

fn sse_ids(body: &str) -> Vec<i64> {
    body.lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of the server at `addr` that has sent `request` (a subscription).
async fn subscribed(addr: SocketAddr, request: Value) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    socket
        .send(Message::text(request.to_string()))
        .await
        .unwrap();
    socket
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .expect("a message within 15 s")
            .expect("the socket stays open")
            .expect("no WebSocket error");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_follows_a_running_job_and_resumes_without_a_gap() {
    let ws = Workspace::new();
    slow_job(&ws, 30, "0.1");
    let mut child = ws.spawn(&["run", "job.yml", "-j", "2", "--progress", "none"]);
    wait_until(Duration::from_secs(60), "the job is recorded", || {
        !ws.jobs_so_far().is_empty()
    });
    let job = ws.only_job();
    let addr = start(&ws, None).await;

    let mut socket = subscribed(addr, json!({"subscribe": "job", "job": job.id.short()})).await;
    let state = next_json(&mut socket).await;
    assert_eq!(state["type"], "state");
    assert_eq!(state["state"]["job"]["id"], json!(job.id.to_string()));
    let mut seq = state["seq"].as_i64().unwrap();
    let first_completed = state["state"]["job"]["counts"]["completed"]
        .as_u64()
        .unwrap();
    let mut completed = first_completed;
    let mut status = state["state"]["job"]["status"]
        .as_str()
        .unwrap()
        .to_string();
    let mut resume_point = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while status == "running" || status == "pending" {
        assert!(Instant::now() < deadline, "the job did not finish");
        let delta = next_json(&mut socket).await;
        assert_eq!(delta["type"], "delta", "{delta}");
        if let Some(events) = delta["events"].as_array() {
            for event in events {
                let s = event["seq"].as_i64().unwrap();
                assert!(s > seq, "events in order: {s} after {seq}");
                seq = s;
            }
            if resume_point.is_none() && seq > state["seq"].as_i64().unwrap() + 3 {
                resume_point = Some(seq);
            }
        }
        assert_eq!(delta["seq"].as_i64().unwrap(), seq);
        if let Some(head) = delta.get("head") {
            let now = head["job"]["counts"]["completed"].as_u64().unwrap();
            assert!(now >= completed, "counts only grow");
            completed = now;
            status = head["job"]["status"].as_str().unwrap().to_string();
        }
    }
    assert_eq!(completed, 30);
    assert!(completed > first_completed, "the counts advanced live");
    assert!(child.wait().unwrap().success());

    // A client that reconnects with the last sequence number it saw gets every later event.
    let resume_from = resume_point.expect("the job recorded events while followed");
    let expected: Vec<i64> = ws
        .store()
        .events(job.id, resume_from, 100_000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    let mut again = subscribed(
        addr,
        json!({"subscribe": "job", "job": job.id.to_string(), "resume_from": resume_from}),
    )
    .await;
    assert_eq!(next_json(&mut again).await["type"], "state");
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let delta = next_json(&mut again).await;
        for event in delta["events"].as_array().into_iter().flatten() {
            got.push(event["seq"].as_i64().unwrap());
        }
    }
    assert_eq!(got, expected);
}

/// A hundred clients or more get a hub's events with its state comparison, in one write
/// (src/web/hub.rs): every one of them still gets every event once, in order, and no resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_clients_gets_every_event_once_and_in_order() {
    const CLIENTS: usize = 100;
    let ws = Workspace::new();
    // Every item waits for the file `go`, written once all clients follow the job: their
    // work all happens while the crowd watches, however slowly the clients join.
    write_items(&ws, 40);
    ws.write(
        "job.yml",
        r#"
map:
  input: items.jsonl
  key: "${item.id}"
  steps:
    - name: work
      shell: while [ ! -e go ]; do sleep 0.02; done; sleep 0.02
"#,
    );
    let mut child = ws.spawn(&["run", "job.yml", "-j", "4", "--progress", "none"]);
    wait_until(Duration::from_secs(60), "the job is recorded", || {
        !ws.jobs_so_far().is_empty()
    });
    let job = ws.only_job();
    let addr = start(&ws, None).await;
    // The job's last event, once the run is over: each client reads until it has it.
    let last = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut socket =
            subscribed(addr, json!({"subscribe": "job", "job": job.id.to_string()})).await;
        let last = last.clone();
        clients.push(tokio::spawn(async move {
            let state = next_json(&mut socket).await;
            assert_eq!(state["type"], "state");
            let from = state["seq"].as_i64().unwrap();
            let mut seqs = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let last = last.load(std::sync::atomic::Ordering::SeqCst);
                if last > 0 && seqs.last().copied().unwrap_or(from) >= last {
                    return (from, seqs);
                }
                assert!(
                    Instant::now() < deadline,
                    "the events stopped at {:?}",
                    seqs.last()
                );
                let Ok(message) =
                    tokio::time::timeout(Duration::from_millis(200), socket.next()).await
                else {
                    continue;
                };
                let Some(Ok(Message::Text(text))) = message else {
                    panic!("the socket closed: {message:?}");
                };
                let delta: Value = serde_json::from_str(text.as_str()).unwrap();
                assert_ne!(delta["resync"], true, "no client falls behind: {delta}");
                for event in delta["events"].as_array().into_iter().flatten() {
                    seqs.push(event["seq"].as_i64().unwrap());
                }
            }
        }));
    }
    ws.write("go", "");
    assert!(child.wait().unwrap().success());
    let events = ws.store().events(job.id, 0, 100_000).unwrap();
    last.store(
        events.last().unwrap().seq,
        std::sync::atomic::Ordering::SeqCst,
    );
    for client in clients {
        let (from, seqs) = client.await.unwrap();
        let expected: Vec<i64> = events.iter().map(|e| e.seq).filter(|s| *s > from).collect();
        assert!(expected.len() >= 40, "the clients followed the job's work");
        assert_eq!(seqs, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_lists_jobs_and_reports_bad_requests() {
    let ws = job_with_one_dead_letter();
    let job = ws.only_job();
    let addr = start(&ws, None).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "error");
    socket
        .send(Message::text(
            json!({"subscribe": "job", "job": "fff"}).to_string(),
        ))
        .await
        .unwrap();
    let error = next_json(&mut socket).await;
    assert_eq!(error["type"], "error");
    assert!(error["message"].as_str().unwrap().contains("fff"));
    socket
        .send(Message::text(json!({"subscribe": "jobs"}).to_string()))
        .await
        .unwrap();
    let list = next_json(&mut socket).await;
    assert_eq!(list["type"], "jobs");
    assert_eq!(list["jobs"][0]["id"], json!(job.id.to_string()));
    assert_eq!(list["jobs"][0]["counts"]["dead_lettered"], 1);
}

#[test]
fn serve_off_loopback_generates_a_token_and_requires_it() {
    let ws = job_with_one_dead_letter();
    let mut child = ws.spawn(&["serve", "--bind", "0.0.0.0", "--port", "0"]);
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut token = None;
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("generated a token for 0.0.0.0: ").nth(1) {
            token = Some(rest.trim().to_string());
        }
        if let Some(rest) = line.split("dashboard at ").nth(1) {
            url = Some(rest.split_whitespace().next().unwrap().to_string());
            break;
        }
    }
    let token = token.expect("a generated token is printed");
    let url = url.expect("the URL is printed");
    assert!(url.ends_with(&format!("?token={token}")), "{url}");
    let port: u16 = url
        .split("0.0.0.0:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a port in {url}"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let (without, with) = runtime.block_on(async {
        (
            get(addr, "/api/jobs", &[]).await.status,
            get(addr, &format!("/api/jobs?token={token}"), &[])
                .await
                .status,
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((without, with), (401, 200));
}

#[test]
fn serve_without_a_store_says_so() {
    let ws = Workspace::new();
    let run = ws.run(&["serve", "--port", "0"]);
    run.code_is(1);
    assert!(run.stderr().contains("no store"), "{}", run.stderr());
}

/// A headless Chromium session, with its profile in a temporary folder.
pub(crate) async fn browser() -> (chromium::Driver, fantoccini::Client, tempfile::TempDir) {
    let profile = tempfile::tempdir().unwrap();
    let (driver, client) = chromium::session(1280, 1600, profile.path()).await;
    (driver, client, profile)
}

/// The text of the first element matching `css`, if there is one now.
pub(crate) async fn text_of(client: &fantoccini::Client, css: &str) -> Option<String> {
    let element = client.find(fantoccini::Locator::Css(css)).await.ok()?;
    element.text().await.ok()
}

/// The `href` of the first element matching `css` (empty when it has none); it must be there.
pub(crate) async fn href_of(client: &fantoccini::Client, css: &str) -> String {
    client
        .find(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Polls `css`'s text until `ok` holds, failing after `within`.
pub(crate) async fn wait_text(
    client: &fantoccini::Client,
    css: &str,
    within: Duration,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = text_of(client, css).await;
        if let Some(text) = text.as_deref().filter(|t| ok(t)) {
            return text.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; `{css}` shows {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the first element matching `css`, retrying until `within`: the page redraws live
/// data, so an element found a moment ago may be replaced before the click reaches it (a
/// stale element reference).
pub(crate) async fn click(client: &fantoccini::Client, css: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let clicked = match client.find(fantoccini::Locator::Css(css)).await {
            Ok(element) => element.click().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match clicked {
            Ok(()) => return,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "could not click `{css}` within {within:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn count(text: &str) -> u64 {
    text.replace(',', "").trim().parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_running_job_advance_and_a_dlq_items_error_in_chromium() {
    let ws = job_with_one_dead_letter();
    let finished = ws.only_job();
    let addr = start(&ws, None).await;
    let (_driver, client, _profile) = browser().await;

    // The jobs list shows the finished job, then the new one as soon as it is recorded
    // (the page is already open: it arrives over the WebSocket).
    client.goto(&format!("http://{addr}/")).await.unwrap();
    wait_text(
        &client,
        "#jobs-body",
        Duration::from_secs(10),
        "the jobs list",
        |t| t.contains(&finished.id.short()),
    )
    .await;
    slow_job(&ws, 80, "0.2");
    let mut child = ws.spawn(&["run", "job.yml", "-j", "2", "--progress", "none"]);
    wait_until(
        Duration::from_secs(15),
        "the second job is recorded",
        || ws.jobs_so_far().len() == 2,
    );
    let running = ws
        .jobs_so_far()
        .into_iter()
        .find(|j| j.id != finished.id)
        .unwrap();
    wait_text(
        &client,
        "#jobs-body",
        Duration::from_secs(10),
        "the new job listed",
        |t| t.contains(&running.id.short()),
    )
    .await;

    // The running job's completed count advances on screen.
    client
        .goto(&format!("http://{addr}/#/job/{}", running.id))
        .await
        .unwrap();
    let tile = "[data-tile=\"completed\"] b";
    let first = wait_text(&client, tile, Duration::from_secs(10), "the tiles", |t| {
        count(t) < 80
    })
    .await;
    wait_text(
        &client,
        tile,
        Duration::from_secs(30),
        "the completed count to advance",
        |t| count(t) > count(&first),
    )
    .await;
    let running_png = client.screenshot().await.unwrap();
    wait_text(
        &client,
        tile,
        Duration::from_secs(60),
        "the job to end",
        |t| count(t) == 80,
    )
    .await;
    assert!(child.wait().unwrap().success());

    // The events feed, kept up to date message by message, ends on the job's last event and
    // has no gap and no duplicate: each line's seq is one below the line above it. It starts
    // with the 50 events the page's first state carried, and keeps 200 at most.
    let newest = ws
        .store()
        .events(running.id, 0, 100_000)
        .unwrap()
        .last()
        .map(|e| e.seq)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = client
            .execute(
                "return [...document.querySelectorAll('#events li')].map((li) => Number(li.dataset.seq))",
                vec![],
            )
            .await
            .unwrap();
        let shown: Vec<i64> = serde_json::from_value(shown).unwrap();
        let contiguous = shown.windows(2).all(|pair| pair[0] == pair[1] + 1);
        let length = (50.min(newest as usize)..=200).contains(&shown.len());
        if shown.first() == Some(&newest) && contiguous && length {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the events feed should show the newest events down from #{newest}, one by one: {shown:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Clicking a DLQ item of the other job shows its error.
    client
        .goto(&format!("http://{addr}/#/job/{}", finished.id))
        .await
        .unwrap();
    wait_text(
        &client,
        "#job-status",
        Duration::from_secs(10),
        "the job",
        |t| t == "completed_with_failures",
    )
    .await;
    // The export links download the reports of `mmm export`.
    let export = href_of(&client, "#export-html").await;
    assert!(
        export.ends_with(&format!("/api/jobs/{}/export?format=html", finished.id)),
        "{export}"
    );
    let resumable = client
        .find(fantoccini::Locator::Css("#job-resumable"))
        .await
        .unwrap();
    assert!(
        !resumable.is_displayed().await.unwrap(),
        "a finished job has no resumable badge"
    );
    click(
        &client,
        "[data-status=\"dead_lettered\"]",
        Duration::from_secs(10),
    )
    .await;
    wait_text(
        &client,
        "#page",
        Duration::from_secs(10),
        "the DLQ page",
        |t| t.contains("of 1"),
    )
    .await;
    click(&client, "#items-body tr.item", Duration::from_secs(10)).await;
    let attempt = ws
        .attempts(finished.id)
        .into_iter()
        .rfind(|a| a.error.is_some())
        .unwrap();
    let error = attempt.error.unwrap();
    let shown = wait_text(
        &client,
        "#item-error",
        Duration::from_secs(10),
        "the item's error",
        |t| t.contains(&error),
    )
    .await;
    assert!(shown.contains("exit 1"), "{shown}");

    let png = client.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("web-dashboard.png"), &png).unwrap();
    std::fs::write(dir.join("web-dashboard-running.png"), &running_png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    client.close().await.unwrap();
}

#[test]
fn run_dashboard_takes_the_next_free_port_and_serves_the_job() {
    let ws = Workspace::new();
    slow_job(&ws, 20, "0.1");
    // Hold a port so the dashboard has to take the next one.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = ws.spawn(&[
        "run",
        "job.yml",
        "-j",
        "2",
        "--progress",
        "none",
        "--dashboard",
        "--port",
        &port.to_string(),
    ]);
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let url = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| {
            l.split("dashboard at ")
                .nth(1)
                .map(|u| u.trim().to_string())
        })
        .expect("the dashboard's URL is printed");
    // Keep reading, so that mmm's later messages do not meet a closed pipe.
    let drain = std::thread::spawn(move || lines.count());
    let served: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("a port in {url}"));
    assert!(served > port && served <= port + 100, "{url} after {port}");
    let addr: SocketAddr = ([127, 0, 0, 1], served).into();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The server starts before the job is recorded: poll until the list has it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let jobs = loop {
        let jobs = runtime.block_on(get(addr, "/api/jobs", &[])).json();
        if jobs.as_array().is_some_and(|list| !list.is_empty()) {
            break jobs;
        }
        assert!(Instant::now() < deadline, "the job never showed: {jobs}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs[0]["name"], "job", "{jobs}");
    assert!(child.wait().unwrap().success());
    drain.join().unwrap();
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_the_health_summary() {
    let ws = job_with_one_dead_letter();
    let addr = start(&ws, None).await;
    let reply = get(addr, "/healthz", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let health = reply.json();
    assert_eq!(health["ok"], true);
    assert_eq!(health["store"]["writable"], true);
    assert!(health["running_jobs"].as_array().unwrap().is_empty());

    // A job recorded `running` whose owner is gone is a problem: 503.
    ws.sql("UPDATE jobs SET status = 'running', finished_at = NULL, owner_pid = 999999999;");
    let reply = get(addr, "/healthz", &[]).await;
    let health = reply.json();
    assert_eq!(
        health["running_jobs"].as_array().unwrap().len(),
        1,
        "{health}"
    );
    assert_eq!(reply.status, 503, "{health}");
    assert_eq!(health["ok"], false);
    assert!(
        health["problems"][0]
            .as_str()
            .unwrap()
            .contains("process is gone")
    );
}

/// A server like [`start`] that also watches the run folders under `roots` (the Runs tab).
async fn start_with_runs(
    ws: &Workspace,
    roots: &[std::path::PathBuf],
    token: Option<&str>,
) -> SocketAddr {
    let scanner = mmm_runs::Scanner::new(roots, mmm_runs::RunsConfig::default(), None).unwrap();
    let watch =
        mmm_runs::watch::Watch::start(scanner, std::sync::Arc::new(std::time::SystemTime::now))
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(ws.store(), token.map(str::to_string)).with_runs(watch);
    tokio::spawn(web::serve(listener, state, std::future::pending()));
    addr
}

/// A workspace with a store (one finished job) and `logs/exp_1`: a trainer with 2 of 10
/// epochs done, its log written just now (so `running`).
fn workspace_with_a_run() -> (Workspace, std::path::PathBuf) {
    let ws = Workspace::new();
    ws.run(&["run", "--progress", "none", "--", "true", ":::", "a"])
        .success();
    let run = ws.join("logs/exp_1");
    crate::runs::trainer(
        &run,
        2,
        10,
        crate::runs::ago(crate::runs::MIN),
        std::time::SystemTime::now(),
    );
    (ws, run)
}

/// The run named `name` in a list of runs.
fn run_named<'a>(runs: &'a Value, name: &str) -> &'a Value {
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no run {name} in {runs}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_served_as_json_and_a_new_epoch_reaches_a_websocket_client() {
    let (ws, run) = workspace_with_a_run();
    let addr = start_with_runs(&ws, &[ws.join("logs")], None).await;

    let reply = get(addr, "/api/runs", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type.starts_with("application/json"));
    let list = reply.json();
    assert_eq!(list["watching"], true);
    assert_eq!(list["runs"].as_array().unwrap().len(), 1, "{list}");
    let r = run_named(&list["runs"], "exp_1");
    assert_eq!(r["kind"], "trainer");
    assert_eq!(r["status"], "running");
    assert_eq!(r["progress"]["completed_epochs"], 2);
    assert_eq!(r["progress"]["total_epochs"], 10);
    // The same record as `mmm runs --json`.
    let cli = ws.run(&["runs", "logs", "--json"]);
    cli.success();
    let cli: Value = serde_json::from_str(&cli.stdout()).unwrap();
    assert_eq!(run_named(&cli["runs"], "exp_1")["progress"], r["progress"]);

    let mut socket = subscribed(addr, json!({"subscribe": "runs"})).await;
    let full = next_json(&mut socket).await;
    assert_eq!(full["type"], "runs", "{full}");
    assert_eq!(full["resync"], false);
    assert_eq!(
        run_named(&full["runs"], "exp_1")["progress"]["completed_epochs"],
        2
    );

    // An epoch appears on disk: the client is told, without asking again.
    crate::runs::epoch(&run, 2, 0.9, std::time::SystemTime::now());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last_seq = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the new epoch never reached the client"
        );
        let delta = next_json(&mut socket).await;
        assert_eq!(delta["type"], "runs_delta", "{delta}");
        let seq = delta["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "updates in order: {seq} after {last_seq}");
        last_seq = seq;
        let changed = delta["changed"].as_array().unwrap();
        if changed
            .iter()
            .any(|r| r["name"] == "exp_1" && r["progress"]["completed_epochs"] == 3)
        {
            break;
        }
    }
    let now = get(addr, "/api/runs", &[]).await.json();
    assert_eq!(
        run_named(&now["runs"], "exp_1")["progress"]["latest_epoch"],
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_need_the_token_and_say_when_nothing_is_watched() {
    let (ws, _run) = workspace_with_a_run();
    let guarded = start_with_runs(&ws, &[ws.join("logs")], Some("s3cret")).await;
    assert_eq!(get(guarded, "/api/runs", &[]).await.status, 401);
    let with = get(guarded, "/api/runs?token=s3cret", &[]).await.json();
    assert_eq!(with["runs"].as_array().unwrap().len(), 1);
    let refused = tokio_tungstenite::connect_async(format!("ws://{guarded}/ws")).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
        "{refused:?}"
    );

    // A server started without --runs answers with an empty list that says so.
    let plain = start(&ws, None).await;
    let list = get(plain, "/api/runs", &[]).await.json();
    assert_eq!(list["watching"], false);
    assert_eq!(list["runs"], json!([]));
    let mut socket = subscribed(plain, json!({"subscribe": "runs"})).await;
    let full = next_json(&mut socket).await;
    assert_eq!(
        (&full["type"], &full["watching"]),
        (&json!("runs"), &json!(false))
    );
}

/// `mmm serve ARGS` in the workspace; returns the child and the address it prints.
pub(crate) fn serve_binary(ws: &Workspace, args: &[&str]) -> (Killed, SocketAddr) {
    let mut child = ws.spawn(args);
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let url = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| {
            l.split("dashboard at ")
                .nth(1)
                .map(|u| u.split_whitespace().next().unwrap().to_string())
        })
        .expect("the dashboard's URL is printed");
    std::thread::spawn(move || lines.count());
    let child = Killed(child);
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("an address in {url}"));
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_tab_shows_the_runs_and_a_new_epoch_in_chromium() {
    let (ws, run) = workspace_with_a_run();
    crate::runs::trainer(
        &ws.join("logs/exp_2"),
        10,
        10,
        crate::runs::ago(Duration::from_secs(3 * 3600)),
        crate::runs::ago(Duration::from_secs(2 * 3600)),
    );
    // Through the real binary: `mmm serve --runs ROOT`.
    let (server, addr) = serve_binary(&ws, &["serve", "--port", "0", "--runs", "logs"]);
    let (_driver, client, _profile) = browser().await;
    client.goto(&format!("http://{addr}/#/runs")).await.unwrap();
    let epochs = "[data-run=\"exp_1\"] .run-epochs";
    wait_text(
        &client,
        epochs,
        Duration::from_secs(15),
        "exp_1's epochs",
        |t| t == "2/10",
    )
    .await;
    let row = wait_text(
        &client,
        "[data-run=\"exp_2\"]",
        Duration::from_secs(5),
        "exp_2's row",
        |t| t.contains("finished"),
    )
    .await;
    assert!(row.contains("10/10") && row.contains("100%"), "{row}");
    assert!(
        text_of(&client, "[data-run=\"exp_1\"]")
            .await
            .unwrap()
            .contains("running")
    );
    // An epoch appears: the open page shows it (pushed over the WebSocket).
    crate::runs::epoch(&run, 2, 0.9, std::time::SystemTime::now());
    wait_text(
        &client,
        epochs,
        Duration::from_secs(20),
        "the new epoch",
        |t| t == "3/10",
    )
    .await;
    let png = client.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("web-runs.png"), &png).unwrap();
    client.close().await.unwrap();
    drop(server);
}

/// GET returning the raw bytes and the headers.
async fn get_bytes(addr: SocketAddr, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("a body").to_vec();
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_endpoint_serves_the_bytes_of_mmm_export() {
    let ws = job_with_one_dead_letter();
    let job = ws.only_job();
    let addr = start(&ws, None).await;
    let id = job.id.to_string();
    for (query, args, content_type, extension) in [
        ("format=json", vec![], "application/json", ".json"),
        ("format=csv", vec![], "text/csv", ".csv"),
        (
            "format=csv&what=snapshots",
            vec!["--what", "snapshots"],
            "text/csv",
            "-snapshots.csv",
        ),
        ("format=html", vec![], "text/html", ".html"),
    ] {
        let format = query
            .split('&')
            .next()
            .unwrap()
            .trim_start_matches("format=");
        let mut cli_args = vec!["export", id.as_str(), "--format", format];
        cli_args.extend(args);
        let cli = ws.run(&cli_args);
        cli.success();
        let (status, headers, body) = get_bytes(
            addr,
            &format!("/api/jobs/{}/export?{query}", job.id.short()),
        )
        .await;
        assert_eq!(status, 200, "{query}: {}", String::from_utf8_lossy(&body));
        let served_type = headers["content-type"].to_str().unwrap();
        assert!(
            served_type.starts_with(content_type),
            "{query}: {served_type}"
        );
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"mmm-")
                && disposition.ends_with(&format!("{}{extension}\"", job.id.short())),
            "{query}: {disposition}"
        );
        if format == "json" {
            // The same report; only the time the state was read differs between two reads.
            let mut served: Value = serde_json::from_slice(&body).unwrap();
            let mut written: Value = serde_json::from_slice(&cli.output.stdout).unwrap();
            assert_eq!(served["version"], 1);
            assert_eq!(served["dlq"].as_array().unwrap().len(), 1);
            for report in [&mut served, &mut written] {
                report["state"]["read_at"] = Value::Null;
            }
            assert_eq!(served, written);
        } else {
            assert_eq!(
                String::from_utf8_lossy(&body),
                cli.stdout(),
                "{query}: the same bytes as mmm export"
            );
        }
    }
    for (query, status) in [
        ("", 400),
        ("?format=pdf", 400),
        ("?format=html&what=snapshots", 400),
        ("?format=csv&what=nope", 400),
    ] {
        let reply = get(addr, &format!("/api/jobs/{id}/export{query}"), &[]).await;
        assert_eq!(reply.status, status, "{query}: {}", reply.body);
        assert!(reply.json()["error"].is_string());
    }
    assert_eq!(
        get(addr, "/api/jobs/ffffff/export?format=json", &[])
            .await
            .status,
        404
    );
    let guarded = start(&ws, Some("s3cret")).await;
    assert_eq!(
        get(guarded, &format!("/api/jobs/{id}/export?format=csv"), &[])
            .await
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_resynced_without_holding_up_the_others() {
    let ws = Workspace::new();
    slow_job(&ws, 3_000, "0");
    // Long keys make the events big (about 20 MB in all), more than the socket buffers
    // between the server and a client that reads nothing can absorb.
    let padding = "k".repeat(2_000);
    let lines: String = (0..3_000)
        .map(|i| format!("{{\"id\":\"i{i}-{padding}\"}}\n"))
        .collect();
    ws.write("items.jsonl", &lines);
    let mut child = ws.spawn(&["run", "job.yml", "-j", "8", "--progress", "none"]);
    wait_until(Duration::from_secs(60), "the job is recorded", || {
        !ws.jobs_so_far().is_empty()
    });
    let job = ws.only_job();
    let addr = start(&ws, None).await;
    let subscribe =
        Message::text(json!({"subscribe": "job", "job": job.id.to_string()}).to_string());

    // The stalled client: a tiny receive buffer, and it reads nothing for a while.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut stalled, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
        .await
        .unwrap();
    stalled.send(subscribe.clone()).await.unwrap();

    // The reading client follows the job to its end, while the other reads nothing.
    let (mut reader, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    reader.send(subscribe).await.unwrap();
    let mut status = String::new();
    let mut completed = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while status != "completed" {
        assert!(
            Instant::now() < deadline,
            "the reading client did not see the job end ({completed} completed, {status})"
        );
        let message = next_json(&mut reader).await;
        let head = match message["type"].as_str() {
            Some("state") => &message["state"],
            _ => &message["head"],
        };
        if let Some(s) = head["job"]["status"].as_str() {
            status = s.to_string();
            completed = head["job"]["counts"]["completed"].as_u64().unwrap();
        }
    }
    assert_eq!(completed, 3_000);
    assert!(child.wait().unwrap().success());

    // The stalled client reads again. Either the server dropped it (it accepted nothing for
    // 10 s) or its stream is consistent: events in order, and a gap only after a full state
    // marked as a resync; it ends on the finished job. It was not buffered without bound.
    let mut seq = 0;
    let mut resynced = false;
    let mut dropped = false;
    let mut last_status = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_status != "completed" {
        assert!(
            Instant::now() < deadline,
            "the stalled client never caught up"
        );
        let message = match tokio::time::timeout(Duration::from_secs(15), stalled.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                serde_json::from_str::<Value>(text.as_str()).unwrap()
            }
            Ok(Some(Ok(_))) => continue,
            Ok(None | Some(Err(_))) => {
                dropped = true;
                break;
            }
            Err(_) => panic!("the stalled client got nothing within 15 s"),
        };
        match message["type"].as_str() {
            Some("state") => {
                resynced |= message["resync"] == true;
                seq = message["seq"].as_i64().unwrap();
                last_status = message["state"]["job"]["status"]
                    .as_str()
                    .unwrap()
                    .to_string();
            }
            Some("delta") => {
                for event in message["events"].as_array().into_iter().flatten() {
                    let s = event["seq"].as_i64().unwrap();
                    assert!(s > seq, "event {s} after {seq} without a resync");
                    seq = s;
                }
                if let Some(s) = message["head"]["job"]["status"].as_str() {
                    last_status = s.to_string();
                }
            }
            other => panic!("unexpected message {other:?}: {message}"),
        }
    }
    assert!(
        resynced || dropped,
        "a client that read nothing while 20 MB of events went by was resynced or dropped"
    );
    // The server serves new clients as before.
    let mut again = subscribed(addr, json!({"subscribe": "job", "job": job.id.to_string()})).await;
    let state = next_json(&mut again).await;
    assert_eq!(state["state"]["job"]["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_durations_are_a_prometheus_histogram() {
    let ws = Workspace::new();
    // Long enough for the runner to record snapshots with duration metrics.
    slow_job(&ws, 8, "0.5");
    ws.run(&["run", "job.yml", "-j", "2", "--progress", "none"])
        .success();
    let job = ws.only_job();
    let addr = start(&ws, None).await;
    let reply = get(addr, "/metrics", &[]).await;
    assert_eq!(reply.status, 200);
    let labels = format!("job=\"{}\",name=\"{}\"", job.id, job.name);
    let line = |name: &str, extra: &str| -> Option<f64> {
        let prefix = format!("{name}{{{labels}{extra}}} ");
        reply
            .body
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
    };
    // Item durations are a histogram: cumulative buckets up to +Inf, which equals the count.
    assert!(
        reply
            .body
            .contains("# TYPE mmm_job_item_duration_seconds histogram"),
        "{}",
        reply.body
    );
    // The encoder puts `le` first.
    let bucket = |le: &str| -> Option<f64> {
        let prefix = format!("mmm_job_item_duration_seconds_bucket{{le=\"{le}\",{labels}}} ");
        reply
            .body
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
    };
    let count = line("mmm_job_item_duration_seconds_count", "").expect("a count");
    assert_eq!(bucket("+Inf"), Some(count), "{}", reply.body);
    assert!(count >= 1.0, "{}", reply.body);
    assert!(line("mmm_job_item_duration_seconds_sum", "").is_some_and(|s| s > 0.0));
    let mut last = 0.0;
    let mut buckets = 0;
    for l in reply.body.lines() {
        if l.starts_with("mmm_job_item_duration_seconds_bucket{") {
            let v: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(v >= last, "cumulative buckets: {l}");
            last = v;
            buckets += 1;
        }
    }
    assert_eq!(buckets, 17, "16 bounds and +Inf");
    // Each item slept 0.5 s: none is in the buckets up to 0.25 s, all by 1 s.
    assert_eq!(bucket("0.25"), Some(0.0));
    assert_eq!(bucket("1.0"), Some(count));
}
