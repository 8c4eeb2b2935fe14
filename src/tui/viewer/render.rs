//! Drawing one frame of the viewer from a [`ViewerState`]: header, gauge, throughput,
//! metrics, the agent table, stragglers, failure clusters, recent events and the key footer.
//! Pure: no I/O, so it is tested on ratatui's `TestBackend`. Only the agent rows that fit are
//! built, so a frame costs the same with 3 agents or 3,000.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Row, Sparkline, Table, Wrap};

use super::state::ViewerState;
use crate::cli::output;
use mmm_core::job::JobStatus;
use mmm_core::snapshot::{AgentRow, Snapshot};

/// The keys, as the footer lists them.
pub(crate) const FOOTER: &str =
    "q quit  ↑↓ PgUp/PgDn move  Enter log  s sort  / filter  f failed  ? help";
/// The keys that steer a running job, added to the footer while one is viewed live.
pub(crate) const CONTROL_FOOTER: &str = "p pause  +/- agents  d drain  x cancel";
/// The replay keys, added to the footer in a replay.
pub(crate) const REPLAY_FOOTER: &str = "space pause  ←→ seek  +/- speed";

/// Draws the whole viewer. Also records how many agent rows fit (for PgUp/PgDn).
pub(crate) fn render(frame: &mut Frame<'_>, state: &mut ViewerState) {
    let area = frame.area();
    let bottom_height = if state.ui.log.is_some() && area.height >= 16 {
        // The log pane takes half of what is below the metrics.
        area.height.saturating_sub(9) / 2
    } else if area.height >= 40 {
        10
    } else if area.height >= 24 {
        6
    } else {
        0
    };
    let [header, gauge, middle, agents, bottom, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(5),
        Constraint::Min(3),
        Constraint::Length(bottom_height),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(frame, header, state);
    render_gauge(frame, gauge, state);
    let [spark, metrics] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
    render_throughput(frame, spark, state);
    render_metrics(frame, metrics, state);
    render_agents(frame, agents, state);
    if let Some(pane) = state.ui.log.as_ref().filter(|_| bottom_height > 0) {
        render_log(frame, bottom, pane);
    } else if bottom_height > 0 {
        let [stragglers, failures, events] = Layout::horizontal([
            Constraint::Ratio(1, 3),
            Constraint::Ratio(1, 3),
            Constraint::Ratio(1, 3),
        ])
        .areas(bottom);
        render_stragglers(frame, stragglers, state);
        render_failures(frame, failures, state);
        render_events(frame, events, state);
    }
    render_footer(frame, footer, state);
    if state.ui.help {
        render_help(frame, area, state);
    }
}

fn ms(v: f64) -> String {
    output::duration(Duration::from_millis(v.max(0.0) as u64))
}

fn status_color(status: &str) -> Color {
    match status {
        "completed" => Color::Green,
        "running" => Color::Cyan,
        "failed" | "cancelled" => Color::Red,
        "completed_with_failures" | "interrupted" | "paused" => Color::Yellow,
        _ => Color::Gray,
    }
}

fn render_header(frame: &mut Frame<'_>, area: Rect, state: &ViewerState) {
    let job = &state.job.job;
    // A running job that is paused (`mmm pause`) says so.
    let status = if job.paused && job.status == JobStatus::Running {
        "paused"
    } else {
        job.status.as_str()
    };
    let owner = if state.job.live {
        "live"
    } else if state.job.resumable {
        "resumable"
    } else {
        ""
    };
    let mut first = vec![
        Span::styled(
            job.name.clone(),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("  {}  ", job.id.short())),
        Span::styled(
            status.to_string(),
            Style::default().fg(status_color(status)),
        ),
    ];
    if !owner.is_empty() {
        first.push(Span::raw(format!(" ({owner})")));
    }
    if let Some(phase) = job.phase {
        first.push(Span::raw(format!("  phase {phase}")));
    }
    if let Some(r) = &state.replay {
        first.push(Span::styled(
            format!(
                "  REPLAY {}/{} x{}{}",
                r.frame + 1,
                r.frames,
                r.speed,
                if r.paused { " paused" } else { "" }
            ),
            Style::default().fg(Color::Magenta),
        ));
    }
    let alerts = &state.snapshot.alerts;
    let second = vec![
        Span::raw(format!(
            "elapsed {}  ETA {}  ",
            ms(job.duration_ms as f64),
            state.eta_text()
        )),
        if alerts.is_empty() {
            Span::raw("no alerts")
        } else {
            Span::styled(
                format!("{} alert(s): {}", alerts.len(), alerts[0].message),
                Style::default().fg(Color::Red),
            )
        },
    ];
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)]),
        area,
    );
}

