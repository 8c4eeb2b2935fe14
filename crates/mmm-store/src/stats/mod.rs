//! Jobs across a period, per job name (`mmm stats`, `GET /api/stats`; docs/stats.md): runs by
//! status and the success rate, items and their throughput, job, item and step duration
//! percentiles, retries, the DLQ rate, queue wait, deadline compliance, how right the ETA was,
//! and the same headline figures for the period of the same length before.
//!
//! Each job's figures come from its own records ([`summary::summarize`]); a finished job's
//! summary is kept in the store ([`crate::Summaries`]) so a period of thousands of jobs is read
//! without their attempts, and made again when the job changes (a resume, a DLQ retry); an
//! unfinished job counts from its record alone ([`summary::unfinished`]). The
//! percentiles of a period come from every job's durations merged ([`Histogram`]), never from
//! averaging the jobs' own percentiles.

mod histogram;
pub mod summary;

use std::collections::BTreeMap;

use serde::Serialize;

pub use histogram::{Histogram, HistogramSum};
pub use summary::{JobSummary, StepSummary, eta_accuracy, summarize};

use crate::{PeriodJob, PeriodQuery, Store, StoreError};
use mmm_core::job::JobStatus;
use mmm_core::metrics::accuracy::CHECKPOINTS;

/// Which jobs [`compute`] covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    /// Jobs created at or after this time, epoch ms.
    pub from: i64,
    /// Jobs created before this time, epoch ms.
    pub to: i64,
    /// Only job names matching this glob.
    pub name_glob: Option<String>,
}

/// Per job name over a period (the `--json` of `mmm stats`; docs/stats.schema.json).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// The period's start, epoch ms (inclusive).
    pub from: i64,
    /// The period's end, epoch ms (exclusive).
    pub to: i64,
    /// The start of the period of the same length before, which `previous` covers.
    pub previous_from: i64,
    /// Every job name with a job created in the period, by name.
    pub names: Vec<NameStats>,
}

/// One job name over the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameStats {
    /// The job name.
    pub name: String,
    /// Jobs created in the period.
    pub runs: u64,
    /// Those jobs by their status now (`completed`, `failed`, ...).
    pub by_status: BTreeMap<String, u64>,
    /// Jobs that finished (completed, completed with failures, failed, cancelled).
    pub finished: u64,
    /// `completed / finished` (completed with failures is not a success); none before a job
    /// finished.
    pub success_rate: Option<f64>,
    /// Items of the jobs.
    pub items: ItemStats,
    /// The finished jobs' running time (all their runs), ms.
    pub job_duration: Option<Percentiles>,
    /// Completed and dead-lettered items' time (their attempts summed), ms.
    pub item_duration: Option<Percentiles>,
    /// Items' wait for a free agent, ms.
    pub queue_wait: Option<Percentiles>,
    /// Per step name, in the order first seen.
    pub steps: Vec<StepStats>,
    /// Jobs with a `deadline:`; none when no job of the name had one.
    pub deadline: Option<DeadlineStats>,
    /// How right the ETA was; none when no job showed an estimate and ended.
    pub eta: Option<EtaStats>,
    /// The headline figures of the period before; none when the name had no job then.
    pub previous: Option<Headline>,
}

/// Items of a name's jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemStats {
    /// Items in the jobs.
    pub total: u64,
    /// Completed, dead-lettered or skipped.
    pub processed: u64,
    /// Completed.
    pub completed: u64,
    /// In the DLQ.
    pub dead_lettered: u64,
    /// Skipped by `when:`.
    pub skipped: u64,
    /// Attempts that ended.
    pub attempts: u64,
    /// Attempts that failed or timed out.
    pub failed_attempts: u64,
    /// Failed attempts followed by another attempt of their item.
    pub retries: u64,
    /// `dead_lettered / (completed + dead_lettered)`.
    pub dlq_rate: Option<f64>,
    /// Processed items per second of the jobs' running time.
    pub throughput_per_s: Option<f64>,
}

