//! `mmm export JOB --format json|csv|html [--what items|snapshots] [-o FILE]`: a job's record
//! as a report, made by [`mmm_report`] (which the dashboard's export endpoint serves too).

use std::path::PathBuf;

use super::wiring::open_job;
use super::{Exit, UsageError, output};
use mmm_report as report;

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
    #[arg(add = super::wiring::job_id_completer())]
    job: String,
    /// The format.
    #[arg(long, value_enum)]
    format: Format,
    /// items: one row per item (CSV) or the full report (JSON); snapshots: the counts over
    /// time.
    #[arg(long, value_enum, default_value_t = What::Items)]
    what: What,
    /// Write to FILE instead of stdout (`-o -`: stdout).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs `mmm export`.
pub(crate) fn export(store_location: &str, args: ExportArgs) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, &args.job)?;
    let format = match args.format {
        Format::Json => report::Format::Json,
        Format::Csv => report::Format::Csv,
        Format::Html => report::Format::Html,
    };
    let what = match args.what {
        What::Items => report::What::Items,
        What::Snapshots => report::What::Snapshots,
    };
    let bytes = match report::export(store.as_ref(), id, format, what) {
        Ok(bytes) => bytes,
        Err(report::ReportError::HtmlSnapshots) => {
            return Err(UsageError::new(
                "--what snapshots is for JSON and CSV; the HTML report always charts them",
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    output::write_output(args.output.as_deref(), &bytes)?;
    Ok(Exit::Success)
}
