//! Issue 23, work that calls paid, rate-limited APIs (docs/api-work.md): a start rate held
//! across agents and, on PostgreSQL, across a coordinator and a worker; budgets on counters
//! that pause a job resumably until `mmm budget` raises them.

use std::time::Duration;

use mmm_core::counter::CounterValue;
use mmm_core::job::{JobId, JobStatus};
use mmm_store::AttemptRecord;

use crate::harness::{Killed, Workspace, wait_until};
use crate::postgres::{Schema, skipped};

/// Starts per second over the attempts' start times (first to last).
fn start_rate(starts: &[i64]) -> f64 {
    let mut starts = starts.to_vec();
    starts.sort_unstable();
    let span = (starts[starts.len() - 1] - starts[0]) as f64 / 1000.0;
    (starts.len() - 1) as f64 / span
}

fn starts(attempts: &[AttemptRecord]) -> Vec<i64> {
    attempts.iter().map(|a| a.started_at).collect()
}

#[test]
fn a_start_rate_of_10_per_second_holds_across_8_agents() {
    let ws = Workspace::new();
    let items: String = (1..=50).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 8\n  rate: 10/s\n  steps:\n    - shell: \"true\"\n",
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let job = ws.only_job();
    assert_eq!(job.counts.completed, 50);
    let attempts = ws.attempts(job.id);
    assert_eq!(attempts.len(), 50);
    let rate = start_rate(&starts(&attempts));
    assert!(
        (9.0..=11.0).contains(&rate),
        "50 starts at 10/s +-10%, measured {rate:.2}/s"
    );
    // The plan records the rate (`mmm validate` shows it).
    let shown = ws.run(&["validate", "job.yml"]);
    assert!(shown.stdout().contains("10/s"), "{}", shown.stdout());
}

#[test]
fn the_rate_flag_and_delay_are_start_rates_too() {
    // 11 items over 4 agents: 10 spaces between starts.
    let items: Vec<String> = (1..=11).map(|n| n.to_string()).collect();
    for (flag, value, rates) in [
        ("--rate", "20/s", 18.0..=22.0),
        ("--delay", "0.1", 9.0..=11.0),
    ] {
        let ws = Workspace::new();
        let mut args = vec![
            "run",
            "-j",
            "4",
            flag,
            value,
            "--progress",
            "none",
            "--",
            "true",
            ":::",
        ];
        args.extend(items.iter().map(String::as_str));
        ws.run(&args).success();
        let job = ws.only_job();
        let rate = start_rate(&starts(&ws.attempts(job.id)));
        assert!(rates.contains(&rate), "{flag} {value}: {rate:.2}/s");
    }
}

#[test]
fn a_bad_rate_is_refused_with_its_place() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  rate: 10/day\n  steps:\n    - shell: \"true\"\n",
    );
    let run = ws.run(&["run", "job.yml"]);
    run.code_is(2);
    assert!(
        run.stderr().contains("job.yml:3:9: `map.rate` must be"),
        "{}",
        run.stderr()
    );
    let run = ws.run(&["run", "--rate", "fast", "--", "true", ":::", "a"]);
    run.code_is(2);
    assert!(
        run.stderr().contains("`fast` is not a start rate"),
        "{}",
        run.stderr()
    );
    assert!(!ws.has_store() || ws.jobs_so_far().is_empty());
}

/// Writes `job.yml` over `items` items: `agents` agents, a budget of `max` on `counter`, and
/// one step that reports `cost` of it and then sleeps `sleep` (seconds, as `sleep` takes them).
fn budget_job(
    ws: &Workspace,
    items: usize,
    agents: u32,
    counter: &str,
    max: f64,
    cost: f64,
    sleep: &str,
) {
    let lines: String = (1..=items).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &lines);
    ws.write(
        "job.yml",
        &format!(
            "map:\n  input: items.txt\n  max_parallel: {agents}\n  budget: {{counter: {counter}, max: {max}}}\n  steps:\n    - shell: \"'{}' report --counter {counter}=+{cost} && sleep {sleep}\"\n",
            env!("CARGO_BIN_EXE_mmm")
        ),
    );
}

