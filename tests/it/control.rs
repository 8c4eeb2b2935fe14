//! Steering a running job from a second process (issue 19, docs/control.md): `mmm pause`,
//! `unpause`, `scale`, `drain` and `cancel` through the store, while `mmm run` works.

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use mmm_core::event::Event;
use mmm_core::job::{AttemptOutcome, JobId, JobStatus};

use crate::harness::{Workspace, exit_code, kill9, wait_until};
use crate::tmux::Tmux;

/// A workspace with `n` items, each `step` (a shell line; `${item}` is the item), run by
/// `agents` agents; the run started in the background, and its job once it is recorded.
fn running(n: usize, agents: usize, step: &str, extra: &[&str]) -> (Workspace, Child, JobId) {
    let ws = Workspace::new();
    let items: String = (1..=n).map(|i| format!("i{i}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        &format!(
            "map:\n  input: items.txt\n  max_parallel: {agents}\n  steps:\n    - shell: {step}\n"
        ),
    );
    let mut args = vec!["run", "job.yml", "--progress", "none"];
    args.extend_from_slice(extra);
    let child = ws.spawn(&args);
    wait_until(Duration::from_secs(30), "the job to run its items", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.status == JobStatus::Running && j.counts.running > 0)
    });
    let job = ws.only_job().id;
    (ws, child, job)
}

/// Items the store has in flight now.
fn in_flight(ws: &Workspace, job: JobId) -> u64 {
    ws.store().job(job).unwrap().counts.running
}

/// When the job's first event matching `what` was recorded, if it was.
fn event_at(ws: &Workspace, job: JobId, what: impl Fn(&Event) -> bool) -> Option<i64> {
    ws.store()
        .events(job, 0, 100_000)
        .unwrap()
        .into_iter()
        .find(|e| what(&e.event))
        .map(|e| e.at)
}

#[test]
fn control_pause_stops_new_items_while_those_in_flight_finish_then_unpause_goes_on() {
    let (ws, mut child, job) = running(16, 2, "sleep 0.4; echo ${item} >> done.txt", &[]);
    let short = job.short();
    ws.run(&["pause", &short]).success();
    let paused_at = event_at(&ws, job, |e| matches!(e, Event::Paused(_)))
        .expect("the owner recorded the pause before `mmm pause` returned");

    // The items in flight finish (they are not killed)...
    wait_until(Duration::from_secs(5), "the items in flight to end", || {
        in_flight(&ws, job) == 0
    });
    // ...and for 2 s nothing starts.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(2) {
        assert_eq!(in_flight(&ws, job), 0, "an item started while paused");
        std::thread::sleep(Duration::from_millis(50));
    }
    let attempts = ws.attempts(job);
    let started_after: Vec<_> = attempts
        .iter()
        .filter(|a| a.started_at > paused_at)
        .collect();
    assert!(
        started_after.is_empty(),
        "attempts started after the pause: {started_after:?}"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Succeeded)),
        "no attempt was cut short by the pause: {attempts:?}"
    );
    let done_while_paused = ws.store().job(job).unwrap().counts.completed;
    assert!(done_while_paused < 16, "the pause came before the end");

    // `mmm jobs` says so, and `mmm progress`: paused, its ETA `paused` (never `stalled`),
    // its heartbeat going on.
    let jobs = ws.jobs_json();
    assert_eq!(jobs[0]["paused"], serde_json::json!(true), "{jobs}");
    let beat = ws.store().job(job).unwrap().heartbeat_at.unwrap();
    wait_until(
        Duration::from_secs(5),
        "a snapshot with the ETA paused",
        || {
            let state = ws.json(&["progress", &short, "--json"]);
            state["job"]["paused"] == serde_json::json!(true)
                && state["snapshot"]["payload"]["metrics"]["eta"]["state"] == "paused"
        },
    );
    wait_until(Duration::from_secs(5), "the heartbeat to go on", || {
        ws.store().job(job).unwrap().heartbeat_at.unwrap() > beat
    });
    let line = ws.run(&["progress", &short, "--once"]);
    assert!(line.stdout().contains("paused"), "{}", line.stdout());

    ws.run(&["unpause", &short]).success();
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(30), "the run to end"),
        0
    );
    let job_after = ws.only_job();
    assert_eq!(job_after.status, JobStatus::Completed);
    let events = ws.run(&["events", &short, "--type", "control"]);
    events.success();
    for kind in ["control_requested", "paused", "unpaused"] {
        assert!(
            events.stdout().contains(kind),
            "{kind} in:\n{}",
            events.stdout()
        );
    }
}

