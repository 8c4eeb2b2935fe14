//! `mmm progress [JOB] [--once|--json|--follow]`: where a job stands, read from the store by
//! any process: the full-screen viewer on a terminal, a static summary, the `view::JobState`
//! JSON (the web API's shape, docs/job-state.schema.json), or a plain line at an interval
//! for CI logs. Without a job id, the newest running job.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::wiring::{open_store, usage_or_store_error};
use super::{Exit, UsageError, output};
use crate::tui::viewer::state::ViewerState;
use crate::tui::viewer::{self, LiveFeed};
use mmm_core::job::{AgentState, JobId, JobStatus};
use mmm_store::Store;
use mmm_store::job_state::JobState;

pub(crate) const AFTER_HELP: &str = "\
On a terminal, a full-screen viewer that follows the job live (q quits, ? lists the keys).
Without a terminal (or with --once) a static summary; --json prints the job's state as one
JSON object (docs/job-state.schema.json); --follow prints a plain line every --interval until
the job ends (for CI logs; exit 1 if the process running it is gone).

Examples:
  mmm progress                 # the newest running job
  mmm progress 0193a2 --json | jq .percent
  mmm progress 0193a2 --follow --interval 10s";

/// How many snapshots seed the throughput sparkline.
const SEED_SNAPSHOTS: usize = 240;

/// Arguments of `mmm progress`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProgressArgs {
    /// The job: an id or an unambiguous prefix (default: the newest running job).
    #[arg(add = super::wiring::job_id_completer())]
    job: Option<String>,
    /// Print a static summary and exit.
    #[arg(long, conflicts_with_all = ["json", "follow"])]
    once: bool,
    /// Print the job's state as one JSON object and exit.
    #[arg(long, conflicts_with = "follow")]
    json: bool,
    /// Print a plain progress line every --interval until the job ends.
    #[arg(long, short)]
    follow: bool,
    /// How often --follow prints (e.g. 5s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration, requires = "follow")]
    interval: Duration,
}

/// Runs `mmm progress`.
pub(crate) fn progress(store_location: &str, args: ProgressArgs) -> anyhow::Result<Exit> {
    let store = open_store(store_location, false)?;
    let id = match &args.job {
        Some(prefix) => store.resolve_job(prefix).map_err(usage_or_store_error)?,
        None => newest_running(store.as_ref(), store_location)?,
    };
    let state = JobState::load(store.as_ref(), id).map_err(usage_or_store_error)?;
    if args.json {
        output::print_json(&state)?;
        return Ok(Exit::Success);
    }
    if args.follow {
        return follow(store.as_ref(), id, state, args.interval);
    }
    let mut viewer_state = ViewerState::new(state);
    seed(store.as_ref(), id, &mut viewer_state)?;
    if args.once {
        print!("{}", summary(&viewer_state));
        return Ok(Exit::Success);
    }
    if !std::io::stdout().is_terminal() {
        eprintln!(
            "stdout is not a terminal, so here is a summary; use --once for it, \
             --follow for a line at an interval, or --json"
        );
        print!("{}", summary(&viewer_state));
        return Ok(Exit::Success);
    }
    let mut feed = LiveFeed::new(Arc::clone(&store), id, &viewer_state);
    viewer::run(&mut viewer_state, &mut feed)?;
    Ok(Exit::Success)
}

/// The newest job that is running.
fn newest_running(store: &dyn Store, location: &str) -> anyhow::Result<JobId> {
    let jobs = store.jobs().context("could not list the jobs")?;
    jobs.iter()
        .find(|j| j.status == JobStatus::Running)
        .map(|j| j.id)
        .ok_or_else(|| {
            UsageError::new(format!(
                "no job is running in {location}; name one: `mmm progress JOB` \
                 (`mmm jobs` lists them)"
            ))
            .into()
        })
}

/// Feeds the job's recent snapshots to the throughput history.
pub(crate) fn seed(store: &dyn Store, id: JobId, state: &mut ViewerState) -> anyhow::Result<()> {
    let newest = state.job.snapshot.as_ref().map_or(0, |s| s.at);
    // Snapshots come once a second: look back far enough to fill the sparkline.
    let after = newest - SEED_SNAPSHOTS as i64 * 1000;
    let history = store.snapshots(id, after, SEED_SNAPSHOTS)?;
    state.seed(&history);
    Ok(())
}

