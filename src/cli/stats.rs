//! `mmm stats [--since D | --from T [--to T]] [--name GLOB] [--json]`: every job name over a
//! period (runs by status, success rate, items and throughput, duration percentiles, steps,
//! queue wait, deadlines, the ETA's realized error) against the period of the same length
//! before; computed by the store (`mmm_store::stats`, docs/stats.md).

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;

use super::{Exit, UsageError, output};
use mmm_core::job::now_ms;
use mmm_store::stats::{self, NameStats, Percentiles, Stats, StatsQuery};
use mmm_store::{self as store, StoreError};

pub(crate) const AFTER_HELP: &str = "\
A job belongs to the period it was created in. Percentiles are nearest-rank over every
recorded duration of the period's jobs (items: all attempts of a completed or dead-lettered
item; steps: each time the step ran), never averages of per-job figures. Success rate:
completed jobs over finished ones (completed with failures is not a success). Each name is
compared with the period of the same length just before (`was ...`). A job not finished yet
counts in the runs and items; its durations, steps and retries join once it finishes.

Examples:
  mmm stats                          the last 24 hours
  mmm stats --since 30d --name 'nightly-*'
  mmm stats --from 2026-11-01 --to 2026-12-01 --json

--json prints the shape docs/stats.schema.json describes (docs/stats.md).";

/// Arguments of `mmm stats`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    /// The period: the last DURATION (`24h`, `7d`, `90m`) up to now [default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with_all = ["from", "to"])]
    since: Option<Duration>,
    /// The period's start: a time (`2026-11-30T18:00:00Z`) or a date (`2026-11-30`, midnight
    /// UTC).
    #[arg(long, value_name = "T", value_parser = time_ms)]
    from: Option<i64>,
    /// The period's end (excluded) [default: now].
    #[arg(long, value_name = "T", value_parser = time_ms, requires = "from")]
    to: Option<i64>,
    /// Only job names matching this glob (`nightly-*`; `?` one character, `[ab]` a set).
    #[arg(long, value_name = "GLOB")]
    name: Option<String>,
    /// Print JSON (docs/stats.schema.json) instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `mmm stats`.
pub(crate) fn stats(store_location: &str, args: StatsArgs) -> anyhow::Result<Exit> {
    let now = now_ms();
    let (from, to) = match (args.from, args.to) {
        (Some(from), to) => (from, to.unwrap_or(now)),
        (None, _) => {
            let since = args.since.unwrap_or(Duration::from_secs(86_400));
            let since = i64::try_from(since.as_millis()).unwrap_or(i64::MAX);
            (now.saturating_sub(since), now)
        }
    };
    if from >= to {
        return Err(UsageError::new(format!(
            "the period is empty: --from {} is not before --to {}",
            clock(from),
            clock(to)
        ))
        .into());
    }
    let query = StatsQuery {
        from,
        to,
        name_glob: args.name.clone(),
    };
    let computed = match store::open(store_location, false) {
        Ok(store) => {
            stats::compute(store.as_ref(), &query, now).context("could not compute the stats")?
        }
        // No store yet: no job in any period.
        Err(StoreError::NotFound { .. }) => Stats {
            from,
            to,
            previous_from: from - (to - from),
            names: Vec::new(),
        },
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "could not open the store at {}",
                mmm_store::shown_location(store_location)
            )));
        }
    };
    if args.json {
        output::print_json(&computed)?;
    } else {
        print_text(&computed);
    }
    Ok(Exit::Success)
}

/// `--from`/`--to`: an RFC 3339 time or a date (midnight UTC), as epoch ms.
fn time_ms(text: &str) -> Result<i64, String> {
    let dated;
    let full = if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        dated = format!("{text}T00:00:00Z");
        dated.as_str()
    } else {
        text
    };
    let time = humantime::parse_rfc3339_weak(full).map_err(|_| {
        format!(
            "`{text}` is not a time: give one like 2026-11-30T18:00:00Z or a date like 2026-11-30"
        )
    })?;
    Ok(match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    })
}

/// An epoch-ms time as `2026-11-30 18:00 UTC`.
fn clock(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let text = humantime::format_rfc3339_seconds(time).to_string();
    format!("{} UTC", text[..16].replace('T', " "))
}

fn print_text(stats: &Stats) {
    println!(
        "{} to {} ({}), compared with the {} before",
        clock(stats.from),
        clock(stats.to),
        ms(stats.to - stats.from),
        ms(stats.to - stats.from)
    );
    if stats.names.is_empty() {
        println!("no job was created in the period");
        return;
    }
    for name in &stats.names {
        println!();
        print_name(name);
    }
}

