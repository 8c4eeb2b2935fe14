//! Issue 8, `mmm store copy`: a job killed half-way on a laptop's SQLite store is copied to
//! PostgreSQL and resumed there (nothing recorded done runs again), then copied back to a
//! fresh SQLite store, where `mmm check` finds the same sound record.

use std::collections::BTreeSet;
use std::time::Duration;

use mmm_core::job::{ItemStatus, JobStatus};

use crate::harness::{Workspace, kill9, wait_until};
use crate::postgres::{Schema, skipped};

#[test]
fn a_half_done_sqlite_job_is_copied_to_postgres_resumed_and_copied_back() {
    if skipped("a_half_done_sqlite_job_is_copied_to_postgres_resumed_and_copied_back") {
        return;
    }
    const ITEMS: usize = 200;
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
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(60), "some items to complete", || {
        ws.has_store()
            && ws
                .jobs_so_far()
                .first()
                .is_some_and(|job| job.counts.completed >= 20)
    });
    kill9(&mut child);
    let laptop = ws.only_job();
    let done: BTreeSet<String> = ws
        .store()
        .items(laptop.id, Some(ItemStatus::Completed))
        .unwrap()
        .into_iter()
        .map(|item| item.key)
        .collect();
    assert!(done.len() < ITEMS, "the job finished before the kill");
    let attempts_before = ws.attempts(laptop.id).len();
    let lines_then = ws.read("ran.txt").lines().count();

    let id = laptop.id.short();
    let copy = ws.run(&["store", "copy", &id, "--to", &url]);
    copy.success();
    assert!(copy.stderr().contains("mmm resume"), "{}", copy.stderr());
    // A second copy to the same store is refused.
    ws.run(&["store", "copy", &id, "--to", &url]).code_is(1);
    let cluster = schema.only_job();
    assert_eq!(cluster.id, laptop.id);
    assert_eq!(cluster.status, JobStatus::Running);
    assert_eq!(cluster.counts, laptop.counts);
    assert_eq!(cluster.spec_hash, laptop.spec_hash);
    let copied = schema.store().attempts(laptop.id, None).unwrap();
    assert_eq!(copied.len(), attempts_before);

    ws.run(&["resume", &id, "--progress", "none", "--store", &url])
        .success();
    let cluster = schema.only_job();
    assert_eq!(cluster.status, JobStatus::Completed);
    assert_eq!(cluster.counts.completed, ITEMS as u64);
    let ran = ws.read("ran.txt");
    let ran: Vec<&str> = ran.lines().collect();
    assert_eq!(ran.iter().collect::<BTreeSet<_>>().len(), ITEMS);
    for line in &ran[lines_then..] {
        assert!(
            !done.contains(*line),
            "{line} was done before the copy, yet ran again"
        );
    }
    // The laptop's record is untouched (besides the copy's event): still resumable there.
    let laptop_after = ws.only_job();
    assert_eq!(laptop_after.counts, laptop.counts);

    // Back to a fresh SQLite store: the same record, sound.
    ws.run(&["store", "copy", &id, "--store", &url, "--to", "back.db"])
        .success();
    let back = mmm_store::open(ws.join("back.db").to_str().unwrap(), false).unwrap();
    let record = back.job(laptop.id).unwrap();
    assert_eq!(record.status, JobStatus::Completed);
    assert_eq!(record.counts, cluster.counts);
    assert_eq!(
        back.attempts(laptop.id, None).unwrap().len(),
        schema.store().attempts(laptop.id, None).unwrap().len()
    );
    let events = back.events(laptop.id, 0, 100_000).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind_name()).collect();
    assert!(
        kinds.contains(&"job_resumed") && kinds.ends_with(&["job_copied"]),
        "{kinds:?}"
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    ws.run(&["check", "--store", "back.db", &id]).success();
    ws.run(&["check", "--store", &url, &id]).success();
}

