//! The real binary on a PostgreSQL store (`--store postgres://...`): a job with a failing item,
//! read back with `mmm jobs --json`, and a resume after SIGKILL. Each test uses a fresh schema
//! in the database of `MMM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! dropped at the end. An unreachable server fails the tests with what to do, unless
//! `MMM_SKIP_POSTGRES=1`, which skips them and says so on stderr.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mmm_core::job::{ItemStatus, JobStatus};
use mmm_store::{JobRecord, Store};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Workspace, wait_until};

pub(crate) fn base_url() -> String {
    std::env::var("MMM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// True (after saying so on stderr) when `MMM_SKIP_POSTGRES=1` asks to skip these tests.
pub(crate) fn skipped(test: &str) -> bool {
    let skip = std::env::var("MMM_SKIP_POSTGRES").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("SKIPPED {test}: MMM_SKIP_POSTGRES=1, so this PostgreSQL test did not run");
    }
    skip
}

/// A fresh schema in the test database, dropped with everything in it on drop.
pub(crate) struct Schema {
    name: String,
}

impl Schema {
    pub(crate) fn new() -> Schema {
        let schema = Schema {
            name: format!("mmm_it_{}", uuid::Uuid::now_v7().simple()),
        };
        // Fail loudly, with what to do, when there is no server to test against.
        if let Err(error) = mmm_store::postgres::PostgresStore::open(&schema.url(), true) {
            panic!(
                "PostgreSQL is not reachable at {} ({error}). Start it (e.g. `pg_ctlcluster \
                 --skip-systemctl-redirect 15 main start`), point MMM_TEST_POSTGRES_URL at a \
                 server, or set MMM_SKIP_POSTGRES=1 to skip the PostgreSQL tests",
                base_url()
            );
        }
        schema
    }

    pub(crate) fn url(&self) -> String {
        let base = base_url();
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}schema={}", self.name)
    }

    pub(crate) fn store(&self) -> Arc<dyn Store> {
        mmm_store::open(&self.url(), false).expect("the store exists")
    }

    pub(crate) fn only_job(&self) -> JobRecord {
        let jobs = self.store().jobs().unwrap();
        assert_eq!(jobs.len(), 1, "expected exactly one job, found {jobs:?}");
        jobs.into_iter().next().unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        runtime.block_on(async {
            if let Ok((client, connection)) =
                tokio_postgres::connect(&base_url(), tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                let _ = client.batch_execute(&sql).await;
            }
        });
    }
}

#[test]
fn a_job_with_a_failing_item_on_postgres() {
    if skipped("a_job_with_a_failing_item_on_postgres") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=20).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  key: "${item}"
  max_parallel: 4
  retries: 1
  backoff: 1ms
  steps:
    - name: work
      shell: |
        if [ ${item} = i7 ]; then echo "bad ${item}" >&2; exit 3; fi
        echo ok ${item}
"#,
    );
    let run = ws.run(&["run", "job.yml", "--progress", "none", "--store", &url]);
    run.code_is(3);
    assert!(!ws.has_store(), "nothing is written to .mmm");

    let run = ws.run(&["jobs", "--json", "--store", &url]);
    run.success();
    let jobs: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON");
    let job = &jobs[0];
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(job["status"], "completed_with_failures");
    assert_eq!(job["counts"]["completed"], 19);
    assert_eq!(job["counts"]["dead_lettered"], 1);
    assert_eq!(job["counts"]["pending"], 0);
    assert_eq!(job["total"], 20);
    let dlq = job["dlq"].as_array().expect("the DLQ is listed");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0]["key"], "i7");
    let attempts = dlq[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "one try and one retry: {attempts:?}");
    assert!(attempts.iter().all(|a| a["exit_code"] == 3), "{attempts:?}");

    // The same record through the library, and `mmm check` finds it sound.
    let record = schema.only_job();
    assert_eq!(record.counts.completed, 19);
    let check = ws.run(&["check", "--json", "--store", &url]);
    check.success();
    assert!(
        check.stdout().contains("\"ok\": true"),
        "{}",
        check.stdout()
    );
}