fn render_gauge(frame: &mut Frame<'_>, area: Rect, state: &ViewerState) {
    let c = &state.job.job.counts;
    let mut label = format!(
        "{:.1}%  {}/{} done  {} ok  {} dlq",
        state.job.percent,
        output::count(state.done()),
        output::count(c.total()),
        output::count(c.completed),
        output::count(c.dead_lettered),
    );
    for (n, what) in [
        (c.skipped, "skipped"),
        (c.running, "running"),
        (c.pending, "pending"),
        (c.failed, "to retry"),
    ] {
        if n > 0 {
            label.push_str(&format!("  {} {what}", output::count(n)));
        }
    }
    let ratio = (state.job.percent / 100.0).clamp(0.0, 1.0);
    frame.render_widget(
        Gauge::default()
            .gauge_style(Style::default().fg(Color::Green).bg(Color::DarkGray))
            .ratio(ratio)
            .label(label),
        area,
    );
}

fn render_throughput(frame: &mut Frame<'_>, area: Rect, state: &ViewerState) {
    let width = area.width.saturating_sub(2) as usize;
    let data = &state.throughput[state.throughput.len().saturating_sub(width)..];
    frame.render_widget(
        Sparkline::default()
            .block(Block::default().borders(Borders::ALL).title(format!(
                "throughput {:.1}/s{}",
                state.rate,
                counters_title(&state.snapshot)
            )))
            .data(data)
            .style(Style::default().fg(Color::Cyan)),
        area,
    );
}

/// The job's counters and their rates, for the throughput panel's title.
fn counters_title(snapshot: &Snapshot) -> String {
    let rates = snapshot.rates.as_ref();
    let forecasts = snapshot.metrics.as_ref().map(|m| &m.counters);
    snapshot
        .counters
        .iter()
        .map(|(name, value)| {
            let rate = rates
                .and_then(|r| r.counters_per_second.get(name))
                .map(|rate| mmm_core::counter::estimate(*rate));
            let forecast = forecasts.and_then(|f| f.get(name)).map(|f| f.text());
            match (rate, forecast) {
                (Some(rate), Some(f)) => format!(" · {name} {value} ({rate}/s; {f})"),
                (Some(rate), None) => format!(" · {name} {value} ({rate}/s)"),
                (None, Some(f)) => format!(" · {name} {value} ({f})"),
                (None, None) => format!(" · {name} {value}"),
            }
        })
        .collect()
}

fn render_metrics(frame: &mut Frame<'_>, area: Rect, state: &ViewerState) {
    let c = &state.job.job.counts;
    let finished = c.completed + c.dead_lettered;
    let success = if finished == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", c.completed as f64 * 100.0 / finished as f64)
    };
    let metrics = state.snapshot.metrics.as_ref();
    let failed_attempts = metrics.map_or(0, |m| m.failed_attempts);
    let retries = state.snapshot.progress.as_ref().map_or(0, |p| p.retries);
    let items = metrics.and_then(|m| m.items.as_ref());
    let durations = match items {
        Some(d) if d.count > 0 => format!(
            "p50 {}  p95 {}  p99 {}",
            ms(d.p50_ms),
            ms(d.p95_ms),
            ms(d.p99_ms)
        ),
        _ => "p50 -  p95 -  p99 -".into(),
    };
    let lines = vec![
        Line::from(format!("rate {:.1}/s  success {success}", state.rate)),
        Line::from(format!(
            "failed attempts {failed_attempts}  retries {retries}"
        )),
        Line::from(durations),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title("metrics")),
        area,
    );
}

