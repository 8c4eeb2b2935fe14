//! A fresh run streams its input (issue 21): the items go to the store page by page while
//! the agents already work, reading waits while enough items are queued, and a run killed
//! before its input was read resumes with every item, each completed once.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use mmm_core::job::{AttemptOutcome, ItemStatus};

use crate::harness::{Killed, Workspace, kill9, wait_until};

/// Makes `name` in the workspace a named pipe: the test holds its writing end, so the input
/// file is "still being written" for as long as the test wants.
fn fifo(ws: &Workspace, name: &str) -> std::path::PathBuf {
    let path = ws.join(name);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    path
}

/// Feeds three items through the pipe, sees them run while the pipe stays open, then two
/// more, closes it, and returns the finished job's item values.
fn run_while_the_input_is_written(ws: &Workspace, args: &[&str], input: &str) -> Vec<String> {
    let path = fifo(ws, input);
    let child = ws
        .mmm(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mmm starts");
    let mut child = Killed(child);
    // Opening the pipe for writing waits for mmm to open it for reading.
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("the pipe opens");
    writer.write_all(lines(0..3).as_bytes()).expect("written");
    writer.flush().expect("flushed");
    wait_until(Duration::from_secs(30), "the first three items run", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed == 3)
    });
    assert!(
        child.0.try_wait().expect("waits").is_none(),
        "mmm ended before its input file did"
    );
    writer.write_all(lines(3..5).as_bytes()).expect("written");
    drop(writer);
    let status = child.0.wait().expect("mmm ends");
    assert!(status.success(), "{status}");
    let job = ws.only_job();
    assert_eq!((job.counts.completed, job.counts.total()), (5, 5));
    ws.store()
        .items(job.id, None)
        .expect("items")
        .into_iter()
        .map(|i| i.value)
        .collect()
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|n| format!("{{\"n\":{n}}}\n")).collect()
}

#[test]
fn issue_21_a_one_liner_starts_on_the_first_records_of_an_input_file_still_being_written() {
    let ws = Workspace::new();
    let args = [
        "run",
        "-j",
        "2",
        "--progress",
        "none",
        "--input",
        "items.txt",
        "--",
        "true",
    ];
    let values = run_while_the_input_is_written(&ws, &args, "items.txt");
    let expected: Vec<String> = (0..5)
        .map(|n| serde_json::to_string(&format!("{{\"n\":{n}}}")).expect("json"))
        .collect();
    assert_eq!(values, expected);
}

#[test]
fn issue_21_a_job_files_jsonl_input_streams_too() {
    let ws = Workspace::new();
    ws.write(
        "job.yml",
        "map:\n  input: items.jsonl\n  max_parallel: 2\n  steps:\n    - shell: test ${item.n} -ge 0\n",
    );
    let values = run_while_the_input_is_written(
        &ws,
        &["run", "job.yml", "--progress", "none"],
        "items.jsonl",
    );
    let expected: Vec<String> = (0..5).map(|n| format!("{{\"n\":{n}}}")).collect();
    assert_eq!(values, expected);
}

/// Killed while its input is read: only a bounded part of the input is on record (reading
/// waits for the agents), and the resume records the rest, every item completed exactly once.
#[test]
fn issue_21_a_run_killed_while_reading_its_input_resumes_with_every_item_once() {
    const MANY: u64 = 30_000;
    let ws = Workspace::new();
    let input: String = (1..=MANY).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &input);
    let args = [
        "run",
        "-j",
        "2",
        "--progress",
        "none",
        "--input",
        "items.txt",
        "--",
        "true",
    ];
    let mut child = ws.spawn(&args);
    wait_until(Duration::from_secs(60), "some items completed", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed >= 100)
    });
    kill9(&mut child);
    let job = ws.only_job();
    assert!(
        job.counts.total() < MANY / 2,
        "the whole input was recorded before the agents needed it: {:?}",
        job.counts
    );
    let id = job.id.to_string();
    ws.run(&["resume", &id, "--progress", "none"]).success();
    let job = ws.only_job();
    assert_eq!(job.status.as_str(), "completed");
    assert_eq!((job.counts.completed, job.counts.total()), (MANY, MANY));
    let items = ws.store().items(job.id, None).expect("items");
    let values: Vec<String> = items.iter().map(|i| i.value.clone()).collect();
    let expected: Vec<String> = (1..=MANY).map(|n| format!("\"{n}\"")).collect();
    assert_eq!(values, expected, "items recorded in input order, once");
    assert!(items.iter().all(|i| i.status == ItemStatus::Completed));
    let completed_twice = ws
        .attempts(job.id)
        .iter()
        .filter(|a| a.outcome == Some(AttemptOutcome::Succeeded))
        .fold(std::collections::HashMap::<u64, u32>::new(), |mut n, a| {
            *n.entry(a.item_index).or_default() += 1;
            n
        })
        .into_values()
        .filter(|&n| n > 1)
        .count();
    assert_eq!(completed_twice, 0, "items that succeeded more than once");
}