#[test]
fn sigkill_then_resume_on_postgres() {
    if skipped("sigkill_then_resume_on_postgres") {
        return;
    }
    const ITEMS: usize = 300;
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
  max_parallel: 4
  steps:
    - name: work
      shell: |
        sleep 0.02
        echo ${item} >> ran.txt
"#,
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none", "--store", &url]);
    let completed = || -> BTreeSet<String> {
        let Ok(store) = mmm_store::open(&url, false) else {
            return BTreeSet::new();
        };
        let Some(job) = store.jobs().ok().and_then(|jobs| jobs.into_iter().next()) else {
            return BTreeSet::new();
        };
        store
            .items(job.id, Some(ItemStatus::Completed))
            .unwrap_or_default()
            .into_iter()
            .map(|item| item.key)
            .collect()
    };
    wait_until(Duration::from_secs(60), "some items to complete", || {
        completed().len() >= 20
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let done = completed();
    let lines_then = ws.read("ran.txt").lines().count();
    assert!(
        done.len() < ITEMS,
        "the job finished before the kill; make items slower"
    );
    let record = schema.only_job();
    assert_eq!(record.status, JobStatus::Running, "killed while running");

    let id = record.id.short();
    let resume = ws.run(&["resume", &id, "--progress", "none", "--store", &url]);
    resume.success();

    let record = schema.only_job();
    assert_eq!(record.status, JobStatus::Completed);
    assert_eq!(record.counts.completed, ITEMS as u64);
    let ran = ws.read("ran.txt");
    let ran: Vec<&str> = ran.lines().collect();
    let ran_set: BTreeSet<&str> = ran.iter().copied().collect();
    assert_eq!(ran_set.len(), ITEMS, "every item ran");
    for line in &ran[lines_then..] {
        assert!(
            !done.contains(*line),
            "{line} was recorded done, yet ran again after the kill"
        );
    }
    // The attempts cut short by the kill were closed as interrupted.
    let attempts = schema.store().attempts(record.id, None).unwrap();
    assert!(attempts.iter().all(|a| a.outcome.is_some()));
    let run = ws.run(&["jobs", "--json", "--store", &url]);
    run.success();
    let jobs: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON");
    assert_eq!(jobs[0]["status"], "completed");
    assert_eq!(jobs[0]["counts"]["completed"], ITEMS);
}

#[test]
fn a_password_in_the_store_url_is_never_printed() {
    if skipped("a_password_in_the_store_url_is_never_printed") {
        return;
    }
    let schema = Schema::new();
    // The local server trusts us, so the password is accepted and ignored.
    let url = format!("{}&password=hunter2", schema.url());
    let ws = Workspace::new();
    let run = ws.run(&[
        "run",
        "--progress",
        "plain",
        "--retries",
        "0",
        "--store",
        &url,
        "--",
        "test",
        "a",
        "=",
        ":::",
        "a",
        "b",
    ]);
    run.code_is(3);
    let printed = format!("{}{}", run.stdout(), run.stderr());
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("password=***"), "{printed}");
    let listed = ws.run(&["jobs", "--store", &url]);
    listed.success();
    assert!(!listed.stdout().contains("hunter2"));
}

#[test]
fn events_follow_and_progress_read_a_postgres_job_run_by_another_process() {
    if skipped("events_follow_and_progress_read_a_postgres_job_run_by_another_process") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=30).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    // Setup waits for the file `go`, so the follower attaches before the map.
    ws.write(
        "job.yml",
        "setup:\n  - shell: while [ ! -f go ]; do sleep 0.02; done\n\
         map:\n  input: items.txt\n  key: \"${item}\"\n  max_parallel: 2\n  steps:\n\
         \x20   - shell: sleep 0.02\n",
    );
    let mut runner = ws.spawn(&["run", "job.yml", "--progress", "none", "--store", &url]);
    wait_until(Duration::from_secs(30), "the job to be recorded", || {
        schema.store().jobs().is_ok_and(|jobs| !jobs.is_empty())
    });
    let id = schema.only_job().id.to_string();

    // A live job, read by another process: `mmm progress --json`.
    let live = ws.run(&["progress", &id, "--json", "--store", &url]);
    live.success();
    let live: serde_json::Value = serde_json::from_str(&live.stdout()).expect("JSON");
    assert_eq!(live["live"], true, "{live}");

    let mut follower = ws.spawn(&["events", &id, "--follow", "--json", "--store", &url]);
    let (lines, reader) = crate::harness::collect_lines(&mut follower);
    wait_until(Duration::from_secs(30), "the follower to see setup", || {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("phase_started"))
    });
    ws.write("go", "");
    assert_eq!(runner.wait().unwrap().code(), Some(0));
    assert_eq!(
        follower.wait().unwrap().code(),
        Some(0),
        "the follower ends with the job"
    );
    reader.join().unwrap();

    let printed: Vec<i64> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("NDJSON")["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let recorded: Vec<i64> = schema
        .store()
        .events(schema.only_job().id, 0, 100_000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(printed, recorded, "every event once, in order");

    let done = ws.run(&["progress", &id, "--json", "--store", &url]);
    done.success();
    let done: serde_json::Value = serde_json::from_str(&done.stdout()).expect("JSON");
    assert_eq!(done["live"], false);
    assert_eq!(done["job"]["counts"]["completed"], 30);
}

/// True when a connection named `application_name` is listening for the store's
/// notifications (its last statement was the `LISTEN`): a reader that waits on NOTIFY.
pub(crate) fn listening(application_name: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Ok((client, connection)) =
            tokio_postgres::connect(&base_url(), tokio_postgres::NoTls).await
        else {
            return false;
        };
        tokio::spawn(connection);
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND query = 'LISTEN mmm_events'",
                &[&application_name],
            )
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) > 0)
    })
}

