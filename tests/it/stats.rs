//! `mmm stats` end to end (issue 22): a store holding jobs of several names and statuses,
//! with retries, dead letters and deadlines, recorded through the store at chosen times; the
//! test works out the counts, rates and percentiles on its own and checks the command's
//! `--json` (against docs/stats.schema.json), its text, and which jobs each period takes.

use serde_json::Value;

use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, now_ms};
use mmm_store::{NewItem, NewJob, StepRecord, Store, Write};

use crate::harness::Workspace;

const MINUTE: i64 = 60_000;

/// One job to record: its items, each a list of attempts `(succeeded, fetch_us, score_us)`.
struct Recorded {
    name: &'static str,
    created_at: i64,
    /// The final status and the running time; `None` leaves it running.
    end: Option<(JobStatus, i64)>,
    deadline: Option<String>,
    items: Vec<Vec<(bool, u64, u64)>>,
}

fn record(store: &dyn Store, job: &Recorded) -> JobId {
    let id = JobId::new();
    let spec = match &job.deadline {
        Some(deadline) => format!(r#"{{"name":"{}","deadline":{deadline}}}"#, job.name),
        None => format!(r#"{{"name":"{}"}}"#, job.name),
    };
    let new = NewJob {
        id,
        name: job.name.to_string(),
        spec,
        spec_hash: "0".into(),
        source: None,
        max_parallel: 2,
        created_at: job.created_at,
        owner_pid: 1,
        owner_host: "elsewhere".into(),
        origin: None,
    };
    let items: Vec<NewItem> = (0..job.items.len())
        .map(|i| NewItem {
            key: format!("k{i}"),
            value: format!("{i}"),
        })
        .collect();
    store.create_job(&new, &items).unwrap();
    let mut writes = vec![Write::JobStatus {
        job: id,
        status: JobStatus::Running,
        at: job.created_at,
    }];
    let mut at = job.created_at + 1;
    for (index, attempts) in job.items.iter().enumerate() {
        for (n, &(ok, fetch, score)) in attempts.iter().enumerate() {
            let last = n + 1 == attempts.len();
            writes.push(Write::AttemptStarted {
                job: id,
                item_index: index as u64,
                number: n as u32 + 1,
                agent: "agent-1".into(),
                at,
            });
            let mut steps = vec![StepRecord {
                name: "fetch".into(),
                skipped: false,
                duration_us: fetch,
                exit_code: Some(0),
            }];
            // A failed attempt fails at `score`.
            steps.push(StepRecord {
                name: "score".into(),
                skipped: false,
                duration_us: score,
                exit_code: Some(if ok { 0 } else { 1 }),
            });
            writes.push(Write::AttemptFinished {
                job: id,
                item_index: index as u64,
                number: n as u32 + 1,
                ended_at: at,
                duration_us: fetch + score,
                outcome: if ok {
                    AttemptOutcome::Succeeded
                } else {
                    AttemptOutcome::Failed
                },
                exit_code: Some(if ok { 0 } else { 1 }),
                error: None,
                steps,
                stdout_tail: String::new(),
                stderr_tail: String::new(),
                item_status: match (ok, last) {
                    (true, _) => ItemStatus::Completed,
                    (false, true) => ItemStatus::DeadLettered,
                    (false, false) => ItemStatus::Failed,
                },
                counts_against_retries: true,
            });
            at += 1;
        }
    }
    if let Some((status, ran_ms)) = job.end {
        writes.push(Write::Heartbeat {
            job: id,
            at: job.created_at + ran_ms,
            duration_ms: ran_ms,
        });
        writes.push(Write::JobStatus {
            job: id,
            status,
            at: job.created_at + ran_ms,
        });
    }
    store.apply(&writes).unwrap();
    id
}

/// Item durations that look measured: a deterministic spread over 1 ms .. 2 s.
fn spread(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    1_000 + (*seed >> 33) % 2_000_000
}

/// `count` items of `nightly`: the first fails once then succeeds; with `dead_letter` the
/// last fails twice.
fn nightly_items(seed: &mut u64, count: usize, dead_letter: bool) -> Vec<Vec<(bool, u64, u64)>> {
    (0..count)
        .map(|i| {
            if i == 0 {
                vec![
                    (false, spread(seed), spread(seed)),
                    (true, spread(seed), spread(seed)),
                ]
            } else if dead_letter && i + 1 == count {
                vec![
                    (false, spread(seed), spread(seed)),
                    (false, spread(seed), spread(seed)),
                ]
            } else {
                vec![(true, spread(seed), spread(seed))]
            }
        })
        .collect()
}

/// Nearest rank: the smallest value with at least `ceil(q n)` values at or below it.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
}

fn close(got: &Value, want: f64, tolerance: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!(
        (got - want).abs() <= want.abs() * tolerance + 1e-9,
        "{what}: {got} vs {want}"
    );
}

fn validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/stats.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the schema is committed"))
            .expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

fn stats_json(ws: &Workspace, args: &[&str]) -> Value {
    let mut all = vec!["stats", "--json"];
    all.extend_from_slice(args);
    let value = ws.json(&all);
    let errors: Vec<String> = validator()
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\nin {value:#}");
    value
}

fn name<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["names"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {stats:#}"))
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64),
    )
    .to_string()
}

#[test]
fn stats_count_rate_and_rank_the_jobs_of_a_period() {
    let ws = Workspace::new();
    let store = mmm_store::open(ws.join(".mmm").to_str().unwrap(), true).unwrap();
    let now = now_ms();
    let mut seed = 22;
    // nightly, in the last hour: three completed, one failed with a dead letter.
    let current: Vec<Recorded> = [
        (50, JobStatus::Completed, 60_000, false),
        (40, JobStatus::Completed, 120_000, false),
        (30, JobStatus::Completed, 90_000, false),
        (20, JobStatus::Failed, 30_000, true),
    ]
    .into_iter()
    .map(|(ago, status, ran, dead)| Recorded {
        name: "nightly",
        created_at: now - ago * MINUTE,
        end: Some((status, ran)),
        deadline: None,
        items: nightly_items(&mut seed, 5, dead),
    })
    .collect();
    for job in &current {
        record(store.as_ref(), job);
    }
    // nightly, the hour before: two completed; and one three hours ago, in neither.
    for ago in [90, 100, 180] {
        record(
            store.as_ref(),
            &Recorded {
                name: "nightly",
                created_at: now - ago * MINUTE,
                end: Some((JobStatus::Completed, 10_000)),
                deadline: None,
                items: nightly_items(&mut seed, 2, false),
            },
        );
    }
    // weekly with deadlines: missed by 10 minutes, met with 55 to spare, still open.
    let one = |fetch| vec![vec![(true, fetch, 1_000)]];
    for (ago, end, deadline) in [
        (
            40,
            Some((JobStatus::Completed, 20 * MINUTE)),
            r#"{"after":"10m"}"#.to_string(),
        ),
        (
            30,
            Some((JobStatus::Completed, 5 * MINUTE)),
            r#"{"after":"1h"}"#.to_string(),
        ),
        (10, None, format!(r#"{{"at":{}}}"#, now + 60 * MINUTE)),
    ] {
        record(
            store.as_ref(),
            &Recorded {
                name: "weekly",
                created_at: now - ago * MINUTE,
                end,
                deadline: Some(deadline),
                items: one(5_000),
            },
        );
    }

    let stats = stats_json(&ws, &["--since", "1h"]);
    let names: Vec<&str> = stats["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nightly", "weekly"]);
    let nightly = name(&stats, "nightly");
    assert_eq!(nightly["runs"], 4);
    assert_eq!(nightly["by_status"]["completed"], 3);
    assert_eq!(nightly["by_status"]["failed"], 1);
    assert_eq!(nightly["finished"], 4);
    close(&nightly["success_rate"], 0.75, 0.0, "success rate");

    // Items, worked out from what was recorded.
    let items: Vec<&Vec<(bool, u64, u64)>> = current.iter().flat_map(|j| &j.items).collect();
    let completed = items.iter().filter(|a| a.last().unwrap().0).count() as u64;
    let dead = items.len() as u64 - completed;
    let attempts: u64 = items.iter().map(|a| a.len() as u64).sum();
    let failed: u64 = items.iter().flat_map(|a| a.iter()).filter(|a| !a.0).count() as u64;
    assert_eq!(nightly["items"]["total"], 20);
    assert_eq!(nightly["items"]["completed"], completed);
    assert_eq!(nightly["items"]["dead_lettered"], dead);
    assert_eq!(nightly["items"]["processed"], 20);
    assert_eq!(nightly["items"]["attempts"], attempts);
    assert_eq!(nightly["items"]["failed_attempts"], failed);
    assert_eq!(nightly["items"]["retries"], failed - dead);
    close(
        &nightly["items"]["dlq_rate"],
        dead as f64 / 20.0,
        1e-9,
        "DLQ rate",
    );
    close(
        &nightly["items"]["throughput_per_s"],
        20.0 / 300.0,
        1e-9,
        "throughput over 300 s of running time",
    );

    // Job durations are exact; item and step durations within the buckets' 0.5%.
    let mut job_ms = vec![60_000.0, 120_000.0, 90_000.0, 30_000.0];
    job_ms.sort_by(f64::total_cmp);
    for (key, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        close(
            &nightly["job_duration"][key],
            nearest_rank(&job_ms, q),
            0.0,
            key,
        );
    }
    let mut item_ms: Vec<f64> = items
        .iter()
        .map(|a| a.iter().map(|(_, f, s)| (f + s) as f64 / 1_000.0).sum())
        .collect();
    item_ms.sort_by(f64::total_cmp);
    assert_eq!(nightly["item_duration"]["count"], 20);
    for (key, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        close(
            &nightly["item_duration"][key],
            nearest_rank(&item_ms, q),
            0.005,
            key,
        );
    }
    let steps = nightly["steps"].as_array().unwrap();
    assert_eq!(steps[0]["name"], "fetch");
    assert_eq!(steps[1]["name"], "score");
    let mut score_ms: Vec<f64> = items
        .iter()
        .flat_map(|a| a.iter().map(|(_, _, s)| *s as f64 / 1_000.0))
        .collect();
    score_ms.sort_by(f64::total_cmp);
    assert_eq!(steps[1]["ran"], attempts);
    assert_eq!(steps[1]["failed"], failed);
    assert_eq!(steps[1]["retries"], failed - dead);
    assert_eq!(steps[1]["dead_lettered"], dead);
    assert_eq!(steps[0]["failed"], 0);
    close(&steps[1]["skip_rate"], 0.0, 0.0, "skip rate");
    close(
        &steps[1]["duration"]["p95_ms"],
        nearest_rank(&score_ms, 0.95),
        0.005,
        "score p95",
    );

    // Against the hour before: two runs, both completed.
    assert_eq!(nightly["previous"]["runs"], 2);
    close(
        &nightly["previous"]["success_rate"],
        1.0,
        0.0,
        "previous success rate",
    );
    close(
        &nightly["previous"]["job_p95_ms"],
        10_000.0,
        0.0,
        "previous job p95",
    );

    let weekly = name(&stats, "weekly");
    assert_eq!(weekly["previous"], Value::Null);
    let deadline = &weekly["deadline"];
    assert_eq!(deadline["jobs"], 3);
    assert_eq!(
        (
            deadline["met"].clone(),
            deadline["missed"].clone(),
            deadline["open"].clone()
        ),
        (1.into(), 1.into(), 1.into())
    );
    close(&deadline["compliance"], 0.5, 0.0, "compliance");
    close(
        &deadline["late"]["p50_ms"],
        10.0 * MINUTE as f64,
        0.0,
        "late by",
    );
    close(
        &deadline["margin"]["p50_ms"],
        55.0 * MINUTE as f64,
        0.0,
        "margin",
    );
    assert_eq!(nightly["deadline"], Value::Null);

    // The name filter, and an explicit period that holds only the job of three hours ago.
    let weekly_only = stats_json(&ws, &["--since", "1h", "--name", "week*"]);
    assert_eq!(weekly_only["names"].as_array().unwrap().len(), 1);
    let old = stats_json(
        &ws,
        &[
            "--from",
            &rfc3339(now - 4 * 60 * MINUTE),
            "--to",
            &rfc3339(now - 2 * 60 * MINUTE),
        ],
    );
    let [only] = old["names"].as_array().unwrap().as_slice() else {
        panic!("one name: {old:#}")
    };
    assert_eq!(
        (only["name"].clone(), only["runs"].clone()),
        ("nightly".into(), 1.into())
    );
    assert_eq!(only["items"]["total"], 2);

    // The same figures as text.
    let text = ws.run(&["stats", "--since", "1h"]);
    let out = text.success().stdout();
    assert!(
        out.contains("nightly: 4 runs (completed 3, failed 1)"),
        "{out}"
    );
    assert!(out.contains("success rate   75.0% (was 100.0%)"), "{out}");
    assert!(
        out.contains("1 met, 1 missed, 1 open; compliance 50.0%"),
        "{out}"
    );
}

#[test]
fn stats_refuse_an_empty_or_doubly_given_period() {
    let ws = Workspace::new();
    let run = ws.run(&["stats", "--from", "2026-12-02", "--to", "2026-12-01"]);
    run.code_is(2);
    assert!(
        run.stderr().contains("the period is empty"),
        "{}",
        run.stderr()
    );
    ws.run(&["stats", "--since", "1h", "--from", "2026-12-01"])
        .code_is(2);
    let run = ws.run(&["stats", "--from", "yesterday"]);
    run.code_is(2);
    assert!(run.stderr().contains("is not a time"), "{}", run.stderr());
    // No store yet: no job in the period, said plainly.
    let run = ws.run(&["stats"]);
    assert!(
        run.success()
            .stdout()
            .contains("no job was created in the period")
    );
}

/// nightly: three completed runs and a failed one in the last hour (running 1, 2, 1.5 and
/// 0.5 minutes), and one completed the hour before.
fn nightly_history(store: &dyn Store, now: i64) {
    let mut seed = 7;
    for (ago, status, ran) in [
        (50, JobStatus::Completed, 60_000),
        (40, JobStatus::Completed, 120_000),
        (30, JobStatus::Completed, 90_000),
        (20, JobStatus::Failed, 30_000),
        (90, JobStatus::Completed, 45_000),
    ] {
        record(
            store,
            &Recorded {
                name: "nightly",
                created_at: now - ago * MINUTE,
                end: Some((status, ran)),
                deadline: None,
                items: nightly_items(&mut seed, 3, status == JobStatus::Failed),
            },
        );
    }
}

async fn serve(ws: &Workspace) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = mmm_web::AppState::new(ws.store(), None);
    tokio::spawn(mmm_web::serve(listener, state, std::future::pending()));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_api_serves_what_mmm_stats_prints() {
    let ws = Workspace::new();
    let store = mmm_store::open(ws.join(".mmm").to_str().unwrap(), true).unwrap();
    nightly_history(store.as_ref(), now_ms());
    let addr = serve(&ws).await;
    let reply = crate::web::get(addr, "/api/stats?since=1h", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let served = reply.json();
    assert!(validator().is_valid(&served), "{served:#}");
    let printed = stats_json(&ws, &["--since", "1h"]);
    for stats in [&served, &printed] {
        let nightly = name(stats, "nightly");
        assert_eq!(nightly["runs"], 4);
        close(&nightly["success_rate"], 0.75, 0.0, "success rate");
        close(
            &nightly["job_duration"]["p95_ms"],
            120_000.0,
            0.0,
            "job p95",
        );
        close(&nightly["previous"]["success_rate"], 1.0, 0.0, "previous");
    }
    assert_eq!(
        name(&served, "nightly")["item_duration"],
        name(&printed, "nightly")["item_duration"]
    );
    for (query, message) in [
        ("since=soon", "since: `soon` is not a duration"),
        ("from=10&to=5", "the period is empty"),
        ("since=1h&from=5", "not both"),
        ("to=5", "to needs from"),
    ] {
        let reply = crate::web::get(addr, &format!("/api/stats?{query}"), &[]).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert!(reply.body.contains(message), "{query}: {}", reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_page_shows_success_rate_and_p95_per_name() {
    let ws = Workspace::new();
    let store = mmm_store::open(ws.join(".mmm").to_str().unwrap(), true).unwrap();
    nightly_history(store.as_ref(), now_ms());
    let addr = serve(&ws).await;
    let (_driver, client, _profile) = crate::web::browser().await;
    client
        .goto(&format!("http://{addr}/#/overview"))
        .await
        .unwrap();
    let within = std::time::Duration::from_secs(10);
    let row = "#overview-body tr[data-name='nightly']";
    // The last 7 days by default: all five runs, four of them completed.
    let success = crate::web::wait_text(
        &client,
        &format!("{row} .ov-success"),
        within,
        "the success rate",
        |t| !t.is_empty(),
    )
    .await;
    assert_eq!(success, "80.0%");
    let p95 = crate::web::text_of(&client, &format!("{row} .ov-job-p95")).await;
    assert_eq!(p95.as_deref(), Some("2m 0s"));
    assert_eq!(
        crate::web::text_of(&client, &format!("{row} .ov-runs"))
            .await
            .as_deref(),
        Some("5")
    );
    // The last 24 hours hold the same runs; a name glob that matches none empties the table.
    let name = client
        .find(fantoccini::Locator::Css("#overview-name"))
        .await
        .unwrap();
    name.send_keys("weekly*").await.unwrap();
    crate::web::wait_text(&client, "#overview-empty", within, "no name", |t| {
        t.contains("No job was created")
    })
    .await;
    let shown: bool = client
        .execute(
            "return !document.getElementById('overview-empty').hidden",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap();
    assert!(shown);
}