/// Nearest-rank percentiles of durations, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Durations counted.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// One step name across a name's jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepStats {
    /// The step.
    pub name: String,
    /// Times it ran.
    pub ran: u64,
    /// Times `when:` skipped it.
    pub skipped: u64,
    /// `skipped / (ran + skipped)`.
    pub skip_rate: Option<f64>,
    /// Attempts that failed at it.
    pub failed: u64,
    /// Of those, the ones retried.
    pub retries: u64,
    /// Items dead-lettered after failing at it.
    pub dead_lettered: u64,
    /// `dead_lettered` over the items that ran it.
    pub dlq_rate: Option<f64>,
    /// Its durations when it ran.
    pub duration: Option<Percentiles>,
}

/// Deadline compliance of a name's jobs that had a `deadline:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadlineStats {
    /// Jobs with a deadline.
    pub jobs: u64,
    /// Finished by their deadline.
    pub met: u64,
    /// Finished after it, or unfinished with it passed.
    pub missed: u64,
    /// Unfinished, deadline still ahead.
    pub open: u64,
    /// `met / (met + missed)`.
    pub compliance: Option<f64>,
    /// How late the missed ones were (at the time of the stats for unfinished ones), ms.
    pub late: Option<Percentiles>,
    /// How early the met ones finished, ms.
    pub margin: Option<Percentiles>,
}

/// How right the ETA of a name's jobs was (docs/eta.md, "How right it was").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EtaStats {
    /// Jobs judged.
    pub jobs: u64,
    /// Estimates they showed.
    pub estimates: u64,
    /// Share of those whose P10-P90 range held the map's true end.
    pub coverage: f64,
    /// The realized error at 10, 25, 50 and 75% done, each over the jobs that reached it.
    pub at_percent: Vec<EtaPointStats>,
}

/// The ETA's realized error at one point of progress, across jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EtaPointStats {
    /// Percent done.
    pub percent: u8,
    /// Jobs that showed an estimate at or past it.
    pub jobs: u64,
    /// Median of `|estimate - truth| / truth`.
    pub median_relative: f64,
    /// Largest of them.
    pub max_relative: f64,
    /// How many of those estimates came from history (`basis: history`).
    pub from_history: u64,
}

/// The figures the overview compares across periods.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    /// Jobs created.
    pub runs: u64,
    /// As [`NameStats::success_rate`].
    pub success_rate: Option<f64>,
    /// p95 of the finished jobs' running time, ms.
    pub job_p95_ms: Option<f64>,
    /// p95 of item durations, ms.
    pub item_p95_ms: Option<f64>,
    /// As [`ItemStats::throughput_per_s`].
    pub throughput_per_s: Option<f64>,
}

/// The stats of the jobs `query` selects and of the period of the same length before, as of
/// `now` (epoch ms; deadlines of unfinished jobs are judged against it). Summaries of finished
/// jobs that are missing or out of date are made and kept on the way.
pub fn compute(store: &dyn Store, query: &StatsQuery, now: i64) -> Result<Stats, StoreError> {
    let length = query.to.saturating_sub(query.from).max(0);
    let previous_from = query.from.saturating_sub(length);
    let current = read_period(store, query.from, query.to, &query.name_glob)?;
    let previous = read_period(store, previous_from, query.from, &query.name_glob)?;
    let mut previous: BTreeMap<String, NameStats> = group(previous)
        .into_iter()
        .map(|(name, jobs)| (name.clone(), name_stats(name, &jobs, now)))
        .collect();
    let names = group(current)
        .into_iter()
        .map(|(name, jobs)| {
            let mut stats = name_stats(name, &jobs, now);
            stats.previous = previous.remove(&stats.name).map(|p| p.headline());
            stats
        })
        .collect();
    Ok(Stats {
        from: query.from,
        to: query.to,
        previous_from,
        names,
    })
}

