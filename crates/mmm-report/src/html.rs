//! The HTML report (`mmm export --format html`, the dashboard's export): one self-contained file (inline CSS and SVG,
//! no script, a Content-Security-Policy that forbids every request) with the summary, progress
//! and throughput over time, a per-agent timeline of the attempts (like Nextflow's), the
//! slowest items and the DLQ.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::TimelinePoint;
use mmm_core::job::AttemptOutcome;
use mmm_core::metrics::EtaAccuracy;
use mmm_store::job_state::JobState;
use mmm_store::{AttemptRecord, DeadLetter};

/// At most this many agents get a row of the timeline.
const TIMELINE_AGENTS: usize = 300;
/// At most this many attempts are drawn on the timeline (the file stays small enough to open).
const TIMELINE_ATTEMPTS: usize = 20_000;
/// The slowest attempts listed.
const SLOWEST: usize = 20;
/// Chart size, in SVG units.
const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 180.0;

/// What the report is made of.
pub struct ReportData<'a> {
    pub state: &'a JobState,
    pub timeline: &'a [TimelinePoint],
    pub attempts: &'a [AttemptRecord],
    pub dlq: &'a [DeadLetter],
    /// How right the ETA was, once the job has finished.
    pub eta_accuracy: Option<&'a EtaAccuracy>,
}

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ms(v: i64) -> String {
    duration(Duration::from_millis(v.max(0) as u64))
}

/// A duration as the terminal views write it (`850ms`, `4.2s`, `3m07s`, `2h05m`, `1d03h`).
use mmm_core::metrics::format_duration as duration;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}\
table{border-collapse:collapse;font-size:.9em}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}\
td.n{text-align:right}svg{background:#fafafa;border:1px solid #ddd}\
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em}\
pre{white-space:pre-wrap;margin:0;font-size:.85em}";

/// The report as one HTML document.
pub fn render(data: &ReportData<'_>) -> String {
    let job = &data.state.job;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>mmm report: {name} ({id})</title><style>{STYLE}</style></head><body>\n",
        name = esc(&job.name),
        id = job.id.short()
    );
    summary(&mut h, data);
    let timeline = with_final_point(data);
    progress_chart(&mut h, &timeline);
    throughput_chart(&mut h, &timeline);
    agent_timeline(&mut h, data);
    slowest(&mut h, data.attempts);
    dlq(&mut h, data.dlq);
    let _ = writeln!(
        h,
        "<p><small>mmm export, report version {}</small></p></body></html>",
        super::EXPORT_VERSION
    );
    h
}

/// The snapshots' counts, then the record's own (exact) counts when it changed after the last
/// snapshot: the charts end where the job ended.
fn with_final_point(data: &ReportData<'_>) -> Vec<TimelinePoint> {
    let mut points = data.timeline.to_vec();
    let job = &data.state.job;
    let at = job.finished_at.unwrap_or(job.updated_at);
    if points.last().is_some_and(|p| p.at < at) {
        let c = &job.counts;
        let agents = points.last().map_or(0, |p| p.agents);
        points.push(TimelinePoint {
            at,
            total: c.total(),
            completed: c.completed,
            dead_lettered: c.dead_lettered,
            skipped: c.skipped,
            in_flight: c.running,
            pending: c.pending + c.failed,
            failed_attempts: points.last().map_or(0, |p| p.failed_attempts),
            retries: points.last().map_or(0, |p| p.retries),
            agents,
        });
    }
    points
}

