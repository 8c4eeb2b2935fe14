//! Issue 8, scale-out: a coordinator (`mmm run --store postgres://...`) and `mmm worker`
//! processes share one job's map through the store. One worker is SIGKILLed mid-way: every
//! item must still be completed exactly once in the record, and the items the dead worker had
//! in flight must be recorded `interrupted` and re-run by the others once its lease ran out.
//! A short lease (`MMM_LEASE=2s`) keeps the test quick.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::Duration;

use mmm_core::job::{AttemptOutcome, JobStatus, Phase};
use mmm_store::LEASE_EXPIRED_ERROR;

use crate::harness::{Workspace, exit_code, kill9, wait_until};
use crate::postgres::{Schema, listening, skipped};
use crate::tmux::Tmux;

const LEASE: &str = "2s";

/// `mmm ARGS` with a short lease, its output to `log` in the workspace.
fn spawn(ws: &Workspace, args: &[&str], log: &str) -> Child {
    ws.logged(args, log)
        .env("MMM_LEASE", LEASE)
        .spawn()
        .expect("mmm starts")
}

#[test]
fn a_coordinator_and_three_workers_survive_a_sigkilled_worker() {
    if skipped("a_coordinator_and_three_workers_survive_a_sigkilled_worker") {
        return;
    }
    const ITEMS: usize = 5_000;
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=ITEMS).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    // The victim's items are slow, so that it surely has items in flight when it is killed.
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  key: "${item}"
  max_parallel: 2
  steps:
    - name: work
      shell: |
        case "$MMM_AGENT" in victim/*) sleep 0.5;; esac
        echo "${item} $MMM_AGENT" >> ran.txt
reduce:
  - shell: echo "reduce saw ${map.completed}" > reduced.txt
"#,
    );
    let mut coordinator = spawn(
        &ws,
        &["run", "job.yml", "--progress", "none", "--store", &url],
        "coordinator.log",
    );
    let store = || mmm_store::open(&url, false);
    let mut job = None;
    wait_until(Duration::from_secs(60), "the job's map to start", || {
        let Ok(store) = store() else { return false };
        job = store.jobs().ok().and_then(|jobs| jobs.into_iter().next());
        job.as_ref()
            .is_some_and(|j| j.phase == Some(Phase::Map) && j.counts.total() == ITEMS as u64)
    });
    let job = job.unwrap().id;
    let id = job.to_string();
    let worker = |name: &str| {
        spawn(
            &ws,
            &[
                "worker",
                "--store",
                &url,
                "--job",
                &id,
                "-j",
                "2",
                "--name",
                name,
                "--exit-when-idle",
            ],
            &format!("{name}.log"),
        )
    };
    let mut victim = worker("victim");
    let mut survivors = [worker("w1"), worker("w2")];

    // Kill the victim once it has done some items and has items in flight.
    let by_victim = |outcome: Option<AttemptOutcome>| {
        store()
            .and_then(|s| s.attempts(job, None))
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.agent.starts_with("victim/") && a.outcome == outcome)
            .count()
    };
    wait_until(
        Duration::from_secs(120),
        "the victim to complete items",
        || by_victim(Some(AttemptOutcome::Succeeded)) >= 4 && by_victim(None) >= 1,
    );
    kill9(&mut victim);
    let record = schema.only_job();
    assert!(
        record.counts.completed < ITEMS as u64 / 2,
        "the job was nearly done before the kill ({:?}); make items slower",
        record.counts
    );

    let code = exit_code(
        &mut coordinator,
        Duration::from_secs(600),
        "the coordinator",
    );
    assert_eq!(code, 0, "coordinator: {}", ws.read("coordinator.log"));
    for (worker, name) in survivors.iter_mut().zip(["w1", "w2"]) {
        let code = exit_code(worker, Duration::from_secs(60), name);
        assert_eq!(code, 0, "{name}: {}", ws.read(&format!("{name}.log")));
    }

    let record = schema.only_job();
    assert_eq!(record.status, JobStatus::Completed);
    assert_eq!(record.counts.completed, ITEMS as u64, "{:?}", record.counts);
    assert_eq!(ws.read("reduced.txt").trim(), format!("reduce saw {ITEMS}"));

    // Exactly one succeeded attempt per item, and no attempt left open.
    let attempts = schema.store().attempts(job, None).unwrap();
    let mut succeeded: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for attempt in &attempts {
        assert!(attempt.outcome.is_some(), "left in flight: {attempt:?}");
        if attempt.outcome == Some(AttemptOutcome::Succeeded) {
            succeeded
                .entry(attempt.item_key.as_str())
                .or_default()
                .push(attempt.agent.as_str());
        }
    }
    assert_eq!(succeeded.len(), ITEMS, "every item succeeded");
    let twice: Vec<_> = succeeded.iter().filter(|(_, by)| by.len() != 1).collect();
    assert!(
        twice.is_empty(),
        "items completed more than once: {twice:?}"
    );

    // The victim's attempts in flight at the kill were closed `interrupted` when their lease
    // ran out, and their items were re-run (and completed) by someone else.
    let interrupted: BTreeSet<&str> = attempts
        .iter()
        .filter(|a| a.agent.starts_with("victim/"))
        .filter(|a| a.outcome == Some(AttemptOutcome::Interrupted))
        .inspect(|a| assert_eq!(a.error.as_deref(), Some(LEASE_EXPIRED_ERROR), "{a:?}"))
        .map(|a| a.item_key.as_str())
        .collect();
    assert!(!interrupted.is_empty(), "the victim had items in flight");
    for key in &interrupted {
        let by = &succeeded[key];
        assert!(!by[0].starts_with("victim/"), "{key} completed by {by:?}");
        let item = schema.store().item(job, key).unwrap().unwrap();
        assert_eq!(
            item.attempts, 1,
            "the interrupted attempt does not count: {item:?}"
        );
    }
    let events = schema.store().events(job, 0, 100_000).unwrap();
    let lease_requeues: BTreeSet<&str> = events
        .iter()
        .filter(|e| {
            e.event.kind_name() == "item_requeued" && e.event.payload()["reason"] == "lease_expired"
        })
        .filter_map(|e| e.item_key.as_deref())
        .collect();
    assert_eq!(lease_requeues, interrupted);

    // Everyone took part; agents are named NAME/N.
    let agents: BTreeSet<&str> = attempts
        .iter()
        .filter_map(|a| a.agent.split('/').next())
        .collect();
    for name in ["agent-1", "w1", "w2", "victim"] {
        assert!(agents.contains(name), "{name} ran nothing: {agents:?}");
    }

    // What ran: every item, and none twice except those the dead worker had started (its
    // orphaned commands may still have finished after the kill). Those are the items with an
    // interrupted attempt, and the ones whose command the victim had started while the record
    // of its start still waited in its writer's batch when SIGKILL came (the runner starts a
    // command without waiting for that commit): ran.txt has the victim's line for those.
    let ran = ws.read("ran.txt");
    let mut runs: BTreeMap<&str, usize> = BTreeMap::new();
    let mut started_by_victim: BTreeSet<&str> = BTreeSet::new();
    for line in ran.lines() {
        let (item, agent) = line.split_once(' ').unwrap_or((line, ""));
        *runs.entry(item).or_default() += 1;
        if agent.starts_with("victim/") {
            started_by_victim.insert(item);
        }
    }
    assert_eq!(runs.len(), ITEMS);
    for (item, count) in runs {
        assert!(
            count == 1
                || (count == 2 && started_by_victim.contains(item))
                || interrupted.contains(item),
            "{item} ran {count} times: {:?}\nits lines in ran.txt: {:?}",
            attempts
                .iter()
                .filter(|a| a.item_key == item)
                .collect::<Vec<_>>(),
            ran.lines()
                .filter(|l| l.split(' ').next() == Some(item))
                .collect::<Vec<_>>()
        );
    }
    let check = ws.run(&["check", "--store", &url]);
    check.success();
}

/// Issue 8: the coordinator dies while a worker runs; `mmm resume` takes the job over while the
/// worker still works, without touching the worker's items (their leases are live), takes
/// back the dead coordinator's items once their leases ran out, and runs reduce.
#[test]
fn resume_of_a_dead_coordinator_leaves_live_workers_alone() {
    if skipped("resume_of_a_dead_coordinator_leaves_live_workers_alone") {
        return;
    }
    const ITEMS: usize = 600;
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=ITEMS).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  key: "${item}"
  max_parallel: 2
  steps:
    - name: work
      shell: |
        sleep 0.03
        echo "${item}" >> ran.txt
reduce:
  - shell: echo "reduce saw ${map.completed}" > reduced.txt
"#,
    );
    let mut coordinator = spawn(
        &ws,
        &["run", "job.yml", "--progress", "none", "--store", &url],
        "coordinator.log",
    );
    let store = || mmm_store::open(&url, false);
    let job = crate::postgres::map_started(&url);
    let id = job.to_string();
    let mut worker = spawn(
        &ws,
        &[
            "worker", "--store", &url, "--job", &id, "-j", "2", "--name", "w",
        ],
        "w.log",
    );
    let done = || {
        store()
            .and_then(|s| s.job(job))
            .map_or(0, |j| j.counts.completed)
    };
    wait_until(Duration::from_secs(120), "items to complete", || {
        done() >= 60
    });
    kill9(&mut coordinator);
    assert!(
        done() < ITEMS as u64 / 2,
        "nearly done before the kill; make items slower"
    );

    let resume = ws.run(&["resume", &id, "--progress", "none", "--store", &url]);
    resume.success();
    let code = exit_code(&mut worker, Duration::from_secs(60), "the worker");
    assert_eq!(code, 0, "worker: {}", ws.read("w.log"));

    let record = schema.only_job();
    assert_eq!(record.status, JobStatus::Completed);
    assert_eq!(record.counts.completed, ITEMS as u64);
    assert_eq!(ws.read("reduced.txt").trim(), format!("reduce saw {ITEMS}"));

    // The new coordinator's last snapshot counts the whole job, but what was done before it
    // took over only as restored: never in a rate, never in the durations.
    let last = schema
        .store()
        .latest_snapshot(job)
        .unwrap()
        .expect("snapshots")
        .payload
        .to_json();
    let progress = &last["progress"];
    assert_eq!(progress["completed"], ITEMS, "{last}");
    let restored = progress["restored"].as_u64().unwrap();
    assert!(
        (60..ITEMS as u64).contains(&restored),
        "restored {restored}: {last}"
    );
    assert_eq!(
        last["metrics"]["items"]["count"].as_u64(),
        Some(ITEMS as u64 - restored),
        "only this run's items are measured: {last}"
    );
    assert!(
        last["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "w/1"),
        "the worker's agents are listed: {last}"
    );

    let attempts = schema.store().attempts(job, None).unwrap();
    let mut succeeded: BTreeMap<&str, usize> = BTreeMap::new();
    for attempt in &attempts {
        assert!(attempt.outcome.is_some(), "left in flight: {attempt:?}");
        if attempt.agent.starts_with("w/") {
            assert_ne!(
                attempt.outcome,
                Some(AttemptOutcome::Interrupted),
                "the resume interrupted a live worker's attempt: {attempt:?}"
            );
        }
        if attempt.outcome == Some(AttemptOutcome::Succeeded) {
            *succeeded.entry(attempt.item_key.as_str()).or_default() += 1;
        }
    }
    assert_eq!(succeeded.len(), ITEMS);
    assert!(
        succeeded.values().all(|n| *n == 1),
        "an item completed twice"
    );
    assert!(
        attempts.iter().any(|a| a.agent.starts_with("w/")),
        "the worker took part"
    );
}

/// Issue 8: the coordinator's snapshots (what `mmm progress`, the dashboard and the exports
/// read) show the whole job, not only its own agents: every item in the counts and none as
/// restored (so rates count every host's items), the durations of every item, and every
/// agent of every process by name. Two workers on one host without `--name` get distinct
/// agent names.
#[test]
fn the_coordinators_snapshots_show_every_hosts_items_and_agents() {
    if skipped("the_coordinators_snapshots_show_every_hosts_items_and_agents") {
        return;
    }
    const ITEMS: u64 = 300;
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=ITEMS).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    // The coordinator's one agent is slow, so that the workers surely join before the end.
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
        case "$MMM_AGENT" in agent-*) sleep 0.3;; *) sleep 0.05;; esac
"#,
    );
    let mut coordinator = spawn(
        &ws,
        &["run", "job.yml", "--progress", "none", "--store", &url],
        "coordinator.log",
    );
    let mut job = None;
    wait_until(Duration::from_secs(60), "the job's map to start", || {
        let Ok(store) = mmm_store::open(&url, false) else {
            return false;
        };
        job = store.jobs().ok().and_then(|jobs| jobs.into_iter().next());
        job.as_ref().is_some_and(|j| j.phase == Some(Phase::Map))
    });
    let job = job.unwrap().id;
    let id = job.to_string();
    let worker = |log: &str| {
        spawn(
            &ws,
            &[
                "worker",
                "--store",
                &url,
                "--job",
                &id,
                "-j",
                "2",
                "--exit-when-idle",
            ],
            log,
        )
    };
    let mut workers = [worker("w1.log"), worker("w2.log")];
    let store = schema.store();
    let snapshot = || {
        store
            .latest_snapshot(job)
            .unwrap()
            .map(|s| s.payload.to_json())
            .unwrap_or_default()
    };

    // Mid-run: the workers' agents are in the coordinator's snapshot, with their items.
    let mut mid = serde_json::Value::Null;
    wait_until(
        Duration::from_secs(120),
        "a snapshot with the workers' agents at work",
        || {
            mid = snapshot();
            let busy = mid["agents"].as_array().map_or(0, |agents| {
                agents
                    .iter()
                    .filter(|a| a["name"] != "agent-1" && a["items_done"].as_u64() > Some(0))
                    .count()
            });
            busy == 4
        },
    );
    assert_eq!(mid["progress"]["restored"], 0, "{mid}");

    let code = exit_code(
        &mut coordinator,
        Duration::from_secs(300),
        "the coordinator",
    );
    assert_eq!(code, 0, "coordinator: {}", ws.read("coordinator.log"));
    for (worker, log) in workers.iter_mut().zip(["w1.log", "w2.log"]) {
        let code = exit_code(worker, Duration::from_secs(60), log);
        assert_eq!(code, 0, "{log}: {}", ws.read(log));
    }
    let record = schema.only_job();
    assert_eq!(record.counts.completed, ITEMS);

    // The final snapshot: the whole job, counted as this run's work.
    let last = snapshot();
    let progress = &last["progress"];
    assert_eq!(progress["completed"], ITEMS, "{last}");
    assert_eq!(progress["restored"], 0, "{last}");
    assert_eq!(progress["percent"], 100.0, "{last}");
    assert_eq!(last["metrics"]["eta"]["state"], "done", "{last}");
    assert_eq!(last["metrics"]["items"]["count"], ITEMS, "{last}");
    assert_eq!(
        last["metrics"]["steps"][0]["durations"]["count"], ITEMS,
        "{last}"
    );
    // The average rate is over every item: it is above what the coordinator's one agent
    // could do alone (at most one item per 0.3 s).
    let average = last["rates"]["throughput_average"].as_f64().unwrap();
    assert!(average > 1.0 / 0.3, "throughput_average {average}: {last}");

    // Every agent of every process, each once, and their items add up to the job.
    let names = names_of(&last);
    assert_eq!(names.len(), 5, "{names:?}");
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), 5, "agent names collide: {names:?}");
    assert_eq!(names[0], "agent-1");
    let host = mmm_store::owner::host_name();
    let processes: BTreeSet<&str> = names[1..]
        .iter()
        .map(|n| {
            let (process, _) = n.rsplit_once('/').expect("NAME/N");
            assert!(process.starts_with(&format!("{host}:")), "{n}");
            process
        })
        .collect();
    assert_eq!(processes.len(), 2, "one name per worker: {names:?}");
    let done: u64 = last["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["items_done"].as_u64().unwrap())
        .sum();
    assert_eq!(done, ITEMS, "{last}");
    // The record agrees with the snapshot about who ran what.
    let attempts = store.attempts(job, None).unwrap();
    for name in &names {
        let ran = attempts.iter().filter(|a| &a.agent == name).count() as u64;
        let row = last["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name.as_str())
            .unwrap();
        assert_eq!(row["items_done"], ran, "{name}: {last}");
    }

    // `mmm progress --json` serves that snapshot.
    let json = ws.run(&["progress", &id, "--json", "--store", &url]);
    json.success();
    let state: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
    assert_eq!(names_of(&state["snapshot"]["payload"]), names);
}

fn names_of(payload: &serde_json::Value) -> Vec<String> {
    payload["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Issue 8: the full-screen viewer (`mmm progress` in tmux) on a PostgreSQL job that a
/// coordinator and a worker run: it waits on the store's NOTIFY, the counts advance on
/// screen, and the agents table lists the worker's agents by name beside the coordinator's.
#[test]
fn the_viewer_on_postgres_wakes_on_notify_and_lists_every_hosts_agents() {
    if skipped("the_viewer_on_postgres_wakes_on_notify_and_lists_every_hosts_agents") {
        return;
    }
    const ITEMS: usize = 400;
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=ITEMS).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  key: \"${item}\"\n  max_parallel: 1\n  steps:\n\
         \x20   - name: work\n      shell: sleep 0.1\n",
    );
    let mut coordinator = spawn(
        &ws,
        &["run", "job.yml", "--progress", "none", "--store", &url],
        "coordinator.log",
    );
    wait_until(Duration::from_secs(60), "the job's map to start", || {
        mmm_store::open(&url, false)
            .ok()
            .and_then(|s| s.jobs().ok())
            .and_then(|jobs| jobs.into_iter().next())
            .is_some_and(|j| j.phase == Some(Phase::Map))
    });
    let id = schema.only_job().id.to_string();
    let mut worker = spawn(
        &ws,
        &[
            "worker", "--store", &url, "--job", &id, "-j", "2", "--name", "wk",
        ],
        "worker.log",
    );

    let name = format!("mmm_viewer_{}", uuid::Uuid::now_v7().simple());
    let viewer_url = format!("{url}&application_name={name}");
    let command = format!(
        "exec '{}' progress {id} --store '{viewer_url}'",
        env!("CARGO_BIN_EXE_mmm")
    );
    let tmux = Tmux::start_sized("pg-viewer", ws.path(), &command, 120, 30);
    let suffix = format!("/{ITEMS}");
    let done_count = |screen: &str| -> Option<u64> {
        let word = screen.split_whitespace().find(|w| w.ends_with(&suffix))?;
        word.trim_end_matches(&suffix).parse().ok()
    };
    let mut first = None;
    let mut screen = String::new();
    let mut seen = false;
    let mut listened = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline && !(seen && listened) {
        screen = tmux.screen();
        listened = listened || listening(&name);
        if let Some(done) = done_count(&screen) {
            let first = *first.get_or_insert(done);
            seen = done > first
                && screen.contains("agent-1")
                && screen.contains("wk/1")
                && screen.contains("wk/2");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tmux.send(&["q"]);
    let mut quit = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline && !quit {
        quit = !tmux.is_running();
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(tmux);
    kill9(&mut coordinator);
    kill9(&mut worker);
    assert!(listened, "the viewer never listened for NOTIFY:\n{screen}");
    assert!(
        seen,
        "the counts did not advance, or the agents of both processes were not listed:\n{screen}"
    );
    assert!(quit, "the viewer did not quit on q:\n{screen}");
}

/// `GET path` on the server at `addr`: the status and the JSON body.
fn get_json(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        let body = response.text().await.expect("a body");
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        (status, json)
    })
}

/// Issue 8: `mmm serve` on a PostgreSQL store serves a job that a coordinator and a worker
/// run: the jobs list and the job's state show it live, its progress advances, its agents
/// are both processes' ones, and at the end it is complete.
#[test]
fn serve_on_postgres_shows_a_job_a_coordinator_and_a_worker_run() {
    if skipped("serve_on_postgres_shows_a_job_a_coordinator_and_a_worker_run") {
        return;
    }
    const ITEMS: u64 = 300;
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=ITEMS).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  key: \"${item}\"\n  max_parallel: 1\n  steps:\n\
         \x20   - name: work\n      shell: sleep 0.05\n",
    );
    let (_server, addr) = crate::web::serve_binary(&ws, &["serve", "--port", "0", "--store", &url]);
    let mut coordinator = spawn(
        &ws,
        &["run", "job.yml", "--progress", "none", "--store", &url],
        "coordinator.log",
    );
    // The server started before the job: the list shows it once recorded.
    let mut id = String::new();
    wait_until(Duration::from_secs(60), "the job in /api/jobs", || {
        let (status, jobs) = get_json(addr, "/api/jobs");
        assert_eq!(status, 200, "{jobs}");
        match jobs.as_array().and_then(|jobs| jobs.first()) {
            Some(job) if job["phase"] == "map" => {
                id = job["id"].as_str().unwrap().to_string();
                assert_eq!(job["status"], "running", "{job}");
                true
            }
            _ => false,
        }
    });
    let mut worker = spawn(
        &ws,
        &[
            "worker",
            "--store",
            &url,
            "--job",
            &id,
            "-j",
            "2",
            "--name",
            "wk",
            "--exit-when-idle",
        ],
        "worker.log",
    );

    // Live: the state advances, and the newest snapshot lists the worker's agents.
    let path = format!("/api/jobs/{id}");
    let done = |state: &serde_json::Value| state["job"]["counts"]["completed"].as_u64().unwrap();
    let (status, first) = get_json(addr, &path);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["live"], true, "{first}");
    let mut state = first.clone();
    wait_until(
        Duration::from_secs(120),
        "the state to advance with the worker's agents in it",
        || {
            state = get_json(addr, &path).1;
            let agents: Vec<&str> = state["snapshot"]["payload"]["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["name"].as_str())
                .collect();
            done(&state) > done(&first)
                && state["percent"].as_f64() > first["percent"].as_f64()
                && agents.contains(&"wk/1")
                && agents.contains(&"agent-1")
        },
    );
    let (status, agents) = get_json(addr, &format!("{path}/agents"));
    assert_eq!(status, 200, "{agents}");
    let names: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(names.contains(&"wk/2"), "{agents}");

    let code = exit_code(
        &mut coordinator,
        Duration::from_secs(300),
        "the coordinator",
    );
    assert_eq!(code, 0, "coordinator: {}", ws.read("coordinator.log"));
    let code = exit_code(&mut worker, Duration::from_secs(60), "the worker");
    assert_eq!(code, 0, "worker: {}", ws.read("worker.log"));
    let (_, end) = get_json(addr, &path);
    assert_eq!(end["job"]["status"], "completed", "{end}");
    assert_eq!(done(&end), ITEMS, "{end}");
    assert_eq!(end["live"], false, "{end}");
    assert_eq!(
        end["snapshot"]["payload"]["progress"]["completed"], ITEMS,
        "{end}"
    );
    let (_, jobs) = get_json(addr, "/api/jobs");
    assert_eq!(jobs[0]["status"], "completed", "{jobs}");
    assert_eq!(jobs[0]["counts"]["completed"], ITEMS, "{jobs}");
}
