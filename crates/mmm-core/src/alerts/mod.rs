//! Alerts: the rules of a job's `alerts:` and `deadline:` judged against what the tracker
//! sees, once a second, with the transitions (raised, resolved) the runner records as events.
//!
//! Judging is a pure function of an [`Observation`], so every rule is tested with built
//! observations; [`AlertBook`] remembers which alerts are active so that a condition that
//! lasts raises one alert, not one a second.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod rules;
pub use rules::{AlertRules, Deadline};

use crate::job::AgentState;
use crate::tracker::{AgentSnapshot, WindowCounts};

/// Which rule an alert comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// An agent's command wrote nothing and reported nothing for `stuck_after`.
    Stuck,
    /// Too many attempts failed over the window.
    FailureRate,
    /// Too many attempts timed out over the window.
    TimeoutRate,
    /// The throughput over the window fell well below the run's average.
    ThroughputDrop,
    /// The estimated finish is past the job's deadline.
    Deadline,
    /// The store cannot be reached (or stays locked); the run waits for it
    /// (`--store-outage-limit`).
    StoreUnavailable,
    /// A counter's forecast at the end of the job is over its budget (docs/api-work.md).
    Budget,
}

impl Rule {
    /// The rule's name in the job file and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Stuck => "stuck",
            Rule::FailureRate => "failure_rate",
            Rule::TimeoutRate => "timeout_rate",
            Rule::ThroughputDrop => "throughput_drop",
            Rule::Deadline => "deadline",
            Rule::StoreUnavailable => "store_unavailable",
            Rule::Budget => "budget",
        }
    }
}

/// One alert: what fired, about what, and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule.
    pub rule: Rule,
    /// What it is about: an agent's name for `stuck`, none for job-wide rules.
    pub subject: Option<String>,
    /// One line for people.
    pub message: String,
    /// The measured value (seconds quiet, a rate 0..=1, ms past the deadline).
    pub value: f64,
    /// The threshold it crossed, in the same unit.
    pub threshold: f64,
}

impl Alert {
    fn key(&self) -> (Rule, Option<String>) {
        (self.rule, self.subject.clone())
    }
}

/// What the rules are judged against: one moment of a running map.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// Epoch ms.
    pub now_ms: i64,
    /// How long this run has been going.
    pub run_elapsed: Duration,
    /// The agents, from the tracker.
    pub agents: &'a [AgentSnapshot],
    /// Item keys of the agents' items, by agent index, when known (for messages).
    pub agent_items: &'a [Option<String>],
    /// This run's counts over the rules' window.
    pub window: WindowCounts,
    /// Items this run finished (completed, skipped, dead-lettered).
    pub finished_this_run: u64,
    /// Items waiting for an agent.
    pub queued: u64,
    /// The estimated finish time (epoch ms), when there is an estimate.
    pub eta_finish_ms: Option<i64>,
    /// The deadline (epoch ms), when the job has one.
    pub deadline_ms: Option<i64>,
    /// The job is paused (`mmm pause`): quiet agents and a slow throughput are what was asked
    /// for, so the stuck-agent and throughput rules are not judged.
    pub paused: bool,
    /// The budgets on counters, each with its counter's forecast at the end of the job, when
    /// there is one.
    pub budgets: &'a [BudgetForecast],
}

/// A budget on a counter and the counter's forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetForecast {
    /// The counter.
    pub counter: String,
    /// Its budget.
    pub max: crate::counter::CounterValue,
    /// Where it is expected to end.
    pub forecast: crate::metrics::CounterForecast,
}

