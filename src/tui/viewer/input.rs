//! The viewer's keys: what each one changes in the interface state, and what it asks of the
//! loop (quit, or for a replay: pause, seek, speed). Pure: tested without a terminal.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::ViewerState;

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
    let page = ui.page.max(1);
    match key.code {
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