/// The jobs of `[from, to)` with their summaries, made where missing or out of date.
fn read_period(
    store: &dyn Store,
    from: i64,
    to: i64,
    name_glob: &Option<String>,
) -> Result<Vec<(PeriodJob, JobSummary)>, StoreError> {
    let jobs = store.period_jobs(&PeriodQuery {
        from,
        to,
        name_glob: name_glob.clone(),
    })?;
    let mut read = Vec::with_capacity(jobs.len());
    for job in jobs {
        let kept = job
            .summary
            .as_deref()
            .and_then(|text| serde_json::from_str::<JobSummary>(text).ok())
            .filter(|s| s.version == summary::SUMMARY_VERSION);
        let summary = match kept {
            Some(summary) => summary,
            None => {
                let record = match store.job(job.id) {
                    Ok(record) => record,
                    // Deleted since the list was read: not part of the period any more.
                    Err(StoreError::JobNotFound { .. }) => continue,
                    Err(e) => return Err(e),
                };
                if record.status.is_finished() {
                    let summary = summarize(store, &record)?;
                    let text = serde_json::to_string(&summary)
                        .expect("a summary is plain data that always serialises");
                    store.keep_summary(record.id, record.updated_at, &text)?;
                    summary
                } else {
                    summary::unfinished(&record)
                }
            }
        };
        read.push((job, summary));
    }
    Ok(read)
}

/// The jobs by name.
fn group(jobs: Vec<(PeriodJob, JobSummary)>) -> BTreeMap<String, Vec<(PeriodJob, JobSummary)>> {
    let mut by_name: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for job in jobs {
        by_name.entry(job.0.name.clone()).or_default().push(job);
    }
    by_name
}

/// The stats of one name's jobs.
fn name_stats(name: String, jobs: &[(PeriodJob, JobSummary)], now: i64) -> NameStats {
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let (mut finished, mut completed_jobs, mut running_ms) = (0u64, 0u64, 0i64);
    let mut job_ms: Vec<f64> = Vec::new();
    let (mut items, mut queue_wait) = (HistogramSum::default(), HistogramSum::default());
    let mut item_stats = ItemStats {
        total: 0,
        processed: 0,
        completed: 0,
        dead_lettered: 0,
        skipped: 0,
        attempts: 0,
        failed_attempts: 0,
        retries: 0,
        dlq_rate: None,
        throughput_per_s: None,
    };
    let mut steps: Vec<StepTally> = Vec::new();
    let (mut deadline_jobs, mut met, mut missed, mut open) = (0u64, 0u64, 0u64, 0u64);
    let (mut late, mut margin) = (Vec::new(), Vec::new());
    let mut judged: Vec<&mmm_core::metrics::EtaAccuracy> = Vec::new();
    for (job, summary) in jobs {
        *by_status
            .entry(job.status.as_str().to_string())
            .or_insert(0) += 1;
        let done = job.status.is_finished();
        if done {
            finished += 1;
            job_ms.push(job.duration_ms as f64);
        }
        if job.status == JobStatus::Completed {
            completed_jobs += 1;
        }
        running_ms += job.duration_ms.max(0);
        items.add(&summary.item_us);
        queue_wait.add(&summary.queue_wait_us);
        item_stats.total += summary.items;
        item_stats.completed += summary.completed;
        item_stats.dead_lettered += summary.dead_lettered;
        item_stats.skipped += summary.skipped;
        item_stats.attempts += summary.attempts;
        item_stats.failed_attempts += summary.failed_attempts;
        item_stats.retries += summary.retries;
        for step in &summary.steps {
            let at = match steps.iter().position(|s| s.name == step.name) {
                Some(at) => at,
                None => {
                    steps.push(StepTally {
                        name: step.name.clone(),
                        ..StepTally::default()
                    });
                    steps.len() - 1
                }
            };
            steps[at].add(step);
        }
        if let Some(deadline) = summary.deadline_at {
            deadline_jobs += 1;
            match (done, job.finished_at) {
                (true, Some(end)) if end <= deadline => {
                    met += 1;
                    margin.push((deadline - end) as f64);
                }
                (true, Some(end)) => {
                    missed += 1;
                    late.push((end - deadline) as f64);
                }
                _ if now > deadline => {
                    missed += 1;
                    late.push((now - deadline) as f64);
                }
                _ => open += 1,
            }
        }
        if let Some(eta) = &summary.eta {
            judged.push(eta);
        }
    }
    item_stats.processed = item_stats.completed + item_stats.dead_lettered + item_stats.skipped;
    item_stats.dlq_rate = ratio(
        item_stats.dead_lettered,
        item_stats.completed + item_stats.dead_lettered,
    );
    item_stats.throughput_per_s =
        (running_ms > 0).then(|| item_stats.processed as f64 * 1_000.0 / running_ms as f64);
    NameStats {
        name,
        runs: jobs.len() as u64,
        by_status,
        finished,
        success_rate: ratio(completed_jobs, finished),
        items: item_stats,
        job_duration: exact_percentiles(job_ms),
        item_duration: percentiles(&items),
        queue_wait: percentiles(&queue_wait),
        steps: steps
            .into_iter()
            .map(|s| StepStats {
                skip_rate: ratio(s.skipped, s.ran + s.skipped),
                dlq_rate: ratio(s.dead_lettered, s.items),
                duration: percentiles(&s.durations),
                name: s.name,
                ran: s.ran,
                skipped: s.skipped,
                failed: s.failed,
                retries: s.retries,
                dead_lettered: s.dead_lettered,
            })
            .collect(),
        deadline: (deadline_jobs > 0).then(|| DeadlineStats {
            jobs: deadline_jobs,
            met,
            missed,
            open,
            compliance: ratio(met, met + missed),
            late: exact_percentiles(late),
            margin: exact_percentiles(margin),
        }),
        eta: eta_stats(&judged),
        previous: None,
    }
}

