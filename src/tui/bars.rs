//! Live progress in the terminal while `mmm run` works: indicatif bars on a terminal (an
//! overall bar, a counts line, one line per agent collapsing to a summary line past what
//! fits), a plain progress line at a steady interval otherwise, or nothing.
//!
//! Everything is drawn from [`Tracker`] snapshots on a timer, never from the agents' hot path.
//! Bars and plain lines go to stderr, so stdout carries only the commands' own output.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::output;
use mmm_core::job::AgentState;
use mmm_core::metrics::{EtaDamper, LiveMetrics, format_eta};
use mmm_core::tracker::{AgentSnapshot, Progress, Tracker};
use mmm_runner::Output;
use mmm_spec::JobPlan;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// Bars when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Bars (indicatif).
    Bars,
    /// A plain line every `--progress-interval`.
    Plain,
    /// Nothing.
    None,
}

/// How often bars are redrawn.
const FRAME: Duration = Duration::from_millis(100);

/// The live view of one run.
pub(crate) struct ProgressView {
    kind: Kind,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

enum Kind {
    Bars(Arc<Bars>),
    Plain(Arc<Plain>),
    None,
}

impl ProgressView {
    /// Starts drawing `tracker` in the chosen mode.
    pub(crate) fn start(
        mode: ProgressMode,
        tracker: Arc<Tracker>,
        metrics: Arc<LiveMetrics>,
        plan: Arc<JobPlan>,
        interval: Duration,
    ) -> Self {
        let eta = Arc::new(EtaLine::new(metrics));
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bars,
            ProgressMode::Auto => ProgressMode::Plain,
            other => other,
        };
        match mode {
            ProgressMode::Bars => {
                let bars = Arc::new(Bars::new(tracker, eta, plan));
                let ticking = bars.clone();
                let ticker = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(FRAME);
                    loop {
                        tick.tick().await;
                        ticking.draw();
                    }
                });
                ProgressView {
                    kind: Kind::Bars(bars),
                    ticker: Some(ticker),
                }
            }
            ProgressMode::Plain => {
                let plain = Arc::new(Plain {
                    tracker,
                    eta,
                    shown_alerts: std::sync::Mutex::default(),
                });
                let ticking = plain.clone();
                let ticker = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        ticking.line();
                    }
                });
                ProgressView {
                    kind: Kind::Plain(plain),
                    ticker: Some(ticker),
                }
            }
            ProgressMode::Auto | ProgressMode::None => ProgressView {
                kind: Kind::None,
                ticker: None,
            },
        }
    }

    /// Shows a command's output without tearing the bars.
    pub(crate) fn print_output(&self, out: &Output) {
        let write = || {
            let _ = std::io::stdout().lock().write_all(&out.stdout);
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().lock().write_all(&out.stderr);
        };
        match &self.kind {
            Kind::Bars(bars) => bars.multi.suspend(write),
            _ => write(),
        }
    }

    /// Prints a line of mmm's own on stderr without tearing the bars.
    pub(crate) fn message(&self, line: &str) {
        match &self.kind {
            Kind::Bars(bars) => bars.multi.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }

    /// Stops drawing; leaves the overall bar's last frame on screen.
    pub(crate) fn finish(self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        if let Kind::Plain(plain) = &self.kind {
            plain.line();
        }
        if let Kind::Bars(bars) = &self.kind {
            bars.draw();
            for line in &bars.agent_lines {
                line.finish_and_clear();
            }
            bars.more.finish_and_clear();
            bars.counts.finish();
            bars.overall.finish();
        }
    }
}

/// The ETA as shown: the model's estimate (recomputed by the runner every heartbeat) through
/// a damper, so the number people read does not jump (docs/eta.md).
pub(crate) struct EtaLine {
    metrics: Arc<LiveMetrics>,
    damper: std::sync::Mutex<EtaDamper>,
    /// Minutes east of UTC, read at the first ETA shown ("done at 14:32" is local time): not
    /// at start, since finding the system's time zone reads `/usr/share/zoneinfo` (a few ms
    /// of every run, even with `--quiet`).
    utc_offset_minutes: std::sync::OnceLock<i32>,
}

