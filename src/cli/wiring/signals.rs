//! Ctrl-C, SIGTERM and SIGHUP during a run in this process (`mmm run`, `mmm resume`,
//! `mmm worker`): the first asks the runner for a graceful stop, any later one for an
//! immediate stop; what the user is told is the caller's ([`StopNotices`]).

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use mmm_runner::StopLevel;

/// How a run tells the user what the signals do.
pub(crate) trait StopNotices: Send + 'static {
    /// The signals cannot be watched.
    fn unwatchable(&self);
    /// A signal asked the run to stop at `level` (said before the request is sent).
    fn stopping(&self, level: StopLevel);
}

/// Watches the signals until the task is aborted: the first asks for a graceful stop (no new
/// items; running commands get their grace), every later one for an immediate stop.
pub(crate) async fn watch_signals(stop: watch::Sender<StopLevel>, notices: impl StopNotices) {
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        notices.unwatchable();
        return;
    };
    let mut received = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        received += 1;
        let level = if received == 1 {
            StopLevel::Graceful
        } else {
            StopLevel::Immediate
        };
        notices.stopping(level);
        let _ = stop.send(level);
    }
}