fn summary(h: &mut String, data: &ReportData<'_>) {
    let job = &data.state.job;
    let c = &job.counts;
    let _ = write!(
        h,
        "<h1>{} <small>{}</small></h1><table id=\"summary\">",
        esc(&job.name),
        job.id.short()
    );
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    };
    row("status", job.status.to_string());
    row("progress", format!("{:.1}%", data.state.percent));
    row(
        "items",
        format!(
            "{} in all: {} completed, {} dead-lettered, {} skipped, {} running, {} pending, {} to retry",
            c.total(),
            c.completed,
            c.dead_lettered,
            c.skipped,
            c.running,
            c.pending,
            c.failed
        ),
    );
    row("duration", ms(job.duration_ms));
    row("agents", job.max_parallel.to_string());
    // The counters steps reported, per item and where they were expected to end.
    if let Some(snapshot) = &data.state.snapshot {
        let forecasts = snapshot.payload.metrics.as_ref().map(|m| &m.counters);
        for (name, total) in &snapshot.payload.counters {
            let value = match forecasts.and_then(|f| f.get(name)) {
                Some(f) => format!(
                    "{total} ({} per item; {})",
                    mmm_core::counter::estimate(f.per_item),
                    f.text()
                ),
                None => total.to_string(),
            };
            row(&format!("counter {name}"), value);
        }
    }
    row("attempts", data.attempts.len().to_string());
    let mut durations: Vec<u64> = data
        .attempts
        .iter()
        .filter(|a| a.outcome == Some(AttemptOutcome::Succeeded))
        .filter_map(|a| a.duration_us)
        .collect();
    durations.sort_unstable();
    if !durations.is_empty() {
        let q = |p: f64| {
            let i = ((durations.len() - 1) as f64 * p).round() as usize;
            ms((durations[i] / 1000) as i64)
        };
        row(
            "succeeded attempts",
            format!("p50 {}, p95 {}, p99 {}", q(0.5), q(0.95), q(0.99)),
        );
    }
    if let Some(eta) = data.eta_accuracy {
        let errors: Vec<String> = eta
            .at_percent
            .iter()
            .map(|e| {
                format!(
                    "at {}% done {} {} ({:.0}%)",
                    e.percent,
                    ms(e.error_ms.abs()),
                    if e.error_ms > 0 { "late" } else { "early" },
                    e.relative * 100.0
                )
            })
            .collect();
        let mut text = format!(
            "P10-P90 held the end in {} of {} estimates",
            eta.covered, eta.estimates
        );
        if !errors.is_empty() {
            text.push_str(&format!("; the median estimate was {}", errors.join(", ")));
        }
        row("ETA accuracy", text);
    }
    h.push_str("</table>\n");
}

/// x position of `at` on a chart spanning `t0..t1`.
fn x_of(at: i64, t0: i64, t1: i64) -> f64 {
    if t1 <= t0 {
        return 0.0;
    }
    (at - t0) as f64 / (t1 - t0) as f64 * WIDTH
}

fn chart_open(h: &mut String, id: &str, title: &str, t0: i64, t1: i64, top: &str) {
    let _ = write!(
        h,
        "<h2>{title}</h2><svg id=\"{id}\" viewBox=\"-50 -10 {w} {hh}\" width=\"100%\" \
         xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">\
         <line x1=\"0\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\" stroke=\"#999\"/>\
         <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"{HEIGHT}\" stroke=\"#999\"/>\
         <text x=\"-6\" y=\"4\" text-anchor=\"end\">{top}</text>\
         <text x=\"-6\" y=\"{HEIGHT}\" text-anchor=\"end\">0</text>\
         <text x=\"0\" y=\"{ly}\">0s</text><text x=\"{WIDTH}\" y=\"{ly}\" text-anchor=\"end\">{end}</text>",
        w = WIDTH + 70.0,
        hh = HEIGHT + 35.0,
        ly = HEIGHT + 15.0,
        top = esc(top),
        end = ms(t1 - t0),
    );
}

fn progress_chart(h: &mut String, timeline: &[TimelinePoint]) {
    let (Some(first), Some(last)) = (timeline.first(), timeline.last()) else {
        h.push_str("<h2>Progress over time</h2><p>No snapshots were recorded.</p>");
        return;
    };
    chart_open(
        h,
        "progress",
        "Progress over time",
        first.at,
        last.at,
        "100%",
    );
    let points: Vec<String> = timeline
        .iter()
        .map(|p| {
            let done = p.completed + p.dead_lettered + p.skipped;
            let ratio = if p.total == 0 {
                0.0
            } else {
                done as f64 / p.total as f64
            };
            format!(
                "{:.1},{:.1}",
                x_of(p.at, first.at, last.at),
                HEIGHT - ratio * HEIGHT
            )
        })
        .collect();
    let _ = writeln!(
        h,
        "<polyline fill=\"none\" stroke=\"#2a7\" stroke-width=\"2\" points=\"{}\"/></svg>",
        points.join(" ")
    );
}

