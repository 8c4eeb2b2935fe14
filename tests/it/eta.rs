//! The ETA of a job that ran before (issue 22): its first snapshot already holds an estimate
//! from the earlier run's durations (basis `history`), where the first run could only say
//! `warming up`; for a job file, and for a one-liner whose items stream in on standard input.

use mmm_core::metrics::{Basis, Eta};

use crate::harness::Workspace;

/// The ETA of the first snapshot of the newest job in `ws`'s store.
fn first_snapshot_eta(ws: &Workspace) -> Eta {
    let store = ws.store();
    let job = ws
        .jobs_so_far()
        .into_iter()
        .max_by_key(|j| j.created_at)
        .unwrap();
    let first = store.snapshots(job.id, 0, 1).unwrap();
    let snapshot = &first.first().expect("the job recorded a snapshot").payload;
    snapshot
        .metrics
        .as_ref()
        .expect("the snapshot has metrics")
        .eta
}

fn assert_history(eta: &Eta, what: &str) {
    match eta {
        Eta::Estimate(e) => assert_eq!(e.basis, Basis::History, "{what}: {eta:?}"),
        other => panic!("{what}: the first snapshot of a second run has no estimate: {other:?}"),
    }
}

#[test]
fn a_second_run_shows_an_estimate_from_history_in_its_first_snapshot() {
    let ws = Workspace::new();
    ws.write(
        "items.txt",
        &(1..=12).map(|i| format!("{i}\n")).collect::<String>(),
    );
    ws.write(
        "job.yaml",
        "name: again\nmap:\n  input: items.txt\n  max_parallel: 2\n  steps:\n    - name: work\n      shell: sleep 0.1\n",
    );
    ws.run(&["run", "job.yaml", "--progress", "none"]).success();
    let first = first_snapshot_eta(&ws);
    assert!(
        matches!(first, Eta::WarmingUp { .. }),
        "a first run has nothing to go on: {first:?}"
    );
    ws.run(&["run", "job.yaml", "--progress", "none"]).success();
    assert_history(&first_snapshot_eta(&ws), "job file");
}

#[test]
fn a_second_one_liner_over_stdin_starts_from_history() {
    let ws = Workspace::new();
    ws.write("work.sh", "#!/bin/sh\nsleep 0.1\n");
    std::fs::set_permissions(
        ws.join("work.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let input: String = (1..=12).map(|i| format!("{i}\n")).collect();
    let args = ["run", "-j", "2", "--progress", "none", "--", "./work.sh"];
    ws.run_with_stdin(&args, input.as_bytes()).success();
    ws.run_with_stdin(&args, input.as_bytes()).success();
    assert_history(&first_snapshot_eta(&ws), "one-liner over stdin");
}