#[test]
fn control_scale_up_starts_agents_at_once_and_down_kills_nothing() {
    let (ws, mut child, job) = running(400, 2, "sleep 1.5", &[]);
    let short = job.short();
    // Within 1 s of the request: `mmm scale` itself included (it returns once applied).
    let asked = Instant::now();
    ws.run(&["scale", &short, "6"]).success();
    let left = Duration::from_secs(1).saturating_sub(asked.elapsed());
    wait_until(left, "6 items in flight within 1 s of the request", || {
        in_flight(&ws, job) == 6
    });
    eprintln!(
        "6 in flight {:?} after `mmm scale` started",
        asked.elapsed()
    );

    ws.run(&["scale", &short, "1"]).success();
    wait_until(
        Duration::from_secs(10),
        "the extra agents to retire after their item",
        || in_flight(&ws, job) <= 1,
    );
    let attempts = ws.attempts(job);
    let cut: Vec<_> = attempts
        .iter()
        .filter(|a| a.outcome.is_some_and(|o| o != AttemptOutcome::Succeeded))
        .collect();
    assert!(cut.is_empty(), "a scale down killed commands: {cut:?}");
    assert!(
        event_at(
            &ws,
            job,
            |e| matches!(e, Event::Scaled(s) if s.from == 6 && s.to == 1)
        )
        .is_some()
    );
    ws.run(&["cancel", &short, "--now"]).success();
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(20), "the run to end"),
        130
    );
}

#[test]
fn control_drain_interrupts_and_resume_finishes_with_nothing_done_twice() {
    let (ws, mut child, job) = running(30, 3, "sleep 0.3; echo ${item} >> done.txt", &[]);
    let short = job.short();
    ws.run(&["drain", &short]).success();
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(20), "the run to end"),
        130
    );
    let drained = ws.only_job();
    assert_eq!(drained.status, JobStatus::Interrupted);
    assert!(
        drained.counts.completed < 30,
        "the drain came before the end"
    );
    assert!(
        ws.attempts(job)
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Succeeded)),
        "a drain lets the items in flight finish"
    );

    ws.run(&["resume", &short, "--progress", "none"]).success();
    let done: Vec<String> = ws.read("done.txt").lines().map(str::to_string).collect();
    let unique: BTreeSet<&String> = done.iter().collect();
    assert_eq!(done.len(), 30, "every item ran once: {done:?}");
    assert_eq!(unique.len(), 30);
    assert_eq!(ws.only_job().status, JobStatus::Completed);
    // The resume ledger lists the request beside the resume.
    let ledger = ws.run(&["jobs", &short]);
    ledger.success();
    assert!(
        ledger.stdout().contains("drain requested") && ledger.stdout().contains("resumed"),
        "{}",
        ledger.stdout()
    );
}

#[test]
fn control_cancel_kills_commands_after_the_grace_period() {
    let (ws, mut child, job) = running(20, 2, "sleep 30", &["--grace", "1s"]);
    let asked = Instant::now();
    ws.run(&["cancel", &job.short()]).success();
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(15), "the run to end"),
        130
    );
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "the commands had their grace period ({took:?})"
    );
    let cancelled = ws.only_job();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let attempts = ws.attempts(job);
    assert!(
        !attempts.is_empty()
            && attempts
                .iter()
                .all(|a| a.outcome == Some(AttemptOutcome::Interrupted)),
        "the running commands were killed: {attempts:?}"
    );
    // Not resumable, unless forced.
    let refused = ws.run(&["resume", &job.short(), "--progress", "none"]);
    refused.code_is(2);
    assert!(refused.stderr().contains("--force"), "{}", refused.stderr());
}

#[test]
fn control_requests_a_job_cannot_take_exit_2() {
    let ws = Workspace::new();
    ws.run(&["run", "--progress", "none", "--", "true", ":::", "a"])
        .success();
    let short = ws.short_id();
    for args in [
        vec!["pause", short.as_str()],
        vec!["scale", short.as_str(), "2"],
        vec!["drain", short.as_str()],
        vec!["cancel", short.as_str()],
        vec!["unpause", short.as_str()],
    ] {
        let run = ws.run(&args);
        run.code_is(2);
        assert!(
            run.stderr().contains("not running"),
            "{args:?}: {}",
            run.stderr()
        );
    }
    for agents in ["0", "257", "-1", "many"] {
        ws.run(&["scale", &short, agents]).code_is(2);
    }
    ws.run(&["pause", "ffffffff"]).code_is(2);
    assert!(
        ws.store()
            .events(ws.only_job().id, 0, 1000)
            .unwrap()
            .iter()
            .all(|e| !matches!(e.event, Event::ControlRequested(_))),
        "a refused request leaves no record"
    );
}

