//! Events read back as they were written, in the documented JSON, and what this version
//! cannot read is kept as it was stored.

use serde_json::json;

use super::*;
use crate::alerts::Rule;

/// One event of every kind, as the runner and the store write them.
fn every_kind() -> Vec<Event> {
    let alert = Alert {
        rule: Rule::Stuck,
        subject: Some("agent-2".into()),
        message: "agent-2 quiet for 10m".into(),
        value: 600.0,
        threshold: 600.0,
    };
    vec![
        Event::JobStarted(JobStarted {
            name: "thumbs".into(),
        }),
        Event::JobResumed(JobResumed {
            phase: Some(Phase::Map),
            prior_duration_ms: 1200,
        }),
        Event::JobFinished(JobFinished {
            status: JobStatus::Failed,
            error: Some("setup failed".into()),
        }),
        Event::ItemsLoaded(ItemsLoaded { count: 3 }),
        Event::JobHalted(JobHalted {
            policy: "now,fail=1".into(),
            reason: "1 item failed (of 3); the last: `a` with exit code 2".into(),
            item: Some("000001-abcd".into()),
            exit_code: Some(2),
        }),
        Event::InputChanged(InputChanged {
            new_items: 1,
            vanished_items: 1,
            vanished_examples: vec!["gone".into()],
            changed_items: 0,
            requeued_items: 0,
        }),
        Event::InputUnavailable(InputUnavailable {
            error: "no such file".into(),
        }),
        Event::StoreUnavailable(StoreUnavailable {
            duration_ms: 3_200,
            error: "lost the connection to the PostgreSQL store".into(),
        }),
        Event::SpecChanged(SpecChanged { accepted: true }),
        Event::SpecFromStore(SpecFromStore {
            reason: "the job file is gone".into(),
        }),
        Event::JobStatusChanged(JobStatusChanged {
            from: JobStatus::CompletedWithFailures,
            to: JobStatus::Interrupted,
            by: "dlq_retry".into(),
        }),
        Event::Repaired(Repaired {
            changes: vec![crate::repair::Problem {
                kind: crate::repair::ProblemKind::StaleAttempt,
                message: "1 attempt in flight".into(),
                items: vec!["a".into()],
                count: 1,
            }],
            actions: vec![crate::repair::RepairAction::InterruptAttempt {
                item_index: 0,
                number: 1,
            }],
        }),
        Event::JobCopied(JobCopied {
            direction: "in".into(),
            from: ".mmm".into(),
            to: "postgres://u@h/db".into(),
            moved: false,
        }),
        Event::PhaseStarted(PhaseStarted {
            phase: PhaseName::Worktrees,
            worktrees: Some(WorktreesOpened {
                branch: "mmm/int".into(),
                worktrees: ".git/mmm/x".into(),
                agents: 2,
                already_merged: 0,
                setup_ms: 12,
            }),
        }),
        Event::PhaseFinished(PhaseFinished {
            phase: PhaseName::Map,
            error: None,
        }),
        Event::PhaseCommandFinished(PhaseCommandFinished {
            phase: Phase::Setup,
            command: "setup[1]".into(),
            exit: "exit 0".into(),
            exit_code: Some(0),
            duration_ms: 5,
            stdout_tail: "ok\n".into(),
            stderr_tail: String::new(),
        }),
        Event::AttemptStarted(AttemptStarted {
            attempt: 2,
            agent: "agent-1".into(),
            item: 7,
        }),
        Event::AttemptFailed(AttemptFailed {
            attempt: Some(1),
            agent: Some("agent-1".into()),
            outcome: Some(AttemptOutcome::Failed),
            error: Some("exit 1".into()),
            exit_code: Some(1),
            infrastructure: false,
            throttled: false,
            stopping: None,
        }),
        Event::ItemCompleted(ItemCompleted {
            attempt: 1,
            agent: "agent-1".into(),
            duration_us: Some(1500),
            steps_us: Some(vec![Some(1000), None]),
        }),
        Event::ItemSkipped(ItemSkipped {
            attempt: 1,
            agent: "agent-2".into(),
        }),
        Event::ItemDeadLettered(ItemDeadLettered {
            attempts: 3,
            agent: "agent-1".into(),
            outcome: AttemptOutcome::TimedOut,
            error: Some("timed out after 1s".into()),
            exit_code: None,
            duration_us: 3_000_000,
            steps_us: vec![Some(1_000_000)],
        }),
        Event::ItemRequeued(ItemRequeued {
            reason: RequeueReason::LeaseExpired,
            claimed_by: Some("w1".into()),
        }),
        Event::DlqRetry(DlqMoved {
            attempts: 3,
            status: ItemStatus::Pending,
        }),
        Event::DlqPurged(DlqMoved {
            attempts: 3,
            status: ItemStatus::Skipped,
        }),
        Event::StepReported(StepReported::Message {
            step: "resize".into(),
            progress: Some(0.5),
            message: "half".into(),
        }),
        Event::AgentStarted(AgentEvent {
            agent: "agent-1".into(),
        }),
        Event::AgentFinished(AgentEvent {
            agent: "agent-1".into(),
        }),
        Event::Checkpoint(Checkpoint {
            phase: Some(Phase::Map),
            reason: "interval".into(),
        }),
        Event::AlertRaised(alert.clone()),
        Event::AlertResolved(AlertResolved {
            alert,
            reason: Some("the run ended".into()),
        }),
        Event::ControlRequested(ControlRequested {
            request: 1,
            action: crate::control::ControlAction::Scale { agents: 6 },
            host: "ci".into(),
            pid: 42,
        }),
        Event::Paused(Paused {
            request: Some(2),
            suspend: true,
        }),
        Event::Unpaused(ControlApplied { request: 3 }),
        Event::Scaled(Scaled {
            request: Some(1),
            from: 2,
            to: 6,
        }),
        Event::Draining(ControlApplied { request: 4 }),
        Event::Cancelling(Cancelling {
            request: 5,
            now: false,
        }),
        Event::BudgetSet(BudgetSet {
            counter: "cost_cents".into(),
            max: 8000.into(),
            from: Some(5000.into()),
        }),
        Event::BudgetReached(BudgetReached {
            counter: "cost_cents".into(),
            max: 5000.into(),
            value: 5012.into(),
        }),
        Event::ConcurrencyChanged(ConcurrencyChanged {
            from: 8,
            to: 4,
            throttled: true,
        }),
    ]
}

