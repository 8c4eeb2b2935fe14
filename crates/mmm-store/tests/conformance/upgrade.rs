//! A store of an older schema version, upgraded: its record reads the same and takes new
//! writes.

use super::*;

/// An old store's record, as schema version 3 (before `job_ref`) held it, in SQL that both
/// backends run: job A was left running by a dead owner mid-map (one item completed, one
/// dead-lettered after a retry, one in flight, one pending), job B completed. The events
/// get seqs 1 to 11 in this order; a 12th, of a job since deleted, is inserted and deleted
/// again, so the counter stands above the highest seq left.
pub(crate) const OLD_RECORD: &str = r#"
    INSERT INTO jobs (id, name, status, phase, spec, spec_hash, max_parallel, created_at,
                      started_at, updated_at, owner_pid, owner_host, heartbeat_at, origin)
    VALUES ('01a20c00000000000000000000000a0a', 'old-a', 'running', 'map', '{"name":"a"}',
            'hash-a', 2, 1000, 1001, 1500, 999999, 'gone-host', 1400, NULL),
           ('01a20c00000000000000000000000b0b', 'old-b', 'completed', 'reduce',
            '{"name":"b"}', 'hash-b', 1, 2000, 2001, 2600, NULL, NULL, NULL, NULL);
    INSERT INTO items (job_id, idx, key, value, status, attempts)
    VALUES ('01a20c00000000000000000000000a0a', 0, 'a0', '"zero"', 'completed', 1),
           ('01a20c00000000000000000000000a0a', 1, 'a1', '"one"', 'dead_lettered', 2),
           ('01a20c00000000000000000000000a0a', 2, 'a2', '"two"', 'running', 0),
           ('01a20c00000000000000000000000a0a', 3, 'a3', '"three"', 'pending', 0),
           ('01a20c00000000000000000000000b0b', 0, 'b0', '"b-zero"', 'completed', 1);
    INSERT INTO attempts (job_id, item_idx, number, agent, started_at, ended_at,
                          duration_us, outcome, exit_code, error, steps, stdout_tail,
                          stderr_tail)
    VALUES ('01a20c00000000000000000000000a0a', 0, 1, 'agent-1', 1100, 1110, 10000,
            'succeeded', 0, NULL,
            '[{"name":"command","skipped":false,"duration_us":9000,"exit_code":0}]', 'ok',
            ''),
           ('01a20c00000000000000000000000a0a', 1, 1, 'agent-2', 1100, 1120, 20000,
            'failed', 1, 'exit 1',
            '[{"name":"command","skipped":false,"duration_us":19000,"exit_code":1}]', '',
            'boom'),
           ('01a20c00000000000000000000000a0a', 1, 2, 'agent-2', 1130, 1140, 10000,
            'failed', 1, 'exit 1',
            '[{"name":"command","skipped":false,"duration_us":9000,"exit_code":1}]', '',
            'boom again'),
           ('01a20c00000000000000000000000a0a', 2, 1, 'agent-1', 1200, NULL, NULL, NULL,
            NULL, NULL, '[]', '', ''),
           ('01a20c00000000000000000000000b0b', 0, 1, 'agent-1', 2100, 2110, 10000,
            'succeeded', 0, NULL,
            '[{"name":"command","skipped":true,"duration_us":0,"exit_code":null}]', '', '');
    INSERT INTO events (job_id, at, kind, item_key, payload)
    VALUES ('01a20c00000000000000000000000a0a', 1001, 'job_started', NULL, '{"name":"a"}'),
           ('01a20c00000000000000000000000a0a', 1002, 'checkpoint', NULL,
            '{"phase":"setup","reason":"setup done"}'),
           ('01a20c00000000000000000000000a0a', 1100, 'attempt_started', 'a0',
            '{"attempt":1,"agent":"agent-1"}'),
           ('01a20c00000000000000000000000a0a', 1110, 'item_completed', 'a0',
            '{"attempt":1}'),
           ('01a20c00000000000000000000000b0b', 2001, 'job_started', NULL, '{"name":"b"}'),
           ('01a20c00000000000000000000000a0a', 1120, 'attempt_failed', 'a1',
            '{"attempt":1,"error":"exit 1","exit_code":1}'),
           ('01a20c00000000000000000000000a0a', 1130, 'attempt_started', 'a1',
            '{"attempt":2,"agent":"agent-2"}'),
           ('01a20c00000000000000000000000a0a', 1140, 'item_dead_lettered', 'a1',
            '{"attempts":2,"error":"exit 1","exit_code":1}'),
           ('01a20c00000000000000000000000b0b', 2110, 'item_completed', 'b0',
            '{"attempt":1}'),
           ('01a20c00000000000000000000000a0a', 1200, 'attempt_started', 'a2',
            '{"attempt":1,"agent":"agent-1"}'),
           ('01a20c00000000000000000000000b0b', 2600, 'job_finished', NULL,
            '{"status":"completed"}'),
           ('01a20c00000000000000000000000b0b', 2700, 'job_copied', NULL, '{}');
    DELETE FROM events WHERE kind = 'job_copied';
    INSERT INTO snapshots (job_id, at, payload)
    VALUES ('01a20c00000000000000000000000a0a', 1300, '{"progress":{"completed":1}}'),
           ('01a20c00000000000000000000000b0b', 2500, '{"progress":{"completed":1}}');
    INSERT INTO checkpoints (job_id, at, phase, reason, last_event_seq, completed,
                             dead_lettered, skipped)
    VALUES ('01a20c00000000000000000000000a0a', 1002, 'setup', 'setup done', 2, 0, 0, 0),
           ('01a20c00000000000000000000000a0a', 1115, 'map', 'interval', 4, 1, 0, 0);
