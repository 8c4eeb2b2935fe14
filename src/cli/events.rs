//! `mmm events JOB [--follow] [--type T] [--item KEY] [--since SEQ] [--json]`: a job's event
//! log, as lines or NDJSON; with `--follow`, live from another process until the run ends.

use std::io::Write;

use super::wiring::{open_job, usage_or_store_error};
use super::{Exit, UsageError};
use mmm_store::EventRecord;
use mmm_store::events::{End, EventFilter, Subscription};

pub(crate) const AFTER_HELP: &str = "\
Types: a kind (item_completed) or a category: job, phase, item, attempt, step, agent,
checkpoint, alert. --type can be repeated or comma-separated.

With --follow, events are printed as they are committed, each exactly once and in order,
and the command ends when the run ends (exit 0). If the process running the job is killed,
it ends with exit 1 and says so (`mmm resume JOB` continues the job).

Examples:
  mmm events 0193a2 --follow --json | jq .kind
  mmm events 0193a2 --type item_dead_lettered,alert
  mmm events 0193a2 --item photo-0042.jpg";

/// Arguments of `mmm events`.
#[derive(Debug, clap::Args)]
pub(crate) struct EventsArgs {
    /// The job: an id or an unambiguous prefix.
    #[arg(add = super::wiring::job_id_completer())]
    job: String,
    /// Keep printing new events until the run ends.
    #[arg(long, short)]
    follow: bool,
    /// Only these event kinds or categories.
    #[arg(long = "type", value_name = "T", value_delimiter = ',')]
    types: Vec<String>,
    /// Only events about this item key.
    #[arg(long, value_name = "KEY")]
    item: Option<String>,
    /// Only events with a sequence number above SEQ.
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    since: i64,
    /// One JSON object per line (NDJSON).
    #[arg(long)]
    json: bool,
}

pub(crate) fn events(store_location: &str, args: EventsArgs) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, &args.job)?;
    let filter = EventFilter {
        types: args.types,
        item: args.item,
    };
    filter.validate().map_err(UsageError::new)?;
    let mut subscription = Subscription::new(store, id, args.since, filter);
    let mut out = std::io::stdout().lock();
    loop {
        let batch = if args.follow {
            subscription.wait()
        } else {
            subscription.poll()
        }
        .map_err(usage_or_store_error)?;
        for event in &batch {
            print_event(&mut out, event, args.json)?;
        }
        out.flush()?;
        // Without --follow, one read gets everything recorded so far.
        if !args.follow || subscription.ended().is_some() {
            break;
        }
    }
    if args.follow && subscription.ended() == Some(&End::OwnerGone) {
        eprintln!(
            "the process running job {} is gone; `mmm resume {}` continues it",
            id.short(),
            id.short()
        );
        return Ok(Exit::Failure);
    }
    Ok(Exit::Success)
}

fn print_event(out: &mut impl Write, event: &EventRecord, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, event).map_err(super::output::json_error)?;
        writeln!(out)?;
        return Ok(());
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.at.max(0) as u64);
    let item = event
        .item_key
        .as_deref()
        .map(|k| format!(" [{k}]"))
        .unwrap_or_default();
    let payload = match event.event.payload() {
        serde_json::Value::Object(map) if map.is_empty() => String::new(),
        serde_json::Value::Null => String::new(),
        other => format!(" {other}"),
    };
    writeln!(
        out,
        "{:>6}  {}  {}{item}{payload}",
        event.seq,
        humantime::format_rfc3339_millis(at),
        event.event.kind_name()
    )?;
    Ok(())
}
