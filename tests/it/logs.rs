//! Issue 20, item logs: every attempt's output kept whole in the store and read back with
//! `mmm logs` (all of it, by stream, by attempt, live with `--follow`), the cap that elides
//! the middle, `logs: none`, `mmm logs prune`, `mmm dlq show`'s pointer to the full log, and a
//! worker's log read from another process on PostgreSQL.

use std::time::Duration;

use mmm_store::logs::{LogQuery, human_bytes};

use crate::harness::{Workspace, collect_lines, wait_until};
use crate::postgres::{Schema, skipped};

/// The id of the only job.
fn job_id(ws: &Workspace) -> String {
    ws.only_job().id.to_string()
}

#[test]
fn an_item_of_200000_lines_has_all_of_them_with_stderr_in_order() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        r#"
map:
  input: {command: "echo big; echo small"}
  key: "${item}"
  steps:
    - name: talk
      shell: |
        if [ ${item} = big ]; then
          awk 'BEGIN { for (i = 1; i <= 200000; i++) { print "line " i;
                       if (i % 1000 == 0) { fflush(); print "err " i > "/dev/stderr"; fflush("/dev/stderr") } } }'
        else
          echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three
        fi
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let id = job_id(&ws);

    let out = ws.run(&["logs", &id, "big", "--stream", "stdout"]);
    out.success();
    let expected: String = (1..=200_000).map(|i| format!("line {i}\n")).collect();
    assert!(
        out.stdout() == expected,
        "stdout differs from the 200,000 lines written"
    );

    let err = ws.run(&["logs", &id, "big", "--stream", "stderr"]);
    let expected: String = (1..=200).map(|i| format!("err {}\n", i * 1000)).collect();
    assert_eq!(err.success().stdout(), expected);

    // Both streams together: every line, and each stream's lines in order.
    let both = ws.run(&["logs", &id, "big"]);
    let text = both.success().stdout();
    assert_eq!(text.lines().count(), 200_200);
    let outs: Vec<&str> = text.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(outs.len(), 200_000);
    assert_eq!((outs[0], outs[199_999]), ("line 1", "line 200000"));

    // Lines written apart in time come back in the order they were written, by key or number.
    let small = ws.run(&["logs", &id, "2"]);
    assert_eq!(small.success().stdout(), "one\ntwo\nthree\n");
    // With times: each line led by its UTC time.
    let timed = ws.run(&["logs", &id, "small", "--timestamps"]);
    let lines: Vec<String> = timed.success().stdout().lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, text) in lines.iter().zip(["one", "two", "three"]) {
        let (time, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, text);
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.contains('T'),
            "{line}"
        );
    }
    // Every item, each line with its key.
    let all = ws.run(&["logs", &id]);
    let all = all.success().stdout();
    let small: Vec<&str> = all.lines().filter(|l| l.starts_with("[small] ")).collect();
    assert_eq!(small, ["[small] one", "[small] two", "[small] three"]);
    assert!(all.contains("[big] line 200000\n"));
    assert_eq!(all.lines().count(), 200_203);

    // Stored compressed: far smaller than the output.
    let store = ws.store();
    let job = ws.only_job().id;
    let query = LogQuery {
        limit: 10_000,
        ..LogQuery::default()
    };
    let chunks = store.log_chunks(job, &query).unwrap();
    let output: u64 = chunks.iter().map(|c| c.bytes).sum();
    let stored: usize = chunks.iter().map(|c| c.data.len()).sum();
    assert!(
        output > 2_000_000 && (stored as u64) < output / 3,
        "{stored} of {output}"
    );

    // An unknown item, or attempt, is a usage error naming it.
    let missing = ws.run(&["logs", &id, "nope"]);
    missing.code_is(2);
    assert!(
        missing.stderr().contains("no item `nope`"),
        "{}",
        missing.stderr()
    );
    let missing = ws.run(&["logs", &id, "big", "--attempt", "4"]);
    missing.code_is(2);
    assert!(
        missing.stderr().contains("no attempt 4"),
        "{}",
        missing.stderr()
    );

    // Pruning a finished job's logs says what it freed, and they are gone.
    let prune = ws.run(&["logs", "prune", &id]);
    let said = prune.success().stdout();
    assert!(
        said.starts_with(&format!("freed {} ", human_bytes(stored as u64))),
        "{said}"
    );
    assert!(said.contains("from 1 job"), "{said}");
    assert!(store.log_chunks(job, &query).unwrap().is_empty());
}

