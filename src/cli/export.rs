//! `mmm export JOB --format json|csv|html [--what items|snapshots] [-o FILE]`: a job's record
//! as a report, made by [`mmm_report`] (which the dashboard's export endpoint serves too);
//! `--format results -o DIR`: the items' output in GNU parallel's `--results` layout.

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
  mmm export 0193a2 --format html -o report.html
  mmm export 0193a2 --format results -o out    out/1/NAME/{stdout,stderr,seq,item}

--format results writes GNU parallel's `--results` layout into a folder: for each item that
ran, DIR/1/NAME/ (NAME: its value when it is text, as parallel names it, else its key; `/`
escaped as `\\_`) with its last attempt's `stdout` and `stderr` from the item's log
(docs/logs.md), `seq` (its number in the input) and `item` (its value).";

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// The full report as one JSON object.
    Json,
    /// Comma-separated values with a header row.
    Csv,
    /// One self-contained HTML file: summary, charts, agent timeline, slowest items, DLQ.
    Html,
    /// GNU parallel's `--results` layout in the folder given with -o: DIR/1/KEY/stdout, ...
    Results,
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
        Format::Results => return results(store.as_ref(), id, &args),
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

/// `--format results -o DIR`.
fn results(
    store: &dyn mmm_store::Store,
    id: mmm_core::job::JobId,
    args: &ExportArgs,
) -> anyhow::Result<Exit> {
    let dir = match args.output.as_deref() {
        Some(dir) if dir != std::path::Path::new("-") => dir,
        _ => {
            return Err(
                UsageError::new("--format results writes a folder: give it with -o DIR").into(),
            );
        }
    };
    if args.what != What::Items {
        return Err(UsageError::new("--what snapshots is for JSON and CSV, not results").into());
    }
    let written = report::results::write_results(store, id, dir)?;
    eprintln!(
        "wrote the output of {} item{} to {}",
        written.items,
        if written.items == 1 { "" } else { "s" },
        dir.join("1").display()
    );
    if written.from_tails > 0 {
        eprintln!(
            "{} item{} had no log in the store (`logs: none`, or pruned): their stdout and \
             stderr hold the last 4 KiB the attempt kept",
            written.from_tails,
            if written.from_tails == 1 { "" } else { "s" }
        );
    }
    Ok(Exit::Success)
}
