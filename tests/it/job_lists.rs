//! Lists that stay fast and bounded however many jobs a store holds (issue 21): `mmm jobs`
//! filtered, `GET /api/jobs` paged by cursor, and `/metrics` whose series do not grow with
//! finished jobs.

use std::net::SocketAddr;
use std::time::Duration;

use mmm_core::job::{JobId, JobStatus, now_ms};
use mmm_store::{NewItem, NewJob, Store, Write};
use mmm_web::{self as web, AppState};

use crate::harness::{Killed, Workspace};
use crate::web::{browser, click, get, wait_text};

/// Records a job named `name` with 2 items that reached `status` at `at` after running
/// `ran_ms`, straight through the store (a history of thousands of jobs in a second).
fn record_job(store: &dyn Store, name: &str, status: JobStatus, at: i64, ran_ms: i64) -> JobId {
    let job = NewJob {
        id: JobId::new(),
        name: name.to_string(),
        spec: "{}".into(),
        spec_hash: "0".into(),
        source: None,
        max_parallel: 1,
        created_at: at - ran_ms,
        owner_pid: 1,
        owner_host: "elsewhere".into(),
        origin: None,
    };
    let items: Vec<NewItem> = (0..2)
        .map(|i| NewItem {
            key: format!("k{i}"),
            value: format!("{i}"),
        })
        .collect();
    store.create_job(&job, &items).unwrap();
    store
        .apply(&[
            Write::JobStatus {
                job: job.id,
                status: JobStatus::Running,
                at: at - ran_ms,
            },
            Write::Heartbeat {
                job: job.id,
                at,
                duration_ms: ran_ms,
            },
            Write::JobStatus {
                job: job.id,
                status,
                at,
            },
        ])
        .unwrap();
    job.id
}

fn new_store(ws: &Workspace) -> std::sync::Arc<dyn Store> {
    mmm_store::open(ws.join(".mmm").to_str().unwrap(), true).unwrap()
}

async fn serve(ws: &Workspace, retention: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(ws.store(), None).with_metrics_retention(retention);
    tokio::spawn(web::serve(listener, state, std::future::pending()));
    addr
}

const HOUR_MS: i64 = 3_600_000;

