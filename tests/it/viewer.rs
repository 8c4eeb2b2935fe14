//! `mmm progress`, `mmm export` and `mmm replay` against jobs run by another process: the JSON
//! against its schema (docs/job-state.schema.json), the summary and the follow lines, the CSV
//! read back with a CSV reader, a replay ending on the final counts, the full-screen viewer
//! in a real terminal (tmux).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Workspace, wait_until};
use crate::tmux::Tmux;

/// A job of `n` items, each sleeping `sleep` seconds, with `-j agents`; item `bad` fails
/// (no retries) so the job ends with one dead-lettered item.
fn job_file(ws: &Workspace, n: usize, sleep: &str, agents: u32) {
    let items: String = (1..=n).map(|i| format!("{i}\n")).collect();
    ws.write("items.txt", &format!("{items}bad\n"));
    ws.write(
        "job.yml",
        &format!(
            "name: viewed\nmap:\n  input: items.txt\n  max_parallel: {agents}\n  retries: 0\n  steps:\n    - name: work\n      shell: 'sleep {sleep}; test ${{item}} != bad'\n"
        ),
    );
}

fn validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/job-state.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the schema is committed"))
            .expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

fn assert_valid(validator: &jsonschema::Validator, state: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(state)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\nin {state:#}");
}

/// Waits for the only job to have a snapshot while its process runs it; returns its short id.
fn wait_for_live_snapshot(ws: &Workspace) -> String {
    wait_until(Duration::from_secs(20), "a running job", || {
        ws.jobs_so_far().len() == 1
    });
    let id = ws.short_id();
    wait_until(Duration::from_secs(20), "a live snapshot", || {
        let run = ws.run(&["progress", &id, "--json"]);
        let state: Value = serde_json::from_str(&run.stdout()).unwrap_or(Value::Null);
        state["live"] == true && !state["snapshot"].is_null()
    });
    id
}

#[test]
fn progress_json_validates_against_the_schema_live_and_finished() {
    let ws = Workspace::new();
    job_file(&ws, 12, "0.3", 3);
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    let id = wait_for_live_snapshot(&ws);
    let validator = validator();
    let live = ws.json(&["progress", &id, "--json"]);
    assert_valid(&validator, &live);
    assert_eq!(live["job"]["name"], "viewed");
    assert_eq!(
        live["snapshot"]["payload"]["agents"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Without an id: the newest running job.
    let newest = ws.json(&["progress", "--json"]);
    assert_eq!(newest["job"]["id"], live["job"]["id"]);
    let once = ws.run(&["progress", "--once"]);
    once.success();
    assert!(
        once.stdout()
            .starts_with(&format!("viewed ({id}): running, live")),
        "{}",
        once.stdout()
    );
    assert!(once.stdout().contains("agents: 3"), "{}", once.stdout());

    assert_eq!(child.wait().expect("the run ends").code(), Some(3));
    let finished = ws.json(&["progress", &id, "--json"]);
    assert_valid(&validator, &finished);
    assert_eq!(finished["live"], false);
    assert_eq!(finished["percent"], 100.0);
    assert_eq!(finished["job"]["counts"]["completed"], 12);
    assert_eq!(finished["job"]["counts"]["dead_lettered"], 1);

    // Nothing runs now: no newest running job, a usage error.
    let none = ws.run(&["progress"]);
    none.code_is(2);
    assert!(
        none.stderr().contains("no job is running"),
        "{}",
        none.stderr()
    );
}

#[test]
fn schema_rejects_what_it_should() {
    let validator = validator();
    let bad = serde_json::json!({"job": {}, "percent": 140, "resumable": true, "live": false,
        "snapshot": null, "recent_events": [], "read_at": 0});
    assert!(!validator.is_valid(&bad));
}

#[test]
fn unknown_jobs_are_usage_errors() {
    let ws = Workspace::new();
    ws.run(&["run", "-j", "1", "--", "true", ":::", "a"])
        .success();
    for args in [
        &["progress", "ffffffffffff", "--once"][..],
        &["export", "ffffffffffff", "--format", "csv"],
        &["replay", "ffffffffffff"],
    ] {
        let run = ws.run(args);
        run.code_is(2);
        assert!(
            run.stderr().contains("ffffffffffff"),
            "{args:?}: {}",
            run.stderr()
        );
    }
    ws.run(&["replay", &ws.short_id(), "--from", "someday"])
        .code_is(2);
    ws.run(&["replay", &ws.short_id(), "--speed", "0"])
        .code_is(2);
}

#[test]
fn follow_prints_lines_until_the_job_ends() {
    let ws = Workspace::new();
    job_file(&ws, 8, "0.3", 2);
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    let id = wait_for_live_snapshot(&ws);
    let follow = ws.run(&["progress", &id, "--follow", "--interval", "200ms"]);
    follow.success();
    assert_eq!(child.wait().expect("the run ends").code(), Some(3));
    let out = follow.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "{out}");
    assert!(lines[0].contains("viewed"), "{out}");
    let last = lines.last().unwrap();
    assert!(
        last.contains("100.0% 9/9 done (8 ok, 1 dlq, 0 skipped)")
            && last.ends_with("completed_with_failures"),
        "{out}"
    );
}

#[test]
fn export_csv_has_one_row_per_item_and_json_the_full_report() {
    let ws = Workspace::new();
    job_file(&ws, 30, "0", 4);
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    let id = ws.short_id();

    ws.run(&["export", &id, "--format", "csv", "-o", "items.csv"])
        .success();
    let mut reader = csv::Reader::from_path(ws.join("items.csv")).expect("the CSV opens");
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "key",
            "status",
            "attempts",
            "agent",
            "start",
            "end",
            "duration_ms",
            "exit_code",
            "error"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a CSV row")).collect();
    let items = ws.store().items(ws.only_job().id, None).unwrap();
    assert_eq!(rows.len(), items.len());
    assert_eq!(rows.len(), 31);
    for (row, item) in rows.iter().zip(&items) {
        assert_eq!(&row[0], item.key);
        assert_eq!(&row[1], item.status.as_str());
        assert!(row[3].starts_with("agent-"), "{row:?}");
        let (start, end): (i64, i64) = (row[4].parse().unwrap(), row[5].parse().unwrap());
        assert!(end >= start, "{row:?}");
    }
    let bad = rows
        .iter()
        .find(|r| &r[1] == "dead_lettered")
        .expect("the failed item");
    assert_eq!(&bad[7], "1", "exit code of `test`: {bad:?}");

    let series = ws.run(&["export", &id, "--format", "csv", "--what", "snapshots"]);
    series.success();
    let series = series.stdout();
    let mut reader = csv::Reader::from_reader(series.as_bytes());
    assert_eq!(&reader.headers().unwrap()[0], "at");
    let points = reader.records().count();
    let snapshots = ws
        .store()
        .snapshots(ws.only_job().id, i64::MIN, 100_000)
        .unwrap();
    assert_eq!(points, snapshots.len());

    let report = ws.json(&["export", &id, "--format", "json"]);
    assert_eq!(report["version"], 1);
    assert_eq!(report["job"]["counts"]["completed"], 30);
    assert_eq!(report["dlq"].as_array().unwrap().len(), 1);
    assert_eq!(report["dlq"][0]["item"]["key"], bad[0].to_string());
    assert_eq!(
        report["timeline"].as_array().unwrap().len(),
        snapshots.len()
    );
    assert_valid(&validator(), &report["state"]);
    // How right the ETA was: judged once the job ended, or null when it showed no estimate.
    let eta = report
        .get("eta_accuracy")
        .expect("the report says how right the ETA was");
    if !eta.is_null() {
        assert!(eta["covered"].as_u64().unwrap() <= eta["estimates"].as_u64().unwrap());
        for point in eta["at_percent"].as_array().unwrap() {
            assert!([10, 25, 50, 75].contains(&point["percent"].as_u64().unwrap()));
        }
    }
}

#[test]
fn replay_ends_on_the_final_counts() {
    let ws = Workspace::new();
    job_file(&ws, 10, "0.25", 2);
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    let id = ws.short_id();
    let snapshots = ws
        .store()
        .snapshots(ws.only_job().id, i64::MIN, 100_000)
        .unwrap();
    assert!(
        !snapshots.is_empty(),
        "a job of over a second has snapshots"
    );
    // The newest snapshot is the final state, not the last heartbeat's.
    let last = &snapshots.last().unwrap().payload.to_json();
    assert_eq!(last["progress"]["completed"], 10, "{last}");
    assert_eq!(last["progress"]["dead_lettered"], 1, "{last}");
    assert_eq!(last["progress"]["in_flight"], 0, "{last}");
    assert_eq!(last["metrics"]["eta"]["state"], "done", "{last}");
    let run = ws.run(&["replay", &id]);
    run.success();
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), snapshots.len() + 1, "{out}");
    let done: Vec<u64> = lines
        .iter()
        .map(|l| {
            // `TIME ID NAME PERCENT DONE/TOTAL done ...`; the first snapshots may predate the
            // items (0/0).
            let counts = l.split_whitespace().nth(4).expect("done/total");
            let (done, _total) = counts.split_once('/').expect("done/total");
            done.parse().expect("a count")
        })
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{out}");
    let last = lines.last().unwrap();
    assert!(
        last.contains("100.0% 11/11 done (10 ok, 1 dlq, 0 skipped)")
            && last.ends_with("completed_with_failures"),
        "{out}"
    );
    // --from past the end shows just the final frame.
    let tail = ws.run(&["replay", &id, "--from", "1h"]);
    tail.success();
    assert_eq!(tail.stdout().lines().count(), 1);
}

