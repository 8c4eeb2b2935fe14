//! Observed runs on the dashboard (issue 7): `GET /api/runs` and the messages of the `runs`
//! WebSocket feed, both read from the server's [`Watch`] (file-system notifications; nothing
//! is polled). Without `mmm serve --runs`, there is no watch: the list is empty and says so.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use mmm_runs::Run;
use mmm_runs::watch::{Update, Watch};

/// What `GET /api/runs` answers.
#[derive(Debug, Serialize)]
pub(super) struct RunsList {
    /// Whether the server watches run folders (`mmm serve --runs ROOT...`).
    watching: bool,
    /// The roots watched, absolute.
    roots: Vec<PathBuf>,
    /// Every run, sorted by path: the records `mmm runs --json` prints.
    runs: Vec<Run>,
}

/// `GET /api/runs`: every observed run as it stands now.
pub(super) async fn runs(State(state): State<AppState>) -> Json<RunsList> {
    Json(match state.runs.as_deref() {
        Some(watch) => RunsList {
            watching: true,
            roots: watch.roots().to_vec(),
            runs: watch.runs(),
        },
        None => RunsList {
            watching: false,
            roots: Vec::new(),
            runs: Vec::new(),
        },
    })
}

/// The `runs` feed's first message (and a resync's): every run, with the receiver of every
/// later update (nothing missed or repeated between the two). `None` for the receiver when
/// the server watches nothing.
pub(super) fn full(
    watch: Option<&Arc<Watch>>,
) -> (Value, Option<tokio::sync::broadcast::Receiver<Update>>) {
    match watch {
        Some(watch) => {
            let (runs, updates) = watch.subscribe();
            let message = json!({
                "type": "runs", "watching": true, "roots": watch.roots(), "runs": runs,
                "resync": false,
            });
            (message, Some(updates))
        }
        None => (
            json!({ "type": "runs", "watching": false, "roots": [], "runs": [], "resync": false }),
            None,
        ),
    }
}

/// A `runs_delta` message from one update of the watch.
pub(super) fn delta(update: &Update) -> Value {
    json!({
        "type": "runs_delta",
        "seq": update.seq,
        "at_ms": update.at_ms,
        "changed": update.changed,
        "removed": update.removed,
        "problems": update.problems,
    })
}