"#;

/// What [`OLD_RECORD`] must read as once a store of version 3 was upgraded, and that the
/// upgraded job can be taken over and resumed, and recorded on, as any other.
pub(crate) fn an_old_record_reads_the_same_after_the_upgrade(store: &dyn Store) {
    use AttemptOutcome as O;
    use ItemStatus as S;
    let a: JobId = "01a20c00000000000000000000000a0a".parse().unwrap();
    let b: JobId = "01a20c00000000000000000000000b0b".parse().unwrap();
    assert_eq!(store.storage_problems().unwrap(), Vec::<String>::new());
    // The migration to version 9 totalled the items of the jobs that had ended (b).
    let totals = store.name_item_totals().unwrap();
    assert_eq!(
        totals,
        [NameItemTotals {
            name: "old-b".into(),
            jobs: 1,
            items: ItemCounts {
                completed: 1,
                ..ItemCounts::default()
            },
            timed: 1,
            duration_us: 10_000,
            at_most: [0].into_iter().chain([1; 15]).collect(),
        }]
    );

    let jobs = store.jobs().unwrap();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [b, a], "newest first");
    let job_a = store.job(a).unwrap();
    assert_eq!(
        (job_a.name.as_str(), job_a.status, job_a.phase),
        ("old-a", JobStatus::Running, Some(Phase::Map))
    );
    let c = &job_a.counts;
    assert_eq!(
        (c.completed, c.dead_lettered, c.running, c.pending),
        (1, 1, 1, 1)
    );
    assert_eq!(store.job(b).unwrap().counts.completed, 1);

    let items: Vec<(u64, String, String, ItemStatus, u32)> = store
        .items(a, None)
        .unwrap()
        .into_iter()
        .map(|i| (i.index, i.key, i.value, i.status, i.attempts))
        .collect();
    assert_eq!(
        items,
        [
            (0, "a0".into(), r#""zero""#.into(), S::Completed, 1),
            (1, "a1".into(), r#""one""#.into(), S::DeadLettered, 2),
            (2, "a2".into(), r#""two""#.into(), S::Running, 0),
            (3, "a3".into(), r#""three""#.into(), S::Pending, 0),
        ]
    );
    let attempts = store.attempts(a, None).unwrap();
    let seen: Vec<(&str, u32, Option<O>)> = attempts
        .iter()
        .map(|t| (t.item_key.as_str(), t.number, t.outcome))
        .collect();
    assert_eq!(
        seen,
        [
            ("a0", 1, Some(O::Succeeded)),
            ("a1", 1, Some(O::Failed)),
            ("a1", 2, Some(O::Failed)),
            ("a2", 1, None),
        ]
    );
    assert_eq!(attempts[2].stderr_tail, "boom again");
    assert_eq!(
        attempts[0].steps,
        [StepRecord {
            name: "command".into(),
            skipped: false,
            duration_us: 9_000,
            exit_code: Some(0),
        }]
    );
    assert!(store.attempts(b, None).unwrap()[0].steps[0].skipped);

    let events = store.events(a, 0, 100).unwrap();
    let seen: Vec<(i64, &str, Option<&str>)> = events
        .iter()
        .map(|e| (e.seq, e.event.kind_name(), e.item_key.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "job_started", None),
            (2, "checkpoint", None),
            (3, "attempt_started", Some("a0")),
            (4, "item_completed", Some("a0")),
            (6, "attempt_failed", Some("a1")),
            (7, "attempt_started", Some("a1")),
            (8, "item_dead_lettered", Some("a1")),
            (10, "attempt_started", Some("a2")),
        ]
    );
    assert_eq!(events[5].event.payload()["agent"], "agent-2");
    let seqs: Vec<i64> = store
        .events(b, 0, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [5, 9, 11]);
    let snapshots = store.snapshots(a, 0, 10).unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].payload.progress.unwrap().completed, 1);
    let checkpoints = store.checkpoints(a).unwrap();
    let seen: Vec<(i64, &str)> = checkpoints
        .iter()
        .map(|c| (c.id, c.reason.as_str()))
        .collect();
    assert_eq!(seen, [(1, "setup done"), (2, "interval")]);

    // Resuming: take over from the dead owner, requeue what was in flight, page in the rest.
    let owner = Owner {
        pid: Some(7),
        host: Some("host-new".into()),
        heartbeat_at: Some(3_000),
    };
    assert!(store.take_job(a, &Owner::of(&job_a), &owner).unwrap());
    assert_eq!(
        store.requeue_in_flight(a, 3_000).unwrap().interrupted,
        ["a2"]
    );
    let unfinished: Vec<(u64, u32)> = store
        .unfinished_items(a, None, 10)
        .unwrap()
        .iter()
        .map(|i| (i.index, i.last_number))
        .collect();
    assert_eq!(unfinished, [(2, 1), (3, 0)]);
    store
        .apply(&[
            started(a, 2, 2, 3_100),
            finished(a, 2, 2, 3_200, O::Succeeded, S::Completed),
            Write::Event {
                job: a,
                at: 3_200,
                item_key: Some("a2".into()),
                event: Event::from_parts("item_completed", serde_json::json!({ "attempt": 2 })),
            },
        ])
        .unwrap();
    // Numbers go on from the highest ever issued (12, of the deleted event), not reused.
    let newest = store.recent_events(a, 1).unwrap();
    assert_eq!(newest[0].seq, 13);
    let attempt = store.attempts(a, Some("a2")).unwrap();
    assert_eq!(attempt.len(), 2);
    assert_eq!(attempt[1].steps, finished_steps());
    // Rewinding to the first checkpoint (seq 2) finds the completions at seqs 4 and 13.
    assert_eq!(store.rewind(a, 1, 3_300).unwrap(), ["a0", "a2"]);
    assert_eq!(store.job(a).unwrap().counts.pending, 3);
    store
        .apply(&[Write::Checkpoint {
            job: a,
            at: 3_400,
            phase: Some(Phase::Map),
            reason: "after".into(),
        }])
        .unwrap();
    assert_eq!(store.checkpoints(a).unwrap().last().unwrap().id, 3);

    // Deleting one job leaves the other whole.
    store.delete_job(b).unwrap();
    assert!(store.job(b).is_err());
    assert_eq!(store.items(a, None).unwrap().len(), 4);
    assert_eq!(store.storage_problems().unwrap(), Vec::<String>::new());
}