/// The full-screen viewer in a real terminal: tmux runs `mmm progress` against a job another
/// process runs, and the screen shows the counts advancing, then `q` ends it.
#[test]
fn viewer_in_tmux_follows_a_job_run_by_another_process() {
    let ws = Workspace::new();
    job_file(&ws, 40, "0.2", 2);
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    let id = wait_for_live_snapshot(&ws);
    let command = format!("exec '{}' progress {id}", env!("CARGO_BIN_EXE_mmm"));
    let tmux = Tmux::start("viewer", ws.path(), &command);
    let done_count = |screen: &str| -> Option<u64> {
        let word = screen.split_whitespace().find(|w| w.ends_with("/41"))?;
        word.trim_end_matches("/41").parse().ok()
    };
    let mut first = None;
    tmux.wait_for_screen(
        Duration::from_secs(30),
        "the counts to advance on screen",
        |screen| {
            let Some(done) = done_count(screen) else {
                return false;
            };
            let first = *first.get_or_insert(done);
            done > first && screen.contains("q quit") && screen.contains("agent-2")
        },
    );
    tmux.send(&["q"]);
    wait_until(Duration::from_secs(10), "the viewer to quit on q", || {
        !tmux.is_running()
    });
    drop(tmux);
    let _ = child.wait();
}