fn throughput_chart(h: &mut String, timeline: &[TimelinePoint]) {
    let rates: Vec<(i64, i64, f64)> = timeline
        .windows(2)
        .filter(|w| w[1].at > w[0].at)
        .map(|w| {
            let done = |p: &TimelinePoint| p.completed + p.dead_lettered + p.skipped;
            let per_s = done(&w[1]).saturating_sub(done(&w[0])) as f64 * 1000.0
                / (w[1].at - w[0].at) as f64;
            (w[0].at, w[1].at, per_s)
        })
        .collect();
    let (Some(first), Some(last)) = (rates.first(), rates.last()) else {
        h.push_str("<h2>Throughput</h2><p>Fewer than two snapshots were recorded.</p>");
        return;
    };
    let (t0, t1) = (first.0, last.1);
    let top = rates.iter().map(|r| r.2).fold(0.0, f64::max).max(1e-9);
    chart_open(
        h,
        "throughput",
        "Throughput (items finished per second)",
        t0,
        t1,
        &format!("{top:.1}/s"),
    );
    for (a, b, r) in &rates {
        let x = x_of(*a, t0, t1);
        let w = (x_of(*b, t0, t1) - x).max(0.5);
        let bar = r / top * HEIGHT;
        let _ = write!(
            h,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{bar:.1}\" fill=\"#48c\"><title>{r:.1}/s</title></rect>",
            HEIGHT - bar
        );
    }
    h.push_str("</svg>\n");
}

fn outcome_color(outcome: Option<AttemptOutcome>) -> &'static str {
    match outcome {
        Some(AttemptOutcome::Succeeded) => "#2a7",
        Some(AttemptOutcome::Failed) => "#d33",
        Some(AttemptOutcome::TimedOut) => "#e90",
        Some(AttemptOutcome::Interrupted) => "#999",
        None => "#48c",
    }
}

fn agent_timeline(h: &mut String, data: &ReportData<'_>) {
    h.push_str("<h2>Agents over time</h2>");
    if data.attempts.is_empty() {
        h.push_str("<p>No attempts were recorded.</p>");
        return;
    }
    let job = &data.state.job;
    let t0 = data
        .attempts
        .iter()
        .map(|a| a.started_at)
        .min()
        .unwrap_or(0);
    let end_of = |a: &AttemptRecord| a.ended_at.unwrap_or(job.updated_at).max(a.started_at);
    let t1 = data
        .attempts
        .iter()
        .map(end_of)
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    // Agents in number order (agent-2 before agent-10).
    let mut by_agent: BTreeMap<(u64, String), Vec<&AttemptRecord>> = BTreeMap::new();
    for a in data.attempts {
        let n = a
            .agent
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        by_agent.entry((n, a.agent.clone())).or_default().push(a);
    }
    let rows = by_agent.len().min(TIMELINE_AGENTS);
    let row_h = 14.0;
    let height = rows as f64 * row_h;
    let _ = write!(
        h,
        "<p class=\"legend\"><span><i style=\"background:#2a7\"></i>succeeded</span>\
         <span><i style=\"background:#d33\"></i>failed</span><span><i style=\"background:#e90\"></i>timed out</span>\
         <span><i style=\"background:#999\"></i>interrupted</span><span><i style=\"background:#48c\"></i>running</span></p>\
         <svg id=\"agents\" viewBox=\"-80 -5 {w} {hh}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"10\">\
         <text x=\"0\" y=\"{ly}\">0s</text><text x=\"{WIDTH}\" y=\"{ly}\" text-anchor=\"end\">{end}</text>",
        w = WIDTH + 90.0,
        hh = height + 25.0,
        ly = height + 14.0,
        end = ms(t1 - t0),
    );
    let mut drawn = 0;
    for (row, ((_, agent), attempts)) in by_agent.iter().take(rows).enumerate() {
        let y = row as f64 * row_h;
        let _ = write!(
            h,
            "<text x=\"-6\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            y + row_h - 4.0,
            esc(agent)
        );
        for a in attempts {
            if drawn == TIMELINE_ATTEMPTS {
                break;
            }
            drawn += 1;
            let x = x_of(a.started_at, t0, t1);
            let w = (x_of(end_of(a), t0, t1) - x).max(0.5);
            let _ = write!(
                h,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} #{} {}</title></rect>",
                row_h - 3.0,
                outcome_color(a.outcome),
                esc(&a.item_key),
                a.number,
                ms(end_of(a) - a.started_at)
            );
        }
    }
    h.push_str("</svg>\n");
    if by_agent.len() > rows || drawn < data.attempts.len() {
        let _ = write!(
            h,
            "<p>Showing {rows} of {} agents and {drawn} of {} attempts.</p>",
            by_agent.len(),
            data.attempts.len()
        );
    }
}

