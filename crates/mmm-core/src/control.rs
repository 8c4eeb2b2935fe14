//! Steering a running job from anywhere (`mmm pause`, `unpause`, `scale`, `drain`, `cancel`;
//! docs/control.md): the [`ControlAction`] a request asks for, the job's durable
//! [`ControlState`] (what a resume restores) and the rule that refuses a scale out of range.

use serde::{Deserialize, Serialize};

/// The most agents `mmm scale` may ask for (and the most agent slots a run keeps ready, so a
/// scale up needs no new slot while agents work).
pub const MAX_AGENTS: u32 = 256;

/// What a control request asks of a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ControlAction {
    /// No new item starts; items in flight finish (with `suspend`, their process groups are
    /// stopped with SIGSTOP until unpaused, and their timeout does not run meanwhile).
    Pause {
        /// Stop the running commands' process groups too.
        suspend: bool,
    },
    /// Items start again (SIGCONT to suspended groups).
    Unpause,
    /// Run with this many agents from now on.
    Scale {
        /// The new number of agents, 1..=[`MAX_AGENTS`].
        agents: u32,
    },
    /// No new item starts; once the items in flight end, the run stops, `interrupted`.
    Drain,
    /// Stop: running commands get the grace period (none with `now`), then are killed; the
    /// job ends `cancelled`.
    Cancel {
        /// Kill the running commands at once.
        now: bool,
    },
}

impl ControlAction {
    /// The action's name, as the commands and events spell it.
    pub fn name(self) -> &'static str {
        match self {
            ControlAction::Pause { .. } => "pause",
            ControlAction::Unpause => "unpause",
            ControlAction::Scale { .. } => "scale",
            ControlAction::Drain => "drain",
            ControlAction::Cancel { .. } => "cancel",
        }
    }

    /// What the action does to a job, as a message says it (`only a running job can be ...`).
    pub fn verb(self) -> &'static str {
        match self {
            ControlAction::Pause { .. } => "paused",
            ControlAction::Unpause => "unpaused",
            ControlAction::Scale { .. } => "scaled",
            ControlAction::Drain => "drained",
            ControlAction::Cancel { .. } => "cancelled",
        }
    }

    /// Refuses what no job can do: a scale below 1 or above [`MAX_AGENTS`].
    pub fn validate(self) -> Result<(), ControlRefusal> {
        match self {
            ControlAction::Scale { agents } if !(1..=MAX_AGENTS).contains(&agents) => {
                Err(ControlRefusal::ScaleOutOfRange { agents })
            }
            _ => Ok(()),
        }
    }

    /// The durable state after this action, from `state`.
    pub fn apply(self, state: ControlState) -> ControlState {
        match self {
            ControlAction::Pause { suspend } => ControlState {
                paused: Some(Pause { suspend }),
                ..state
            },
            ControlAction::Unpause => ControlState {
                paused: None,
                ..state
            },
            ControlAction::Scale { agents } => ControlState {
                agents: Some(agents),
                ..state
            },
            ControlAction::Drain | ControlAction::Cancel { .. } => state,
        }
    }
}

/// Why a control request is refused before it reaches a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefusal {
    /// A scale out of `1..=MAX_AGENTS`.
    #[error("cannot scale to {agents} agents: give a number from 1 to {MAX_AGENTS}")]
    ScaleOutOfRange {
        /// What was asked.
        agents: u32,
    },
}

/// A paused job's pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Its running commands' process groups are stopped too (`--suspend`).
    pub suspend: bool,
}

/// What the control requests so far made of a job, kept with it so a resume restores it: paused
/// or not, and the number of agents `mmm scale` set (`None`: the plan's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlState {
    /// Set while the job is paused.
    pub paused: Option<Pause>,
    /// The agents `mmm scale` asked for last.
    pub agents: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_out_of_range_is_refused() {
        assert!(ControlAction::Scale { agents: 0 }.validate().is_err());
        assert!(
            ControlAction::Scale {
                agents: MAX_AGENTS + 1
            }
            .validate()
            .is_err()
        );
        assert!(ControlAction::Scale { agents: 1 }.validate().is_ok());
        assert!(
            ControlAction::Scale { agents: MAX_AGENTS }
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn actions_fold_into_the_state() {
        let state = ControlState::default();
        let paused = ControlAction::Pause { suspend: true }.apply(state);
        assert_eq!(paused.paused, Some(Pause { suspend: true }));
        let scaled = ControlAction::Scale { agents: 3 }.apply(paused);
        assert_eq!(scaled.agents, Some(3));
        assert_eq!(ControlAction::Drain.apply(scaled), scaled);
        assert_eq!(ControlAction::Unpause.apply(scaled).paused, None);
    }

    #[test]
    fn action_json_is_tagged() {
        let json = serde_json::to_value(ControlAction::Scale { agents: 4 }).unwrap();
        assert_eq!(json, serde_json::json!({"action": "scale", "agents": 4}));
        let back: ControlAction = serde_json::from_value(json).unwrap();
        assert_eq!(back, ControlAction::Scale { agents: 4 });
    }
}
