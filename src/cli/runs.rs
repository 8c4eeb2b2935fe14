//! `mmm runs [ROOT...] [--config FILE] [--epochs N] [--json] [--watch]`: the ML training and
//! evaluation runs under the roots, with kind, status, progress and scores (docs/runs.md).
//!
//! `--watch` keeps the view current from file-system notifications: on a terminal it redraws
//! the table; otherwise it prints one line per changed run, or with `--json` one JSON object
//! per line (a snapshot, then updates). Ctrl-C ends it with exit 0: ending is what a watch is
//! for, not an interruption of work.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;

use super::wiring::usage_or_runs_error;
use super::{Exit, output};
use mmm_runs::watch::{Update, Watch};
use mmm_runs::{ObserveError, ProcessTable, Run, RunKind, RunStatus, RunsConfig, Scanner};

/// Shown after `mmm runs --help`.
pub(crate) const AFTER_HELP: &str = "\
A run folder is a trainer (epoch_N/ folders) or an evaluator (evaluation_scores.json).
A ROOT that is itself a run folder is shown as that run. A run folder that is neither
stops the command with exit 2 and a list of what it holds, after the runs that could be
read (with --json: a `problems` field beside `runs`).
Statuses: running (log changed recently), finished / outdated (complete), stuck (a process
names the run but its log is quiet), failed. Rules and defaults: docs/runs.md.

Examples:
  mmm runs logs/                     the runs under logs/, one level down
  mmm runs logs/exp_1                one run folder
  mmm runs logs/ --epochs 100        every trainer has 100 epochs
  mmm runs --config runs.yml --json  rules and roots from runs.yml, as JSON
  mmm runs logs/ --watch             live; --watch --json prints one JSON object per line";

/// How often `--watch` on a terminal redraws the table to keep its ages current.
const AGES_REDRAW: std::time::Duration = std::time::Duration::from_secs(5);

/// Arguments of `mmm runs`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunsArgs {
    /// Run folders, or folders holding them [default: the config's `roots`, else the current
    /// folder].
    roots: Vec<PathBuf>,
    /// The rules, as YAML (docs/runs.md lists every key).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The total epochs of every trainer, over what the runs' config files say.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
    /// Print JSON; with --watch, one JSON object per line: a snapshot, then each update.
    #[arg(long)]
    json: bool,
    /// Keep watching and show every change, until Ctrl-C.
    #[arg(long)]
    watch: bool,
}

/// Runs `mmm runs`.
pub(crate) fn runs(args: RunsArgs) -> anyhow::Result<Exit> {
    let config = match &args.config {
        Some(path) => RunsConfig::load(path).map_err(usage_or_runs_error)?,
        None => RunsConfig::default(),
    };
    let roots = if !args.roots.is_empty() {
        args.roots.clone()
    } else if !config.roots.is_empty() {
        config.roots.clone()
    } else {
        vec![PathBuf::from(".")]
    };
    let scanner = Scanner::new(&roots, config, args.epochs).map_err(usage_or_runs_error)?;
    if args.watch {
        return watch(scanner, &args);
    }
    let scan = scanner
        .scan_all(SystemTime::now(), &ProcessTable::read())
        .map_err(usage_or_runs_error)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let listing = JsonListing {
            runs: &scan.runs,
            problems: scan.problems.iter().map(JsonProblem::of).collect(),
        };
        // Serialised first, so that a closed pipe is an I/O error (a success), not a
        // serde_json error.
        let mut text = serde_json::to_string_pretty(&listing)?;
        text.push('\n');
        out.write_all(text.as_bytes())?;
    } else if !scan.runs.is_empty() || scan.problems.is_empty() {
        out.write_all(render(&scanner, &scan.runs, mmm_core::job::now_ms()).as_bytes())?;
    }
    out.flush()?;
    drop(out);
    // The runs that could be read are listed; then the folders that could not stop the
    // command, as a lone unreadable folder would.
    let mut problems = scan.problems.into_iter();
    let Some(first) = problems.next() else {
        return Ok(Exit::Success);
    };
    for other in problems {
        eprintln!("error: {other}");
    }
    Err(usage_or_runs_error(first))
}

/// `mmm runs --json`: the runs, and the folders that could not be read.
#[derive(Serialize)]
struct JsonListing<'a> {
    runs: &'a [Run],
    problems: Vec<JsonProblem>,
}