/// Waits (at most `within`) until the only job of `ws`'s store is paused by its budget (the
/// budget marked reached) and `also` holds of it; returns the job.
fn paused_by_budget(
    ws: &Workspace,
    within: Duration,
    mut also: impl FnMut(&dyn mmm_store::Store, JobId) -> bool,
) -> JobId {
    let mut job = None;
    wait_until(within, "the budget to pause the job", || {
        let Ok(store) = mmm_store::open(&ws.database().to_string_lossy(), false) else {
            return false;
        };
        job = store
            .jobs()
            .ok()
            .and_then(|j| j.into_iter().next())
            .map(|j| j.id);
        job.is_some_and(|id| {
            store.control_state(id).is_ok_and(|c| c.paused.is_some())
                && store
                    .budgets(id)
                    .is_ok_and(|b| b.iter().any(|b| b.reached.is_some()))
                && also(store.as_ref(), id)
        })
    });
    job.unwrap()
}

#[test]
fn a_coordinator_and_a_worker_share_one_start_rate() {
    if skipped("a_coordinator_and_a_worker_share_one_start_rate") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=60).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 4\n  rate: 8/s\n  steps:\n    - shell: sleep 0.3\n",
    );
    let mut coordinator = ws.spawn_logged(
        &["run", "job.yml", "--progress", "none", "--store", &url],
        "coordinator.log",
    );
    let job = crate::postgres::map_started(&url);
    let id = job.to_string();
    let mut worker = ws.spawn_logged(
        &[
            "worker",
            "--store",
            &url,
            "--job",
            &id,
            "-j",
            "4",
            "--name",
            "w",
            "--exit-when-idle",
        ],
        "worker.log",
    );
    for (child, what) in [(&mut coordinator, "coordinator"), (&mut worker, "worker")] {
        let mut status = None;
        wait_until(Duration::from_secs(60), what, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        assert_eq!(
            status.unwrap().code(),
            Some(0),
            "{what}: {}",
            ws.read(&format!("{what}.log"))
        );
    }
    let record = schema.only_job();
    assert_eq!(record.status, JobStatus::Completed);
    let attempts = schema.store().attempts(job, None).unwrap();
    let by_worker: Vec<i64> = attempts
        .iter()
        .filter(|a| a.agent.starts_with("w/"))
        .map(|a| a.started_at)
        .collect();
    assert!(
        by_worker.len() >= 5,
        "the worker ran items: {}",
        by_worker.len()
    );
    // While both ran, starts kept to the one rate: 8/s, not 8/s each.
    let joined = *by_worker.iter().min().unwrap();
    let both: Vec<i64> = starts(&attempts)
        .into_iter()
        .filter(|at| *at >= joined)
        .collect();
    let rate = start_rate(&both);
    assert!(
        (7.2..=8.8).contains(&rate),
        "{} starts while both ran at {rate:.2}/s, not 8/s +-10%",
        both.len()
    );
}