#[test]
fn control_a_paused_job_killed_and_resumed_comes_back_paused() {
    let (ws, mut child, job) = running(12, 2, "sleep 0.3; echo ${item} >> done.txt", &[]);
    let short = job.short();
    ws.run(&["pause", &short]).success();
    wait_until(Duration::from_secs(5), "the items in flight to end", || {
        in_flight(&ws, job) == 0
    });
    kill9(&mut child);
    let before = ws.attempts(job).len();

    let mut resumed = ws.spawn(&["resume", &short, "--progress", "none"]);
    wait_until(
        Duration::from_secs(10),
        "the resume to take the job",
        || {
            let record = ws.store().job(job).unwrap();
            record.status == JobStatus::Running && record.owner_pid == Some(resumed.id())
        },
    );
    wait_until(
        Duration::from_secs(5),
        "the resume to restore the pause",
        || {
            event_at(
                &ws,
                job,
                |e| matches!(e, Event::Paused(p) if p.request.is_none()),
            )
            .is_some()
        },
    );
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            ws.attempts(job).len(),
            before,
            "an item started while paused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ws.run(&["unpause", &short]).success();
    assert_eq!(
        exit_code(&mut resumed, Duration::from_secs(30), "the run to end"),
        0
    );
    let mut stderr = String::new();
    use std::io::Read;
    resumed
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("is paused") && stderr.contains(&format!("mmm unpause {short}")),
        "the resume says it is paused and how to unpause:\n{stderr}"
    );
    assert_eq!(ws.only_job().status, JobStatus::Completed);
}

/// The state letter of process `pid` in `/proc` (`S`, `R`, `T` for stopped, ...).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn control_pause_suspend_stops_process_groups_and_unpause_continues_them() {
    // Each command writes its pid (its group's leader), then sleeps in a child.
    let (ws, mut child, job) = running(4, 2, "echo $$ >> pids.txt; sleep 1.5", &["--grace", "1s"]);
    let short = job.short();
    wait_until(
        Duration::from_secs(5),
        "two commands to write their pid",
        || std::fs::read_to_string(ws.join("pids.txt")).is_ok_and(|t| t.lines().count() >= 2),
    );
    ws.run(&["pause", &short, "--suspend"]).success();
    let pids: Vec<i32> = ws
        .read("pids.txt")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let running: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|&p| proc_state(p).is_some_and(|s| s != 'Z'))
        .collect();
    assert!(
        !running.is_empty(),
        "commands in flight when paused: {pids:?}"
    );
    wait_until(
        Duration::from_secs(2),
        "the commands to be stopped (T)",
        || running.iter().all(|&p| proc_state(p) == Some('T')),
    );
    // Stopped for longer than their sleep: they do not end.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(2) {
        assert!(
            running.iter().all(|&p| proc_state(p) == Some('T')),
            "a suspended command ran on"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ws.run(&["unpause", &short]).success();
    wait_until(Duration::from_secs(2), "the commands to continue", || {
        running.iter().all(|&p| proc_state(p) != Some('T'))
    });
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(30), "the run to end"),
        0
    );
    assert!(
        ws.attempts(job)
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Succeeded)),
        "suspended commands finish normally"
    );
}

#[test]
fn control_a_suspended_command_does_not_time_out() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\nb\n");
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 2\n  timeout: 3s\n  steps:\n    - shell: echo started >> started.txt; sleep 2\n",
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(20), "both items to start", || {
        std::fs::read_to_string(ws.join("started.txt")).is_ok_and(|t| t.lines().count() == 2)
    });
    let job = ws.only_job().id;
    ws.run(&["pause", &job.short(), "--suspend"]).success();
    // Stopped past the timeout (3 s from their start), then continued.
    std::thread::sleep(Duration::from_millis(3500));
    ws.run(&["unpause", &job.short()]).success();
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(30), "the run to end"),
        0
    );
    let attempts = ws.attempts(job);
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Succeeded)),
        "the time suspended is not counted against the timeout: {attempts:?}"
    );
}