/// A run folder that could not be read or classified, in `mmm runs --json`.
#[derive(Serialize)]
struct JsonProblem {
    /// The folder, when the problem is one folder's.
    path: Option<PathBuf>,
    /// The message the command prints.
    message: String,
}

impl JsonProblem {
    fn of(e: &ObserveError) -> JsonProblem {
        let path = match e {
            ObserveError::Unclassifiable(u) => Some(u.path.clone()),
            ObserveError::ReadFolder { path, .. } => Some(path.clone()),
            _ => None,
        };
        JsonProblem {
            path,
            message: e.to_string(),
        }
    }
}

/// The table, a summary line, and each run's problems.
fn render(scanner: &Scanner, runs: &[Run], now_ms: i64) -> String {
    if runs.is_empty() {
        let roots: Vec<String> = scanner
            .roots()
            .iter()
            .map(|r| r.display().to_string())
            .collect();
        return format!(
            "no runs under {} (run folders match `{}` below a root; see docs/runs.md)\n",
            roots.join(", "),
            String::from(scanner.config().pattern.clone())
        );
    }
    let rows: Vec<Vec<String>> = runs.iter().map(|r| row(r, now_ms)).collect();
    let header = [
        "NAME",
        "KIND",
        "STATUS",
        "PROGRESS",
        "BEST",
        "LATEST",
        "LAST ACTIVE",
    ];
    let mut text = output::table(&header, &rows, &[]);
    text.push_str(&summary(runs));
    text.push('\n');
    for run in runs {
        let p = &run.progress;
        for problem in p.error_message.iter().chain(&p.warnings) {
            text.push_str(&format!("  {}: {problem}\n", run.name));
        }
    }
    text
}

fn row(run: &Run, now_ms: i64) -> Vec<String> {
    let status = match run.status {
        RunStatus::Stuck | RunStatus::Running if !run.pids.is_empty() => {
            let pids: Vec<String> = run.pids.iter().map(u32::to_string).collect();
            format!("{} (pid {})", run.status, pids.join(","))
        }
        _ => run.status.to_string(),
    };
    let (best, latest) = scores(run);
    vec![
        run.name.clone(),
        run.kind.as_str().to_string(),
        status,
        progress(run),
        best,
        latest,
        run.last_activity_ms
            .map_or("-".to_string(), |at| output::age(at, now_ms)),
    ]
}

/// `7/10 epochs 70%`, `3/? epochs`, `done 100%`.
fn progress(run: &Run) -> String {
    let p = &run.progress;
    match run.kind {
        RunKind::Evaluator if p.completed_epochs >= 1 => "done 100%".into(),
        RunKind::Evaluator => "not done 0%".into(),
        RunKind::Trainer => {
            let total = p.total_epochs.map_or("?".to_string(), |t| t.to_string());
            let mut text = format!("{}/{total} epochs", p.completed_epochs);
            if let Some(percent) = p.progress_percentage {
                text.push_str(&format!(" {percent:.0}%"));
            }
            if p.early_stopped {
                match p.early_stopped_at_epoch {
                    Some(e) => text.push_str(&format!(" (early stop at {e})")),
                    None => text.push_str(" (early stop)"),
                }
            }
            text
        }
    }
}

/// The best and latest scores: the metric's value when one is configured, else the first
/// two numbers of the latest scores.
fn scores(run: &Run) -> (String, String) {
    let p = &run.progress;
    let Some(latest) = p.latest_score.as_ref().filter(|l| !l.is_empty()) else {
        return ("-".into(), "-".into());
    };
    match &p.metric {
        Some(metric) => {
            let leaf = metric.rsplit('.').next().unwrap_or(metric);
            let best = match (&p.best_score, p.best_epoch) {
                (Some(b), Some(e)) if run.kind == RunKind::Trainer => b
                    .get(metric)
                    .map_or("-".into(), |v| format!("{leaf}={} (epoch {e})", number(*v))),
                (Some(b), _) => b
                    .get(metric)
                    .map_or("-".into(), |v| format!("{leaf}={}", number(*v))),
                _ => "-".into(),
            };
            let latest = latest
                .get(metric)
                .map_or("-".into(), |v| format!("{leaf}={}", number(*v)));
            (best, latest)
        }
        None => {
            let shown: Vec<String> = latest
                .iter()
                .take(2)
                .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), number(*v)))
                .collect();
            let more = if latest.len() > 2 { " …" } else { "" };
            ("-".into(), format!("{}{more}", shown.join(" ")))
        }
    }
}