#[test]
fn every_kind_has_an_event_that_reads_back_from_its_stored_parts() {
    let events = every_kind();
    for kind in EventKind::ALL {
        assert!(
            events.iter().any(|e| e.kind() == Some(*kind)),
            "no sample of {kind}"
        );
    }
    for event in events {
        let (kind, payload) = event.to_parts();
        // The stored text is the same JSON as the payload's value.
        let text: serde_json::Value = serde_json::from_str(&event.payload_text()).unwrap();
        assert_eq!(text, payload, "{kind}");
        assert_eq!(
            Event::from_parts(kind, payload.clone()),
            event,
            "{kind}: {payload}"
        );
    }
}

#[test]
fn kinds_round_trip_through_their_spelling_and_belong_to_a_category() {
    for kind in EventKind::ALL {
        assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), *kind);
        assert!(EventKind::CATEGORIES.contains(&kind.category()), "{kind}");
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
    assert_eq!(
        "bogus".parse::<EventKind>().unwrap_err().to_string(),
        "unknown event type `bogus`"
    );
}

#[test]
fn payloads_are_the_documented_json() {
    let item = Event::ItemCompleted(ItemCompleted {
        attempt: 1,
        agent: "agent-1".into(),
        duration_us: Some(1500),
        steps_us: Some(vec![Some(1000), None]),
    });
    assert_eq!(
        item.payload(),
        json!({"attempt": 1, "agent": "agent-1", "duration_us": 1500, "steps_us": [1000, null]})
    );
    let failed = Event::AttemptFailed(AttemptFailed {
        attempt: Some(2),
        agent: Some("agent-1".into()),
        outcome: Some(AttemptOutcome::Failed),
        error: None,
        exit_code: None,
        infrastructure: false,
        throttled: false,
        stopping: None,
    });
    assert_eq!(
        failed.payload(),
        json!({"attempt": 2, "agent": "agent-1", "outcome": "failed", "error": null, "exit_code": null})
    );
    let worktrees = Event::PhaseStarted(PhaseStarted {
        phase: PhaseName::Worktrees,
        worktrees: Some(WorktreesOpened {
            branch: "b".into(),
            worktrees: "w".into(),
            agents: 2,
            already_merged: 1,
            setup_ms: 3,
        }),
    });
    assert_eq!(
        worktrees.payload(),
        json!({"phase": "worktrees", "branch": "b", "worktrees": "w", "agents": 2,
               "already_merged": 1, "setup_ms": 3})
    );
    let map = Event::PhaseStarted(PhaseStarted {
        phase: PhaseName::Map,
        worktrees: None,
    });
    assert_eq!(map.payload(), json!({"phase": "map"}));
    let counter = Event::StepReported(StepReported::Counter {
        step: "merge".into(),
        counter: "commits".into(),
        delta: 2.into(),
    });
    assert_eq!(
        counter.payload(),
        json!({"step": "merge", "counter": "commits", "delta": 2})
    );
    let cost = Event::StepReported(StepReported::Counter {
        step: "ask".into(),
        counter: "cost_usd".into(),
        delta: crate::counter::CounterValue::parse("0.0125").unwrap(),
    });
    assert_eq!(
        cost.payload(),
        json!({"step": "ask", "counter": "cost_usd", "delta": 0.0125})
    );
    let message = Event::StepReported(StepReported::Message {
        step: "s".into(),
        progress: None,
        message: "m".into(),
    });
    assert_eq!(message.payload(), json!({"step": "s", "message": "m"}));
    let requeued = Event::ItemRequeued(ItemRequeued {
        reason: RequeueReason::Interrupted,
        claimed_by: None,
    });
    assert_eq!(requeued.payload(), json!({"reason": "interrupted"}));
}