/// Items in flight by process: the coordinator's agents (`agent-N`) and a worker's (`w1/N`).
fn in_flight_by(store: &dyn mmm_store::Store, job: JobId) -> (usize, usize) {
    let attempts = store.attempts(job, None).unwrap_or_default();
    let open = attempts.iter().filter(|a| a.outcome.is_none());
    let (mut own, mut worker) = (0, 0);
    for a in open {
        if a.agent.starts_with("w1/") {
            worker += 1;
        } else {
            own += 1;
        }
    }
    (own, worker)
}

#[test]
fn control_on_postgres_a_coordinator_and_a_worker_obey_pause_scale_and_drain() {
    use crate::postgres::{Schema, skipped};
    use mmm_core::job::Phase;
    if skipped("control_on_postgres_a_coordinator_and_a_worker_obey_pause_scale_and_drain") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=400).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 2\n  steps:\n    - shell: sleep 0.4; echo ${item} >> ran.txt\n",
    );
    let mut coordinator = ws.spawn(&["run", "job.yml", "--progress", "none", "--store", &url]);
    let store = schema.store();
    let mut job = None;
    wait_until(Duration::from_secs(60), "the job's map to start", || {
        job = store.jobs().ok().and_then(|jobs| jobs.into_iter().next());
        job.as_ref()
            .is_some_and(|j| j.phase == Some(Phase::Map) && j.counts.total() == 400)
    });
    let job = job.unwrap().id;
    let id = job.to_string();
    let mut worker = ws.spawn(&[
        "worker",
        "--store",
        &url,
        "--job",
        &id,
        "-j",
        "2",
        "--name",
        "w1",
        "--exit-when-idle",
    ]);
    wait_until(
        Duration::from_secs(30),
        "both processes to run items",
        || {
            let (own, worker) = in_flight_by(store.as_ref(), job);
            own > 0 && worker > 0
        },
    );
    let mmm = |args: &[&str]| {
        let mut all = vec!["--store", url.as_str()];
        all.extend_from_slice(args);
        ws.run(&all)
    };

    // Pause: both processes let their items in flight finish, then start nothing for 2 s.
    mmm(&["pause", &id]).success();
    wait_until(Duration::from_secs(5), "the items in flight to end", || {
        in_flight_by(store.as_ref(), job) == (0, 0)
    });
    let attempts = store.attempts(job, None).unwrap().len();
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            store.attempts(job, None).unwrap().len(),
            attempts,
            "an item started while paused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Scale to 3 while paused, then unpause: 3 agents in each process.
    mmm(&["scale", &id, "3"]).success();
    mmm(&["unpause", &id]).success();
    wait_until(
        Duration::from_secs(3),
        "3 items in flight in each process",
        || in_flight_by(store.as_ref(), job) == (3, 3),
    );

    // Drain: both stop taking items; the run ends interrupted with nothing cut short.
    mmm(&["drain", &id]).success();
    assert_eq!(
        exit_code(&mut coordinator, Duration::from_secs(30), "the run to end"),
        130
    );
    exit_code(&mut worker, Duration::from_secs(30), "the run to end");
    let record = schema.only_job();
    assert_eq!(record.status, JobStatus::Interrupted);
    assert!(record.counts.completed < 400);
    let cut: Vec<_> = store
        .attempts(job, None)
        .unwrap()
        .into_iter()
        .filter(|a| a.outcome != Some(AttemptOutcome::Succeeded))
        .collect();
    assert!(
        cut.is_empty(),
        "a drain lets every item in flight finish: {cut:?}"
    );
}