fn slowest(h: &mut String, attempts: &[AttemptRecord]) {
    let mut timed: Vec<&AttemptRecord> = attempts
        .iter()
        .filter(|a| a.duration_us.is_some())
        .collect();
    timed.sort_by_key(|a| std::cmp::Reverse(a.duration_us));
    h.push_str("<h2>Slowest attempts</h2>");
    if timed.is_empty() {
        h.push_str("<p>None finished.</p>");
        return;
    }
    h.push_str(
        "<table id=\"slowest\"><tr><th>item</th><th>attempt</th><th>agent</th><th>duration</th><th>outcome</th></tr>",
    );
    for a in timed.iter().take(SLOWEST) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&a.item_key),
            a.number,
            esc(&a.agent),
            ms((a.duration_us.unwrap_or(0) / 1000) as i64),
            a.outcome.map(|o| o.as_str()).unwrap_or("running")
        );
    }
    h.push_str("</table>\n");
}

fn dlq(h: &mut String, letters: &[DeadLetter]) {
    let _ = write!(h, "<h2>Dead-letter queue ({})</h2>", letters.len());
    if letters.is_empty() {
        h.push_str("<p>Empty.</p>");
        return;
    }
    h.push_str(
        "<table id=\"dlq\"><tr><th>item</th><th>attempts</th><th>exit code</th><th>error</th><th>stderr (tail)</th></tr>",
    );
    for d in letters {
        let last = d.attempts.last();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            esc(&d.item.key),
            d.attempts.len(),
            last.and_then(|a| a.exit_code)
                .map(|c| c.to_string())
                .unwrap_or_default(),
            esc(last.and_then(|a| a.error.as_deref()).unwrap_or_default()),
            esc(last.map(|a| a.stderr_tail.as_str()).unwrap_or_default()),
        );
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn the_report_has_no_script_and_no_external_reference() {
        let state = mmm_store::job_state::fixture(2);
        let timeline = [
            TimelinePoint {
                at: 0,
                total: 10,
                completed: 0,
                dead_lettered: 0,
                skipped: 0,
                in_flight: 2,
                pending: 8,
                failed_attempts: 0,
                retries: 0,
                agents: 2,
            },
            TimelinePoint {
                at: 1000,
                total: 10,
                completed: 10,
                dead_lettered: 0,
                skipped: 0,
                in_flight: 0,
                pending: 0,
                failed_attempts: 0,
                retries: 0,
                agents: 2,
            },
        ];
        let html = render(&ReportData {
            state: &state,
            timeline: &timeline,
            attempts: &[],
            dlq: &[],
            eta_accuracy: Some(&EtaAccuracy {
                estimates: 4,
                covered: 3,
                coverage: 0.75,
                at_percent: vec![mmm_core::metrics::EtaError {
                    percent: 10,
                    at_ms: 100,
                    estimated_ms: 12_000,
                    actual_ms: 10_000,
                    error_ms: 2_000,
                    relative: 0.2,
                    basis: mmm_core::metrics::Basis::History,
                }],
            }),
        });
        assert!(
            html.contains("P10-P90 held the end in 3 of 4 estimates; the median estimate was at 10% done 2.0s late (20%)"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(
            !html.contains("http://")
                || html.matches("http://").count()
                    == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        assert!(!html.contains("https://"));
        assert!(html.contains("<polyline"), "{html}");
        assert!(html.contains("10.0/s"), "{html}");
    }
}
