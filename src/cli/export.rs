//! `mmm export JOB --format json|csv|html [--what items|snapshots] [-o FILE]`: a job's record
//! as a report: JSON (the job, its state, metrics, per-step stats, DLQ, alerts, timeline), CSV
//! (one row per item, or the snapshots' time series) or one self-contained HTML file
//! (`export_html.rs`). Versioned: `EXPORT_VERSION`.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::dlq::open_job;
use super::viewer::state::Payload;
use super::{Exit, UsageError};
use crate::job::JobId;
use crate::store::{AttemptRecord, DeadLetter, EventRecord, Store};
use crate::view::JobState;

/// The version of the JSON report's shape.
pub(crate) const EXPORT_VERSION: u32 = 1;

/// How many snapshots are read per query.
const PAGE: usize = 1000;

pub(crate) const AFTER_HELP: &str = "\
JSON is the full report: {version, job, state, metrics, steps, dlq, alerts, timeline}.
CSV is one row per item (key, status, attempts, agent, start, end, duration_ms, exit_code,
error: from its last attempt), or with --what snapshots one row per snapshot (the time
series of the counts; in JSON, the timeline alone). Times are epoch milliseconds. HTML is one
self-contained file (no script, no request): summary, progress and throughput charts, each
agent's attempts over time, the slowest attempts and the DLQ.

Examples:
  mmm export 0193a2 --format json -o report.json
  mmm export 0193a2 --format csv > items.csv
  mmm export 0193a2 --format csv --what snapshots -o series.csv
  mmm export 0193a2 --format html -o report.html";

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// The full report as one JSON object.
    Json,
    /// Comma-separated values with a header row.
    Csv,
    /// One self-contained HTML file: summary, charts, agent timeline, slowest items, DLQ.
    Html,
}

/// What a CSV export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum What {
    /// One row per item.
    #[default]
    Items,
    /// One row per snapshot: the counts over time.
    Snapshots,
}

/// Arguments of `mmm export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The job: an id or an unambiguous prefix.
    job: String,
    /// The format.
    #[arg(long, value_enum)]
    format: Format,
    /// items: one row per item (CSV) or the full report (JSON); snapshots: the counts over
    /// time.
    #[arg(long, value_enum, default_value_t = What::Items)]
    what: What,
    /// Write to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    version: u32,
    job: crate::store::JobRecord,
    /// The state every view shows (`mmm progress --json`).
    state: JobState,
    /// The runner's last metrics (ETA, durations, stragglers, failure clusters).
    metrics: serde_json::Value,
    /// Per-step durations.
    steps: serde_json::Value,
    dlq: Vec<DeadLetter>,
    /// Every alert event.
    alerts: Vec<EventRecord>,
    /// The counts at each snapshot.
    timeline: Vec<TimelinePoint>,
}

/// The counts at one snapshot: a row of `--what snapshots`, a point of the report's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TimelinePoint {
    /// Epoch ms.
    pub(crate) at: i64,
    pub(crate) total: u64,
    pub(crate) completed: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) skipped: u64,
    pub(crate) in_flight: u64,
    pub(crate) pending: u64,
    pub(crate) failed_attempts: u64,
    pub(crate) retries: u64,
    pub(crate) agents: usize,
}

/// One item as the CSV has it.
#[derive(Debug, Serialize)]
struct ItemRow<'a> {
    key: &'a str,
    status: &'a str,
    attempts: u32,
    agent: Option<&'a str>,
    start: Option<i64>,
    end: Option<i64>,
    duration_ms: Option<f64>,
    exit_code: Option<i32>,
    error: Option<&'a str>,
}

