//! `mmm dlq list|show|export|retry|purge JOB`: the dead-letter queue of a job, read back from
//! the store, and the two ways out of it: retry (back to `pending`, with a fresh retry budget)
//! and purge (given up on: `skipped`, history kept). See docs/dlq.md.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::output::{AttemptView, attempt_view, owner_description};
use super::wiring::{
    ResumeOptions, ViewArgs, continue_job, open_job, owner_state, usage_or_store_error,
};
use super::{Exit, UsageError, output};
use mmm_core::job::{AttemptOutcome, ItemStatus, JobId, JobStatus, now_ms};
use mmm_store::audit::Owner;
use mmm_store::{DlqChange, ItemRecord, Store, StoreError};

/// The version of `mmm dlq export`'s objects; bumped when a field changes meaning.
const EXPORT_VERSION: u32 = 1;

/// A last error longer than this is cut in `mmm dlq list`'s table.
const ERROR_WIDTH: usize = 80;

/// A value (as JSON) longer than this is cut in `mmm dlq list`'s table.
const VALUE_WIDTH: usize = 40;

const DLQ_HELP: &str = "\
Examples:
  mmm dlq list 019ab3              the dead-lettered items of job 019ab3...
  mmm dlq show 019ab3 photo-17     one item with every attempt in full
  mmm dlq export 019ab3 -o dlq.jsonl
  mmm dlq retry 019ab3             every DLQ item back to pending, then `mmm resume 019ab3`
  mmm dlq purge 019ab3 photo-17 --yes

Retry moves items back to `pending` with a fresh retry budget and reopens a finished job as
`interrupted`. Purge gives up on items: they become `skipped` and stop counting as failures;
their attempts and a `dlq_purged` event stay in the record. See docs/dlq.md.";