fn print_name(n: &NameStats) {
    let statuses: Vec<String> = n
        .by_status
        .iter()
        .map(|(s, c)| format!("{s} {c}"))
        .collect();
    println!("{}: {} runs ({})", n.name, n.runs, statuses.join(", "));
    let previous = n.previous.as_ref();
    let was = |now: Option<String>, then: Option<String>| match (now, then) {
        (Some(now), Some(then)) => format!("{now} (was {then})"),
        (Some(now), None) => now,
        (None, _) => "-".to_string(),
    };
    println!(
        "  success rate   {}",
        was(
            n.success_rate.map(percent),
            previous.and_then(|p| p.success_rate).map(percent)
        )
    );
    let i = &n.items;
    println!(
        "  items          {} processed ({} completed, {} in the DLQ, {} skipped), {}; {} retries, DLQ rate {}",
        output::count(i.processed),
        output::count(i.completed),
        output::count(i.dead_lettered),
        output::count(i.skipped),
        was(
            i.throughput_per_s.map(|t| format!("{t:.2}/s")),
            previous
                .and_then(|p| p.throughput_per_s)
                .map(|t| format!("{t:.2}/s"))
        ),
        output::count(i.retries),
        i.dlq_rate.map_or("-".to_string(), percent)
    );
    line(
        "job duration",
        n.job_duration,
        previous.and_then(|p| p.job_p95_ms),
    );
    line(
        "item duration",
        n.item_duration,
        previous.and_then(|p| p.item_p95_ms),
    );
    line("queue wait", n.queue_wait, None);
    if let Some(d) = &n.deadline {
        let mut text = format!(
            "{} met, {} missed, {} open; compliance {}",
            d.met,
            d.missed,
            d.open,
            d.compliance.map_or("-".to_string(), percent)
        );
        if let Some(late) = d.late {
            text.push_str(&format!(
                "; late by {} (median), up to {}",
                ms(late.p50_ms as i64),
                ms(late.p99_ms as i64)
            ));
        }
        if let Some(margin) = d.margin {
            text.push_str(&format!(
                "; met with {} to spare (median)",
                ms(margin.p50_ms as i64)
            ));
        }
        println!("  deadline       {text}");
    }
    if let Some(eta) = &n.eta {
        let errors: Vec<String> = eta
            .at_percent
            .iter()
            .map(|p| format!("{}% done {}", p.percent, percent(p.median_relative)))
            .collect();
        let mut text = format!(
            "P10-P90 held the end in {} of {} estimates ({} jobs)",
            percent(eta.coverage),
            output::count(eta.estimates),
            eta.jobs
        );
        if !errors.is_empty() {
            text.push_str(&format!("; median error at {}", errors.join(", ")));
        }
        println!("  ETA            {text}");
    }
    if n.steps.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = n
        .steps
        .iter()
        .map(|s| {
            let p = |f: fn(&Percentiles) -> f64| {
                s.duration.map_or("-".to_string(), |d| ms(f(&d) as i64))
            };
            vec![
                format!("  {}", s.name),
                output::count(s.ran),
                s.skip_rate.map_or("-".to_string(), percent),
                output::count(s.failed),
                output::count(s.retries),
                s.dlq_rate.map_or("-".to_string(), percent),
                p(|d| d.p50_ms),
                p(|d| d.p95_ms),
                p(|d| d.p99_ms),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &[
                "  step", "ran", "skipped", "failed", "retries", "DLQ", "p50", "p95", "p99"
            ],
            &rows,
            &[1, 2, 3, 4, 5, 6, 7, 8]
        )
    );
}

/// One line of duration percentiles, with the p95 of the period before when known.
fn line(label: &str, p: Option<Percentiles>, previous_p95: Option<f64>) {
    let Some(p) = p else {
        return;
    };
    let mut text = format!(
        "p50 {}  p95 {}  p99 {}  ({} measured)",
        ms(p.p50_ms as i64),
        ms(p.p95_ms as i64),
        ms(p.p99_ms as i64),
        output::count(p.count)
    );
    if let Some(before) = previous_p95 {
        text.push_str(&format!("; p95 was {}", ms(before as i64)));
    }
    println!("  {label:<14} {text}");
}

fn ms(v: i64) -> String {
    output::duration(Duration::from_millis(v.max(0) as u64))
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates() {
        assert_eq!(time_ms("1970-01-02"), Ok(86_400_000));
        assert_eq!(time_ms("1970-01-01T00:00:02Z"), Ok(2_000));
        assert!(time_ms("last tuesday").is_err());
    }
}