/// Runs `mmm export`.
pub(crate) fn export(store_location: &str, args: ExportArgs) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, &args.job)?;
    let mut bytes = Vec::new();
    match (args.format, args.what) {
        (Format::Json, What::Items) => {
            serde_json::to_writer_pretty(&mut bytes, &report(store.as_ref(), id)?)?;
            bytes.push(b'\n');
        }
        (Format::Json, What::Snapshots) => {
            serde_json::to_writer_pretty(&mut bytes, &timeline(store.as_ref(), id)?)?;
            bytes.push(b'\n');
        }
        (Format::Csv, What::Items) => items_csv(store.as_ref(), id, &mut bytes)?,
        (Format::Csv, What::Snapshots) => snapshots_csv(store.as_ref(), id, &mut bytes)?,
        (Format::Html, What::Items) => {
            let state = JobState::load(store.as_ref(), id)?;
            let timeline = timeline(store.as_ref(), id)?;
            let attempts = store.attempts(id, None)?;
            let dlq = store.dead_letters(id)?;
            let html = super::export_html::render(&super::export_html::ReportData {
                state: &state,
                timeline: &timeline,
                attempts: &attempts,
                dlq: &dlq,
            });
            bytes.extend_from_slice(html.as_bytes());
        }
        (Format::Html, What::Snapshots) => {
            return Err(UsageError::new(
                "--what snapshots is for JSON and CSV; the HTML report always charts them",
            )
            .into());
        }
    }
    match &args.output {
        Some(path) => std::fs::write(path, &bytes)
            .with_context(|| format!("could not write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
    }
    Ok(Exit::Success)
}

fn report(store: &dyn Store, id: JobId) -> anyhow::Result<Report> {
    let state = JobState::load(store, id)?;
    let metrics = state
        .snapshot
        .as_ref()
        .and_then(|s| s.payload.get("metrics").cloned())
        .unwrap_or(serde_json::Value::Null);
    let steps = metrics
        .get("steps")
        .cloned()
        .unwrap_or(serde_json::Value::Array(Vec::new()));
    let mut alerts = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events(id, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        alerts.extend(page.into_iter().filter(|e| e.kind.starts_with("alert")));
    }
    Ok(Report {
        version: EXPORT_VERSION,
        job: state.job.clone(),
        metrics,
        steps,
        dlq: store.dead_letters(id)?,
        alerts,
        timeline: timeline(store, id)?,
        state,
    })
}

/// The counts at every snapshot of the job, oldest first.
pub(crate) fn timeline(store: &dyn Store, id: JobId) -> anyhow::Result<Vec<TimelinePoint>> {
    let mut points = Vec::new();
    let mut after = i64::MIN;
    loop {
        let page = store.snapshots(id, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.at;
        for s in &page {
            let payload = Payload::of(Some(s));
            let p = payload.progress.unwrap_or_default();
            points.push(TimelinePoint {
                at: s.at,
                total: p.total,
                completed: p.completed,
                dead_lettered: p.dead_lettered,
                skipped: p.skipped,
                in_flight: p.in_flight,
                pending: p.pending,
                failed_attempts: p.failed_attempts,
                retries: p.retries,
                agents: payload.agents.len(),
            });
        }
        if page.len() < PAGE {
            break;
        }
    }
    Ok(points)
}

fn items_csv(store: &dyn Store, id: JobId, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let items = store.items(id, None)?;
    let attempts = store.attempts(id, None)?;
    // The last attempt of each item (attempts come in order).
    let mut last: HashMap<u64, &AttemptRecord> = HashMap::new();
    for a in &attempts {
        last.insert(a.item_index, a);
    }
    let mut writer = csv::Writer::from_writer(out);
    for item in &items {
        let attempt = last.get(&item.index);
        writer.serialize(ItemRow {
            key: &item.key,
            status: item.status.as_str(),
            attempts: item.attempts,
            agent: attempt.map(|a| a.agent.as_str()),
            start: attempt.map(|a| a.started_at),
            end: attempt.and_then(|a| a.ended_at),
            duration_ms: attempt
                .and_then(|a| a.duration_us)
                .map(|us| us as f64 / 1000.0),
            exit_code: attempt.and_then(|a| a.exit_code),
            error: attempt.and_then(|a| a.error.as_deref()),
        })?;
    }
    if items.is_empty() {
        // A header even without rows, so readers see the columns.
        writer.write_record([
            "key",
            "status",
            "attempts",
            "agent",
            "start",
            "end",
            "duration_ms",
            "exit_code",
            "error",
        ])?;
    }
    writer.flush()?;
    Ok(())
}

fn snapshots_csv(store: &dyn Store, id: JobId, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let points = timeline(store, id)?;
    let mut writer = csv::Writer::from_writer(out);
    for p in &points {
        writer.serialize(p)?;
    }
    if points.is_empty() {
        writer.write_record([
            "at",
            "total",
            "completed",
            "dead_lettered",
            "skipped",
            "in_flight",
            "pending",
            "failed_attempts",
            "retries",
            "agents",
        ])?;
    }
    writer.flush()?;
    Ok(())
}