/// At most 4 decimals, without trailing zeros.
fn number(v: f64) -> String {
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

fn summary(runs: &[Run]) -> String {
    let statuses = [
        RunStatus::Running,
        RunStatus::Stuck,
        RunStatus::Failed,
        RunStatus::Finished,
        RunStatus::Outdated,
    ];
    let counts: Vec<String> = statuses
        .iter()
        .filter_map(|s| {
            let n = runs.iter().filter(|r| r.status == *s).count();
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect();
    let noun = if runs.len() == 1 { "run" } else { "runs" };
    format!("{} {noun}: {}", runs.len(), counts.join(", "))
}

/// One line of `--watch --json`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WatchLine<'a> {
    /// Every run, first and after falling behind.
    Snapshot { runs: &'a [Run] },
    /// What changed.
    Update(&'a Update),
}

/// How `--watch` shows changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WatchView {
    /// Redraw the table (a terminal).
    Redraw,
    /// One line per changed run.
    Lines,
    /// One JSON object per line.
    Json,
}

fn watch(scanner: Scanner, args: &RunsArgs) -> anyhow::Result<Exit> {
    let view = if args.json {
        WatchView::Json
    } else if std::io::stdout().is_terminal() {
        WatchView::Redraw
    } else {
        WatchView::Lines
    };
    let render_scanner = scanner.clone();
    let watch = Watch::start(scanner, Arc::new(SystemTime::now)).map_err(usage_or_runs_error)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (mut runs, mut updates) = watch.subscribe();
        show_snapshot(view, &render_scanner, &runs)?;
        // On a terminal the ages ("3m ago") are redrawn now and then; nothing is re-read.
        let mut ages = tokio::time::interval(AGES_REDRAW);
        ages.tick().await;
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = ages.tick(), if view == WatchView::Redraw => {
                    show_snapshot(view, &render_scanner, &runs)?;
                }
                update = updates.recv() => match update {
                    Ok(update) => {
                        runs = watch.runs();
                        show_update(view, &render_scanner, &runs, &update)?;
                    }
                    Err(RecvError::Lagged(_)) => {
                        (runs, updates) = watch.subscribe();
                        show_snapshot(view, &render_scanner, &runs)?;
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
        Ok(Exit::Success)
    })
}

fn show_snapshot(view: WatchView, scanner: &Scanner, runs: &[Run]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match view {
        WatchView::Json => json_line(&mut out, &WatchLine::Snapshot { runs })?,
        WatchView::Redraw => redraw(&mut out, scanner, runs, &[])?,
        WatchView::Lines => {
            out.write_all(render(scanner, runs, mmm_core::job::now_ms()).as_bytes())?
        }
    }
    out.flush()?;
    Ok(())
}

fn show_update(
    view: WatchView,
    scanner: &Scanner,
    runs: &[Run],
    update: &Update,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match view {
        WatchView::Json => json_line(&mut out, &WatchLine::Update(update))?,
        WatchView::Redraw => redraw(&mut out, scanner, runs, &update.problems)?,
        WatchView::Lines => {
            let now = mmm_core::job::now_ms();
            for run in &update.changed {
                let cells = row(run, now);
                writeln!(out, "{}", cells.join("  "))?;
            }
            for path in &update.removed {
                writeln!(out, "gone: {}", path.display())?;
            }
            for problem in &update.problems {
                writeln!(out, "problem: {problem}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// One JSON object and a newline (serialised first: see `runs`).
fn json_line(out: &mut impl Write, line: &WatchLine<'_>) -> anyhow::Result<()> {
    let mut text = serde_json::to_string(line)?;
    text.push('\n');
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn redraw(
    out: &mut impl Write,
    scanner: &Scanner,
    runs: &[Run],
    problems: &[String],
) -> anyhow::Result<()> {
    // Clear the screen and go home; then the same text as `mmm runs`.
    write!(out, "\x1b[2J\x1b[H")?;
    out.write_all(render(scanner, runs, mmm_core::job::now_ms()).as_bytes())?;
    for problem in problems {
        writeln!(out, "problem: {problem}")?;
    }
    writeln!(out, "watching for changes; Ctrl-C to stop")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(0.95), "0.95");
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(-0.00001), "0");
        assert_eq!(number(12.5), "12.5");
    }
}