/// Arguments of `mmm dlq`.
#[derive(Debug, clap::Args)]
pub(crate) struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// List the job's dead-lettered items: key, attempts, last exit code and error, when.
    #[command(after_help = LIST_HELP)]
    List {
        /// The job: an id or an unambiguous prefix (`mmm jobs` lists them).
        #[arg(add = super::wiring::job_id_completer())]
        job: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one item (by key) with its value and every attempt in full.
    #[command(after_help = SHOW_HELP)]
    Show {
        /// The job: an id or an unambiguous prefix.
        #[arg(add = super::wiring::job_id_completer())]
        job: String,
        /// The item's key (as `mmm dlq list` shows it).
        item: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the dead-lettered items, with their values and attempts, as JSON.
    #[command(after_help = EXPORT_HELP)]
    Export {
        /// The job: an id or an unambiguous prefix.
        #[arg(add = super::wiring::job_id_completer())]
        job: String,
        /// Write to FILE instead of standard output (`-o -`: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// One object per line (jsonl) or one JSON array (json).
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Write only the items' values: an input file for a new run.
        #[arg(long)]
        values: bool,
    },
    /// Move dead-lettered items back to pending with a fresh retry budget.
    #[command(after_help = RETRY_HELP)]
    Retry {
        /// The job: an id or an unambiguous prefix.
        #[arg(add = super::wiring::job_id_completer())]
        job: String,
        /// The items' keys [default: every dead-lettered item].
        items: Vec<String>,
        /// Only move the items back to pending; continue later with `mmm resume JOB`.
        #[arg(long)]
        no_resume: bool,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Give up on dead-lettered items: mark them skipped, keeping their history.
    #[command(after_help = PURGE_HELP)]
    Purge {
        /// The job: an id or an unambiguous prefix.
        #[arg(add = super::wiring::job_id_completer())]
        job: String,
        /// The items' keys [default: every dead-lettered item].
        items: Vec<String>,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

const LIST_HELP: &str = "\
Examples:
  mmm dlq list 019ab3
  mmm dlq list 019ab3 --json | jq -r '.items[].key'";

const SHOW_HELP: &str = "\
Examples:
  mmm dlq show 019ab3 photo-17
  mmm dlq show 019ab3 photo-17 --json

Any item of the job can be shown, also one that was purged or retried: its status is printed.";

const EXPORT_HELP: &str = "\
Examples:
  mmm dlq export 019ab3 > dlq.jsonl           one object per item: key, value, attempts
  mmm dlq export 019ab3 --format json -o dlq.json
  mmm dlq export 019ab3 --values -o retry.jsonl   only the values: an input file for a new job

Each object carries `version` (the export format's version), `job`, `key`, `value` (the item
as it was read from the input) and `attempts` (as `mmm dlq show --json` prints them).";

const RETRY_HELP: &str = "\
Examples:
  mmm dlq retry 019ab3                 every dead-lettered item
  mmm dlq retry 019ab3 photo-17 photo-20

The items go back to `pending` with a fresh retry budget; their earlier attempts are kept and
new attempts are numbered after them. A `dlq_retry` event is recorded per item. The job then
continues at once, as `mmm resume JOB` would, with the same progress views and exit codes;
with --no-resume it is only reopened as `interrupted`, to continue later with `mmm resume JOB`.";

const PURGE_HELP: &str = "\
Examples:
  mmm dlq purge 019ab3 --yes           give up on every dead-lettered item
  mmm dlq purge 019ab3 photo-17        asks for confirmation on a terminal

Purge deletes nothing. The items become `skipped`: they leave the DLQ and stop counting as
failures (a `completed_with_failures` job with nothing left in the DLQ becomes `completed`).
Their attempts stay in the record (`mmm dlq show JOB ITEM`) and a `dlq_purged` event is
recorded per item. Without --yes, purge asks first, and refuses when stdin is not a terminal.";

/// The two shapes of `mmm dlq export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// One JSON array.
    Json,
}

/// An item of `mmm dlq list --json`.
#[derive(Debug, Serialize)]
struct ListedItem {
    key: String,
    value: serde_json::Value,
    attempts: usize,
    last_error: Option<String>,
    last_exit_code: Option<i32>,
    failed_at: Option<i64>,
}

/// `mmm dlq list --json`.
#[derive(Debug, Serialize)]
struct ListView {
    job: JobId,
    short_id: String,
    name: String,
    status: JobStatus,
    count: usize,
    items: Vec<ListedItem>,
}

/// `mmm dlq show --json`.
#[derive(Debug, Serialize)]
struct ItemView {
    job: JobId,
    key: String,
    index: u64,
    status: ItemStatus,
    /// Attempts that count against the retry budget.
    counted_attempts: u32,
    value: serde_json::Value,
    attempts: Vec<AttemptView>,
}

/// One object of `mmm dlq export`.
#[derive(Debug, Serialize)]
struct ExportedItem {
    version: u32,
    job: JobId,
    key: String,
    value: serde_json::Value,
    attempts: Vec<AttemptView>,
}

/// Runs `mmm dlq ...`.
pub(crate) fn dlq(store_location: &str, args: DlqArgs) -> anyhow::Result<Exit> {
    match args.command {
        DlqCommand::List { job, json } => list(store_location, &job, json),
        DlqCommand::Show { job, item, json } => show(store_location, &job, &item, json),
        DlqCommand::Export {
            job,
            output,
            format,
            values,
        } => export(store_location, &job, output, format, values),
        DlqCommand::Retry {
            job,
            items,
            no_resume,
            view,
        } => {
            let moved = retry(store_location, &job, &items)?;
            match moved {
                Some(id) if !no_resume => {
                    let (store, _) = open_job(store_location, &job)?;
                    let options = ResumeOptions::with_view(view);
                    continue_job(store, id, &options, store_location)
                }
                Some(id) => {
                    println!("next: continue the job with `mmm resume {}`", id.short());
                    Ok(Exit::Success)
                }
                None => Ok(Exit::Success),
            }
        }
        DlqCommand::Purge { job, items, yes } => purge(store_location, &job, &items, yes),
    }
}

fn list(store_location: &str, prefix: &str, json: bool) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, prefix)?;
    let job = store.job(id)?;
    let letters = store.dead_letters(id)?;
    let items: Vec<ListedItem> = letters
        .iter()
        .map(|letter| {
            let last = letter.attempts.iter().rev().find(|a| a.outcome.is_some());
            ListedItem {
                key: letter.item.key.clone(),
                value: value_of(&letter.item),
                attempts: letter.attempts.len(),
                last_error: last.and_then(|a| a.error.clone()),
                last_exit_code: last.and_then(|a| a.exit_code),
                failed_at: last.and_then(|a| a.ended_at),
            }
        })
        .collect();
    if json {
        output::print_json(&ListView {
            job: id,
            short_id: id.short(),
            name: job.name,
            status: job.status,
            count: items.len(),
            items,
        })?;
        return Ok(Exit::Success);
    }
    if items.is_empty() {
        println!(
            "job {} ({}) has no dead-lettered items",
            id.short(),
            job.name
        );
        return Ok(Exit::Success);
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            vec![
                item.key.clone(),
                cut(&item.value.to_string(), VALUE_WIDTH),
                item.attempts.to_string(),
                item.last_exit_code
                    .map_or_else(|| "-".to_string(), |code| code.to_string()),
                item.failed_at
                    .map_or_else(|| "-".to_string(), |at| output::age(at, now)),
                one_line(item.last_error.as_deref().unwrap_or("no error recorded")),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "job {} ({}, {}): {} {} in the dead-letter queue\n",
        id.short(),
        job.name,
        job.status,
        output::count(items.len() as u64),
        if items.len() == 1 { "item" } else { "items" }
    )?;
    out.write_all(
        output::table(
            &["KEY", "VALUE", "ATTEMPTS", "EXIT", "FAILED", "LAST ERROR"],
            &rows,
            &[2, 3],
        )
        .as_bytes(),
    )?;
    writeln!(
        out,
        "\n`mmm dlq show {} KEY` shows an item's attempts; `mmm dlq retry {}` runs them again",
        id.short(),
        id.short()
    )?;
    Ok(Exit::Success)
}

fn show(store_location: &str, prefix: &str, key: &str, json: bool) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, prefix)?;
    let item = store
        .item(id, key)?
        .ok_or_else(|| StoreError::UnknownItems {
            job: id,
            keys: vec![key.to_string()],
        })
        .map_err(usage_or_store_error)?;
    let attempts = store.attempts(id, Some(key))?;
    let view = ItemView {
        job: id,
        key: item.key.clone(),
        index: item.index,
        status: item.status,
        counted_attempts: item.attempts,
        value: value_of(&item),
        attempts: attempts.into_iter().map(attempt_view).collect(),
    };
    if json {
        output::print_json(&view)?;
        return Ok(Exit::Success);
    }
    // The attempts whose whole output the store keeps (none under `logs: none`).
    let mut logged = Vec::new();
    for attempt in &view.attempts {
        let query = mmm_store::logs::LogQuery {
            item: Some(item.index),
            attempt: Some(attempt.number),
            after_id: 0,
            limit: 1,
        };
        if !store.log_chunks(id, &query)?.is_empty() {
            logged.push(attempt.number);
        }
    }
    print_item(&view, &logged)?;
    Ok(Exit::Success)
}