fn follow(
    store: &dyn Store,
    id: JobId,
    first: JobState,
    interval: Duration,
) -> anyhow::Result<Exit> {
    let mut state = ViewerState::new(first);
    seed(store, id, &mut state)?;
    let mut out = std::io::stdout().lock();
    loop {
        writeln!(out, "{}", output::progress_line(&state))?;
        out.flush()?;
        if state.job.job.status.is_finished() {
            return Ok(Exit::Success);
        }
        if !state.job.live {
            eprintln!(
                "no process is running job {} ({}); `mmm resume {}` continues it",
                id.short(),
                state.job.job.status,
                id.short()
            );
            return Ok(Exit::Failure);
        }
        // Wait out the interval, but print at once when the job ends: on PostgreSQL, wake on
        // the job's events (its end is one) and read at most every LIVE_POLL, else about once
        // a second (a dead owner records nothing); on SQLite, read every LIVE_POLL.
        let deadline = Instant::now() + interval;
        loop {
            let left = || deadline.saturating_duration_since(Instant::now());
            if store.wakes_on_events() {
                let since = Instant::now();
                store.wait_for_events(id, viewer::QUIET_READ.min(left()));
                std::thread::sleep(
                    viewer::LIVE_POLL
                        .saturating_sub(since.elapsed())
                        .min(left()),
                );
            } else {
                std::thread::sleep(viewer::LIVE_POLL.min(left()));
            }
            let next = JobState::load(store, id)?;
            let ended = next.job.status.is_finished() || !next.live;
            state.update(next);
            if ended || Instant::now() >= deadline {
                break;
            }
        }
    }
}

/// The static summary of `--once`.
pub(crate) fn summary(state: &ViewerState) -> String {
    use std::fmt::Write as _;
    let job = &state.job.job;
    let c = &job.counts;
    let mut s = String::new();
    let liveness = if state.job.live {
        ", live"
    } else if state.job.resumable {
        ", resumable"
    } else {
        ""
    };
    let paused = if job.paused && job.status == JobStatus::Running {
        ", paused (`mmm unpause` starts items again)"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "{} ({}): {}{paused}{liveness}{}",
        job.name,
        job.id.short(),
        job.status,
        job.phase
            .map(|p| format!(", phase {p}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "progress: {:.1}%  {}/{} done: {} completed, {} dead-lettered, {} skipped; {} running, {} pending, {} to retry",
        state.job.percent,
        output::count(state.done()),
        output::count(c.total()),
        output::count(c.completed),
        output::count(c.dead_lettered),
        output::count(c.skipped),
        output::count(c.running),
        output::count(c.pending),
        output::count(c.failed),
    );
    let _ = writeln!(
        s,
        "elapsed {}  ETA {}  rate {:.1}/s",
        output::duration(Duration::from_millis(job.duration_ms.max(0) as u64)),
        state.eta_text(),
        state.rate
    );
    let ms = |v: f64| output::duration(Duration::from_millis(v.max(0.0) as u64));
    if let Some(m) = &state.snapshot.metrics {
        if let Some(d) = m.items.as_ref().filter(|d| d.count > 0) {
            let _ = writeln!(
                s,
                "item durations: p50 {}  p95 {}  p99 {}  mean {}",
                ms(d.p50_ms),
                ms(d.p95_ms),
                ms(d.p99_ms),
                ms(d.mean_ms)
            );
        }
        if let Some(d) = m.queue_wait.as_ref().filter(|d| d.count > 0) {
            let _ = writeln!(
                s,
                "queue wait: p50 {}  p95 {}  p99 {}  mean {}",
                ms(d.p50_ms),
                ms(d.p95_ms),
                ms(d.p99_ms),
                ms(d.mean_ms)
            );
        }
        for f in m.failures.iter().take(5) {
            let _ = writeln!(s, "failures: {}", f.line());
        }
        for st in m.stragglers.iter().take(5) {
            let _ = writeln!(
                s,
                "straggler: item #{} on agent-{}, {} for {} (p95 {})",
                st.item,
                st.agent + 1,
                st.step_name,
                ms(st.elapsed_ms as f64),
                ms(st.p95_ms as f64)
            );
        }
    }
    for a in &state.snapshot.alerts {
        let _ = writeln!(s, "alert: {}", a.message);
    }
    let agents = &state.snapshot.agents;
    if !agents.is_empty() {
        let mut phases: Vec<(AgentState, usize)> = Vec::new();
        for a in agents {
            match phases.iter_mut().find(|(p, _)| *p == a.agent.state) {
                Some((_, n)) => *n += 1,
                None => phases.push((a.agent.state, 1)),
            }
        }
        let list: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
        let _ = writeln!(s, "agents: {} ({})", agents.len(), list.join(", "));
    }
    for e in state.job.recent_events.iter().rev().take(5).rev() {
        let item = e
            .item_key
            .as_deref()
            .map(|k| format!(" {k}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "event: {} {}{item}",
            output::age(e.at, state.job.read_at),
            e.event.kind_name()
        );
    }
    s
}