impl EtaLine {
    pub(crate) fn new(metrics: Arc<LiveMetrics>) -> Self {
        EtaLine {
            metrics,
            damper: std::sync::Mutex::new(EtaDamper::new()),
            utc_offset_minutes: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn text(&self, progress: &Progress) -> String {
        // The model is recomputed once a second; the counts are live.
        if progress.input_open {
            return "ETA unknown: items still coming, the total is not known".to_string();
        }
        if progress.total > 0 && progress.done() >= progress.total {
            return "done".to_string();
        }
        let now = mmm_core::job::now_ms();
        let model = self.metrics.eta();
        let shown = self
            .damper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(now, &model);
        let offset = *self
            .utc_offset_minutes
            .get_or_init(local_utc_offset_minutes);
        format!("ETA {}", format_eta(&shown, now, offset))
    }
}

/// This machine's offset from UTC now, in minutes (0 when the time zone cannot be read).
fn local_utc_offset_minutes() -> i32 {
    let now = jiff::Timestamp::now();
    jiff::tz::TimeZone::try_system()
        .map(|tz| tz.to_offset(now).seconds() / 60)
        .unwrap_or(0)
}

/// The counts and rate shown on the bars' second line and in plain lines.
fn counts_line(p: &Progress, elapsed: Duration, eta: &str) -> String {
    // Items restored by a resume were not done in this run: they never count in the rate.
    let rate = if elapsed.as_secs_f64() > 0.0 {
        p.done_this_run() as f64 / elapsed.as_secs_f64()
    } else {
        0.0
    };
    format!(
        "{} completed · {} in DLQ · {} skipped · {} in flight · {} retries · {:.1}/s · {}",
        output::count(p.completed),
        output::count(p.dead_lettered),
        output::count(p.skipped),
        output::count(p.in_flight),
        output::count(p.retries),
        rate,
        eta,
    )
}

/// The job's counters with their rates and, once items ended, their forecast at the end of the
/// job (` · cost 200 (3.1/s; ~900 at the end (850-950))`), empty when there are none.
pub(super) fn counters_text(
    counters: &std::collections::BTreeMap<String, mmm_core::counter::CounterValue>,
    forecasts: &std::collections::BTreeMap<String, mmm_core::metrics::CounterForecast>,
    elapsed: Duration,
) -> String {
    let seconds = elapsed.as_secs_f64();
    counters
        .iter()
        .map(|(name, value)| {
            let rate = if seconds > 0.0 {
                value.get() / seconds
            } else {
                0.0
            };
            let rate = mmm_core::counter::estimate(rate);
            match forecasts.get(name) {
                Some(f) => format!(" · {name} {value} ({rate}/s; {})", f.text()),
                None => format!(" · {name} {value} ({rate}/s)"),
            }
        })
        .collect()
}

struct Plain {
    tracker: Arc<Tracker>,
    eta: Arc<EtaLine>,
    /// The alerts printed last, so each is printed when it is raised, not every interval.
    shown_alerts: std::sync::Mutex<Vec<String>>,
}

impl Plain {
    fn line(&self) {
        let alerts = self.tracker.alerts();
        let mut shown = self.shown_alerts.lock().unwrap_or_else(|e| e.into_inner());
        for alert in alerts.iter().filter(|a| !shown.contains(a)) {
            eprintln!("mmm: alert: {alert}");
        }
        *shown = alerts;
        let (p, elapsed) = (self.tracker.progress(), self.tracker.elapsed());
        eprintln!(
            "mmm: [{}] {}/{} ({:.1}%) · {}",
            output::duration(elapsed),
            output::count(p.done()),
            output::count(p.total),
            p.percent,
            counts_line(&p, elapsed, &self.eta.text(&p))
                + &counters_text(
                    &self.tracker.counters(),
                    &self.eta.metrics.counter_forecasts(),
                    elapsed
                )
        );
    }
}

struct Bars {
    tracker: Arc<Tracker>,
    eta: Arc<EtaLine>,
    plan: Arc<JobPlan>,
    multi: MultiProgress,
    overall: ProgressBar,
    counts: ProgressBar,
    /// The active alerts, one per line; empty when there are none.
    alerts: ProgressBar,
    agent_lines: Vec<ProgressBar>,
    more: ProgressBar,
}

impl Bars {
    fn new(tracker: Arc<Tracker>, eta: Arc<EtaLine>, plan: Arc<JobPlan>) -> Self {
        let color = std::env::var_os("NO_COLOR").is_none();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(20));
        let bar_template = if color {
            "{prefix} [{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} {percent:>3}%"
        } else {
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {percent:>3}%"
        };
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(bar_template)
                .expect("the bar template is valid")
                .progress_chars("=> "),
        );
        overall.set_prefix(plan.name.clone());
        let line_style =
            ProgressStyle::with_template("  {msg}").expect("the line template is valid");
        let counts = multi.add(ProgressBar::new(0).with_style(line_style.clone()));
        let alerts = multi.add(ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{msg}").expect("the alert template is valid"),
        ));
        // Leave room for the two lines above, the collapse line and some output.
        let rows = terminal_rows().saturating_sub(6).max(1);
        let agents = tracker.agent_count();
        let shown = if agents <= rows {
            agents
        } else {
            rows.saturating_sub(1).max(1)
        };
        let agent_lines = (0..shown)
            .map(|_| multi.add(ProgressBar::new(0).with_style(line_style.clone())))
            .collect();
        let more = multi.add(ProgressBar::new(0).with_style(line_style));
        Bars {
            tracker,
            eta,
            plan,
            multi,
            overall,
            counts,
            alerts,
            agent_lines,
            more,
        }
    }

    fn draw(&self) {
        let p = self.tracker.progress();
        self.overall.set_length(p.total);
        self.overall.set_position(p.done().min(p.total));
        self.counts.set_message(
            counts_line(&p, self.tracker.elapsed(), &self.eta.text(&p))
                + &counters_text(
                    &self.tracker.counters(),
                    &self.eta.metrics.counter_forecasts(),
                    self.tracker.elapsed(),
                ),
        );
        let alerts: Vec<String> = self
            .tracker
            .alerts()
            .iter()
            .map(|a| format!("  ! alert: {a}"))
            .collect();
        self.alerts.set_message(alerts.join("\n"));
        let agents = self.tracker.agents();
        for (line, agent) in self.agent_lines.iter().zip(&agents) {
            line.set_message(self.agent_text(agent));
        }
        let hidden = &agents[self.agent_lines.len().min(agents.len())..];
        let mut more = Vec::new();
        if !hidden.is_empty() {
            let running = hidden
                .iter()
                .filter(|a| a.state == AgentState::Running)
                .count();
            let retrying = hidden
                .iter()
                .filter(|a| a.state == AgentState::Retrying)
                .count();
            more.push(format!(
                "{} more agents: {running} running, {retrying} retrying, {} other",
                hidden.len(),
                hidden.len() - running - retrying
            ));
        }
        // Scale-out: `mmm worker`s' agents (`mmm progress` lists them one by one).
        let (others, busy) = self.tracker.elsewhere();
        if others > 0 {
            more.push(format!(
                "{others} agents in other processes, {busy} items in flight there"
            ));
        }
        self.more.set_message(if more.is_empty() {
            String::new()
        } else {
            format!("… {}", more.join("; "))
        });
    }

    fn agent_text(&self, a: &AgentSnapshot) -> String {
        let name = format!("agent-{}", a.index + 1);
        let item = a
            .item
            .map(|i| {
                self.tracker
                    .item_key(i)
                    .map_or_else(|| format!("#{}", i + 1), |k| truncate_key(&k))
            })
            .unwrap_or_default();
        let elapsed = a.item_elapsed.map(output::duration).unwrap_or_default();
        match a.state {
            AgentState::Running => {
                let step = a
                    .step
                    .and_then(|s| self.plan.map.steps.get(s))
                    .map_or("?", |s| s.name.as_str());
                let attempt = if a.attempt > 1 {
                    format!(" (attempt {})", a.attempt)
                } else {
                    String::new()
                };
                let progress = a
                    .progress
                    .map(|p| format!(" {:.0}%", p * 100.0))
                    .unwrap_or_default();
                let message = a
                    .message
                    .as_deref()
                    .map(|m| format!(" {}", truncate_key(m)))
                    .unwrap_or_default();
                let usage = match (a.cpu_percent, a.rss_bytes) {
                    (Some(cpu), Some(rss)) => {
                        format!("  cpu {cpu:.0}% {}MiB", rss / (1024 * 1024))
                    }
                    _ => String::new(),
                };
                format!(
                    "{name:<9} running {step}{progress}{message}  {item}{attempt}  {elapsed}{usage}"
                )
            }
            AgentState::Retrying => {
                let why = a
                    .last_exit_code
                    .map(|c| format!(" after exit {c}"))
                    .unwrap_or_default();
                format!("{name:<9} retrying {item}{why}: attempt {} next", a.attempt)
            }
            AgentState::Throttled if a.attempt > 0 => format!(
                "{name:<9} waiting (throttled): {item} attempt {} next",
                a.attempt
            ),
            AgentState::Throttled => format!("{name:<9} waiting (throttled)"),
            AgentState::Initializing => format!("{name:<9} starting {item}"),
            AgentState::DeadLettered => format!("{name:<9} last item went to the DLQ"),
            other => format!("{name:<9} {}", other.as_str()),
        }
    }
}

fn truncate_key(key: &str) -> String {
    const MAX: usize = 40;
    if key.chars().count() <= MAX {
        key.to_string()
    } else {
        let tail: String = key
            .chars()
            .rev()
            .take(MAX - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

fn terminal_rows() -> usize {
    let (rows, _cols) = console::Term::stderr().size();
    usize::from(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_core::counter::CounterValue;
    use mmm_core::metrics::CounterForecast;
    use std::collections::BTreeMap;

    #[test]
    fn counters_show_with_their_decimals_rate_and_forecast() {
        let counters = BTreeMap::from([
            ("cost_usd".to_string(), CounterValue::parse("0.5").unwrap()),
            ("tokens".to_string(), CounterValue::from(1234)),
        ]);
        let forecasts = BTreeMap::from([(
            "cost_usd".to_string(),
            CounterForecast {
                per_item: 0.0125,
                expected: 1.0,
                p10: 0.95,
                p90: 1.05,
            },
        )]);
        assert_eq!(
            counters_text(&counters, &forecasts, Duration::from_secs(4)),
            " · cost_usd 0.5 (0.125/s; ~1 at the end (0.95-1.05)) · tokens 1234 (309/s)"
        );
    }
}