/// The alerts whose conditions hold now.
pub fn judge(rules: &AlertRules, seen: &Observation<'_>) -> Vec<Alert> {
    let mut alerts = Vec::new();
    if let Some(limit) = rules.stuck_after.filter(|_| !seen.paused) {
        for agent in seen.agents {
            if agent.state == AgentState::Running && agent.quiet >= limit {
                let name = format!("agent-{}", agent.index + 1);
                let item = seen
                    .agent_items
                    .get(agent.index)
                    .cloned()
                    .flatten()
                    .map(|key| format!(" on item {key}"))
                    .unwrap_or_default();
                alerts.push(Alert {
                    rule: Rule::Stuck,
                    message: format!(
                        "{name} has written no output and reported nothing for {}{item}",
                        humantime::format_duration(Duration::from_secs(agent.quiet.as_secs()))
                    ),
                    subject: Some(name),
                    value: agent.quiet.as_secs_f64(),
                    threshold: limit.as_secs_f64(),
                });
            }
        }
    }
    let attempts = seen.window.attempts;
    let judged = attempts >= u64::from(rules.min_attempts.max(1));
    let window_text = humantime::format_duration(rules.window);
    let rates = [
        (
            Rule::FailureRate,
            rules.failure_rate,
            seen.window.failures,
            "failed",
        ),
        (
            Rule::TimeoutRate,
            rules.timeout_rate,
            seen.window.timeouts,
            "timed out",
        ),
    ];
    for (rule, limit, count, what) in rates {
        if let Some(limit) = limit
            && judged
        {
            let rate = count as f64 / attempts as f64;
            if rate > limit {
                alerts.push(Alert {
                    rule,
                    subject: None,
                    message: format!(
                        "{count} of the last {attempts} attempts {what} ({:.0}%, over {:.0}%) in {window_text}",
                        rate * 100.0,
                        limit * 100.0
                    ),
                    value: rate,
                    threshold: limit,
                });
            }
        }
    }
    if let Some(share) = rules.throughput_drop.filter(|_| !seen.paused) {
        // Judged only with a full window behind an average of at least two windows, and
        // while every agent has work: the tail of a job slows down by nature.
        let window_s = rules.window.as_secs_f64().max(1.0);
        let elapsed_s = seen.run_elapsed.as_secs_f64();
        let busy = seen.queued >= seen.agents.len() as u64;
        if elapsed_s >= 2.0 * window_s && busy && seen.finished_this_run > 0 {
            let average = seen.finished_this_run as f64 / elapsed_s;
            let now = seen.window.finished as f64 / window_s;
            if now < share * average {
                alerts.push(Alert {
                    rule: Rule::ThroughputDrop,
                    subject: None,
                    message: format!(
                        "throughput fell to {now:.2} items/s over {window_text}, below {:.0}% of the run's average {average:.2}/s",
                        share * 100.0
                    ),
                    value: now / average,
                    threshold: share,
                });
            }
        }
    }
    if let Some(deadline) = seen.deadline_ms {
        let late = match seen.eta_finish_ms {
            Some(finish) => finish > deadline,
            None => seen.now_ms > deadline,
        };
        if late {
            let expected = seen.eta_finish_ms.unwrap_or(seen.now_ms);
            let over = Duration::from_millis((expected - deadline).max(0) as u64);
            alerts.push(Alert {
                rule: Rule::Deadline,
                subject: None,
                message: match seen.eta_finish_ms {
                    Some(_) => format!(
                        "the job is expected to finish {} after its deadline",
                        humantime::format_duration(Duration::from_secs(over.as_secs()))
                    ),
                    None => "the deadline has passed and the job is not done".to_string(),
                },
                value: expected as f64,
                threshold: deadline as f64,
            });
        }
    }
    for budget in seen.budgets {
        let f = &budget.forecast;
        if f.expected > budget.max.get() {
            alerts.push(Alert {
                rule: Rule::Budget,
                subject: Some(budget.counter.clone()),
                message: format!(
                    "{} is forecast to reach {} over its budget of {}",
                    budget.counter,
                    f.text(),
                    budget.max
                ),
                value: f.expected,
                threshold: budget.max.get(),
            });
        }
    }
    alerts
}

/// How many looks in a row a condition must be absent before its alert is resolved: a
/// rate hovering around its threshold would otherwise raise and resolve every second.
pub const CLEAR_AFTER: u32 = 3;

/// The active alerts, and what changed since the last look.
#[derive(Debug, Default)]
pub struct AlertBook {
    /// Each active alert with the number of looks in a row its condition was absent.
    active: BTreeMap<(Rule, Option<String>), (Alert, u32)>,
}

/// What changed at one look.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Alerts that are new.
    pub raised: Vec<Alert>,
    /// Alerts whose condition is over.
    pub resolved: Vec<Alert>,
}