#[test]
fn a_dead_lettered_item_keeps_every_attempt_and_the_dlq_points_to_it() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        r#"
map:
  input: {command: "echo bad"}
  key: "${item}"
  retries: 2
  backoff: 1ms
  steps:
    - name: try
      shell: echo "trying $MMM_ATTEMPT"; echo "failed $MMM_ATTEMPT" >&2; exit 4
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    let id = job_id(&ws);
    // Each attempt under its header, with both its streams (the two pipes are read side by
    // side, so lines written at the same moment may come in either order).
    let logs = ws.run(&["logs", &id, "bad"]);
    let text = logs.success().stdout();
    let blocks: Vec<&str> = text.split("--- attempt ").skip(1).collect();
    assert_eq!(blocks.len(), 3, "{text}");
    for (n, block) in (1..=3).zip(blocks) {
        let mut lines: Vec<&str> = block.lines().collect();
        lines.sort_unstable();
        let (failed, trying) = (format!("failed {n}"), format!("trying {n}"));
        assert_eq!(lines, [format!("{n} ---"), failed, trying], "{text}");
    }
    let second = ws.run(&["logs", &id, "bad", "--attempt", "2", "--stream", "stdout"]);
    assert_eq!(second.success().stdout(), "trying 2\n");

    let show = ws.run(&["dlq", "show", &id, "bad"]);
    let text = show.success().stdout();
    let short = &id[..12];
    for n in 1..=3 {
        assert!(
            text.contains(&format!("full log: mmm logs {short} bad --attempt {n}")),
            "{text}"
        );
    }
}

#[test]
fn follow_shows_a_running_items_lines_while_it_runs() {
    let ws = Workspace::new();
    let mut run = start_item(
        &ws,
        r#"
map:
  input: {command: "echo slow"}
  key: "${item}"
  steps:
    - name: wait
      shell: |
        echo first
        while [ ! -e go ]; do sleep 0.05; done
        echo second >&2
"#,
    );
    let id = job_id(&ws);
    let mut follow = ws.spawn(&["logs", &id, "slow", "--follow"]);
    let (lines, reader) = collect_lines(&mut follow);
    wait_until(Duration::from_secs(30), "`first` to be followed", || {
        lines.lock().unwrap().iter().any(|l| l == "first")
    });
    // Still running: the item waits for `go`.
    assert!(!ws.join("go").exists());
    assert_eq!(ws.jobs_so_far()[0].counts.running, 1);
    ws.write("go", "");
    let mut ended = None;
    wait_until(
        Duration::from_secs(30),
        "the follow to end with the item",
        || {
            ended = follow.try_wait().unwrap();
            ended.is_some()
        },
    );
    reader.join().unwrap();
    assert!(ended.unwrap().success());
    assert_eq!(
        *lines.lock().unwrap(),
        vec!["--- attempt 1 ---", "first", "second"]
    );
    assert!(run.0.wait().unwrap().success());
}

#[test]
fn the_cap_elides_the_middle_and_says_how_much() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        r#"
log_cap: 1MiB
map:
  input: {command: "echo flood"}
  key: "${item}"
  steps:
    - name: flood
      shell: seq 1 2000000
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let id = job_id(&ws);
    let job = ws.only_job().id;
    let chunks = ws
        .store()
        .log_chunks(
            job,
            &LogQuery {
                limit: 1_000,
                ..LogQuery::default()
            },
        )
        .unwrap();
    let kept: u64 = chunks.iter().map(|c| c.bytes).sum();
    let written: u64 = (1..=2_000_000u64)
        .map(|n| n.to_string().len() as u64 + 1)
        .sum();
    assert!(kept <= 1024 * 1024 && kept > 900 * 1024, "kept {kept}");
    let out = ws.run(&["logs", &id, "flood"]);
    let text = out.success().stdout();
    assert!(text.starts_with("1\n2\n3\n"), "{}", &text[..20]);
    assert!(text.ends_with("1999999\n2000000\n"));
    let marker = format!("[... {} elided ...]\n", human_bytes(written - kept));
    assert_eq!(text.matches(&marker).count(), 1, "no `{marker}` in the log");
    assert!(text.len() < 1024 * 1024 + 100, "{}", text.len());
}

