//! Pure analytics over a job's progress: durations, the ETA, stragglers and failure clusters.
//!
//! Nothing here reads a clock, does I/O or keeps global state: time comes in as epoch ms, so
//! tests drive a virtual clock and the live views, the store's history and a replay compute
//! the same numbers from the same inputs. The runner (or a reader of the event log) feeds
//! [`DurationModel`] once per finished item and [`FailureClusters`] once per failure; views call
//! [`estimate`] (then [`EtaDamper`] and [`format_eta`]) and [`find_stragglers`] a few times a
//! second. docs/eta.md explains the ETA's method and its known pitfalls.

pub mod accuracy;
pub mod counters;
pub mod display;
pub mod drift;
pub mod durations;
pub mod eta;
pub mod failures;
pub mod history;
pub mod live;
pub mod stragglers;

pub use accuracy::{EtaAccuracy, EtaError, Shown};
pub use counters::{CounterForecast, CounterStats};
pub use display::{EtaDamper, format_clock, format_duration, format_eta, format_remaining};
pub use drift::{DriftForecast, DriftShape};
pub use durations::{DurationModel, DurationStats, DurationSummary, StepDurations, SurvivalTable};
pub use eta::{Basis, Estimate, Eta, EtaInput, InFlight, estimate};
pub use failures::{Failure, FailureCluster, FailureClusters, FailureKind};
pub use history::{History, PRIOR_SAMPLES, RunDurations};
pub use live::{Elsewhere, LiveMetrics, MetricsView, StepSummary};
pub use stragglers::{Straggler, find_stragglers};