fn agent_cells(state: &ViewerState, row: &AgentRow) -> Vec<String> {
    let a = &row.agent;
    vec![
        row.name(),
        a.state.label().to_string(),
        a.item.map(|i| format!("#{i}")).unwrap_or_default(),
        state.step_name(a.step).unwrap_or_default(),
        if a.attempt > 0 {
            a.attempt.to_string()
        } else {
            String::new()
        },
        a.item_elapsed.map(output::duration).unwrap_or_default(),
        a.progress
            .map(|p| format!("{:.0}%", p * 100.0))
            .unwrap_or_default(),
        a.items_done.to_string(),
        a.last_exit_code.map(|c| c.to_string()).unwrap_or_default(),
        a.message.clone().unwrap_or_default(),
    ]
}

fn render_agents(frame: &mut Frame<'_>, area: Rect, state: &mut ViewerState) {
    // Borders and the header row take 3 lines.
    let fit = area.height.saturating_sub(3) as usize;
    state.ui.page = fit;
    let rows = state.visible_agents();
    let total = state.snapshot.agents.len();
    let shown = rows.len();
    // The cursor's row is always among those shown: at the top while the table can scroll,
    // further down once its end is in view.
    let start = state.ui.scroll.min(shown.saturating_sub(fit));
    let selected = (state.replay.is_none() && shown > 0).then(|| state.selected_row(shown));
    let body: Vec<Row<'_>> = rows
        .iter()
        .enumerate()
        .skip(start)
        .take(fit)
        .map(|(at, a)| {
            let mut style = if a.agent.state.is_failed() {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            };
            if selected == Some(at) {
                style = style.add_modifier(Modifier::REVERSED);
            }
            Row::new(agent_cells(state, a)).style(style)
        })
        .collect();
    let mut title = format!(
        "agents {}-{} of {shown}",
        if shown == 0 { 0 } else { start + 1 },
        (start + fit).min(shown)
    );
    if shown != total {
        title.push_str(&format!(" (of {total})"));
    }
    title.push_str(&format!("  sort: {}", state.ui.sort.as_str()));
    if state.ui.failed_only {
        title.push_str("  failed only");
    }
    if state.ui.editing_filter || !state.ui.filter.is_empty() {
        title.push_str(&format!(
            "  filter: {}{}",
            state.ui.filter,
            if state.ui.editing_filter { "_" } else { "" }
        ));
    }
    let header = Row::new([
        "AGENT", "STATE", "ITEM", "STEP", "TRY", "ELAPSED", "PROG", "DONE", "EXIT", "MESSAGE",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    // Workers' agents have longer names (`HOST:PID/N`) than `agent-N`.
    let name_width = rows
        .iter()
        .map(|a| a.name().chars().count())
        .max()
        .unwrap_or(0)
        .clamp(10, 28) as u16;
    let widths = [
        Constraint::Length(name_width),
        Constraint::Length(13),
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Length(3),
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Min(10),
    ];
    let table = Table::new(body, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}

fn list_panel(frame: &mut Frame<'_>, area: Rect, title: String, lines: Vec<Line<'_>>) {
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn render_stragglers(frame: &mut Frame<'_>, area: Rect, state: &ViewerState) {
    let stragglers = state
        .snapshot
        .metrics
        .as_ref()
        .map(|m| m.stragglers.as_slice())
        .unwrap_or_default();
    let lines = if stragglers.is_empty() {
        vec![Line::from("none")]
    } else {
        stragglers
            .iter()
            .map(|s| {
                Line::from(format!(
                    "#{} agent-{} {} {} (p95 {})",
                    s.item,
                    s.agent + 1,
                    s.step_name,
                    ms(s.elapsed_ms as f64),
                    ms(s.p95_ms as f64)
                ))
            })
            .collect()
    };
    list_panel(
        frame,
        area,
        format!("stragglers {}", stragglers.len()),
        lines,
    );
}

fn render_failures(frame: &mut Frame<'_>, area: Rect, state: &ViewerState) {
    let failures = state
        .snapshot
        .metrics
        .as_ref()
        .map(|m| m.failures.as_slice())
        .unwrap_or_default();
    let lines = if failures.is_empty() {
        vec![Line::from("none")]
    } else {
        failures.iter().map(|f| Line::from(f.line())).collect()
    };
    list_panel(frame, area, format!("failures {}", failures.len()), lines);
}

fn render_events(frame: &mut Frame<'_>, area: Rect, state: &ViewerState) {
    let fit = area.height.saturating_sub(2) as usize;
    let events = &state.job.recent_events;
    let lines: Vec<Line<'_>> = events[events.len().saturating_sub(fit)..]
        .iter()
        .map(|e| {
            let item = e
                .item_key
                .as_deref()
                .map(|k| format!(" {k}"))
                .unwrap_or_default();
            Line::from(format!(
                "{} {}{item}",
                output::age(e.at, state.job.read_at),
                e.event.kind_name()
            ))
        })
        .collect();
    list_panel(frame, area, "events".into(), lines);
}

/// The log pane: the last lines of the item's output that fit, following it.
fn render_log(frame: &mut Frame<'_>, area: Rect, pane: &super::state::LogPane) {
    let fit = area.height.saturating_sub(2) as usize;
    let mut lines: Vec<Line<'_>> = pane
        .lines
        .iter()
        .chain((!pane.partial.is_empty()).then_some(&pane.partial))
        .map(|l| Line::from(l.as_str()))
        .collect();
    let skip = lines.len().saturating_sub(fit);
    lines.drain(..skip);
    let title = format!(
        "log of {} ({}){}  Esc closes",
        pane.key,
        pane.agent,
        if pane.ended { ", ended" } else { ", following" }
    );
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn render_footer(frame: &mut Frame<'_>, area: Rect, state: &ViewerState) {
    let mut text = FOOTER.to_string();
    if state.replay.is_some() {
        text.push_str("  ");
        text.push_str(REPLAY_FOOTER);
    } else if state.job.job.status == JobStatus::Running {
        text.push_str("  ");
        text.push_str(CONTROL_FOOTER);
    }
    if state.ui.confirm.is_some() {
        text = format!(
            "cancel job {}? running commands get their grace period, then are killed; y cancels, any other key keeps it running",
            state.job.job.id.short()
        );
    } else if let Some(notice) = &state.ui.notice {
        text = format!("{notice}  |  {text}");
    }
    frame.render_widget(
        Paragraph::new(text).style(Style::default().add_modifier(Modifier::REVERSED)),
        area,
    );
}

fn render_help(frame: &mut Frame<'_>, area: Rect, state: &ViewerState) {
    let mut lines = vec![
        "q, Esc        quit",
        "↑ ↓ j k       move the highlighted agent one row",
        "PgUp PgDn     move it a page",
        "Home End      first / last agent",
        "s             sort by agent, state, elapsed",
        "/             filter agents (Enter keeps, Esc clears)",
        "f             only agents whose last attempt failed",
        "Enter         the log of the highlighted agent's item, following (Esc closes)",
        "?             this help (any key closes it)",
    ];
    if state.replay.is_none() {
        lines.extend([
            "p             pause / unpause the job (mmm pause)",
            "+ -           one agent more / fewer (mmm scale)",
            "d             drain: finish the items in flight, then stop",
            "x             cancel the job (asks first)",
        ]);
    }
    if state.replay.is_some() {
        lines.extend([
            "space         pause / play the replay",
            "← →           seek 10 snapshots back / forward",
            "+ -           double / halve the speed",
        ]);
    }
    let width = 58.min(area.width);
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>())
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title("keys")),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::tui::viewer::input::{Action, handle_key};
    use crate::tui::viewer::state::fixture;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    #[test]
    fn counters_and_their_rates_show_in_the_throughput_title() {
        let snapshot = Snapshot::from_json(serde_json::json!({
            "counters": {"commits": 200, "cost_usd": 0.30000000000000004, "merged_items": 100},
            "rates": {"counters_per_second": {"commits": 3.25, "cost_usd": 0.0123456}},
        }));
        assert_eq!(
            counters_title(&snapshot),
            " · commits 200 (3.25/s) · cost_usd 0.3 (0.0123/s) · merged_items 100"
        );
    }

    fn draw(state: &mut ViewerState, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
        terminal
            .draw(|frame| render(frame, state))
            .expect("draw on the test backend");
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            for x in 0..buffer.area.width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn lines_with(screen: &str, needle: &str) -> usize {
        screen.lines().filter(|l| l.contains(needle)).count()
    }

    #[test]
    fn small_terminal_with_three_agents_shows_everything_that_matters() {
        let mut state = fixture(3);
        let screen = draw(&mut state, 80, 24);
        assert!(screen.contains("thumbnails"), "{screen}");
        assert!(screen.contains("running (live)"), "{screen}");
        assert!(
            screen.contains("500/1,000 done  480 ok  20 dlq  3 running  497 pending"),
            "{screen}"
        );
        assert!(screen.contains("ETA 1m00s"), "{screen}");
        assert!(screen.contains("failure rate 9%"), "{screen}");
        assert!(screen.contains("agents 1-3 of 3"), "{screen}");
        for agent in ["agent-1 ", "agent-2 ", "agent-3 "] {
            assert_eq!(lines_with(&screen, agent), 1, "{agent} in\n{screen}");
        }
        assert!(screen.contains("p95 1.7s"), "{screen}");
        assert!(screen.contains("q quit"), "{screen}");
        assert!(screen.contains("? help"), "{screen}");
        assert_eq!(screen.lines().count(), 24);
    }

    #[test]
    fn large_terminal_with_1500_agents_shows_a_page_and_the_panels() {
        let mut state = fixture(1500);
        let screen = draw(&mut state, 200, 60);
        assert!(screen.contains("of 1500"), "{screen}");
        assert!(screen.contains("agent-1 "), "{screen}");
        assert!(!screen.contains("agent-1500"), "{screen}");
        let page = state.ui.page;
        assert!(page > 20, "a page of {page} rows at 200x60");
        assert_eq!(
            lines_with(&screen, "agent-"),
            page + 1,
            "rows plus one straggler"
        );
        assert!(screen.contains("#512 agent-13 convert 9.0s"), "{screen}");
        assert!(screen.contains("25x exit 3 boom: disk full"), "{screen}");
        assert!(screen.contains("item_completed photo-4.jpg"), "{screen}");
        assert!(screen.contains("f failed"), "{screen}");

        // End jumps to the last page; the last agent is shown.
        assert_eq!(handle_key(&mut state, key(KeyCode::End)), Action::Redraw);
        let screen = draw(&mut state, 200, 60);
        assert!(screen.contains("agent-1500 "), "{screen}");
        assert!(screen.contains(&format!("agents {}-1500 of 1500", 1500 - page + 1)));
    }

    #[test]
    fn both_sizes_with_both_agent_counts_keep_the_header_gauge_table_and_footer() {
        for (agents, width, height) in [(3, 200, 60), (1500, 80, 24)] {
            let mut state = fixture(agents);
            let screen = draw(&mut state, width, height);
            let at = format!("{agents} agents at {width}x{height}:\n{screen}");
            assert_eq!(screen.lines().count(), height as usize, "{at}");
            assert!(screen.contains("thumbnails"), "{at}");
            assert!(screen.contains("500/1,000 done"), "{at}");
            assert!(screen.contains("ETA 1m00s"), "{at}");
            assert!(screen.contains(&format!("of {agents}")), "{at}");
            assert!(screen.contains("agent-1 "), "{at}");
            assert!(screen.contains("q quit"), "{at}");
            // Only what fits: never more agent rows than the terminal has lines.
            assert!(lines_with(&screen, "agent-") < height as usize, "{at}");
        }
    }

    /// The row Enter opens is the highlighted one, also when the whole table fits (nothing
    /// scrolls) and when the cursor is moved past the last row.
    #[test]
    fn the_cursor_row_is_highlighted_and_is_the_one_enter_opens() {
        let mut state = fixture(4);
        let highlighted = |state: &mut ViewerState| {
            let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("test backend");
            terminal.draw(|frame| render(frame, state)).expect("draws");
            let buffer = terminal.backend().buffer();
            (0..buffer.area.height)
                .filter(|&y| {
                    (0..buffer.area.width).any(|x| {
                        buffer[(x, y)].modifier.contains(Modifier::REVERSED)
                            && buffer[(x, y)].symbol() == "a"
                    })
                })
                .map(|y| {
                    (0..buffer.area.width)
                        .map(|x| buffer[(x, y)].symbol())
                        .collect::<String>()
                })
                .filter(|row| row.contains("agent-"))
                .collect::<Vec<_>>()
        };
        let rows = highlighted(&mut state);
        assert!(rows.len() == 1 && rows[0].contains("agent-1 "), "{rows:?}");
        handle_key(&mut state, key(KeyCode::Down));
        let rows = highlighted(&mut state);
        assert!(rows.len() == 1 && rows[0].contains("agent-2 "), "{rows:?}");
        assert_eq!(
            state.selected_agent().map(|a| a.name()).as_deref(),
            Some("agent-2")
        );
        for _ in 0..10 {
            handle_key(&mut state, key(KeyCode::Down));
        }
        let rows = highlighted(&mut state);
        assert!(rows.len() == 1 && rows[0].contains("agent-4 "), "{rows:?}");
        assert_eq!(
            state.selected_agent().map(|a| a.name()).as_deref(),
            Some("agent-4")
        );
    }

    #[test]
    fn keys_scroll_sort_filter_and_show_failed_agents() {
        let mut state = fixture(1500);
        draw(&mut state, 80, 24);
        let page = state.ui.page;
        handle_key(&mut state, key(KeyCode::PageDown));
        let screen = draw(&mut state, 80, 24);
        assert!(
            screen.contains(&format!("agents {}-", page + 1)),
            "{screen}"
        );

        handle_key(&mut state, key(KeyCode::Char('f')));
        let screen = draw(&mut state, 80, 24);
        // Every 7th agent (index 3, 10, ...) is retrying: 214 of 1500.
        assert!(
            screen.contains("agents 1-") && screen.contains("of 214 (of 1500)"),
            "{screen}"
        );
        assert!(screen.contains("agent-4 "), "{screen}");
        assert!(!screen.contains("agent-1 "), "{screen}");

        handle_key(&mut state, key(KeyCode::Char('f')));
        handle_key(&mut state, key(KeyCode::Char('/')));
        for c in "agent-150".chars() {
            handle_key(&mut state, key(KeyCode::Char(c)));
        }
        handle_key(&mut state, key(KeyCode::Enter));
        let screen = draw(&mut state, 80, 24);
        // agent-150 and agent-1500..agent-1509 is beyond 1500: 150, 1500.
        assert!(screen.contains("of 2 (of 1500)"), "{screen}");
        assert!(screen.contains("filter: agent-150"), "{screen}");

        handle_key(&mut state, key(KeyCode::Char('/')));
        handle_key(&mut state, key(KeyCode::Esc));
        handle_key(&mut state, key(KeyCode::Char('s')));
        handle_key(&mut state, key(KeyCode::Char('s')));
        let screen = draw(&mut state, 80, 24);
        assert!(screen.contains("sort: elapsed"), "{screen}");
        // The longest elapsed (49.5s) comes first: agent-50.
        let first_row = screen
            .lines()
            .find(|l| l.contains("agent-"))
            .expect("an agent row");
        assert!(first_row.contains("agent-50 "), "{first_row}");

        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('?'))),
            Action::Redraw
        );
        let screen = draw(&mut state, 80, 24);
        assert!(
            screen.contains("only agents whose last attempt failed"),
            "{screen}"
        );
        handle_key(&mut state, key(KeyCode::Char('x')));
        assert!(!state.ui.help);
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('q'))),
            Action::Quit
        );
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        let mut state = fixture(3);
        for (w, h) in [(1, 1), (10, 5), (40, 10), (80, 3)] {
            draw(&mut state, w, h);
        }
        state.ui.help = true;
        draw(&mut state, 20, 6);
    }

    /// The cost of one frame with 1,000 agents at 200x60, a new snapshot parsed every frame
    /// (the worst case: live, every frame changes). docs/PERFORMANCE.md has the figures.
    #[test]
    #[ignore = "a benchmark: cargo test --lib frame_cost -- --ignored --nocapture"]
    fn frame_cost_with_1000_agents() {
        let mut state = fixture(1000);
        state.ui.sort = crate::tui::viewer::state::Sort::State;
        let template = state.job.clone();
        let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
        let frames = 200;
        let start = std::time::Instant::now();
        for i in 0..frames {
            let mut next = template.clone();
            if let Some(s) = next.snapshot.as_mut() {
                s.at += i + 1;
            }
            state.update(next);
            terminal
                .draw(|frame| render(frame, &mut state))
                .expect("draw");
        }
        let per_frame = start.elapsed() / frames as u32;
        let fps = 1.0 / per_frame.as_secs_f64();
        println!("one frame with 1,000 agents at 200x60: {per_frame:?} ({fps:.0} frames/s)");
        assert!(fps >= 10.0, "{fps:.1} frames/s");
    }
}