/// The viewer's keys in a real terminal (tmux): `p` pauses and unpauses, `+` scales up, `x`
/// then `y` cancels; each through the store, seen in the job's record and events.
#[test]
fn control_viewer_keys_in_tmux_steer_a_running_job() {
    let (ws, mut child, job) = running(200, 2, "sleep 0.5", &["--grace", "1s"]);
    let command = format!(
        "exec '{}' progress {}",
        env!("CARGO_BIN_EXE_mmm"),
        job.short()
    );
    let tmux = Tmux::start_sized("control", ws.path(), &command, 140, 30);
    let record = || ws.store().job(job).unwrap();
    let within = Duration::from_secs(5);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tmux.wait_for_screen(Duration::from_secs(20), "the viewer's control keys", |s| {
            s.contains("p pause")
        });
        tmux.send(&["p"]);
        wait_until(within, "the job to be paused", || record().paused);
        tmux.wait_for_screen(within, "the viewer to say paused", |s| s.contains("paused"));
        tmux.send(&["p"]);
        wait_until(within, "the job to be unpaused", || !record().paused);
        tmux.send(&["+"]);
        wait_until(within, "the job to run 3 agents", || {
            record().scaled_agents == Some(3)
        });
        tmux.send(&["x"]);
        tmux.wait_for_screen(within, "the viewer to ask first", |s| {
            s.contains("y cancels")
        });
        assert_eq!(
            record().status,
            JobStatus::Running,
            "x alone cancels nothing"
        );
        tmux.send(&["y"]);
        assert_eq!(
            exit_code(&mut child, Duration::from_secs(20), "the run to end"),
            130
        );
        assert_eq!(record().status, JobStatus::Cancelled);
    }));
    drop(tmux);
    let _ = child.kill();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    let requested: Vec<String> = ws
        .store()
        .events(job, 0, 100_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::ControlRequested(r) => Some(r.action.name().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(requested, ["pause", "unpause", "scale", "cancel"]);
}

/// The dashboard's buttons in headless Chromium, on a server with a token: pause, unpause, one
/// agent more, then cancel, which asks first (dismissed once, then accepted). The events feed
/// shows the requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_dashboard_buttons_in_chromium_steer_a_running_job() {
    use crate::web::{browser, click, start, wait_text};
    let (ws, mut child, job) = running(300, 2, "sleep 0.5", &["--grace", "1s"]);
    let addr = start(&ws, Some("s3cret")).await;
    let (_driver, client, _profile) = browser().await;
    client
        .goto(&format!("http://{addr}/?token=s3cret#/job/{job}"))
        .await
        .unwrap();
    // Generous: the whole suite runs beside it on a small CI machine.
    let within = Duration::from_secs(30);
    let record = || ws.store().job(job).unwrap();
    wait_text(&client, "#ctl-pause", within, "the pause button", |t| {
        t == "pause"
    })
    .await;
    click(&client, "#ctl-pause", within).await;
    wait_until(within, "the job to be paused", || record().paused);
    wait_text(
        &client,
        "#job-status",
        within,
        "the page to say paused",
        |t| t == "paused",
    )
    .await;
    wait_text(&client, "#ctl-pause", within, "the unpause button", |t| {
        t == "unpause"
    })
    .await;
    click(&client, "#ctl-pause", within).await;
    wait_until(within, "the job to be unpaused", || !record().paused);
    // The page redraws its buttons as the job's record changes (the unpause just now): a
    // click on a button being replaced is lost, so click until the request is on record.
    let scale_requests = || {
        ws.store()
            .control_requests(job, 0)
            .unwrap()
            .into_iter()
            .filter(|r| r.request.action.name() == "scale")
            .count()
    };
    for _ in 0..5 {
        click(&client, "#ctl-scale-up", within).await;
        let asked = std::time::Instant::now();
        while scale_requests() == 0 && asked.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if scale_requests() > 0 {
            break;
        }
    }
    assert_eq!(scale_requests(), 1, "one scale request on record");
    wait_until(within, "the job to run 3 agents", || {
        record().scaled_agents == Some(3)
    });
    wait_text(&client, "#ctl-agents", within, "3 agents shown", |t| {
        t == "3 agents"
    })
    .await;

    // Cancel asks first: dismissed, nothing is sent.
    click(&client, "#ctl-cancel", within).await;
    client.dismiss_alert().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        record().status,
        JobStatus::Running,
        "a dismissed cancel sends nothing"
    );
    click(&client, "#ctl-cancel", within).await;
    client.accept_alert().await.unwrap();
    wait_until(Duration::from_secs(20), "the job to be cancelled", || {
        record().status == JobStatus::Cancelled
    });
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(20), "the run to end"),
        130
    );
    wait_text(
        &client,
        "#events",
        within,
        "the requests in the events feed",
        |t| t.contains("control_requested") && t.contains("cancelling"),
    )
    .await;
    let requested: Vec<String> = ws
        .store()
        .events(job, 0, 100_000)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::ControlRequested(r) => Some(r.action.name().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(requested, ["pause", "unpause", "scale", "cancel"]);
}

