//! The store conformance suite: what every `Store` implementation must do.
//!
//! The checks take `&dyn Store` (and nothing of a backend), one file per part of the store:
//! `job_log`, `job_reads`, `event_reads`, `claims`, `control`, `limits`, `recovery`, `dead_letters`, `integrity`,
//! `transfer`, `logs`, `summaries`, and `upgrade` (an old record read after its schema was upgraded).
//! `every_check!` runs each of them on both backends: the `sqlite` module gives each check a
//! new store in a temp directory, the `postgres` module a new schema (random name, dropped
//! afterwards) in the database of `MMM_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), so the tests run in parallel. An unreachable
//! PostgreSQL fails its tests with a message that says what to do, unless
//! `MMM_SKIP_POSTGRES=1`, which skips them and says so on stderr. Checks about a backend's own
//! storage (damaged files, schema versions, locations, foreign schemas) live in its module.
//! This file holds what the checks share: jobs, items and writes as the runner makes them.

use std::path::PathBuf;

use mmm_core::event::{Event, Repaired};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, Phase};
use mmm_core::metrics::durations::BUCKET_BOUNDS_SECONDS;
use mmm_core::snapshot::Snapshot;
use mmm_store::{
    ItemCounts, ItemPage, ItemPageQuery, JobQuery, JobTotals, NameItemTotals, NewItem, NewJob,
    Owner, RepairAction, StepRecord, Store, StoreError, Write,
};

/// Calls `$on_a_fresh_store!` with `topic::check` for every check that takes one store; the
/// backend modules name each test after its check.
macro_rules! every_check {
    ($on_a_fresh_store:ident) => {
        $on_a_fresh_store!(
            job_log::create_and_read,
            job_reads::unknown_jobs_are_not_found,
            job_log::create_job_is_all_or_nothing,
            job_log::counts_follow_item_statuses,
            job_log::attempts_update_items,
            job_log::invalid_batch_is_rolled_back,
            event_reads::events_are_sequenced_and_paginate,
            job_reads::items_page_reads_a_window_with_last_attempts,
            integrity::a_write_probe_changes_nothing,
            event_reads::snapshots_and_recent_events_read_the_newest,
            job_reads::resolve_job_by_prefix,
            job_reads::jobs_are_listed_newest_first,
            job_reads::jobs_are_paged_and_filtered,
            job_reads::jobs_are_totalled_by_name_and_status,
            job_reads::items_are_totalled_by_name_as_runs_end,
            job_log::status_transitions_set_times,
            job_log::large_create_job,
            job_log::add_items_follow_and_refuse_duplicates,
            recovery::take_job_is_a_compare_and_swap,
            recovery::requeue_then_page_through_unfinished_items,
            recovery::checkpoints_and_rewind,
            recovery::changed_values_requeue_finished_items,
            recovery::ledger_counts_requeues_by_reason,
            dead_letters::dead_letter_queue_retry_and_purge,
            integrity::job_contents_and_repair,
            claims::claims_hand_out_items_once_under_a_lease,
            claims::a_stale_claim_is_confirmed_only_while_still_held,
            transfer::delete_job_removes_everything_of_that_job_only,
            control::control_requests_are_ordered_and_applied_once,
            logs::log_chunks_are_read_in_order_dropped_and_pruned,
            summaries::period_jobs_and_kept_summaries,
            summaries::stats_add_up_the_jobs_of_a_period,
            limits::start_reservations_are_spaced_by_the_interval,
            limits::budgets_are_recorded_raised_and_reached_once,
        );
    };
}

// After `every_check!`, which the backend modules use.
mod claims;
mod control;
mod dead_letters;
mod event_reads;
mod integrity;
mod job_log;
mod job_reads;
mod limits;
mod logs;
#[cfg(feature = "postgres")]
mod postgres;
mod recovery;
#[cfg(feature = "sqlite")]
mod sqlite;
mod summaries;
mod transfer;
mod upgrade;

