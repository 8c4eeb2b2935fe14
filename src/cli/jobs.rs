//! `mmm jobs [JOB] [--status S] [--name GLOB] [--since D] [--limit N] [--json]`: the jobs in
//! the store, newest first, read back from the record (filtered and limited by the store, so
//! a store of 100,000 jobs lists its newest 50 at once), and for one job (or in JSON) its
//! dead-letter queue with every attempt's error and output.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::output::{AttemptView, attempt_view};
use super::wiring::usage_or_store_error;
use super::{Exit, output};
use mmm_core::event::Event;
use mmm_core::job::{ItemStatus, JobId, JobStatus, Phase, now_ms};
use mmm_store::{self as store, ItemCounts, JobQuery, JobRecord, Store, StoreError};

/// At most this many DLQ entries per job in the listing (the count is always exact).
const DLQ_LIMIT: usize = 100;

/// Arguments of `mmm jobs`.
#[derive(Debug, clap::Args)]
pub(crate) struct JobsArgs {
    /// Show only this job (an id or an unambiguous prefix), with its dead-letter queue.
    #[arg(add = super::wiring::job_id_completer())]
    job: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Show at most N jobs (the newest).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Only jobs with this status (repeat or separate with commas: running,interrupted).
    #[arg(long, value_name = "S", value_delimiter = ',', value_parser = job_status, conflicts_with = "job")]
    status: Vec<JobStatus>,
    /// Only jobs whose name matches this glob (`nightly-*`; `?` one character, `[ab]` a set).
    #[arg(long, value_name = "GLOB", conflicts_with = "job")]
    name: Option<String>,
    /// Only jobs created in the last DURATION (`24h`, `7d`, `90m`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "job")]
    since: Option<Duration>,
    /// Only jobs that can continue with `mmm resume`: interrupted, or running with a dead
    /// owner; with the time spent so far and an estimate of what remains.
    #[arg(long, conflicts_with_all = ["job", "status", "name", "since", "limit"])]
    resumable: bool,
}

/// One job as `mmm jobs --json` prints it.
#[derive(Debug, Serialize)]
struct JobView {
    id: JobId,
    short_id: String,
    name: String,
    status: JobStatus,
    /// Paused by `mmm pause` (docs/control.md).
    paused: bool,
    phase: Option<Phase>,
    percent: f64,
    total: u64,
    counts: ItemCounts,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    updated_at: i64,
    duration_ms: i64,
    age_ms: i64,
    source: Option<String>,
    max_parallel: u32,
    owner_pid: Option<u32>,
    owner_host: Option<String>,
    dlq: Vec<DlqEntry>,
    dlq_truncated: bool,
    /// Why `--halt` stopped the job, when that is how its last run ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    halted: Option<HaltedView>,
    /// Only for `mmm jobs JOB`: its resumes and why items ran again.
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<mmm_store::Ledger>,
}

/// Why `--halt` stopped a job.
#[derive(Debug, Serialize)]
struct HaltedView {
    policy: String,
    reason: String,
}

/// Why `--halt` stopped the job's last run, if it did: its newest `job_halted` event with
/// no resume after it. Only an interrupted job can have halted.
fn halted(store: &dyn Store, r: &JobRecord) -> anyhow::Result<Option<HaltedView>> {
    if r.status != JobStatus::Interrupted {
        return Ok(None);
    }
    let mut events = store.recent_events(r.id, 64)?;
    events.sort_by_key(|e| e.seq);
    let mut halted = None;
    for record in events {
        match record.event {
            Event::JobHalted(h) => {
                halted = Some(HaltedView {
                    policy: h.policy,
                    reason: h.reason,
                })
            }
            Event::JobResumed(_) => halted = None,
            _ => {}
        }
    }
    Ok(halted)
}

/// A dead-lettered item and its attempts.
#[derive(Debug, Serialize)]
struct DlqEntry {
    key: String,
    value: serde_json::Value,
    attempts: Vec<AttemptView>,
}