#[test]
fn mmm_jobs_filters_by_status_name_and_age_in_the_store() {
    let ws = Workspace::new();
    let store = new_store(&ws);
    let now = now_ms();
    let old = record_job(
        store.as_ref(),
        "nightly-eval",
        JobStatus::Completed,
        now - 48 * HOUR_MS,
        1_000,
    );
    let failed = record_job(
        store.as_ref(),
        "nightly-train",
        JobStatus::Failed,
        now - HOUR_MS,
        1_000,
    );
    let other = record_job(
        store.as_ref(),
        "adhoc",
        JobStatus::Completed,
        now - HOUR_MS,
        1_000,
    );
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["jobs", "--json"];
        all.extend_from_slice(args);
        ws.json(&all)
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    let id = |j: JobId| j.to_string();
    assert_eq!(ids(&[]), [id(other), id(failed), id(old)]);
    assert_eq!(ids(&["--name", "nightly-*"]), [id(failed), id(old)]);
    assert_eq!(ids(&["--status", "failed"]), [id(failed)]);
    assert_eq!(
        ids(&["--status", "failed,completed", "--since", "24h"]),
        [id(other), id(failed)]
    );
    assert_eq!(ids(&["--limit", "1"]), [id(other)]);
    let table = ws.run(&["jobs", "--name", "nope*"]);
    table.success();
    assert_eq!(table.stdout(), "no job matches\n");
    let bad = ws.run(&["jobs", "--status", "done"]);
    bad.code_is(2);
    assert!(
        bad.stderr().contains("`done` is not a job status"),
        "{}",
        bad.stderr()
    );
    let conflicting = ws.run(&["jobs", "--resumable", "--name", "x"]);
    conflicting.code_is(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_api_pages_every_job_once_while_jobs_are_created() {
    let ws = Workspace::new();
    let store = new_store(&ws);
    let now = now_ms();
    let mut expected = Vec::new();
    for n in 0..7 {
        let name = if n % 2 == 0 { "nightly" } else { "eval" };
        expected.push(
            record_job(store.as_ref(), name, JobStatus::Completed, now - 1_000, 10).to_string(),
        );
        // UUIDv7 ids order by millisecond.
        std::thread::sleep(Duration::from_millis(2));
    }
    expected.reverse();
    let addr = serve(&ws, Duration::from_secs(900)).await;

    let mut seen = Vec::new();
    let mut next = Some("/api/jobs?limit=3".to_string());
    while let Some(path) = next.take() {
        let reply = get(addr, &path, &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        for job in reply.json().as_array().unwrap() {
            seen.push(job["id"].as_str().unwrap().to_string());
        }
        // A job created between pages is newer than every cursor: it never shifts a page.
        record_job(store.as_ref(), "late", JobStatus::Completed, now, 10);
        next = reply.link.map(|link| {
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            link.trim_start_matches('<')
                .trim_end_matches(">; rel=\"next\"")
                .to_string()
        });
    }
    assert_eq!(seen, expected);

    let nightly = get(
        addr,
        "/api/jobs?name=nightly&status=completed&limit=10",
        &[],
    )
    .await;
    assert_eq!(nightly.json().as_array().unwrap().len(), 4);
    assert_eq!(nightly.link, None, "a page that is not full has no next");
    for (query, message) in [
        ("limit=0", "limit must be between 1 and 1000"),
        ("status=done", "unknown job status `done`"),
        ("since=yesterday", "since: `yesterday` is not a duration"),
        ("before=xyz", "before: `xyz` is not a job id"),
    ] {
        let reply = get(addr, &format!("/api/jobs?{query}"), &[]).await;
        assert_eq!(reply.status, 400, "{query}");
        assert!(
            reply.json()["error"].as_str().unwrap().contains(message),
            "{query}: {}",
            reply.body
        );
    }
}

/// The series a scrape returns, without comments.
fn series(body: &str) -> Vec<&str> {
    body.lines().filter(|l| !l.starts_with('#')).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_do_not_grow_with_finished_jobs_past_the_retention() {
    let ws = Workspace::new();
    let store = new_store(&ws);
    let now = now_ms();
    let long_ago = now - 2 * HOUR_MS;
    for n in 0..50 {
        let name = if n % 2 == 0 { "nightly" } else { "eval" };
        record_job(store.as_ref(), name, JobStatus::Completed, long_ago, 90_000);
    }
    let recent = record_job(store.as_ref(), "nightly", JobStatus::Failed, now, 20_000);
    let addr = serve(&ws, Duration::from_secs(15 * 60)).await;

    let first = get(addr, "/metrics", &[]).await;
    assert_eq!(first.status, 200);
    let lines = series(&first.body).len();
    // Only the recent job has series of its own.
    assert!(
        first.body.contains(&format!("job=\"{recent}\"")),
        "{}",
        first.body
    );
    assert_eq!(
        first.body.matches("mmm_job_percent{").count(),
        1,
        "{}",
        first.body
    );
    // By name: every job counted, the finished ones' running time as a histogram.
    for expected in [
        "mmm_name_jobs{name=\"nightly\",status=\"completed\"} 25",
        "mmm_name_jobs{name=\"nightly\",status=\"failed\"} 1",
        "mmm_name_jobs{name=\"eval\",status=\"completed\"} 25",
        "mmm_jobs{status=\"completed\"} 50",
        "mmm_name_job_duration_seconds_count{name=\"nightly\"} 26",
        "mmm_name_job_duration_seconds_bucket{le=\"60.0\",name=\"nightly\"} 1",
        "mmm_name_job_duration_seconds_bucket{le=\"300.0\",name=\"nightly\"} 26",
        "mmm_name_job_duration_seconds_sum{name=\"eval\"} 2250.0",
    ] {
        assert!(
            first.body.contains(expected),
            "{expected} missing:\n{}",
            first.body
        );
    }

    // A thousand more finished jobs of the same names: not one series more.
    for n in 0..1_000 {
        let name = if n % 2 == 0 { "nightly" } else { "eval" };
        record_job(store.as_ref(), name, JobStatus::Completed, long_ago, 90_000);
    }
    let second = get(addr, "/metrics", &[]).await;
    assert_eq!(series(&second.body).len(), lines, "{}", second.body);
    assert!(
        second
            .body
            .contains("mmm_name_jobs{name=\"eval\",status=\"completed\"} 525")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_a_page_of_jobs_and_filters_them_in_chromium() {
    let ws = Workspace::new();
    let store = new_store(&ws);
    let now = now_ms();
    let mut evals = Vec::new();
    for n in 0..230 {
        if n % 50 == 0 {
            evals.push(record_job(
                store.as_ref(),
                &format!("eval-{n}"),
                JobStatus::Failed,
                now,
                10,
            ));
        } else {
            record_job(
                store.as_ref(),
                &format!("nightly-{n}"),
                JobStatus::Completed,
                now,
                10,
            );
        }
    }
    let addr = serve(&ws, Duration::from_secs(900)).await;
    let (_driver, client, _profile) = browser().await;
    client.goto(&format!("http://{addr}/")).await.unwrap();
    let rows = || async {
        client
            .execute(
                "return document.querySelectorAll('#jobs-body tr').length",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap()
    };
    let within = Duration::from_secs(10);
    wait_text(&client, "#jobs-shown", within, "a first page", |t| {
        t.contains("the newest 200 shown")
    })
    .await;
    assert_eq!(rows().await, 200);
    click(&client, "#jobs-more-button", within).await;
    wait_text(&client, "#jobs-body", within, "every job", |t| {
        t.contains(&evals[0].short())
    })
    .await;
    assert_eq!(rows().await, 230);

    // A part of the name filters in the store; so does a status.
    let name = client
        .find(fantoccini::Locator::Css("#jobs-name"))
        .await
        .unwrap();
    name.send_keys("eval").await.unwrap();
    let deadline = std::time::Instant::now() + within;
    while rows().await != 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the name filter did not apply"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = wait_text(&client, "#jobs-body", within, "the eval jobs", |t| {
        t.contains("eval-0")
    })
    .await;
    assert!(!shown.contains("nightly"), "{shown}");
    name.clear().await.unwrap();
    client
        .execute(
            "const s = document.getElementById('jobs-status'); s.value = 'failed'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + within;
    while rows().await != 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the status filter did not apply"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_a_real_prometheus_scrapes_them() {
    let installed = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok()
    };
    assert!(
        installed("promtool") && installed("prometheus"),
        "promtool and prometheus are not installed: apt-get install -y prometheus \
         (./scripts/test installs it)"
    );
    let ws = Workspace::new();
    let store = new_store(&ws);
    let now = now_ms();
    record_job(store.as_ref(), "nightly", JobStatus::Completed, now, 65_000);
    record_job(
        store.as_ref(),
        "nightly",
        JobStatus::Failed,
        now - 2 * HOUR_MS,
        5_000,
    );
    let addr = serve(&ws, Duration::from_secs(900)).await;

    let body = get(addr, "/metrics", &[]).await.body;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let check = promtool.wait_with_output().unwrap();
    assert!(
        check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
        "promtool: {check:?}\n{body}"
    );

    // A real Prometheus scraping the server every second.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ws.write(
        "prometheus.yml",
        &format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: mmm\n    static_configs: [{{targets: ['{addr}']}}]\n"
        ),
    );
    let _prometheus = Killed(
        std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                ws.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", ws.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    let client = reqwest::Client::new();
    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=mmm_name_jobs%7Bname%3D%22nightly%22%2Cstatus%3D%22failed%22%7D"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let value = loop {
        let answer = match client.get(&query).send().await {
            Ok(reply) => match reply.text().await {
                Ok(text) => serde_json::from_str::<serde_json::Value>(&text).ok(),
                Err(_) => None,
            },
            Err(_) => None,
        };
        let value = answer.as_ref().and_then(|a| {
            a["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_string)
        });
        if let Some(value) = value {
            break value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus did not scrape mmm_name_jobs within 30 s: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(value, "1");
}

/// Runs a job file named `name` through the binary over `items` (one per line): the items
/// other than `bad` complete, `bad` ones are dead-lettered.
fn run_named_job(ws: &Workspace, name: &str, items: &[&str]) {
    ws.write(&format!("{name}.txt"), &format!("{}\n", items.join("\n")));
    ws.write(
        &format!("{name}.yml"),
        &format!(
            "name: {name}\nmap:\n  input: {name}.txt\n  max_parallel: 2\n  retries: 0\n  steps:\n    - name: work\n      shell: 'sleep 0.02; test ${{item}} != bad'\n"
        ),
    );
    let run = ws.run(&["run", &format!("{name}.yml")]);
    let expected = if items.contains(&"bad") { 3 } else { 0 };
    run.code_is(expected);
}

/// `/metrics` from a server, once no job has series of its own any more (the retention
/// passed for every job), within 30 s.
fn scrape_without_job_series(addr: SocketAddr, expect: &str) -> String {
    let mut body = String::new();
    crate::harness::wait_until(
        Duration::from_secs(30),
        "the jobs' own series to go and the totals to show",
        || {
            let scraped = std::process::Command::new("curl")
                .args(["-fs", &format!("http://{addr}/metrics")])
                .output()
                .expect("curl runs");
            body = String::from_utf8_lossy(&scraped.stdout).into_owned();
            !body.contains("job=\"") && body.contains(expect)
        },
    );
    body
}

/// `promtool check metrics` finds nothing to say about `body`.
fn promtool_accepts(body: &str) {
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts (apt-get install -y prometheus; ./scripts/test installs it)");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let check = promtool.wait_with_output().unwrap();
    assert!(
        check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
        "promtool: {check:?}\n{body}"
    );
}

/// Issue 21: past the retention, the items of jobs run by the binary are totalled by name
/// (by status, and their durations as a histogram), and more jobs of the same names add no
/// series.
#[test]
fn metrics_total_the_items_of_jobs_past_the_retention_by_name() {
    let ws = Workspace::new();
    run_named_job(&ws, "alpha", &["1", "2", "bad"]);
    run_named_job(&ws, "beta", &["1", "2"]);
    let (_server, addr) =
        crate::web::serve_binary(&ws, &["serve", "--port", "0", "--metrics-retention", "1s"]);
    let first = scrape_without_job_series(
        addr,
        "mmm_name_item_duration_seconds_count{name=\"beta\"} 2",
    );
    for expected in [
        "mmm_name_items{name=\"alpha\",status=\"completed\"} 2",
        "mmm_name_items{name=\"alpha\",status=\"dead_lettered\"} 1",
        "mmm_name_items{name=\"alpha\",status=\"pending\"} 0",
        "mmm_name_items{name=\"beta\",status=\"completed\"} 2",
        "mmm_name_items{name=\"beta\",status=\"dead_lettered\"} 0",
        // Every item that ended is counted: completed and dead-lettered.
        "mmm_name_item_duration_seconds_count{name=\"alpha\"} 3",
        "mmm_name_item_duration_seconds_bucket{le=\"+Inf\",name=\"alpha\"} 3",
        "mmm_name_item_duration_seconds_bucket{le=\"3600.0\",name=\"beta\"} 2",
        // Each took at least the 20 ms it slept.
        "mmm_name_item_duration_seconds_bucket{le=\"0.01\",name=\"beta\"} 0",
    ] {
        assert!(first.contains(expected), "{expected} missing:\n{first}");
    }
    promtool_accepts(&first);
    let lines = series(&first).len();

    // Two more jobs of the same names: their figures add up, and not one series more.
    run_named_job(&ws, "alpha", &["3", "bad", "bad"]);
    run_named_job(&ws, "beta", &["3"]);
    let second = scrape_without_job_series(
        addr,
        "mmm_name_item_duration_seconds_count{name=\"beta\"} 3",
    );
    for expected in [
        "mmm_name_items{name=\"alpha\",status=\"completed\"} 3",
        "mmm_name_items{name=\"alpha\",status=\"dead_lettered\"} 3",
        "mmm_name_items{name=\"beta\",status=\"completed\"} 3",
        "mmm_name_item_duration_seconds_count{name=\"alpha\"} 6",
        "mmm_name_jobs{name=\"alpha\",status=\"completed_with_failures\"} 2",
    ] {
        assert!(second.contains(expected), "{expected} missing:\n{second}");
    }
    assert_eq!(series(&second).len(), lines, "{second}");
    promtool_accepts(&second);
}