impl NameStats {
    /// The figures compared across periods.
    fn headline(&self) -> Headline {
        Headline {
            runs: self.runs,
            success_rate: self.success_rate,
            job_p95_ms: self.job_duration.map(|p| p.p95_ms),
            item_p95_ms: self.item_duration.map(|p| p.p95_ms),
            throughput_per_s: self.items.throughput_per_s,
        }
    }
}

/// The ETA's judgements of several jobs together.
fn eta_stats(judged: &[&mmm_core::metrics::EtaAccuracy]) -> Option<EtaStats> {
    if judged.is_empty() {
        return None;
    }
    let estimates: u64 = judged.iter().map(|j| j.estimates).sum();
    let covered: u64 = judged.iter().map(|j| j.covered).sum();
    let at_percent = CHECKPOINTS
        .iter()
        .filter_map(|&percent| {
            let errors: Vec<_> = judged
                .iter()
                .filter_map(|j| j.at_percent.iter().find(|e| e.percent == percent))
                .collect();
            let mut relative: Vec<f64> = errors.iter().map(|e| e.relative).collect();
            relative.sort_by(f64::total_cmp);
            let median = *relative.get(relative.len().div_ceil(2).checked_sub(1)?)?;
            Some(EtaPointStats {
                percent,
                jobs: errors.len() as u64,
                median_relative: median,
                max_relative: *relative.last()?,
                from_history: errors
                    .iter()
                    .filter(|e| e.basis == mmm_core::metrics::Basis::History)
                    .count() as u64,
            })
        })
        .collect();
    Some(EtaStats {
        jobs: judged.len() as u64,
        estimates,
        coverage: if estimates == 0 {
            0.0
        } else {
            covered as f64 / estimates as f64
        },
        at_percent,
    })
}

/// `part / whole`, none when `whole` is 0.
fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// One step name's figures, added up across jobs.
#[derive(Default)]
struct StepTally {
    name: String,
    ran: u64,
    skipped: u64,
    failed: u64,
    retries: u64,
    dead_lettered: u64,
    items: u64,
    durations: HistogramSum,
}

impl StepTally {
    fn add(&mut self, step: &StepSummary) {
        self.ran += step.ran;
        self.skipped += step.skipped;
        self.failed += step.failed;
        self.retries += step.retries;
        self.dead_lettered += step.dead_lettered;
        self.items += step.items;
        self.durations.add(&step.durations_us);
    }
}

/// Percentiles of summed histograms of µs, in ms.
fn percentiles(histogram: &HistogramSum) -> Option<Percentiles> {
    let at = |q| histogram.quantile_us(q).map(|us| us / 1_000.0);
    Some(Percentiles {
        count: histogram.count(),
        p50_ms: at(0.50)?,
        p95_ms: at(0.95)?,
        p99_ms: at(0.99)?,
    })
}

/// Exact nearest-rank percentiles of `values` (ms).
fn exact_percentiles(mut values: Vec<f64>) -> Option<Percentiles> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let at = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(Percentiles {
        count: n as u64,
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
    })
}