#[test]
fn a_budget_pauses_the_job_within_one_item_per_agent_and_mmm_budget_continues_it() {
    let ws = Workspace::new();
    budget_job(&ws, 20, 2, "cost_cents", 50.0, 10.0, "0.2");
    let mut run = Killed(ws.spawn_logged(&["run", "job.yml", "--progress", "none"], "run.log"));
    let job = paused_by_budget(&ws, Duration::from_secs(30), |_, _| true);
    let store = ws.store();
    // The items in flight end; then nothing runs.
    wait_until(
        Duration::from_secs(10),
        "the items in flight to end",
        || {
            store
                .attempts(job, None)
                .is_ok_and(|a| a.iter().all(|a| a.outcome.is_some()))
        },
    );
    let started = store.attempts(job, None).unwrap().len();
    assert!(
        (5..=7).contains(&started),
        "the budget of 50 at 10 per item stops the job after 5 items, plus at most one per \
         agent in flight: {started} started"
    );
    let record = store.job(job).unwrap();
    assert_eq!(record.status, JobStatus::Running);
    let budgets = store.budgets(job).unwrap();
    let reached = budgets[0].reached.unwrap().get();
    assert!((50.0..=70.0).contains(&reached), "reached at {reached}");
    let shown = ws.run(&["budget", &job.to_string()]);
    shown.success();
    assert!(
        shown.stdout().contains("cost_cents:") && shown.stdout().contains("it paused the job"),
        "{}",
        shown.stdout()
    );
    assert_eq!(
        store.attempts(job, None).unwrap().len(),
        started,
        "still paused"
    );

    // Raising it continues the job to its end.
    let raised = ws.run(&["budget", &job.to_string(), "cost_cents=1000"]);
    raised.success();
    assert!(
        raised.stderr().contains("is unpaused"),
        "{}",
        raised.stderr()
    );
    let mut status = None;
    wait_until(Duration::from_secs(30), "the run to end", || {
        status = run.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(0), "{}", ws.read("run.log"));
    let record = store.job(job).unwrap();
    assert_eq!(record.status, JobStatus::Completed);
    assert_eq!(record.counts.completed, 20);
    let kinds: Vec<String> = store
        .events(job, 0, 10_000)
        .unwrap()
        .iter()
        .map(|e| e.event.kind_name().to_string())
        .collect();
    for kind in ["budget_set", "budget_reached", "paused", "unpaused"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

/// A fake API on 127.0.0.1: each request takes 150 ms, and one that arrives while `limit`
/// others are in flight gets `429 Too Many Requests` at once. It notes, for each request, how
/// many were in flight when it arrived and whether it was refused.
struct FakeApi {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(usize, bool)>>>,
}

impl FakeApi {
    fn start(limit: usize) -> FakeApi {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let active = std::sync::Arc::new(AtomicUsize::new(0));
        let noted = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (active, noted) = (active.clone(), noted.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    // The request's head, to its empty line.
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" {
                            break;
                        }
                        line.clear();
                    }
                    let before = active.fetch_add(1, Ordering::SeqCst);
                    let refused = before >= limit;
                    noted.lock().unwrap().push((before, refused));
                    if refused {
                        let _ = stream.write_all(
                            b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    } else {
                        std::thread::sleep(Duration::from_millis(150));
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        );
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FakeApi { port, seen }
    }
}

#[test]
fn throttled_curl_steps_settle_the_concurrency_near_the_apis_limit_without_dead_letters() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("this test needs curl on the PATH (apt-get install curl)");
    }
    const LIMIT: usize = 3;
    let api = FakeApi::start(LIMIT);
    let ws = Workspace::new();
    let items: String = (1..=80).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &items);
    // Odd items say "throttled" by exit code 75, even ones by `mmm report --throttled` with the
    // wait the API would give in Retry-After (and another exit code).
    ws.write(
        "job.yml",
        &format!(
            r#"map:
  input: items.txt
  max_parallel: 12
  retries: 0
  backoff: 200ms
  steps:
    - name: call
      shell: |
        code=$(curl -s -o /dev/null -w '%{{http_code}}' "http://127.0.0.1:{port}/${{item}}")
        case "$code" in
          200) ;;
          429) n=${{item}}; if [ $((n % 2)) -eq 0 ]; then '{mmm}' report --throttled --retry-after 0.2; exit 1; fi; exit 75 ;;
          *) echo "unexpected $code" >&2; exit 1 ;;
        esac
"#,
            port = api.port,
            mmm = env!("CARGO_BIN_EXE_mmm")
        ),
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let job = ws.only_job();
    assert_eq!(job.counts.completed, 80);
    assert_eq!(
        job.counts.dead_lettered, 0,
        "throttling sends nothing to the DLQ"
    );
    let store = ws.store();
    let events = store.events(job.id, 0, 100_000).unwrap();
    let changes: Vec<(u32, u32, bool)> = events
        .iter()
        .filter_map(|e| match &e.event {
            mmm_core::event::Event::ConcurrencyChanged(c) => Some((c.from, c.to, c.throttled)),
            _ => None,
        })
        .collect();
    assert!(
        changes.iter().any(|c| c.2) && changes.iter().any(|c| !c.2),
        "the concurrency went down on throttling and up after success: {changes:?}"
    );
    let throttled = events
        .iter()
        .filter(|e| matches!(&e.event, mmm_core::event::Event::AttemptFailed(f) if f.throttled))
        .count();
    assert!(throttled > 0);
    // Settled: over the second half of the requests, few are refused and the requests in
    // flight stay near the API's limit (12 agents unthrottled would keep ~12 in flight).
    let seen = api.seen.lock().unwrap().clone();
    let late = &seen[seen.len() / 2..];
    let refused = late.iter().filter(|(_, r)| *r).count() as f64 / late.len() as f64;
    let in_flight = late.iter().map(|(n, _)| *n as f64).sum::<f64>() / late.len() as f64;
    eprintln!(
        "{} requests, {throttled} throttled attempts; second half: {:.0}% refused, {in_flight:.2} in flight on average; changes {changes:?}",
        seen.len(),
        refused * 100.0
    );
    assert!(refused < 0.4, "{:.0}% refused late", refused * 100.0);
    assert!(
        (1.0..=LIMIT as f64 + 1.0).contains(&in_flight),
        "{in_flight:.2} in flight on average late, the API allows {LIMIT}"
    );
}