#[test]
fn migrate_moves_a_stopped_job_and_refuses_a_running_one() {
    if skipped("migrate_moves_a_stopped_job_and_refuses_a_running_one") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=60).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  key: \"${item}\"\n  max_parallel: 2\n  steps:\n    - shell: sleep 0.05\n",
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(60), "some items to complete", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|job| job.counts.completed >= 5)
    });
    let id = ws.only_job().id.short();
    // Its owner is alive: a move now would split the job between two stores.
    let refused = ws.run(&["store", "migrate", &id, "--to", &url]);
    refused.code_is(2);
    assert!(
        refused.stderr().contains("is running"),
        "{}",
        refused.stderr()
    );
    assert!(schema.store().jobs().unwrap().is_empty());

    kill9(&mut child);
    let laptop = ws.only_job();
    let moved = ws.run(&["store", "migrate", &id, "--to", &url]);
    moved.success();
    assert!(moved.stderr().contains("moved job"), "{}", moved.stderr());
    assert!(
        ws.store().jobs().unwrap().is_empty(),
        "the source no longer has it"
    );
    let there = schema.only_job();
    assert_eq!(there.counts, laptop.counts);
    // It goes on there, to the end.
    ws.run(&["resume", &id, "--progress", "none", "--store", &url])
        .success();
    assert_eq!(schema.only_job().counts.completed, 60);
    // Nothing is left to move here.
    let again = ws.run(&["store", "migrate", &id, "--to", &url]);
    again.code_is(1);
    assert!(
        again.stderr().contains("no job matches"),
        "{}",
        again.stderr()
    );
}

/// What a copy must carry besides the items and events: the item logs, the pause (a budget
/// paused this job), the control requests and the budgets, SQLite to PostgreSQL and back.
#[test]
fn a_paused_job_keeps_its_logs_pause_and_budget_through_copies() {
    if skipped("a_paused_job_keeps_its_logs_pause_and_budget_through_copies") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let ws = Workspace::new();
    let items: String = (1..=12).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        &format!(
            "map:\n  input: items.txt\n  key: \"${{item}}\"\n  max_parallel: 1\n  budget: {{counter: cost_usd, max: 0.3}}\n  steps:\n    - shell: \"echo out-${{item}} && '{}' report --counter cost_usd=+0.1 && sleep 0.2\"\n",
            env!("CARGO_BIN_EXE_mmm")
        ),
    );
    let mut run = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    let mut job = None;
    wait_until(
        Duration::from_secs(60),
        "the budget to pause the job",
        || {
            let Some(record) = ws.jobs_so_far().into_iter().next() else {
                return false;
            };
            job = Some(record.id);
            let store = ws.store();
            store
                .control_state(record.id)
                .is_ok_and(|c| c.paused.is_some())
                && store
                    .attempts(record.id, None)
                    .is_ok_and(|a| !a.is_empty() && a.iter().all(|a| a.outcome.is_some()))
        },
    );
    kill9(&mut run);
    let job = job.unwrap();
    let id = job.short();
    let laptop = ws.store();

    // Everything but the chunks' row ids, which each store numbers itself.
    let logs = |store: &dyn mmm_store::Store| -> Vec<(u64, u32, u32, u64, Vec<u8>)> {
        let query = mmm_store::logs::LogQuery {
            limit: 100_000,
            ..Default::default()
        };
        store
            .log_chunks(job, &query)
            .unwrap()
            .into_iter()
            .map(|c| (c.item_index, c.attempt, c.seq, c.offset, c.data))
            .collect()
    };
    let same_as_laptop = |store: &dyn mmm_store::Store, what: &str| {
        let control = store.control_state(job).unwrap();
        assert!(control.paused.is_some(), "{what}: the pause was lost");
        assert_eq!(control, laptop.control_state(job).unwrap(), "{what}");
        assert_eq!(
            store.control_requests(job, 0).unwrap(),
            laptop.control_requests(job, 0).unwrap(),
            "{what}"
        );
        let budgets = store.budgets(job).unwrap();
        assert!(
            budgets.len() == 1 && budgets[0].reached.is_some(),
            "{what}: {budgets:?}"
        );
        assert_eq!(budgets, laptop.budgets(job).unwrap(), "{what}");
        let chunks = logs(store);
        assert!(!chunks.is_empty(), "{what}: no logs");
        assert_eq!(chunks, logs(laptop.as_ref()), "{what}");
    };

    ws.run(&["store", "copy", &id, "--to", &url]).success();
    same_as_laptop(schema.store().as_ref(), "PostgreSQL");
    let shown = ws.run(&["logs", &id, "i1", "--store", &url]);
    shown.success();
    assert!(shown.stdout().contains("out-i1"), "{}", shown.stdout());

    ws.run(&["store", "copy", &id, "--store", &url, "--to", "back.db"])
        .success();
    let back = mmm_store::open(ws.join("back.db").to_str().unwrap(), false).unwrap();
    same_as_laptop(back.as_ref(), "back in SQLite");
}