/// Issue 8: `mmm progress --follow` on PostgreSQL waits on the store's NOTIFY between lines
/// (not only polling), and prints the job's end as soon as it comes, however long the
/// interval.
#[test]
fn progress_follow_waits_on_notify_and_ends_with_the_job() {
    if skipped("progress_follow_waits_on_notify_and_ends_with_the_job") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=30).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    // Setup waits for the file `go`, so the follower attaches while the job runs.
    ws.write(
        "job.yml",
        "setup:\n  - shell: while [ ! -f go ]; do sleep 0.02; done\n\
         map:\n  input: items.txt\n  key: \"${item}\"\n  max_parallel: 2\n  steps:\n\
         \x20   - shell: sleep 0.02\n",
    );
    let mut runner = ws.spawn(&["run", "job.yml", "--progress", "none", "--store", &url]);
    wait_until(Duration::from_secs(30), "the job to be recorded", || {
        schema.store().jobs().is_ok_and(|jobs| !jobs.is_empty())
    });
    let id = schema.only_job().id.to_string();
    let name = format!("mmm_follow_{}", uuid::Uuid::now_v7().simple());
    let follow_url = format!("{url}&application_name={name}");
    let mut follower = ws.spawn(&[
        "progress",
        &id,
        "--follow",
        "--interval",
        "1h",
        "--store",
        &follow_url,
    ]);
    let (lines, reader) = crate::harness::collect_lines(&mut follower);
    wait_until(
        Duration::from_secs(30),
        "the follower to print its first line and listen",
        || !lines.lock().unwrap().is_empty() && listening(&name),
    );
    assert_eq!(
        lines.lock().unwrap().len(),
        1,
        "one line, then the interval"
    );
    ws.write("go", "");
    assert_eq!(runner.wait().unwrap().code(), Some(0));
    let mut status = None;
    wait_until(
        Duration::from_secs(30),
        "the follower to end with the job (its interval is an hour)",
        || {
            status = follower.try_wait().unwrap();
            status.is_some()
        },
    );
    assert_eq!(status.unwrap().code(), Some(0));
    reader.join().unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].contains("30/30 done") && lines[1].ends_with("completed"),
        "{lines:?}"
    );
}

/// Waits until the store at `url` holds a job whose map has started (a coordinator is up and
/// workers can join it), and returns it.
pub(crate) fn map_started(url: &str) -> mmm_core::job::JobId {
    let mut job = None;
    wait_until(Duration::from_secs(60), "the job's map to start", || {
        let Ok(store) = mmm_store::open(url, false) else {
            return false;
        };
        job = store
            .jobs()
            .ok()
            .and_then(|jobs| jobs.into_iter().next())
            .filter(|j| j.phase == Some(mmm_core::job::Phase::Map))
            .map(|j| j.id);
        job.is_some()
    });
    job.unwrap()
}