/// Chromium's console log (chromedriver's legacy `se/log` endpoint): how the test sees
/// console errors of a page that runs no script.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

/// A chromedriver on a free port, killed on drop.
struct ChromeDriver {
    child: std::process::Child,
    port: u16,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTML report opens in headless Chromium with no console error and no request; the
/// screenshot is kept in target/tmp/test-artifacts/report.png.
#[test]
fn html_report_opens_in_chromium_without_errors_or_requests() {
    let (chromium, driver) = ("/usr/bin/chromium", "/usr/bin/chromedriver");
    assert!(
        std::path::Path::new(chromium).exists() && std::path::Path::new(driver).exists(),
        "chromium or chromedriver is missing: apt-get install -y chromium chromium-driver \
         (./scripts/test installs them)"
    );
    let ws = Workspace::new();
    job_file(&ws, 20, "0.2", 3);
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    let id = ws.short_id();
    ws.run(&["export", &id, "--format", "html", "-o", "report.html"])
        .success();
    let html = ws.read("report.html");
    assert!(!html.contains("<script"), "no script in the report");
    for chart in [
        "<svg id=\"progress\"",
        "<svg id=\"throughput\"",
        "<svg id=\"agents\"",
    ] {
        assert!(html.contains(chart), "{chart} in the report");
    }
    // One bar per attempt on the agents' timeline, one text label per agent.
    let attempts = ws.attempts(ws.only_job().id).len();
    assert_eq!(
        html.matches("<rect").count() - html.matches("/s</title></rect>").count(),
        attempts
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let driver = ChromeDriver {
        child: Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
        port,
    };
    let profile = tempfile::tempdir().expect("a profile folder");
    let page = format!("file://{}", ws.join("report.html").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (errors, requests, texts, screenshot) = runtime.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": chromium, "args": ["--headless", "--no-sandbox",
                "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", "--window-size=1200,1600",
                format!("--user-data-dir={}", profile.path().display())]}),
        );
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({"browser": "ALL"}),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{}", driver.port))
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromedriver did not answer within 15 s: {e}"),
            }
        };
        client.goto(&page).await.expect("the report opens");
        let summary = client
            .find(fantoccini::Locator::Id("summary"))
            .await
            .expect("the summary table")
            .text()
            .await
            .expect("its text");
        let dlq = client
            .find(fantoccini::Locator::Id("dlq"))
            .await
            .expect("the DLQ table")
            .text()
            .await
            .expect("its text");
        let requests = client
            .execute(
                "return performance.getEntriesByType('resource').length",
                vec![],
            )
            .await
            .expect("the performance entries");
        let log = client.issue_cmd(BrowserLog).await.expect("the browser log");
        let screenshot = client.screenshot().await.expect("a screenshot");
        client.close().await.expect("the browser closes");
        (log, requests, (summary, dlq), screenshot)
    });
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("the artifacts folder");
    std::fs::write(artifacts.join("report.png"), &screenshot).expect("the screenshot is kept");
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");

    let severe: Vec<&serde_json::Value> = errors
        .as_array()
        .expect("log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:#?}");
    assert_eq!(requests, serde_json::json!(0), "the report made requests");
    let (summary, dlq) = texts;
    assert!(summary.contains("completed_with_failures"), "{summary}");
    assert!(
        summary.contains("20 completed, 1 dead-lettered"),
        "{summary}"
    );
    assert!(
        dlq.contains("000021-") && dlq.contains("exited with code 1"),
        "{dlq}"
    );
}

#[test]
fn queue_wait_is_measured_and_shown() {
    // 6 items of 0.3 s on 2 agents: two start at once, two wait about 0.3 s, two about 0.6 s.
    let ws = Workspace::new();
    ws.write("items.txt", "1\n2\n3\n4\n5\n6\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 2\n  steps:\n    - shell: sleep 0.3\n",
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let id = ws.short_id();
    let state = ws.json(&["progress", &id, "--json"]);
    assert_valid(&validator(), &state);
    let wait = &state["snapshot"]["payload"]["metrics"]["queue_wait"];
    assert_eq!(wait["count"], 6, "{wait}");
    assert!(wait["min_ms"].as_f64().unwrap() < 250.0, "{wait}");
    assert!(wait["max_ms"].as_f64().unwrap() >= 550.0, "{wait}");
    let once = ws.run(&["progress", &id, "--once"]);
    once.success();
    assert!(
        once.stdout().contains("queue wait: p50 "),
        "{}",
        once.stdout()
    );
}