#[test]
fn logs_none_keeps_only_what_the_dlq_needs() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        r#"
map:
  input: {command: "echo quiet"}
  key: "${item}"
  steps:
    - name: fail
      shell: echo "the reason" >&2; exit 1
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none", "--logs", "none"])
        .code_is(3);
    let id = job_id(&ws);
    let job = ws.only_job().id;
    let query = LogQuery {
        limit: 10,
        ..LogQuery::default()
    };
    assert!(ws.store().log_chunks(job, &query).unwrap().is_empty());
    let logs = ws.run(&["logs", &id, "quiet"]);
    assert_eq!(logs.success().stdout(), "");
    assert!(logs.stderr().contains("logs: none"), "{}", logs.stderr());
    // The DLQ still has the tail, and points to no log.
    let show = ws.run(&["dlq", "show", &id, "quiet"]);
    let text = show.success().stdout();
    assert!(text.contains("| the reason"), "{text}");
    assert!(!text.contains("full log:"), "{text}");

    // A bad policy is an error that names it.
    let bad = ws.run(&["run", "job.yml", "--logs", "some"]);
    bad.code_is(2);
    assert!(
        bad.stderr().contains("full, tail or none"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn a_workers_item_log_is_readable_from_another_process_on_postgres() {
    if skipped("a_workers_item_log_is_readable_from_another_process_on_postgres") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=40).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  key: "${item}"
  max_parallel: 1
  steps:
    - name: work
      shell: |
        case "$MMM_AGENT" in
          w/*) echo "worker output for ${item}"; echo "worker error for ${item}" >&2 ;;
          *) sleep 0.3 ;;
        esac
"#,
    );
    let mut coordinator = ws.spawn(&["run", "job.yml", "--progress", "none", "--store", &url]);
    let store = || mmm_store::open(&url, false);
    let mut job = None;
    wait_until(Duration::from_secs(60), "the job's map to start", || {
        job = store()
            .ok()
            .and_then(|s| s.jobs().ok())
            .and_then(|jobs| jobs.into_iter().next());
        job.as_ref()
            .is_some_and(|j| j.phase == Some(mmm_core::job::Phase::Map))
    });
    let id = job.unwrap().id.to_string();
    let worker = ws.run(&[
        "worker",
        "--store",
        &url,
        "--job",
        &id,
        "-j",
        "2",
        "--name",
        "w",
        "--exit-when-idle",
    ]);
    worker.success();
    assert!(coordinator.wait().unwrap().success());
    let attempts = schema.store().attempts(schema.only_job().id, None).unwrap();
    let by_worker = attempts
        .iter()
        .find(|a| a.agent.starts_with("w/"))
        .expect("the worker ran items");
    let logs = ws.run(&["logs", &id, &by_worker.item_key, "--store", &url]);
    let key = &by_worker.item_key;
    let text = logs.success().stdout();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            format!("worker error for {key}"),
            format!("worker output for {key}")
        ]
    );
}

/// A GET through the web API: status, content type and disposition, body bytes.
async fn get_log(addr: std::net::SocketAddr, path: &str) -> (u16, String, String, Vec<u8>) {
    let response = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("the server answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("a body").to_vec();
    (status, content_type, disposition, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_endpoint_serves_the_bytes_of_mmm_logs() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        r#"
map:
  input: {command: "echo 'bad one'; echo fine"}
  key: "${item}"
  retries: 1
  backoff: 1ms
  steps:
    - name: try
      shell: |
        seq 1 3000 | sed "s/^/${item} $MMM_ATTEMPT /"; echo "oops $MMM_ATTEMPT" >&2
        test ${item} = fine
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).code_is(3);
    let id = job_id(&ws);
    let addr = crate::web::start(&ws, None).await;
    for (query, args) in [
        ("", vec![]),
        ("?attempt=2", vec!["--attempt", "2"]),
        (
            "?stream=stderr&timestamps=1",
            vec!["--stream", "stderr", "--timestamps"],
        ),
    ] {
        let mut cli = vec!["logs", id.as_str(), "bad one"];
        cli.extend(args);
        let expected = ws.run(&cli).success().stdout();
        let (status, content_type, _, body) =
            get_log(addr, &format!("/api/jobs/{id}/items/bad%20one/log{query}")).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(content_type, "text/plain; charset=utf-8");
        assert!(!expected.is_empty());
        assert!(
            body == expected.as_bytes(),
            "{query}: the bytes differ from mmm logs"
        );
    }
    // By number, as a download.
    let (_, _, disposition, body) =
        get_log(addr, &format!("/api/jobs/{id}/items/2/log?download=1")).await;
    assert_eq!(disposition, "attachment; filename=\"fine.log\"");
    assert_eq!(body.iter().filter(|b| **b == b'\n').count(), 3001);
    // Bad requests say what is wrong.
    let (status, _, _, body) = get_log(addr, &format!("/api/jobs/{id}/items/nope/log")).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, _, _, body) =
        get_log(addr, &format!("/api/jobs/{id}/items/fine/log?stream=both2")).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("stdout or stderr"));
    let (status, _, _, _) =
        get_log(addr, &format!("/api/jobs/{id}/items/fine/log?attempt=9")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_endpoint_follows_a_running_item() {
    let ws = Workspace::new();
    let mut run = start_item(
        &ws,
        r#"
map:
  input: {command: "echo slow"}
  key: "${item}"
  steps:
    - name: wait
      shell: |
        echo first
        while [ ! -e go ]; do sleep 0.05; done
        echo second
"#,
    );
    let id = job_id(&ws);
    let addr = crate::web::start(&ws, None).await;
    let mut response = reqwest::get(format!(
        "http://{addr}/api/jobs/{id}/items/slow/log?follow=1"
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("first\n") {
        let piece = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("`first` arrives while the item runs")
            .unwrap()
            .expect("the stream goes on");
        seen.extend_from_slice(&piece);
    }
    assert!(!ws.join("go").exists(), "the item is still waiting");
    ws.write("go", "");
    while let Some(piece) = tokio::time::timeout_at(deadline, response.chunk())
        .await
        .expect("the stream ends with the item")
        .unwrap()
    {
        seen.extend_from_slice(&piece);
    }
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "--- attempt 1 ---\nfirst\nsecond\n"
    );
    assert!(run.0.wait().unwrap().success());
}

#[test]
fn export_results_writes_gnu_parallels_layout() {
    let ws = Workspace::new();
    // The same items through GNU parallel, for the layout to match.
    let parallel = std::process::Command::new("parallel")
        .args([
            "--results",
            "pout",
            "echo out {}; echo err {} >&2",
            ":::",
            "plain",
            "a/b",
        ])
        .current_dir(ws.path())
        .output()
        .expect("GNU parallel is installed (apt-get install parallel)");
    assert!(parallel.status.success());
    ws.run(&[
        "run",
        "--progress",
        "none",
        "--",
        "echo out {}; echo err {} >&2",
        ":::",
        "plain",
        "a/b",
    ])
    .success();
    let id = job_id(&ws);
    let export = ws.run(&["export", &id, "--format", "results", "-o", "out"]);
    assert!(
        export
            .success()
            .stderr()
            .contains("wrote the output of 2 items")
    );
    for (n, value) in ["plain", "a/b"].iter().enumerate() {
        let folder = format!("out/1/{}", value.replace('/', "\\_"));
        assert_eq!(
            ws.read(&format!("{folder}/stdout")),
            format!("out {value}\n")
        );
        assert_eq!(
            ws.read(&format!("{folder}/stderr")),
            format!("err {value}\n")
        );
        assert_eq!(ws.read(&format!("{folder}/seq")), format!("{}", n + 1));
        assert_eq!(ws.read(&format!("{folder}/item")), *value);
        // Every file parallel writes is there, with the same content.
        let theirs = format!("pout/1/{}", value.replace('/', "\\_"));
        for name in ["stdout", "stderr", "seq"] {
            assert_eq!(
                ws.read(&format!("{theirs}/{name}")),
                ws.read(&format!("{folder}/{name}")),
                "{name} of {value}"
            );
        }
    }
    // A folder is required.
    let bad = ws.run(&["export", &id, "--format", "results"]);
    bad.code_is(2);
    assert!(bad.stderr().contains("-o DIR"), "{}", bad.stderr());
}

/// Issue 20: how long a line takes from the item's `echo` to the item page in Chromium. The
/// item prints its own clock (ms) every 20 ms; an observer in the page notes, for each line, the
/// page's clock when it first shows (one host, one clock). The figure is printed; the test
/// fails past 2 s at the 99th percentile (a busy CI machine), docs/PERFORMANCE.md has it
/// measured on a quiet one against the 500 ms target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_reaches_the_item_page_in_chromium_soon_after_it_is_written() {
    use crate::web::wait_text;
    const LINES: usize = 200;
    let ws = Workspace::new();
    let mut run = start_item(
        &ws,
        &format!(
            r#"
map:
  input: {{command: "echo clock"}}
  key: "${{item}}"
  steps:
    - name: clock
      shell: |
        while [ ! -e go ]; do sleep 0.05; done
        for i in $(seq {LINES}); do echo "t $(date +%s%3N)"; sleep 0.02; done
"#
        ),
    );
    let (_driver, client, _profile) = first_item_page(&ws).await;
    wait_text(
        &client,
        "#item-log-state",
        Duration::from_secs(10),
        "live",
        |t| t == "live",
    )
    .await;
    // Each `t MS` line seen for the first time: the page's clock minus the item's.
    client
        .execute(
            "window.latencies = []; const seen = new Set(); const log = document.querySelector('#item-log');
             new MutationObserver(() => {
               const now = Date.now();
               for (const line of log.textContent.split('\\n')) {
                 const m = /^t (\\d+)$/.exec(line);
                 if (m && !seen.has(m[1])) { seen.add(m[1]); window.latencies.push(now - Number(m[1])); }
               }
             }).observe(log, { childList: true, subtree: true, characterData: true });",
            vec![],
        )
        .await
        .unwrap();
    ws.write("go", "");
    let mut latencies: Vec<u64> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while latencies.len() < LINES * 9 / 10 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let value = client
            .execute("return window.latencies", vec![])
            .await
            .unwrap();
        latencies = serde_json::from_value::<Vec<i64>>(value)
            .unwrap()
            .into_iter()
            .map(|ms| ms.max(0) as u64)
            .collect();
    }
    assert!(
        latencies.len() >= LINES * 9 / 10,
        "only {} of {LINES} lines reached the page",
        latencies.len()
    );
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let (p50, p99, max) = (at(0.5), at(0.99), latencies[latencies.len() - 1]);
    eprintln!(
        "item page follow latency over {} lines: p50 {p50} ms, p99 {p99} ms, max {max} ms",
        latencies.len()
    );
    assert!(p99 <= 2_000, "p50 {p50} ms, p99 {p99} ms, max {max} ms");
    assert!(run.0.wait().unwrap().success());
    client.close().await.unwrap();
}

/// A job of one item, `busy`, that prints `tick N` every 100 ms until the file `go` exists,
/// then `done ticking` on stderr; returned once the item runs.
fn ticking_item(ws: &Workspace) -> crate::harness::Killed {
    start_item(
        ws,
        r#"
map:
  input: {command: "echo busy"}
  key: "${item}"
  # One agent: the views name it (agent-1) whichever agent would take the item first.
  max_parallel: 1
  steps:
    - name: tick
      shell: |
        n=0
        while [ ! -e go ]; do n=$((n + 1)); echo "tick $n"; sleep 0.1; done
        echo "done ticking" >&2
"#,
    )
}

/// Runs the one-item job `job` (as `job.yml`) and waits until its item runs.
fn start_item(ws: &Workspace, job: &str) -> crate::harness::Killed {
    ws.write("job.yml", job);
    let run = crate::harness::Killed(ws.spawn(&["run", "job.yml", "--progress", "none"]));
    wait_until(Duration::from_secs(60), "the item to start", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|job| job.counts.running == 1)
    });
    run
}

/// Serves `ws`'s store and opens, in Chromium, the page of its job's first item.
async fn first_item_page(
    ws: &Workspace,
) -> (
    crate::chromium::Driver,
    fantoccini::Client,
    tempfile::TempDir,
) {
    let id = job_id(ws);
    let addr = crate::web::start(ws, None).await;
    let (driver, client, profile) = crate::web::browser().await;
    client
        .goto(&format!("http://{addr}/#/job/{id}"))
        .await
        .unwrap();
    crate::web::click(&client, "#items-body tr.item", Duration::from_secs(15)).await;
    (driver, client, profile)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_item_page_shows_the_live_tail_of_a_running_item_in_chromium() {
    use crate::web::wait_text;
    let ws = Workspace::new();
    let mut run = ticking_item(&ws);
    let (_driver, client, _profile) = first_item_page(&ws).await;
    // The page: the value, the attempt on its agent, and the log growing while it runs.
    wait_text(
        &client,
        "#item-value",
        Duration::from_secs(10),
        "the value",
        |t| t.contains("busy"),
    )
    .await;
    wait_text(
        &client,
        "#item-attempts",
        Duration::from_secs(10),
        "the attempt",
        |t| t.contains("agent-1") && t.contains("running"),
    )
    .await;
    let tick = |text: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix("tick ")?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
    };
    let first = wait_text(
        &client,
        "#item-log",
        Duration::from_secs(10),
        "ticks",
        |t| tick(t) >= 2,
    )
    .await;
    let later = wait_text(
        &client,
        "#item-log",
        Duration::from_secs(10),
        "more ticks",
        |t| tick(t) >= tick(&first) + 5,
    )
    .await;
    assert!(later.starts_with("--- attempt 1 ---\ntick 1\n"), "{later}");
    assert!(!ws.join("go").exists(), "the item still runs");
    wait_text(
        &client,
        "#item-log-state",
        Duration::from_secs(5),
        "live",
        |t| t == "live",
    )
    .await;
    let href = crate::web::href_of(&client, "#item-download").await;
    assert!(href.ends_with("/items/busy/log?download=1"), "{href}");
    // The item ends: its last line arrives and the page says the log ended.
    ws.write("go", "");
    wait_text(
        &client,
        "#item-log",
        Duration::from_secs(15),
        "the last line",
        |t| t.contains("done ticking"),
    )
    .await;
    wait_text(
        &client,
        "#item-log-state",
        Duration::from_secs(5),
        "ended",
        |t| t == "ended",
    )
    .await;
    assert!(run.0.wait().unwrap().success());
    client.close().await.unwrap();
}

#[test]
fn enter_in_the_viewer_follows_the_agents_item_log_in_a_pane() {
    let ws = Workspace::new();
    let mut run = ticking_item(&ws);
    let id = job_id(&ws);
    let command = format!("exec '{}' progress {id}", env!("CARGO_BIN_EXE_mmm"));
    let tmux = crate::tmux::Tmux::start_sized("logs-pane", ws.path(), &command, 120, 40);
    // The agent shows its item once a snapshot has it; Enter then opens its log.
    tmux.wait_for_screen(Duration::from_secs(30), "agent-1 at work", |screen| {
        screen
            .lines()
            .any(|l| l.contains("agent-1") && l.contains("running"))
    });
    let tick = |screen: &str| {
        screen
            .lines()
            .filter_map(|l| {
                let rest = l.split("tick ").nth(1)?;
                rest.split_whitespace()
                    .next()?
                    .trim_end_matches('│')
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0)
    };
    tmux.send(&["Enter"]);
    let first = tmux.wait_for_screen(Duration::from_secs(10), "the log pane", |screen| {
        screen.contains("log of busy (agent-1), following") && tick(screen) >= 1
    });
    let seen = tick(&first);
    tmux.wait_for_screen(Duration::from_secs(10), "the pane to follow", |screen| {
        tick(screen) >= seen + 5
    });
    assert!(!ws.join("go").exists(), "the item still runs");
    ws.write("go", "");
    tmux.wait_for_screen(Duration::from_secs(15), "the log's end", |screen| {
        screen.contains("done ticking") && screen.contains("log of busy (agent-1), ended")
    });
    // Esc closes the pane (not the viewer); q quits.
    tmux.send(&["Escape"]);
    tmux.wait_for_screen(Duration::from_secs(10), "the pane closed", |screen| {
        !screen.contains("log of busy") && screen.contains("q quit")
    });
    tmux.send(&["q"]);
    wait_until(Duration::from_secs(10), "the viewer to quit on q", || {
        !tmux.is_running()
    });
    assert!(run.0.wait().unwrap().success());
}

#[test]
fn logs_tail_keeps_only_the_end() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        r#"
logs: tail
log_cap: 100KiB
map:
  input: {command: "echo counted"}
  key: "${item}"
  steps:
    - name: count
      shell: seq 1 100000
"#,
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let id = job_id(&ws);
    let text = ws.run(&["logs", &id, "counted"]).success().stdout();
    let written: u64 = (1..=100_000u64)
        .map(|n| n.to_string().len() as u64 + 1)
        .sum();
    let (first, rest) = text.split_once('\n').unwrap();
    assert!(
        first.starts_with("[... ") && first.ends_with(" elided ...]"),
        "{first}"
    );
    assert!(rest.ends_with("99999\n100000\n"));
    // What is kept is the cap's worth at most, and what is said elided is the rest.
    let kept = rest.len() as u64;
    assert!(kept <= 100 * 1024 && kept > 30 * 1024, "{kept}");
    let elided = human_bytes(written - kept);
    assert_eq!(first, format!("[... {elided} elided ...]"));
    // A bad size in the job file is an error with its place.
    ws.write(
        "bad.yml",
        "log_cap: lots\nmap: {input: {command: 'echo x'}, steps: [{shell: 'true'}]}\n",
    );
    let bad = ws.run(&["run", "bad.yml"]);
    bad.code_is(2);
    assert!(
        bad.stderr().contains("bad.yml:1:") && bad.stderr().contains("log_cap"),
        "{}",
        bad.stderr()
    );
}