impl AlertBook {
    /// Takes the alerts that hold now; returns which were raised and which resolved (after
    /// [`CLEAR_AFTER`] looks without their condition).
    pub fn update(&mut self, now: Vec<Alert>) -> Changes {
        let mut changes = Changes::default();
        let mut next = BTreeMap::new();
        for alert in now {
            let key = alert.key();
            if !self.active.contains_key(&key) {
                changes.raised.push(alert.clone());
            }
            next.insert(key, (alert, 0));
        }
        for (key, (alert, absent)) in std::mem::take(&mut self.active) {
            if next.contains_key(&key) {
                continue;
            }
            if absent + 1 >= CLEAR_AFTER {
                changes.resolved.push(alert);
            } else {
                next.insert(key, (alert, absent + 1));
            }
        }
        self.active = next;
        changes
    }

    /// Resolves every active alert at once (the run ended).
    pub fn close(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.active)
            .into_values()
            .map(|(alert, _)| alert)
            .collect()
    }

    /// The alerts active now.
    pub fn active(&self) -> Vec<Alert> {
        self.active
            .values()
            .map(|(alert, _)| alert.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(index: usize, phase: AgentState, quiet_s: u64) -> AgentSnapshot {
        AgentSnapshot {
            index,
            state: phase,
            item: Some(index as u64),
            step: Some(0),
            attempt: 1,
            progress: None,
            item_elapsed: Some(Duration::from_secs(quiet_s)),
            in_phase: Duration::from_secs(quiet_s),
            last_exit_code: None,
            items_done: 0,
            quiet: Duration::from_secs(quiet_s),
            message: None,
            cpu_percent: None,
            rss_bytes: None,
        }
    }

    /// A healthy moment: two busy agents, steady throughput, no failures.
    fn healthy<'a>(agents: &'a [AgentSnapshot]) -> Observation<'a> {
        Observation {
            now_ms: 1_000_000,
            run_elapsed: Duration::from_secs(1000),
            agents,
            agent_items: &[],
            window: WindowCounts {
                finished: 300,
                attempts: 300,
                failures: 0,
                timeouts: 0,
            },
            finished_this_run: 1000,
            queued: 500,
            eta_finish_ms: Some(2_000_000),
            deadline_ms: None,
            paused: false,
            budgets: &[],
        }
    }

    fn rules() -> AlertRules {
        AlertRules::default()
    }

    fn fired(rules: &AlertRules, seen: &Observation<'_>) -> Vec<Rule> {
        judge(rules, seen).iter().map(|a| a.rule).collect()
    }

    #[test]
    fn a_forecast_over_its_budget_raises_an_alert() {
        let forecast = |expected: f64| BudgetForecast {
            counter: "cost_cents".into(),
            max: crate::counter::CounterValue::from(5000),
            forecast: crate::metrics::CounterForecast {
                per_item: 10.0,
                expected,
                p10: expected - 100.0,
                p90: expected + 100.0,
            },
        };
        let under = [forecast(4900.0)];
        let seen = Observation {
            budgets: &under,
            ..healthy(&[])
        };
        assert_eq!(fired(&rules(), &seen), []);
        let over = [forecast(6100.0)];
        let seen = Observation {
            budgets: &over,
            ..healthy(&[])
        };
        let alerts = judge(&rules(), &seen);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].rule, Rule::Budget);
        assert_eq!(
            alerts[0].message,
            "cost_cents is forecast to reach ~6100 at the end (6000-6200) over its budget of 5000"
        );
    }

    #[test]
    fn a_healthy_job_raises_nothing() {
        let agents = [
            agent(0, AgentState::Running, 5),
            agent(1, AgentState::Queued, 5),
        ];
        let mut seen = healthy(&agents);
        seen.deadline_ms = Some(3_000_000);
        assert_eq!(fired(&rules(), &seen), []);
    }

    #[test]
    fn stuck_fires_for_a_quiet_running_agent_only() {
        let agents = [
            agent(0, AgentState::Running, 601),
            agent(1, AgentState::Running, 599),
            agent(2, AgentState::Retrying, 5000),
        ];
        let keys = [Some("photo-1".to_string()), None, None];
        let seen = Observation {
            agent_items: &keys,
            ..healthy(&agents)
        };
        let alerts = judge(&rules(), &seen);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].rule, Rule::Stuck);
        assert_eq!(alerts[0].subject.as_deref(), Some("agent-1"));
        assert!(alerts[0].message.contains("on item photo-1"), "{alerts:?}");
        let off = AlertRules {
            stuck_after: None,
            ..rules()
        };
        assert_eq!(fired(&off, &seen), []);
        let paused = Observation {
            paused: true,
            ..seen
        };
        assert_eq!(
            fired(&rules(), &paused),
            [],
            "a paused job has no stuck agent"
        );
    }

    #[test]
    fn failure_rate_fires_above_the_threshold_with_enough_attempts() {
        let agents = [agent(0, AgentState::Queued, 0)];
        let mut seen = healthy(&agents);
        seen.window.failures = 151;
        assert_eq!(fired(&rules(), &seen), [Rule::FailureRate]);
        seen.window.failures = 150;
        assert_eq!(fired(&rules(), &seen), [], "50% is not above 50%");
        seen.window = WindowCounts {
            finished: 19,
            attempts: 19,
            failures: 19,
            timeouts: 0,
        };
        let rates_only = AlertRules {
            throughput_drop: None,
            ..rules()
        };
        assert_eq!(fired(&rates_only, &seen), [], "too few attempts to judge");
    }

    #[test]
    fn timeout_rate_fires_on_timeouts_not_on_other_failures() {
        let agents = [agent(0, AgentState::Queued, 0)];
        let mut seen = healthy(&agents);
        seen.window.failures = 100;
        seen.window.timeouts = 90;
        assert_eq!(fired(&rules(), &seen), [Rule::TimeoutRate]);
        seen.window.timeouts = 10;
        assert_eq!(fired(&rules(), &seen), []);
    }

    #[test]
    fn throughput_drop_fires_only_while_agents_have_work() {
        let agents = [
            agent(0, AgentState::Running, 1),
            agent(1, AgentState::Running, 1),
        ];
        let mut seen = healthy(&agents);
        // Average 1 item/s; the window (300 s) saw 60: 0.2/s, below 25%.
        seen.window.finished = 60;
        assert_eq!(fired(&rules(), &seen), [Rule::ThroughputDrop]);
        seen.queued = 1;
        assert_eq!(fired(&rules(), &seen), [], "the tail of the job");
        seen.queued = 500;
        seen.run_elapsed = Duration::from_secs(500);
        seen.finished_this_run = 500;
        assert_eq!(fired(&rules(), &seen), [], "not two windows of history yet");
        seen.run_elapsed = Duration::from_secs(1000);
        seen.finished_this_run = 1000;
        seen.window.finished = 90;
        assert_eq!(fired(&rules(), &seen), [], "0.3/s is 30% of the average");
    }

    #[test]
    fn deadline_fires_when_the_estimate_or_the_clock_is_past_it() {
        let agents = [agent(0, AgentState::Running, 1)];
        let mut seen = healthy(&agents);
        seen.deadline_ms = Some(1_500_000);
        let alerts = judge(&rules(), &seen);
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0].message.contains("8m 20s after its deadline"),
            "{alerts:?}"
        );
        seen.eta_finish_ms = Some(1_400_000);
        assert_eq!(fired(&rules(), &seen), []);
        seen.eta_finish_ms = None;
        seen.now_ms = 1_600_000;
        assert_eq!(fired(&rules(), &seen), [Rule::Deadline]);
    }

    #[test]
    fn the_book_raises_once_and_resolves_when_the_condition_ends() {
        let agents = [agent(0, AgentState::Running, 700)];
        let seen = healthy(&agents);
        let mut book = AlertBook::default();
        let first = book.update(judge(&rules(), &seen));
        assert_eq!(first.raised.len(), 1);
        let again = book.update(judge(&rules(), &seen));
        assert_eq!(again, Changes::default(), "a lasting condition raises once");
        assert_eq!(book.active().len(), 1);
        let calm = [agent(0, AgentState::Running, 1)];
        for _ in 1..CLEAR_AFTER {
            let calm_look = book.update(judge(&rules(), &healthy(&calm)));
            assert_eq!(
                calm_look,
                Changes::default(),
                "not resolved at the first calm look"
            );
        }
        let over = book.update(judge(&rules(), &healthy(&calm)));
        assert_eq!(over.resolved.len(), 1);
        assert!(book.active().is_empty());
        book.update(judge(&rules(), &seen));
        assert_eq!(book.close().len(), 1);
        assert!(book.active().is_empty());
    }
}