#[test]
fn the_forecast_of_a_uniform_cost_is_within_10_percent_and_over_budget_raises_an_alert() {
    let ws = Workspace::new();
    budget_job(&ws, 40, 2, "cost_cents", 300.0, 10.0, "0.1");
    let mut run = Killed(ws.spawn_logged(&["run", "job.yml", "--progress", "none"], "run.log"));
    // Paused at the budget, with a forecast in the newest snapshot.
    let mut forecast = None;
    let job = paused_by_budget(&ws, Duration::from_secs(30), |store, id| {
        forecast = store.latest_snapshot(id).ok().flatten().and_then(|s| {
            s.payload
                .metrics
                .and_then(|m| m.counters.get("cost_cents").copied())
        });
        forecast.is_some()
    });
    let forecast = forecast.unwrap();
    assert!(
        (360.0..=440.0).contains(&forecast.expected),
        "40 items at 10 each: forecast {forecast:?}"
    );
    assert!((forecast.per_item - 10.0).abs() < 1e-9, "{forecast:?}");
    let store = ws.store();
    let alert = store
        .events(job, 0, 10_000)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.event {
            mmm_core::event::Event::AlertRaised(a) if a.rule == mmm_core::alerts::Rule::Budget => {
                Some(a)
            }
            _ => None,
        });
    let alert = alert.expect("an alert that the forecast is over the budget");
    assert!(
        alert
            .message
            .starts_with("cost_cents is forecast to reach ~"),
        "{}",
        alert.message
    );
    // The JSON of `mmm progress` carries the forecast too.
    let shown = ws.json(&["progress", &job.to_string(), "--json"]);
    assert!(
        shown["snapshot"]["payload"]["metrics"]["counters"]["cost_cents"]["expected"].is_number(),
        "{shown}"
    );
    // /metrics serves the running job's counter: total, per item, per second, forecast.
    let (server, addr) = crate::web::serve_binary(&ws, &["serve", "--port", "0"]);
    let metrics = std::process::Command::new("curl")
        .args(["-s", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl runs");
    drop(server);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let labels = format!("job=\"{job}\",name=\"job\",counter=\"cost_cents\"");
    for series in [
        format!("mmm_job_counter{{{labels}}} "),
        format!("mmm_job_counter_per_item{{{labels}}} 10.0"),
        format!("mmm_job_counter_per_second{{{labels}}} "),
        format!("mmm_job_counter_forecast{{{labels},estimate=\"expected\"}} "),
        format!("mmm_job_counter_forecast{{{labels},estimate=\"p90\"}} "),
    ] {
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    ws.run(&["budget", &job.to_string(), "cost_cents=1000"])
        .success();
    let mut status = None;
    wait_until(Duration::from_secs(30), "the run to end", || {
        status = run.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(0), "{}", ws.read("run.log"));
    let last = store.latest_snapshot(job).unwrap().unwrap().payload;
    assert_eq!(last.counters["cost_cents"], 400.into());
}

#[test]
fn a_job_paused_by_its_budget_survives_sigkill_and_resumes_paused_with_its_counters() {
    let ws = Workspace::new();
    budget_job(&ws, 12, 1, "cost_cents", 30.0, 10.0, "0.3");
    let mut run = ws.spawn_logged(&["run", "job.yml", "--progress", "none"], "run.log");
    // Paused by the budget, with a snapshot that holds the counter's total.
    let job = paused_by_budget(&ws, Duration::from_secs(30), |store, id| {
        store
            .attempts(id, None)
            .is_ok_and(|a| a.iter().all(|a| a.outcome.is_some()))
            // A snapshot since the last item ended: it holds every item's cost.
            && store.job(id).is_ok_and(|j| {
                let spent = CounterValue::from(10 * j.counts.completed as i64);
                store
                    .latest_snapshot(id)
                    .ok()
                    .flatten()
                    .is_some_and(|s| s.payload.counters.get("cost_cents") == Some(&spent))
            })
    });
    crate::harness::kill9(&mut run);
    let store = ws.store();
    let done_before = store.job(job).unwrap().counts.completed;
    assert!(
        (3..=4).contains(&done_before),
        "{done_before} done at a budget of 3 items"
    );

    // The resume comes back paused (the budget still holds) and starts nothing.
    let mut resumed = Killed(ws.spawn_logged(
        &["resume", &job.to_string(), "--progress", "none"],
        "resume.log",
    ));
    wait_until(Duration::from_secs(30), "the resume to run", || {
        store
            .job(job)
            .is_ok_and(|j| j.status == JobStatus::Running && j.owner_pid == Some(resumed.0.id()))
    });
    wait_until(
        Duration::from_secs(10),
        "the resume's first snapshot",
        || {
            store.latest_snapshot(job).ok().flatten().is_some_and(|s| {
                s.payload.counters.get("cost_cents") >= Some(&30.into())
                    && s.payload.progress.is_some()
            })
        },
    );
    // The resume says so on stderr (it may come a moment after the snapshot).
    wait_until(
        Duration::from_secs(10),
        "the resume to say it is paused",
        || ws.read("resume.log").contains("is paused"),
    );
    assert_eq!(store.job(job).unwrap().counts.completed, done_before);

    // Raising the budget goes on to the end, counting the whole job's cost.
    ws.run(&["budget", &job.to_string(), "cost_cents=1000"])
        .success();
    let mut status = None;
    wait_until(Duration::from_secs(30), "the resumed run to end", || {
        status = resumed.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(0), "{}", ws.read("resume.log"));
    let record = store.job(job).unwrap();
    assert_eq!(record.status, JobStatus::Completed);
    let last = store.latest_snapshot(job).unwrap().unwrap().payload;
    assert_eq!(
        last.counters["cost_cents"],
        120.into(),
        "the counter counts the whole job"
    );
}

/// The cost of each item in the dollar tests, as the steps report it.
const ITEM_COST: f64 = 0.0125;

/// The newest snapshot's total of `counter`, if it has one.
fn snapshot_total(store: &dyn mmm_store::Store, job: JobId, counter: &str) -> Option<f64> {
    let snapshot = store.latest_snapshot(job).ok().flatten()?;
    snapshot.payload.counters.get(counter).map(|v| v.get())
}

#[test]
fn a_budget_in_dollars_pauses_at_its_decimal_total_and_mmm_budget_continues_it() {
    let ws = Workspace::new();
    budget_job(&ws, 80, 2, "cost_usd", 0.5, ITEM_COST, "0.1");
    let mut run = Killed(ws.spawn_logged(&["run", "job.yml", "--progress", "none"], "run.log"));
    let job = paused_by_budget(&ws, Duration::from_secs(60), |_, _| true);
    let store = ws.store();
    // The items in flight end, and a snapshot holds every started item's cost.
    let mut started = 0;
    wait_until(
        Duration::from_secs(20),
        "the items in flight to end and a snapshot of their cost",
        || {
            let Ok(attempts) = store.attempts(job, None) else {
                return false;
            };
            started = attempts.len();
            let spent = started as f64 * ITEM_COST;
            attempts.iter().all(|a| a.outcome.is_some())
                && snapshot_total(store.as_ref(), job, "cost_usd")
                    .is_some_and(|total| (total - spent).abs() < 1e-9)
        },
    );
    assert!(
        (40..=42).contains(&started),
        "$0.50 at $0.0125 an item is 40 items, plus at most one per agent in flight: \
         {started} started"
    );
    let reached = store.budgets(job).unwrap()[0].reached.unwrap().get();
    assert!(
        (0.5..=0.5 + 2.0 * ITEM_COST + 1e-9).contains(&reached),
        "reached at {reached}"
    );
    // The forecast of the whole job (80 items at $0.0125: $1) is within 10%.
    let shown = ws.json(&["progress", &job.to_string(), "--json"]);
    let payload = &shown["snapshot"]["payload"];
    let expected = payload["metrics"]["counters"]["cost_usd"]["expected"]
        .as_f64()
        .unwrap_or_else(|| panic!("a forecast in {shown}"));
    assert!(
        (0.9..=1.1).contains(&expected),
        "80 items at $0.0125: forecast {expected}"
    );
    let total = payload["counters"]["cost_usd"].as_f64().unwrap();
    assert!((total - started as f64 * ITEM_COST).abs() < 1e-9, "{total}");
    // `mmm budget` shows the decimals as they are, without float noise.
    let listed = ws.run(&["budget", &job.to_string()]);
    listed.success();
    assert!(
        listed.stdout().starts_with(&format!(
            "cost_usd: {} of 0.5 (",
            started as f64 * ITEM_COST
        )),
        "{}",
        listed.stdout()
    );

    // A budget with decimals continues the job to its end.
    ws.run(&["budget", &job.to_string(), "cost_usd=1.0"])
        .success();
    let mut status = None;
    wait_until(Duration::from_secs(60), "the run to end", || {
        status = run.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(0), "{}", ws.read("run.log"));
    let record = store.job(job).unwrap();
    assert_eq!(
        (record.status, record.counts.completed),
        (JobStatus::Completed, 80)
    );
    let total = snapshot_total(store.as_ref(), job, "cost_usd").unwrap();
    assert!(
        (total - 80.0 * ITEM_COST).abs() < 1e-9,
        "80 items at $0.0125 cost $1: {total}"
    );
}

#[test]
fn a_counter_that_is_not_a_number_is_refused_naming_the_value() {
    let ws = Workspace::new();
    for bad in ["x=+abc", "x=NaN", "x=+inf"] {
        let refused = ws.run(&["report", "--counter", bad]);
        assert_ne!(refused.code(), 0, "{bad} was accepted");
        let value = bad.trim_start_matches("x=");
        assert!(
            refused
                .stderr()
                .contains(&format!("`{value}` is not a number")),
            "{bad}: {}",
            refused.stderr()
        );
    }
    // A decimal is a counter (outside a step it reports nothing, and says nothing).
    ws.run(&["report", "--counter", "cost_usd=+0.0123"])
        .success();
}

#[test]
fn a_budget_on_a_shared_map_counts_the_workers_counters_too() {
    if skipped("a_budget_on_a_shared_map_counts_the_workers_counters_too") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    // Items long enough (1.5 s) that the owner sees the worker's counters (at its next beat,
    // each second) and the worker sees the pause (polled every 200 ms) before any agent could
    // start two items past the budget: 20 items' worth.
    let budget = 20.0 * ITEM_COST;
    budget_job(&ws, 80, 2, "cost_usd", budget, ITEM_COST, "1.5");
    let _coordinator = Killed(ws.spawn_logged(
        &["run", "job.yml", "--progress", "none", "--store", &url],
        "coordinator.log",
    ));
    let store = schema.store();
    let job = crate::postgres::map_started(&url);
    let id = job.to_string();
    let _worker = Killed(ws.spawn_logged(
        &[
            "worker", "--store", &url, "--job", &id, "-j", "2", "--name", "w",
        ],
        "worker.log",
    ));
    wait_until(
        Duration::from_secs(90),
        "the budget to pause the job",
        || {
            store.control_state(job).is_ok_and(|c| c.paused.is_some())
                && store
                    .budgets(job)
                    .is_ok_and(|b| b.iter().any(|b| b.reached.is_some()))
        },
    );
    // Once the items in flight end, the owner's snapshot holds every item's cost: its own
    // and the worker's.
    let mut attempts = Vec::new();
    wait_until(
        Duration::from_secs(30),
        "the items in flight to end and the owner's snapshot to count them all",
        || {
            let Ok(now) = store.attempts(job, None) else {
                return false;
            };
            attempts = now;
            let spent = attempts.len() as f64 * ITEM_COST;
            attempts.iter().all(|a| a.outcome.is_some())
                && snapshot_total(store.as_ref(), job, "cost_usd")
                    .is_some_and(|total| (total - spent).abs() < 1e-9)
        },
    );
    let by_worker = attempts
        .iter()
        .filter(|a| a.agent.starts_with("w/"))
        .count();
    assert!(
        by_worker >= 2,
        "the worker ran (and reported the cost of) some items: {by_worker} of {}\n{}",
        attempts.len(),
        ws.read("worker.log")
    );
    let spent = attempts.len() as f64 * ITEM_COST;
    // Four agents (two each): at most one item each past the budget.
    assert!(
        (budget..=budget + 4.0 * ITEM_COST + 1e-9).contains(&spent),
        "{} items cost {spent} against a budget of {budget}; the worker ran {by_worker}",
        attempts.len()
    );
    let reached = store.budgets(job).unwrap()[0].reached.unwrap().get();
    assert!(
        (budget..=spent + 1e-9).contains(&reached),
        "reached at {reached}, spent {spent}"
    );
}