#[test]
fn step_reports_read_back_as_the_kind_of_report_they_are() {
    let read = |payload| match Event::from_parts("step_reported", payload) {
        Event::StepReported(report) => report,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        read(json!({"step": "s", "counter": "tokens", "delta": -3})),
        StepReported::Counter { delta, .. } if delta.get() == -3.0
    ));
    assert!(matches!(
        read(json!({"step": "s", "counter": "cost_usd", "delta": 0.5})),
        StepReported::Counter { delta, .. } if delta.get() == 0.5
    ));
    assert!(matches!(
        read(json!({"step": "s", "progress": 0.25, "message": "m"})),
        StepReported::Message { progress: Some(p), .. } if p == 0.25
    ));
    assert!(matches!(
        read(json!({"step": "s", "ignored_line": "x", "error": "bad"})),
        StepReported::Ignored { .. }
    ));
}

#[test]
fn an_event_this_version_cannot_read_is_kept_as_stored() {
    let newer = Event::from_parts("paused", json!({"by": "alice"}));
    assert_eq!(newer.kind(), None);
    assert_eq!(newer.kind_name(), "paused");
    assert_eq!(newer.to_parts(), ("paused", json!({"by": "alice"})));
    // A known kind whose payload has another shape is kept too, not misread.
    let odd = Event::from_parts("item_completed", json!({"attempt": "first"}));
    assert_eq!(
        odd,
        Event::Unknown {
            kind: "item_completed".into(),
            payload: json!({"attempt": "first"}),
        }
    );
    assert_eq!(odd.kind_name(), "item_completed");
}

#[test]
fn an_event_serialises_as_its_kind_and_payload() {
    let event = Event::ItemsLoaded(ItemsLoaded { count: 2 });
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(
        json,
        json!({"kind": "items_loaded", "payload": {"count": 2}})
    );
    assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
    let unknown: Event = serde_json::from_value(json!({"kind": "later", "payload": [1]})).unwrap();
    assert_eq!(
        serde_json::to_value(&unknown).unwrap()["payload"],
        json!([1])
    );
}