/// Runs `mmm jobs`.
pub(crate) fn jobs(store_location: &str, args: JobsArgs) -> anyhow::Result<Exit> {
    let store = match store::open(store_location, false) {
        Ok(store) => store,
        Err(StoreError::NotFound { .. }) if args.job.is_none() => {
            if args.json {
                output::print_json(&Vec::<JobView>::new())?;
            } else {
                println!(
                    "no jobs yet: there is no store at {} (run one with `mmm run`)",
                    mmm_store::shown_location(store_location)
                );
            }
            return Ok(Exit::Success);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "could not open the store at {}",
                mmm_store::shown_location(store_location)
            )));
        }
    };
    if args.resumable {
        return resumable(store.as_ref(), args.json);
    }
    let records = match &args.job {
        Some(prefix) => {
            let id = store.resolve_job(prefix).map_err(usage_or_store_error)?;
            vec![store.job(id)?]
        }
        None => store
            .jobs_matching(&query(&args))
            .context("could not list the jobs")?,
    };
    let now = now_ms();
    if args.json {
        let views = records
            .iter()
            .map(|r| view(store.as_ref(), r, now))
            .collect::<Result<Vec<_>, _>>()?;
        match args.job {
            Some(_) => {
                let mut view = views.into_iter().next().expect("one job was resolved");
                view.ledger = Some(store.ledger(view.id)?);
                output::print_json(&view)?
            }
            None => output::print_json(&views)?,
        }
        return Ok(Exit::Success);
    }
    if records.is_empty() {
        if query(&args) == JobQuery::default() {
            println!(
                "no jobs yet in {} (run one with `mmm run`)",
                mmm_store::shown_location(store_location)
            );
        } else {
            println!("no job matches");
        }
        return Ok(Exit::Success);
    }
    print_table(&records, now)?;
    for record in &records {
        if let Some(h) = halted(store.as_ref(), record)? {
            println!(
                "{} halted (--halt {}): {}; `mmm resume {}` continues it",
                record.id.short(),
                h.policy,
                h.reason,
                record.id.short()
            );
        }
    }
    if args.job.is_some() {
        print_ledger(store.as_ref(), &records[0], now)?;
        print_dlq(store.as_ref(), &records[0])?;
    }
    Ok(Exit::Success)
}

/// The filters and the limit of the listing, for the store.
fn query(args: &JobsArgs) -> JobQuery {
    JobQuery {
        statuses: args.status.clone(),
        name_glob: args.name.clone(),
        created_since: args
            .since
            .map(|d| now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        limit: args.limit,
        ..JobQuery::default()
    }
}

/// A job status as `--status` takes it.
fn job_status(text: &str) -> Result<JobStatus, String> {
    text.parse().map_err(|_| {
        let known: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("`{text}` is not a job status; one of: {}", known.join(", "))
    })
}

fn resumable(store: &dyn Store, json: bool) -> anyhow::Result<Exit> {
    let jobs = mmm_store::resumable::list_resumable_jobs(store)?;
    if json {
        output::print_json(&jobs)?;
        return Ok(Exit::Success);
    }
    if jobs.is_empty() {
        println!("no job to resume");
        return Ok(Exit::Success);
    }
    let now = now_ms();
    let ms = |v: i64| output::duration(Duration::from_millis(v.max(0) as u64));
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.short(),
                j.name.clone(),
                j.status.to_string(),
                format!("{:.1}%", j.percent),
                format!(
                    "{}/{}",
                    output::count(j.counts.completed),
                    output::count(j.counts.total())
                ),
                output::count(j.counts.dead_lettered),
                ms(j.spent_ms),
                j.remaining_ms.map_or("?".into(), ms),
                output::age(j.last_activity, now),
            ]
        })
        .collect();
    let header = [
        "ID",
        "NAME",
        "STATUS",
        "PROGRESS",
        "COMPLETED",
        "DLQ",
        "SPENT",
        "REMAINING",
        "LAST ACTIVE",
    ];
    print!("{}", output::table(&header, &rows, &[3, 4, 5, 6, 7]));
    Ok(Exit::Success)
}

fn view(store: &dyn Store, r: &JobRecord, now: i64) -> anyhow::Result<JobView> {
    let (dlq, dlq_truncated) = dlq_entries(store, r)?;
    Ok(JobView {
        halted: halted(store, r)?,
        id: r.id,
        short_id: r.id.short(),
        name: r.name.clone(),
        status: r.status,
        paused: r.paused,
        phase: r.phase,
        percent: r.counts.percent(),
        total: r.counts.total(),
        counts: r.counts,
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        updated_at: r.updated_at,
        duration_ms: r.duration_ms,
        age_ms: now - r.created_at,
        source: r.source.as_ref().map(|p| p.display().to_string()),
        max_parallel: r.max_parallel,
        owner_pid: r.owner_pid,
        owner_host: r.owner_host.clone(),
        dlq,
        dlq_truncated,
        ledger: None,
    })
}

