//! The runner's side of alerts: once a heartbeat, judge the job's rules against the tracker
//! ([`mmm_core::alerts::judge`]), record what was raised or resolved as events, show the active
//! alerts in the views, and run `alerts.on_alert` for each raised alert.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::run::Run;
use crate::{Executor, Output};
use mmm_core::alerts::{Alert, AlertBook, BudgetForecast, Observation, Rule, judge};
use mmm_core::event::{AlertResolved, Event};
use mmm_core::job::now_ms;
use mmm_core::tracker::AgentSnapshot;
use mmm_store::Write;

/// How long an `on_alert` command may run before it is killed.
const ON_ALERT_TIMEOUT: Duration = Duration::from_secs(60);

/// The alert state of one run.
pub(crate) struct Watch {
    book: AlertBook,
    deadline_ms: Option<i64>,
    /// When the job was last seen paused (`mmm pause`).
    last_paused: Option<std::time::Instant>,
}

impl Watch {
    /// The alert state at the run's start: nothing raised; a relative deadline counted from
    /// the job's creation.
    pub(crate) async fn new<E: Executor>(run: &Arc<Run<E>>) -> Watch {
        let deadline_ms = match run.plan.deadline {
            Some(deadline) => {
                // Relative deadlines count from the job's creation, across resumes.
                let store = run.store.clone();
                let job = run.job;
                let created = tokio::task::spawn_blocking(move || store.job(job))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map_or_else(now_ms, |record| record.created_at);
                Some(deadline.at_ms(created))
            }
            None => None,
        };
        Watch {
            book: AlertBook::default(),
            deadline_ms,
            last_paused: None,
        }
    }

    /// Judges the rules now; returns the active alerts.
    pub(crate) fn look<E: Executor>(
        &mut self,
        run: &Arc<Run<E>>,
        agents: &[AgentSnapshot],
    ) -> Vec<Alert> {
        let tracker = &run.tracker;
        let rules = &run.plan.alerts;
        let progress = tracker.progress();
        let agent_items: Vec<Option<String>> = agents
            .iter()
            .map(|a| a.item.and_then(|item| tracker.item_key(item)))
            .collect();
        // While paused, and for one window after (its counts and the agents' quiet time still
        // hold the pause), quiet agents and a low throughput are what was asked for.
        if tracker.is_paused() {
            self.last_paused = Some(std::time::Instant::now());
        }
        let paused = self
            .last_paused
            .is_some_and(|at| at.elapsed() < rules.window.max(Duration::from_secs(1)));
        let forecasts = run.metrics.counter_forecasts();
        let budgets: Vec<BudgetForecast> = run
            .budgets
            .budgets()
            .into_iter()
            .filter_map(|b| {
                let forecast = *forecasts.get(&b.counter)?;
                Some(BudgetForecast {
                    counter: b.counter,
                    max: b.max,
                    forecast,
                })
            })
            .collect();
        let seen = Observation {
            now_ms: now_ms(),
            run_elapsed: run.started.elapsed(),
            agents,
            agent_items: &agent_items,
            window: tracker.window(rules.window.as_secs() as u32),
            finished_this_run: progress.done_this_run(),
            queued: progress.pending,
            eta_finish_ms: match run.metrics.eta() {
                mmm_core::metrics::Eta::Estimate(estimate) => Some(estimate.finish_at_ms),
                _ => None,
            },
            deadline_ms: self.deadline_ms,
            paused,
            budgets: &budgets,
        };
        let mut now = judge(rules, &seen);
        if let Some((lasted, error)) = run.outages.current() {
            now.push(Alert {
                rule: Rule::StoreUnavailable,
                subject: None,
                message: format!("the store is unavailable; the run waits for it: {error}"),
                value: lasted.as_secs_f64(),
                threshold: 0.0,
            });
        }
        let changes = self.book.update(now);
        let job = run.job;
        let mut writes = Vec::new();
        for alert in &changes.raised {
            writes.push(Write::event(job, None, Event::AlertRaised(alert.clone())));
            if let Some(command) = &rules.on_alert {
                tokio::spawn(on_alert(run.clone(), command.clone(), alert.clone()));
            }
        }
        for alert in &changes.resolved {
            let resolved = AlertResolved {
                alert: alert.clone(),
                reason: None,
            };
            writes.push(Write::event(job, None, Event::AlertResolved(resolved)));
        }
        if !writes.is_empty() {
            run.record(writes);
        }
        let active = self.book.active();
        tracker.set_alerts(active.iter().map(|a| a.message.clone()).collect());
        active
    }

    /// The run is over: every alert still active is resolved, so each raised alert has its
    /// end in the log.
    pub(crate) fn close<E: Executor>(&mut self, run: &Arc<Run<E>>) {
        let writes: Vec<Write> = self
            .book
            .close()
            .iter()
            .map(|alert| {
                let resolved = AlertResolved {
                    alert: alert.clone(),
                    reason: Some("the run ended".to_string()),
                };
                Write::event(run.job, None, Event::AlertResolved(resolved))
            })
            .collect();
        if !writes.is_empty() {
            run.record(writes);
        }
        run.tracker.set_alerts(Vec::new());
    }
}

/// Runs `command` with the alert as JSON on stdin; its output is shown only if it fails.
async fn on_alert<E: Executor>(run: Arc<Run<E>>, command: String, alert: Alert) {
    let payload = json!({
        "job_id": run.job.to_string(),
        "job_name": run.plan.name,
        "at": now_ms(),
        "alert": alert,
    });
    let spawning = crate::process::spawn_lock();
    let spawned = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&command)
        .current_dir(&run.plan.base_dir)
        .env("MMM_JOB_ID", run.job.to_string())
        .env("MMM_ALERT_RULE", alert.rule.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    drop(spawning);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            show(&run, format!("could not start on_alert `{command}`: {e}"));
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin is fine: ignore a broken pipe.
        let _ = stdin.write_all(payload.to_string().as_bytes()).await;
        let _ = stdin.write_all(b"\n").await;
    }
    match tokio::time::timeout(ON_ALERT_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) if output.status.success() => {}
        Ok(Ok(output)) => {
            let mut text =
                format!("on_alert `{command}` failed ({})\n", output.status).into_bytes();
            text.extend_from_slice(&output.stderr);
            show(&run, String::from_utf8_lossy(&text).into_owned());
        }
        Ok(Err(e)) => show(
            &run,
            format!("on_alert `{command}` could not be waited for: {e}"),
        ),
        Err(_) => show(
            &run,
            format!("on_alert `{command}` ran over {ON_ALERT_TIMEOUT:?} and was killed"),
        ),
    }
}

fn show<E: Executor>(run: &Run<E>, message: String) {
    run.shown.send(Output {
        source: "on_alert".to_string(),
        stdout: Vec::new(),
        stderr: message.into_bytes(),
    });
}