/// `POST /api/jobs/{id}/control` behind a token: refused without it (nothing recorded),
/// recorded with it; a page of another origin is refused; a job that is not running is 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_needs_the_token_and_the_same_origin() {
    use crate::web::start;
    let (ws, mut child, job) = running(100, 1, "sleep 0.3", &[]);
    let addr = start(&ws, Some("s3cret")).await;
    let url = format!("http://{addr}/api/jobs/{}/control", job.short());
    let post = |body: &'static str, token: Option<&str>, origin: Option<&str>| {
        let mut request = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let pause = r#"{"action": "pause", "suspend": false}"#;
    assert_eq!(post(pause, None, None).await.unwrap().status(), 401);
    assert_eq!(
        post(pause, Some("s3cret"), Some("http://evil.example"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(r#"{"action": "scale", "agents": 0}"#, Some("s3cret"), None)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        post(r#"{"action": "jump"}"#, Some("s3cret"), None)
            .await
            .unwrap()
            .status(),
        400
    );
    assert!(
        ws.store()
            .events(job, 0, 100_000)
            .unwrap()
            .iter()
            .all(|e| !matches!(e.event, Event::ControlRequested(_))),
        "refused requests leave no record"
    );
    let ok = post(pause, Some("s3cret"), Some(&format!("http://{addr}")))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let record: serde_json::Value = serde_json::from_str(&ok.text().await.unwrap()).unwrap();
    assert_eq!(record["seq"], 1);
    wait_until(Duration::from_secs(5), "the job to be paused", || {
        ws.store().job(job).unwrap().paused
    });
    let cancel = post(r#"{"action": "cancel", "now": true}"#, Some("s3cret"), None);
    assert_eq!(cancel.await.unwrap().status(), 200);
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(20), "the run to end"),
        130
    );
    assert_eq!(
        post(pause, Some("s3cret"), None).await.unwrap().status(),
        409,
        "a cancelled job takes no request"
    );
}

/// A drain recorded for a run that died before applying it (the job still says `running`)
/// addressed that run: the resume settles it without effect and finishes the job.
#[test]
fn control_a_request_to_a_dead_run_does_not_reach_the_resume() {
    let (ws, mut child, job) = running(8, 2, "sleep 0.2; echo ${item} >> done.txt", &[]);
    kill9(&mut child);
    let request = mmm_store::ControlRequest {
        action: mmm_core::control::ControlAction::Drain,
        host: "elsewhere".into(),
        pid: 1,
    };
    ws.store()
        .request_control(job, &request, mmm_core::job::now_ms())
        .expect("the job is still recorded running");
    ws.run(&["resume", &job.short(), "--progress", "none"])
        .success();
    assert_eq!(ws.only_job().status, JobStatus::Completed);
    assert!(ws.store().pending_control(job, 0).unwrap().is_empty());
    assert!(
        event_at(&ws, job, |e| matches!(e, Event::Draining(_))).is_none(),
        "the stale drain had no effect"
    );
}

/// A cancel of a job paused with `--suspend`: the stopped commands are continued for their
/// grace period and get SIGTERM they can handle, then the job is `cancelled`.
#[test]
fn control_cancel_of_a_suspended_job_continues_its_commands_to_stop_them() {
    let (ws, mut child, job) = running(
        4,
        2,
        "trap 'echo term >> term.txt; exit 0' TERM; echo $$ >> pids.txt; sleep 30 & wait",
        &["--grace", "1s"],
    );
    let short = job.short();
    wait_until(Duration::from_secs(5), "two commands to start", || {
        std::fs::read_to_string(ws.join("pids.txt")).is_ok_and(|t| t.lines().count() >= 2)
    });
    ws.run(&["pause", &short, "--suspend"]).success();
    let pids: Vec<i32> = ws
        .read("pids.txt")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    wait_until(Duration::from_secs(2), "the commands to be stopped", || {
        pids.iter().all(|&p| proc_state(p) == Some('T'))
    });
    ws.run(&["cancel", &short]).success();
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(15), "the run to end"),
        130
    );
    assert_eq!(ws.only_job().status, JobStatus::Cancelled);
    let handled = std::fs::read_to_string(ws.join("term.txt")).unwrap_or_default();
    assert_eq!(
        handled.lines().count(),
        pids.len(),
        "each stopped command was continued and handled its SIGTERM"
    );
}