fn dlq_entries(store: &dyn Store, r: &JobRecord) -> anyhow::Result<(Vec<DlqEntry>, bool)> {
    if r.counts.dead_lettered == 0 {
        return Ok((Vec::new(), false));
    }
    let items = store.items(r.id, Some(ItemStatus::DeadLettered))?;
    let truncated = items.len() > DLQ_LIMIT;
    let mut entries = Vec::new();
    for item in items.into_iter().take(DLQ_LIMIT) {
        let attempts = store
            .attempts(r.id, Some(&item.key))?
            .into_iter()
            .map(attempt_view)
            .collect();
        let value =
            serde_json::from_str(&item.value).unwrap_or(serde_json::Value::String(item.value));
        entries.push(DlqEntry {
            key: item.key,
            value,
            attempts,
        });
    }
    Ok((entries, truncated))
}

/// The status column: a running job that is paused says so.
fn status_text(r: &JobRecord) -> String {
    if r.paused && r.status == JobStatus::Running {
        "paused".to_string()
    } else {
        r.status.to_string()
    }
}

fn print_table(records: &[JobRecord], now: i64) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let c = &r.counts;
            vec![
                r.id.short(),
                r.name.clone(),
                status_text(r),
                format!("{:.1}%", c.percent()),
                format!(
                    "{}/{}",
                    output::count(c.completed),
                    output::count(c.total())
                ),
                output::count(c.dead_lettered),
                output::count(c.skipped),
                output::duration(Duration::from_millis(r.duration_ms.max(0) as u64)),
                output::age(r.created_at, now),
            ]
        })
        .collect();
    let header = [
        "ID",
        "NAME",
        "STATUS",
        "PROGRESS",
        "COMPLETED",
        "DLQ",
        "SKIPPED",
        "DURATION",
        "CREATED",
    ];
    use std::io::Write;
    std::io::stdout()
        .lock()
        .write_all(output::table(&header, &rows, &[3, 4, 5, 6, 7]).as_bytes())?;
    Ok(())
}

/// The resume ledger: each resume, input or spec change and control request with its effect,
/// and why items ran again.
fn print_ledger(store: &dyn Store, r: &JobRecord, now: i64) -> anyhow::Result<()> {
    let ledger = store.ledger(r.id)?;
    if ledger.entries.is_empty() && ledger.requeued.is_empty() {
        return Ok(());
    }
    println!("\nresume ledger:");
    for e in &ledger.entries {
        let detail = match &e.event {
            Event::JobResumed(resumed) => format!(
                "resumed (stopped in {}, {} spent before)",
                resumed.phase.map_or("?", |phase| phase.as_str()),
                output::duration(Duration::from_millis(resumed.prior_duration_ms))
            ),
            Event::InputChanged(changed) => format!(
                "input changed: {} new items, {} vanished",
                changed.new_items, changed.vanished_items
            ),
            Event::SpecChanged(_) => "job file changed; accepted".to_string(),
            Event::ControlRequested(r) => format!(
                "{} requested from {} (pid {}), request {}",
                r.action.name(),
                r.host,
                r.pid,
                r.request
            ),
            Event::Scaled(s) => format!("scaled from {} to {} agents", s.from, s.to),
            Event::Paused(p) if p.request.is_none() => "paused again by the resume".to_string(),
            other => other.kind_name().replace('_', " "),
        };
        println!("  {:>8}  {detail}", output::age(e.at, now));
    }
    if !ledger.requeued.is_empty() {
        let reasons: Vec<String> = ledger
            .requeued
            .iter()
            .map(|(reason, n)| format!("{} {reason}", output::count(*n)))
            .collect();
        println!("  items run again: {}", reasons.join(", "));
    }
    Ok(())
}

fn print_dlq(store: &dyn Store, r: &JobRecord) -> anyhow::Result<()> {
    let (entries, truncated) = dlq_entries(store, r)?;
    if entries.is_empty() {
        return Ok(());
    }
    println!(
        "\ndead-letter queue ({} items):",
        output::count(r.counts.dead_lettered)
    );
    for entry in &entries {
        println!("  {}", entry.key);
        for a in &entry.attempts {
            println!(
                "    attempt {} on {}: {}",
                a.number,
                a.agent,
                a.error.as_deref().unwrap_or("no error recorded")
            );
            if let Some(line) = a.stderr_tail.lines().rev().find(|l| !l.trim().is_empty()) {
                println!("      stderr: {line}");
            }
        }
    }
    if truncated {
        println!("  … and more; `--json` lists the first {DLQ_LIMIT}");
    }
    Ok(())
}
