//! `mmm logs JOB [ITEM] [--attempt N] [--stream S] [--follow] [--timestamps]`: the items'
//! whole output as the store keeps it (docs/logs.md), and `mmm logs prune`, which deletes the
//! logs of finished jobs and says how much it freed.

use std::io::Write;
use std::time::Duration;

use super::wiring::{open_job, open_store, usage_or_store_error};
use super::{Exit, UsageError, output};
use mmm_core::job::now_ms;
use mmm_store::logs::{self, LogReader, LogSelection, LogStream, human_bytes};

/// How often `--follow` looks for new output: with chunks sent at most 100 ms after their
/// first line, a line shows within about 200 ms.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

pub(crate) const AFTER_HELP: &str = "\
ITEM is an item's key, or its number in the input (1 for the first). Without ITEM, every
item's output, each line led by `[KEY] `, in the order it was written. An item read over all
its attempts shows `--- attempt N ---` before each when it has more than one. Where the cap
(`log_cap:`, `--log-cap`, 64 MiB by default) dropped output, a line says how much:
`[... 1.3 GiB elided ...]`.

With --follow, new lines are printed as they are written until the item (or, without ITEM,
the job) ends; items that start meanwhile join in.

`mmm logs prune` deletes the logs of finished jobs: with JOB, that job's (now, unless
--older-than); without, those of jobs finished more than --older-than ago (30d by default).
Running and resumable jobs keep theirs. The attempts' last 4 KiB of each stream stay for
`mmm dlq show`.

Examples:
  mmm logs 019ab3 photo-17                 one item's output, every attempt
  mmm logs 019ab3 3 --attempt 2 --stream stderr
  mmm logs 019ab3 --follow --timestamps    every running item, live
  mmm logs prune --older-than 7d";

/// Arguments of `mmm logs`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct LogsArgs {
    #[command(subcommand)]
    command: Option<LogsCommand>,
    /// The job: an id or an unambiguous prefix.
    #[arg(add = super::wiring::job_id_completer(), required = true)]
    job: Option<String>,
    /// One item: its key, or its number in the input (1 for the first) [default: every item].
    item: Option<String>,
    /// Only attempt N of the item (1 for the first) [default: every attempt].
    #[arg(long, value_name = "N", requires = "item")]
    attempt: Option<u32>,
    /// Only this stream's lines [default: both, as they were written].
    #[arg(long, value_name = "stdout|stderr", value_parser = parse_stream)]
    stream: Option<LogStream>,
    /// Keep printing new lines until the item (or the job) ends.
    #[arg(long, short)]
    follow: bool,
    /// Put the time each line was written (UTC, milliseconds) before it.
    #[arg(long, short)]
    timestamps: bool,
}

#[derive(Debug, clap::Subcommand)]
enum LogsCommand {
    /// Delete the logs of finished jobs and say how much space that freed.
    Prune {
        /// Only jobs that finished more than this long ago, e.g. 30d, 12h [default: 30d
        /// without JOB; any age with JOB].
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<Duration>,
        /// Only this job's logs (it must have finished).
        #[arg(add = super::wiring::job_id_completer())]
        job: Option<String>,
    },
}

fn parse_stream(text: &str) -> Result<LogStream, String> {
    LogStream::parse(text).ok_or_else(|| format!("`{text}`: expected stdout or stderr"))
}

fn parse_age(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}`: {e} (e.g. 30d, 12h)"))
}

pub(crate) fn logs(store_location: &str, args: LogsArgs) -> anyhow::Result<Exit> {
    if let Some(LogsCommand::Prune { older_than, job }) = args.command {
        return prune(store_location, older_than, job.as_deref());
    }
    let Some(job) = args.job.as_deref() else {
        return Err(UsageError::new("name a job: `mmm logs JOB [ITEM]`").into());
    };
    let (store, id) = open_job(store_location, job)?;
    let item = match &args.item {
        Some(text) => Some(
            logs::find_item(&*store, id, text)
                .map_err(usage_or_store_error)?
                .ok_or_else(|| {
                    UsageError::new(format!(
                        "job {} has no item `{text}` (a key, or a number from 1); \
                         `mmm jobs {}` shows its items",
                        id.short(),
                        id.short()
                    ))
                })?,
        ),
        None => None,
    };
    if let (Some(item), Some(attempt)) = (&item, args.attempt) {
        let attempts = store
            .attempts(id, Some(&item.key))
            .map_err(usage_or_store_error)?;
        if !attempts.iter().any(|a| a.number == attempt) {
            return Err(UsageError::new(format!(
                "item `{}` has no attempt {attempt} (it has {})",
                item.key,
                attempts.len()
            ))
            .into());
        }
    }
    let selection = LogSelection {
        item,
        attempt: args.attempt,
        stream: args.stream,
        timestamps: args.timestamps,
    };
    let mut reader =
        LogReader::new(&*store, id, &selection, args.follow).map_err(usage_or_store_error)?;
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    let mut rendered = 0;
    loop {
        // Decided before reading: what was written before the end is then read below.
        let done = !args.follow
            || logs::follow_done(&*store, id, selection.item.as_ref())
                .map_err(usage_or_store_error)?;
        rendered += reader
            .read(&*store, &mut buf)
            .map_err(usage_or_store_error)?;
        out.write_all(&buf)?;
        out.flush()?;
        buf.clear();
        if done {
            break;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
    reader.finish(&mut buf);
    out.write_all(&buf)?;
    out.flush()?;
    if rendered == 0 && !args.follow {
        let whose = match &selection.item {
            Some(item) => format!("item `{}`", item.key),
            None => format!("job {}", id.short()),
        };
        eprintln!(
            "no output recorded for {whose}: its commands wrote nothing, or it ran with \
             `logs: none` (then `mmm dlq show` has the last 4 KiB of each stream), or its \
             logs were pruned"
        );
    }
    Ok(Exit::Success)
}

/// `mmm logs prune`.
fn prune(
    store_location: &str,
    older_than: Option<Duration>,
    job: Option<&str>,
) -> anyhow::Result<Exit> {
    let (store, id) = match job {
        Some(prefix) => {
            let (store, id) = open_job(store_location, prefix)?;
            let record = store.job(id).map_err(usage_or_store_error)?;
            if !record.status.is_finished() {
                return Err(UsageError::new(format!(
                    "job {} is {}: its logs are kept until it has finished",
                    id.short(),
                    record.status.as_str()
                ))
                .into());
            }
            (store, Some(id))
        }
        None => (open_store(store_location, false)?, None),
    };
    let older_than = match (older_than, id) {
        (Some(age), _) => Some(age),
        (None, None) => Some(Duration::from_secs(30 * 86_400)),
        (None, Some(_)) => None,
    };
    let before = older_than.map(|age| now_ms() - age.as_millis() as i64);
    let pruned = store.prune_logs(id, before).map_err(usage_or_store_error)?;
    println!(
        "freed {} ({} chunks holding {} of output) from {} job{}",
        human_bytes(pruned.stored_bytes),
        output::count(pruned.chunks),
        human_bytes(pruned.output_bytes),
        pruned.jobs,
        if pruned.jobs == 1 { "" } else { "s" }
    );
    Ok(Exit::Success)
}