/// A word as the shell reads it back: as it is when it is plain, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-+:@%=,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn print_item(view: &ItemView, logged: &[u32]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "item `{}` of job {} (#{} in the input): {}, {} {}",
        view.key,
        view.job.short(),
        view.index + 1,
        view.status,
        view.attempts.len(),
        if view.attempts.len() == 1 {
            "attempt"
        } else {
            "attempts"
        }
    )?;
    writeln!(out, "value: {}", view.value)?;
    for a in &view.attempts {
        let outcome = a.outcome.map_or("in flight", AttemptOutcome::as_str);
        let mut head = format!("\nattempt {} on {}: {outcome}", a.number, a.agent);
        if let Some(code) = a.exit_code {
            head.push_str(&format!(", exit code {code}"));
        }
        if let Some(ms) = a.duration_ms {
            head.push_str(&format!(", {}", millis(ms)));
        }
        writeln!(out, "{head}")?;
        if let Some(error) = &a.error {
            writeln!(out, "  error: {error}")?;
        }
        if !a.steps.is_empty() {
            writeln!(out, "  steps:")?;
            for step in &a.steps {
                let how = if step.skipped {
                    "skipped".to_string()
                } else {
                    match step.exit_code {
                        Some(code) => format!("exit {code}"),
                        None => "no exit code".to_string(),
                    }
                };
                writeln!(
                    out,
                    "    {}  {}  {how}",
                    step.name,
                    millis(step.duration_ms)
                )?;
            }
        }
        for (name, tail) in [("stdout", &a.stdout_tail), ("stderr", &a.stderr_tail)] {
            if tail.trim().is_empty() {
                continue;
            }
            writeln!(out, "  {name} (tail):")?;
            for line in tail.lines() {
                writeln!(out, "    | {line}")?;
            }
        }
        if logged.contains(&a.number) {
            writeln!(
                out,
                "  full log: mmm logs {} {} --attempt {}",
                view.job.short(),
                shell_word(&view.key),
                a.number
            )?;
        }
    }
    Ok(())
}

fn export(
    store_location: &str,
    prefix: &str,
    path: Option<PathBuf>,
    format: ExportFormat,
    values: bool,
) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, prefix)?;
    let letters = store.dead_letters(id)?;
    let objects: Vec<serde_json::Value> = letters
        .into_iter()
        .map(|letter| {
            let value = value_of(&letter.item);
            if values {
                return Ok(value);
            }
            serde_json::to_value(ExportedItem {
                version: EXPORT_VERSION,
                job: id,
                key: letter.item.key,
                value,
                attempts: letter.attempts.into_iter().map(attempt_view).collect(),
            })
        })
        .collect::<Result<_, _>>()?;
    let mut text = String::new();
    match format {
        ExportFormat::Jsonl => {
            for object in &objects {
                text.push_str(&serde_json::to_string(object)?);
                text.push('\n');
            }
        }
        ExportFormat::Json => {
            text = serde_json::to_string_pretty(&objects)?;
            text.push('\n');
        }
    }
    if let Some(path) = output::write_output(path.as_deref(), text.as_bytes())? {
        eprintln!(
            "exported {} dead-lettered {} of job {} to {}",
            output::count(objects.len() as u64),
            if objects.len() == 1 { "item" } else { "items" },
            id.short(),
            path.display()
        );
    }
    Ok(Exit::Success)
}

