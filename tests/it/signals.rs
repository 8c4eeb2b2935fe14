//! Ctrl-C (SIGINT) and SIGTERM during a run: dispatching stops, running commands finish within
//! the grace period, and the job is recorded `interrupted` with every finished item recorded.

use std::collections::BTreeSet;
use std::time::Duration;

use mmm_core::job::ItemStatus;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Workspace, wait_until};

fn interrupt_mid_run(signal: Signal) {
    let ws = Workspace::new();
    let items: String = (1..=300).map(|n| format!("i{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 4\n  steps:\n    - shell: sleep 0.05; echo ${item} >> done.txt\n",
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    wait_until(Duration::from_secs(20), "a few items to complete", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed >= 8)
    });
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exit code of an interrupted run");

    let job = ws.only_job();
    assert_eq!(job.status.as_str(), "interrupted");
    assert!(job.counts.completed < 300, "the run stopped early");
    assert!(
        job.finished_at.is_none(),
        "an interrupted job is not finished"
    );
    let recorded: BTreeSet<String> = ws
        .store()
        .items(job.id, Some(ItemStatus::Completed))
        .unwrap()
        .into_iter()
        .map(|i| serde_json::from_str::<String>(&i.value).unwrap())
        .collect();
    let ran: BTreeSet<String> = ws.read("done.txt").lines().map(str::to_string).collect();
    assert_eq!(
        recorded, ran,
        "every item that finished is recorded completed, and only those"
    );
    assert_eq!(job.counts.running, 0, "no item is left running");
}

#[test]
fn ctrl_c_leaves_the_job_interrupted_with_every_finished_item_recorded() {
    interrupt_mid_run(Signal::SIGINT);
}

#[test]
fn sigterm_is_handled_like_ctrl_c() {
    interrupt_mid_run(Signal::SIGTERM);
}

/// A resume pages its items in while agents work; a stop must end it even while the pager
/// waits for room in the queue (a regression: it used to wait forever).
#[test]
fn ctrl_c_ends_a_resume_that_is_still_paging_items_in() {
    let ws = Workspace::new();
    let items: String = (1..=6000).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 2\n  steps:\n    - shell: sleep 0.05\n",
    );
    let mut first = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    // The input streams: a fresh run records items as far as the agents' queue has room
    // (4,096 queued), which leaves the resume more unfinished items than its queue holds.
    wait_until(Duration::from_secs(20), "the items to be recorded", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.total() >= 4_096)
    });
    kill(Pid::from_raw(first.id() as i32), Signal::SIGKILL).unwrap();
    first.wait().unwrap();
    let job = ws.only_job().id;
    // The first run recorded attempts too: count only the resume's, so the signal comes once
    // the resume is running (not before it has set up its handlers).
    let before = ws.store().attempts(job, None).unwrap().len();
    let mut resumed = ws.spawn(&["resume", &job.to_string(), "--progress", "none"]);
    wait_until(
        Duration::from_secs(20),
        "the resume to complete items",
        || {
            ws.store()
                .attempts(job, None)
                .is_ok_and(|a| a.len() > before + 10)
        },
    );
    kill(Pid::from_raw(resumed.id() as i32), Signal::SIGINT).unwrap();
    let started = std::time::Instant::now();
    wait_until(
        Duration::from_secs(15),
        "the interrupted resume to exit",
        || resumed.try_wait().unwrap().is_some(),
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(resumed.wait().unwrap().code(), Some(130));
    assert_eq!(ws.only_job().status.as_str(), "interrupted");
}
