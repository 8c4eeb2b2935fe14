//! A job's report, as `mmm export` writes it and the dashboard serves it
//! (`GET /api/jobs/{id}/export`): JSON (the job, its state, metrics, per-step stats, DLQ,
//! alerts, timeline), CSV (one row per item, or the snapshots' time series) or one
//! self-contained HTML file ([`html`]). Both callers get the same bytes from [`export`].
//! Versioned: [`EXPORT_VERSION`].

pub mod html;
pub mod results;

use std::collections::HashMap;

use serde::Serialize;

use mmm_core::job::JobId;
use mmm_core::metrics::{EtaAccuracy, MetricsView, StepSummary};
use mmm_store::job_state::JobState;
use mmm_store::{AttemptRecord, DeadLetter, EventRecord, Store, StoreError};

/// The version of the JSON report's shape.
pub const EXPORT_VERSION: u32 = 1;

/// How many snapshots are read per query.
const PAGE: usize = 1000;

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The full report as one JSON object.
    Json,
    /// Comma-separated values with a header row.
    Csv,
    /// One self-contained HTML file: summary, charts, agent timeline, slowest items, DLQ.
    Html,
}

impl Format {
    /// The format's name (`json`, `csv`, `html`), as `--format` and `?format=` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }

    /// The media type to serve the report with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = ReportError;

    fn from_str(text: &str) -> Result<Format, ReportError> {
        match text {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html),
            other => Err(ReportError::UnknownFormat(other.to_string())),
        }
    }
}

/// What a report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum What {
    /// The full report (JSON, HTML) or one row per item (CSV).
    #[default]
    Items,
    /// The counts over time: one row per snapshot (CSV), the timeline alone (JSON).
    Snapshots,
}

impl What {
    /// `items` or `snapshots`.
    pub fn as_str(self) -> &'static str {
        match self {
            What::Items => "items",
            What::Snapshots => "snapshots",
        }
    }
}

impl std::str::FromStr for What {
    type Err = ReportError;

    fn from_str(text: &str) -> Result<What, ReportError> {
        match text {
            "items" => Ok(What::Items),
            "snapshots" => Ok(What::Snapshots),
            other => Err(ReportError::UnknownWhat(other.to_string())),
        }
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CSV could not be written.
    #[error("could not write the CSV report")]
    Csv(#[from] csv::Error),
    /// The JSON could not be written.
    #[error("could not write the JSON report")]
    Json(#[from] serde_json::Error),
    /// HTML of the snapshots alone was asked for.
    #[error("the snapshots alone are for JSON and CSV; the HTML report always charts them")]
    HtmlSnapshots,
    /// A format name that is not one.
    #[error("unknown report format `{0}`: use json, csv or html")]
    UnknownFormat(String),
    /// A content name that is not one.
    #[error("unknown report content `{0}`: use items or snapshots")]
    UnknownWhat(String),
}

/// The report of job `id` in `format`, holding `what`: the bytes `mmm export` writes.
pub fn export(
    store: &dyn Store,
    id: JobId,
    format: Format,
    what: What,
) -> Result<Vec<u8>, ReportError> {
    let mut bytes = Vec::new();
    match (format, what) {
        (Format::Json, What::Items) => {
            serde_json::to_writer_pretty(&mut bytes, &report(store, id)?)?;
            bytes.push(b'\n');
        }
        (Format::Json, What::Snapshots) => {
            serde_json::to_writer_pretty(&mut bytes, &timeline(store, id)?)?;
            bytes.push(b'\n');
        }
        (Format::Csv, What::Items) => items_csv(store, id, &mut bytes)?,
        (Format::Csv, What::Snapshots) => snapshots_csv(store, id, &mut bytes)?,
        (Format::Html, What::Items) => {
            let state = JobState::load(store, id)?;
            let timeline = timeline(store, id)?;
            let attempts = store.attempts(id, None)?;
            let dlq = store.dead_letters(id)?;
            let eta_accuracy = mmm_store::stats::eta_accuracy(store, &state.job)?;
            let page = html::render(&html::ReportData {
                state: &state,
                timeline: &timeline,
                attempts: &attempts,
                dlq: &dlq,
                eta_accuracy: eta_accuracy.as_ref(),
            });
            bytes.extend_from_slice(page.as_bytes());
        }
        (Format::Html, What::Snapshots) => return Err(ReportError::HtmlSnapshots),
    }
    Ok(bytes)
}

/// The name to save a report as: `mmm-NAME-SHORTID[-snapshots].EXT`, the name reduced to
/// letters, digits, `-` and `_`.
pub fn file_name(name: &str, id: JobId, format: Format, what: What) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let what = match what {
        What::Items => "",
        What::Snapshots => "-snapshots",
    };
    format!("mmm-{name}-{}{what}.{}", id.short(), format.as_str())
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    version: u32,
    job: mmm_store::JobRecord,
    /// The state every view shows (`mmm progress --json`).
    state: JobState,
    /// The runner's last metrics (ETA, durations, stragglers, failure clusters).
    metrics: Option<MetricsView>,
    /// Per-step durations.
    steps: Vec<StepSummary>,
    dlq: Vec<DeadLetter>,
    /// Every alert event.
    alerts: Vec<EventRecord>,
    /// The counts at each snapshot.
    timeline: Vec<TimelinePoint>,
    /// How right the ETA was, once the job has finished (docs/eta.md, "How right it was").
    eta_accuracy: Option<EtaAccuracy>,
}

/// The counts at one snapshot: a row of `--what snapshots`, a point of the report's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Epoch ms.
    pub at: i64,
    pub total: u64,
    pub completed: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
    pub in_flight: u64,
    pub pending: u64,
    pub failed_attempts: u64,
    pub retries: u64,
    pub agents: usize,
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

fn report(store: &dyn Store, id: JobId) -> Result<Report, ReportError> {
    let state = JobState::load(store, id)?;
    let metrics = state
        .snapshot
        .as_ref()
        .and_then(|s| s.payload.metrics.clone());
    let steps = metrics
        .as_ref()
        .map(|m| m.steps.clone())
        .unwrap_or_default();
    let mut alerts = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events(id, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        alerts.extend(page.into_iter().filter(|e| {
            e.event
                .kind()
                .is_some_and(|kind| kind.category() == "alert")
        }));
    }
    Ok(Report {
        version: EXPORT_VERSION,
        job: state.job.clone(),
        metrics,
        steps,
        dlq: store.dead_letters(id)?,
        alerts,
        timeline: timeline(store, id)?,
        eta_accuracy: mmm_store::stats::eta_accuracy(store, &state.job)?,
        state,
    })
}

/// The counts at every snapshot of the job, oldest first.
pub fn timeline(store: &dyn Store, id: JobId) -> Result<Vec<TimelinePoint>, ReportError> {
    let mut points = Vec::new();
    let mut after = i64::MIN;
    loop {
        let page = store.snapshots(id, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.at;
        for s in &page {
            let snapshot = &s.payload;
            let p = snapshot.progress.unwrap_or_default();
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
                agents: snapshot.agents.len(),
            });
        }
        if page.len() < PAGE {
            break;
        }
    }
    Ok(points)
}

fn items_csv(store: &dyn Store, id: JobId, out: &mut Vec<u8>) -> Result<(), ReportError> {
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
    writer.flush().map_err(csv::Error::from)?;
    Ok(())
}

fn snapshots_csv(store: &dyn Store, id: JobId, out: &mut Vec<u8>) -> Result<(), ReportError> {
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
    writer.flush().map_err(csv::Error::from)?;
    Ok(())
}