/// Moves the items back to pending; the job whose items moved, if any did.
fn retry(store_location: &str, prefix: &str, keys: &[String]) -> anyhow::Result<Option<JobId>> {
    let (store, id) = open_job(store_location, prefix)?;
    refuse_live_job(store.as_ref(), id, "retry")?;
    let selected = (!keys.is_empty()).then_some(keys);
    let change = store
        .retry_dead_lettered(id, selected, now_ms())
        .map_err(usage_or_store_error)?;
    if change.items.is_empty() {
        println!(
            "job {} has no dead-lettered items; nothing to retry",
            id.short()
        );
        return Ok(None);
    }
    println!(
        "moved {} {} of job {} from the dead-letter queue back to pending, with a fresh retry \
         budget (earlier attempts are kept)",
        output::count(change.items.len() as u64),
        if change.items.len() == 1 {
            "item"
        } else {
            "items"
        },
        id.short()
    );
    print_status_change(&change);
    Ok(Some(id))
}

fn purge(store_location: &str, prefix: &str, keys: &[String], yes: bool) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, prefix)?;
    refuse_live_job(store.as_ref(), id, "purge")?;
    let job = store.job(id)?;
    if keys.is_empty() && job.counts.dead_lettered == 0 {
        println!(
            "job {} has no dead-lettered items; nothing to purge",
            id.short()
        );
        return Ok(Exit::Success);
    }
    if !yes {
        let count = if keys.is_empty() {
            job.counts.dead_lettered
        } else {
            keys.len() as u64
        };
        if !confirm_purge(id, count)? {
            eprintln!("nothing purged");
            return Ok(Exit::Failure);
        }
    }
    let selected = (!keys.is_empty()).then_some(keys);
    let change = store
        .purge_dead_lettered(id, selected, now_ms())
        .map_err(usage_or_store_error)?;
    println!(
        "purged {} {} of job {} from the dead-letter queue: now `skipped`; their attempts are \
         kept (`mmm dlq show {} KEY`)",
        output::count(change.items.len() as u64),
        if change.items.len() == 1 {
            "item"
        } else {
            "items"
        },
        id.short(),
        id.short()
    );
    print_status_change(&change);
    Ok(Exit::Success)
}

/// Asks on the terminal; refuses (a usage error) when stdin is not one.
fn confirm_purge(id: JobId, count: u64) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError::new(format!(
            "`mmm dlq purge` asks for confirmation, but stdin is not a terminal; pass --yes to \
             purge without asking (`mmm dlq purge {} --yes`)",
            id.short()
        ))
        .into());
    }
    eprint!(
        "purge {} {} of job {} from the dead-letter queue? They become `skipped`; their \
         attempts are kept. [y/N] ",
        output::count(count),
        if count == 1 { "item" } else { "items" },
        id.short()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Refuses to change the DLQ of a job a live process is running: its runner decides the job's
/// final status from counts it would not expect to change.
fn refuse_live_job(store: &dyn Store, id: JobId, what: &str) -> anyhow::Result<()> {
    let job = store.job(id)?;
    if job.status == JobStatus::Running && owner_state(&job, now_ms()) == Owner::Alive {
        anyhow::bail!(
            "job {} is running ({}); {what} its dead-lettered items once it has finished, or \
             stop it first",
            id.short(),
            owner_description(&job, now_ms())
        );
    }
    Ok(())
}

fn print_status_change(change: &DlqChange) {
    if change.status_after != change.status_before {
        println!(
            "the job's status changed from `{}` to `{}`",
            change.status_before, change.status_after
        );
    }
}

/// The item's value as JSON; a value the store holds as text that is not JSON is shown as a
/// string rather than refused.
fn value_of(item: &ItemRecord) -> serde_json::Value {
    serde_json::from_str(&item.value)
        .unwrap_or_else(|_| serde_json::Value::String(item.value.clone()))
}

/// The first line of `text`, cut to [`ERROR_WIDTH`] characters.
fn one_line(text: &str) -> String {
    cut(text.lines().next().unwrap_or(""), ERROR_WIDTH)
}

/// `text` cut to `width` characters, with an ellipsis when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() > width {
        let kept: String = text.chars().take(width - 1).collect();
        format!("{kept}…")
    } else {
        text.to_string()
    }
}

fn millis(ms: f64) -> String {
    output::duration(Duration::from_micros((ms * 1000.0).max(0.0) as u64))
}

/// The help shown under `mmm dlq --help`.
pub(crate) const AFTER_HELP: &str = DLQ_HELP;