/// A job as the runner would record it, created at `created_at`.
fn new_job(name: &str, created_at: i64) -> NewJob {
    NewJob {
        id: JobId::new(),
        name: name.to_string(),
        spec: r#"{"name":"test"}"#.to_string(),
        spec_hash: "abc123".to_string(),
        source: Some(PathBuf::from("jobs/test.yml")),
        max_parallel: 4,
        created_at,
        owner_pid: 4242,
        owner_host: "host-a".to_string(),
        origin: None,
    }
}

/// `n` items with keys `item-0`... and small JSON values.
fn new_items(n: usize) -> Vec<NewItem> {
    (0..n)
        .map(|i| NewItem {
            key: format!("item-{i}"),
            value: format!(r#"{{"path":"photos/{i}.jpg"}}"#),
        })
        .collect()
}

fn started(job: JobId, item_index: u64, number: u32, at: i64) -> Write {
    Write::AttemptStarted {
        job,
        item_index,
        number,
        agent: "agent-1".to_string(),
        at,
    }
}

/// The end of an attempt; `item_status` and whether it counts follow from the outcome.
fn finished(
    job: JobId,
    item_index: u64,
    number: u32,
    at: i64,
    outcome: AttemptOutcome,
    item_status: ItemStatus,
) -> Write {
    Write::AttemptFinished {
        job,
        item_index,
        number,
        ended_at: at,
        duration_us: 1_500,
        outcome,
        exit_code: match outcome {
            AttemptOutcome::Succeeded => Some(0),
            AttemptOutcome::Failed => Some(1),
            _ => None,
        },
        error: (outcome != AttemptOutcome::Succeeded).then(|| format!("{outcome} at {at}")),
        steps: finished_steps(),
        stdout_tail: format!("out {number}"),
        stderr_tail: format!("err {number}"),
        item_status,
        counts_against_retries: outcome != AttemptOutcome::Interrupted,
    }
}

/// The steps [`finished`] records: one that ran, one skipped.
fn finished_steps() -> Vec<StepRecord> {
    vec![
        StepRecord {
            name: "resize".to_string(),
            skipped: false,
            duration_us: 1_000,
            exit_code: Some(0),
        },
        StepRecord {
            name: "upload".to_string(),
            skipped: true,
            duration_us: 0,
            exit_code: None,
        },
    ]
}

/// A snapshot whose progress says `completed` items are done: what the reads are checked by.
fn progress_snapshot(completed: u64) -> Box<Snapshot> {
    Box::new(Snapshot::from_json(
        serde_json::json!({ "progress": { "completed": completed } }),
    ))
}

fn event(job: JobId, at: i64, kind: &str) -> Write {
    Write::Event {
        job,
        at,
        item_key: Some(format!("item-{at}")),
        // A kind this version does not know: kept and read back as stored.
        event: Event::from_parts(kind, serde_json::json!({ "at": at, "kind": kind })),
    }
}

/// Records `item_index` as finished by attempt `number` (started just before) with its
/// completion event, as the runner does.
fn finish(
    store: &dyn Store,
    job: JobId,
    (item_index, number, at): (u64, u32, i64),
    outcome: AttemptOutcome,
    status: ItemStatus,
) {
    let kind = match status {
        ItemStatus::Completed => "item_completed",
        ItemStatus::Skipped => "item_skipped",
        ItemStatus::DeadLettered => "item_dead_lettered",
        _ => "item_failed",
    };
    store
        .apply(&[
            started(job, item_index, number, at),
            finished(job, item_index, number, at + 1, outcome, status),
            Write::Event {
                job,
                at: at + 1,
                item_key: Some(format!("item-{item_index}")),
                event: Event::from_parts(kind, serde_json::json!({ "number": number })),
            },
        ])
        .unwrap();
}

fn indices(claimed: &[mmm_store::ClaimedItem]) -> Vec<u64> {
    claimed.iter().map(|c| c.index).collect()
}

fn set_status(store: &dyn Store, job: JobId, status: JobStatus, at: i64) {
    store
        .apply(&[Write::JobStatus { job, status, at }])
        .unwrap();
}

fn statuses(store: &dyn Store, job: JobId) -> Vec<(String, ItemStatus, u32)> {
    store
        .items(job, None)
        .unwrap()
        .into_iter()
        .map(|item| (item.key, item.status, item.attempts))
        .collect()
}
