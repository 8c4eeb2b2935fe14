//! The viewer's keys: what each one changes in the interface state, and what it asks of the
//! loop (quit, or for a replay: pause, seek, speed). Pure: tested without a terminal.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::ViewerState;
use mmm_core::control::{ControlAction, MAX_AGENTS};
use mmm_core::job::JobStatus;

/// What a key asks the loop to do beyond changing the interface state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Action {
    /// Nothing changed.
    None,
    /// The interface state changed: draw again.
    Redraw,
    /// Leave the viewer.
    Quit,
    /// Replay: pause or play.
    TogglePause,
    /// Replay: move by this many frames.
    Seek(i64),
    /// Replay: multiply the speed.
    Speed(f64),
    /// Live: ask the job to change course (docs/control.md), through the store.
    Control(ControlAction),
    /// Live: show the log of the item at this input position in the pane, following it.
    OpenLog(u64),
}

/// The keys that steer a live, running job: `p` pauses or unpauses, `+`/`-` scale by one
/// agent, `d` drains, `x` cancels (after `y`). `None` for other keys, or a job not running.
fn control_key(state: &mut ViewerState, code: KeyCode) -> Option<Action> {
    let job = &state.job.job;
    if job.status != JobStatus::Running {
        return None;
    }
    let agents = job
        .scaled_agents
        .unwrap_or(job.max_parallel)
        .clamp(1, MAX_AGENTS);
    let action = match code {
        KeyCode::Char('p') if job.paused => ControlAction::Unpause,
        KeyCode::Char('p') => ControlAction::Pause { suspend: false },
        KeyCode::Char('+') if agents < MAX_AGENTS => ControlAction::Scale { agents: agents + 1 },
        KeyCode::Char('-') if agents > 1 => ControlAction::Scale { agents: agents - 1 },
        KeyCode::Char('d') => ControlAction::Drain,
        KeyCode::Char('x') => {
            state.ui.confirm = Some(ControlAction::Cancel { now: false });
            return Some(Action::Redraw);
        }
        _ => return None,
    };
    Some(Action::Control(action))
}

/// Applies one key to the viewer.
pub(crate) fn handle_key(state: &mut ViewerState, key: KeyEvent) -> Action {
    if key.kind == KeyEventKind::Release {
        return Action::None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Action::Quit;
    }
    let ui = &mut state.ui;
    if ui.editing_filter {
        match key.code {
            KeyCode::Enter => ui.editing_filter = false,
            KeyCode::Esc => {
                ui.editing_filter = false;
                ui.filter.clear();
            }
            KeyCode::Backspace => {
                ui.filter.pop();
            }
            KeyCode::Char(c) => ui.filter.push(c),
            _ => return Action::None,
        }
        ui.scroll = 0;
        return Action::Redraw;
    }
    if ui.help {
        // Any key closes the help; q still quits.
        ui.help = false;
        if key.code == KeyCode::Char('q') {
            return Action::Quit;
        }
        return Action::Redraw;
    }
    if let Some(action) = ui.confirm.take() {
        // Only `y` confirms; any other key keeps the job running.
        if key.code == KeyCode::Char('y') {
            return Action::Control(action);
        }
        ui.notice = Some(format!("{} not sent", action.name()));
        return Action::Redraw;
    }
    if state.replay.is_none()
        && let Some(action) = control_key(state, key.code)
    {
        return action;
    }
    if state.replay.is_none() && key.code == KeyCode::Enter {
        let top = state.selected_agent().map(|a| (a.agent.item, a.name()));
        return match top {
            Some((Some(item), _)) => Action::OpenLog(item),
            Some((None, name)) => {
                state.ui.notice = Some(format!("{name} has no item now"));
                Action::Redraw
            }
            None => Action::None,
        };
    }
    let ui = &mut state.ui;
    let page = ui.page.max(1);
    match key.code {
        KeyCode::Esc if ui.log.is_some() => ui.log = None,
        KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
        KeyCode::Down | KeyCode::Char('j') => ui.scroll = ui.scroll.saturating_add(1),
        KeyCode::Up | KeyCode::Char('k') => ui.scroll = ui.scroll.saturating_sub(1),
        KeyCode::PageDown => ui.scroll = ui.scroll.saturating_add(page),
        KeyCode::PageUp => ui.scroll = ui.scroll.saturating_sub(page),
        KeyCode::Home | KeyCode::Char('g') => ui.scroll = 0,
        KeyCode::End | KeyCode::Char('G') => ui.scroll = usize::MAX,
        KeyCode::Char('s') => {
            ui.sort = ui.sort.next();
            ui.scroll = 0;
        }
        KeyCode::Char('/') => {
            ui.editing_filter = true;
        }
        KeyCode::Char('f') => {
            ui.failed_only = !ui.failed_only;
            ui.scroll = 0;
        }
        KeyCode::Char('?') => ui.help = true,
        KeyCode::Char(' ') if state.replay.is_some() => return Action::TogglePause,
        KeyCode::Left if state.replay.is_some() => return Action::Seek(-10),
        KeyCode::Right if state.replay.is_some() => return Action::Seek(10),
        KeyCode::Char('+') if state.replay.is_some() => return Action::Speed(2.0),
        KeyCode::Char('-') if state.replay.is_some() => return Action::Speed(0.5),
        _ => return Action::None,
    }
    state.clamp_scroll();
    Action::Redraw
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::viewer::state::fixture;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn running(agents: usize) -> ViewerState {
        let mut state = fixture(agents);
        state.job.job.status = JobStatus::Running;
        state.job.job.max_parallel = 4;
        state
    }

    #[test]
    fn control_keys_ask_for_pause_scale_and_drain() {
        let mut state = running(4);
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('p'))),
            Action::Control(ControlAction::Pause { suspend: false })
        );
        state.job.job.paused = true;
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('p'))),
            Action::Control(ControlAction::Unpause)
        );
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('+'))),
            Action::Control(ControlAction::Scale { agents: 5 })
        );
        state.job.job.scaled_agents = Some(1);
        // Not below one agent.
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('-'))),
            Action::None
        );
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('d'))),
            Action::Control(ControlAction::Drain)
        );
        // A finished job takes no request: the keys do nothing.
        state.job.job.status = JobStatus::Completed;
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('d'))),
            Action::None
        );
    }

    #[test]
    fn cancel_asks_first() {
        let mut state = running(2);
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('x'))),
            Action::Redraw
        );
        assert!(state.ui.confirm.is_some());
        // Any other key keeps the job running.
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('n'))),
            Action::Redraw
        );
        assert!(state.ui.confirm.is_none());
        handle_key(&mut state, key(KeyCode::Char('x')));
        assert_eq!(
            handle_key(&mut state, key(KeyCode::Char('y'))),
            Action::Control(ControlAction::Cancel { now: false })
        );
    }
}
