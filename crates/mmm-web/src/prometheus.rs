//! `GET /metrics`: the store's jobs as Prometheus metrics in the OpenMetrics text format,
//! read fresh on every scrape (the store is the source of truth; nothing is cached here).
//!
//! The number of series depends on the running jobs and the job names, never on history:
//! - per job (labels `job` = id, `name`), only while it runs and for the retention after its
//!   record last changed (`mmm serve --metrics-retention`, default 15 minutes): items by
//!   status, percent, items in flight, whether a live process runs it, agents by state,
//!   throughput over the snapshot's window, the item durations of the newest snapshot as a
//!   histogram, and active alerts;
//! - by job name, over every job of the store: jobs by status, and the running time of the
//!   finished ones as a histogram; over the jobs whose run finished (not interrupted),
//!   their items by status and the durations of the items that ended (completed or
//!   dead-lettered) as a histogram, as each job's run last ended (kept by the store then,
//!   `mmm_store::JobReads::name_item_totals`, so a scrape reads one row per name);
//! - jobs by status.
//!
//! The by-name series are gauges, not OpenMetrics counters (`_total`), though they mostly grow
//! as jobs end: a counter must never go down between scrapes, and these do. `mmm store move`
//! deletes a job from the store it leaves, taking its figures off its name's; a resume or a
//! DLQ retry turns an ended job's dead-lettered items into completed ones; jobs leave `pending`
//! and `running`. A gauge reports what the store holds now; `delta()` or `deriv()` over it
//! reads as a rate.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::{ApiError, AppState, JobSummary, blocking};
use mmm_core::job::now_ms;
use mmm_core::metrics::DurationSummary;
use mmm_core::metrics::durations::BUCKET_BOUNDS_SECONDS;
use mmm_store::{JobQuery, JobTotals, Store};

/// The content type of the OpenMetrics text format.
pub(super) const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;
type FloatGauges = Family<Labels, Gauge<f64, AtomicU64>>;
type IntGauges = Family<Labels, Gauge>;

/// A histogram as a snapshot recorded it (`metrics.items`: count, mean and cumulative counts
/// at [`BUCKET_BOUNDS_SECONDS`]): served as a Prometheus histogram, `_bucket`, `_sum` and
/// `_count`. Set once per scrape.
#[derive(Debug, Default)]
struct SnapshotHistogram {
    data: Mutex<Option<HistogramData>>,
}

#[derive(Debug, Clone)]
struct HistogramData {
    sum_seconds: f64,
    count: u64,
    /// Per bucket (not cumulative: the encoder sums), the last one `+Inf`.
    buckets: Vec<(f64, u64)>,
}

impl SnapshotHistogram {
    /// The histogram of a snapshot's duration summary; `None` for a summary without buckets
    /// (recorded by an older mmm).
    fn of(summary: &DurationSummary) -> Option<HistogramData> {
        let count = summary.count;
        let cumulative = summary.buckets?;
        Some(HistogramData::cumulative(
            summary.mean_ms * count as f64 / 1_000.0,
            count,
            &BUCKET_BOUNDS_SECONDS,
            &cumulative,
        ))
    }

    fn set(&self, data: HistogramData) {
        *self.data.lock().unwrap_or_else(|e| e.into_inner()) = Some(data);
    }
}

impl HistogramData {
    /// The histogram of `count` samples summing `sum_seconds`, with `cumulative` counts at
    /// `bounds` (ascending), and the rest in `+Inf`.
    fn cumulative(sum_seconds: f64, count: u64, bounds: &[f64], cumulative: &[u64]) -> Self {
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        let mut below = 0;
        for (le, at_most) in bounds.iter().zip(cumulative) {
            let at_most = (*at_most).max(below).min(count);
            buckets.push((*le, at_most - below));
            below = at_most;
        }
        buckets.push((f64::INFINITY, count - below));
        HistogramData {
            sum_seconds,
            count,
            buckets,
        }
    }

    /// Adds the jobs of `totals` (cumulative counts at [`JOB_DURATION_BOUNDS_SECONDS`]).
    fn add(&mut self, totals: &JobTotals) {
        self.sum_seconds += totals.duration_ms as f64 / 1_000.0;
        self.count += totals.jobs;
        let mut below = 0;
        for (bucket, at_most) in self.buckets.iter_mut().zip(&totals.at_most) {
            let at_most = (*at_most).max(below).min(totals.jobs);
            bucket.1 += at_most - below;
            below = at_most;
        }
        if let Some(last) = self.buckets.last_mut() {
            last.1 += totals.jobs - below;
        }
    }
}

impl TypedMetric for SnapshotHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for SnapshotHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let data = self.data.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match data {
            Some(d) => {
                encoder.encode_histogram::<NoLabelSet>(d.sum_seconds, d.count, &d.buckets, None)
            }
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The bounds of the job running-time histogram, in seconds: a minute to a day.
const JOB_DURATION_BOUNDS_SECONDS: [f64; 12] = [
    1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1_800.0, 3_600.0, 7_200.0, 21_600.0, 43_200.0, 86_400.0,
];

/// The exposition of `store`: per-job series for the jobs running or changed within
/// `retention`, the rest by name.
pub(super) fn render(store: &dyn Store, retention: Duration) -> Result<String, ApiError> {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let jobs = JobSummary::load_matching(
        store,
        &JobQuery {
            active_since: Some(now_ms().saturating_sub(retention_ms)),
            ..JobQuery::default()
        },
    )?;
    let bounds_ms: Vec<i64> = JOB_DURATION_BOUNDS_SECONDS
        .iter()
        .map(|s| (s * 1_000.0) as i64)
        .collect();
    let totals = store.job_totals(&bounds_ms)?;
    let item_totals = store.name_item_totals()?;
    let mut registry = Registry::with_prefix("mmm");
    let by_status = IntGauges::default();
    let items = IntGauges::default();
    let percent = FloatGauges::default();
    let in_flight = IntGauges::default();
    let live = IntGauges::default();
    let agents = IntGauges::default();
    let rate = FloatGauges::default();
    let durations = Family::<Labels, SnapshotHistogram>::default();
    let alerts = IntGauges::default();
    let counter_totals = FloatGauges::default();
    let counter_per_item = FloatGauges::default();
    let counter_per_second = FloatGauges::default();
    let counter_forecast = FloatGauges::default();
    for job in &jobs {
        let base = vec![
            ("job".to_string(), job.id.to_string()),
            ("name".to_string(), job.name.clone()),
        ];
        let with = |key: &str, value: &str| {
            let mut labels = base.clone();
            labels.push((key.to_string(), value.to_string()));
            labels
        };
        let c = &job.counts;
        for (status, n) in c.by_status() {
            items
                .get_or_create(&with("status", status.as_str()))
                .set(n as i64);
        }
        percent.get_or_create(&base).set(job.percent);
        in_flight.get_or_create(&base).set(c.running as i64);
        live.get_or_create(&base).set(i64::from(job.live));
        alerts.get_or_create(&base).set(job.alerts.len() as i64);
        let Some(record) = store.latest_snapshot(job.id)? else {
            continue;
        };
        let snapshot = record.payload;
        let mut by_state = std::collections::BTreeMap::<&str, i64>::new();
        for row in &snapshot.agents {
            *by_state.entry(row.agent.state.as_str()).or_default() += 1;
        }
        for (state, n) in by_state {
            agents.get_or_create(&with("state", state)).set(n);
        }
        if let Some(r) = job.throughput {
            rate.get_or_create(&base).set(r);
        }
        // Counters are named by the job's steps: served for running jobs only, so the series
        // end with the job (docs/api-work.md).
        if job.status == mmm_core::job::JobStatus::Running {
            let per_second = snapshot.rates.as_ref().map(|r| &r.counters_per_second);
            let forecasts = snapshot.metrics.as_ref().map(|m| &m.counters);
            for (counter, total) in &snapshot.counters {
                let labels = with("counter", counter);
                counter_totals.get_or_create(&labels).set(total.get());
                if let Some(r) = per_second.and_then(|r| r.get(counter)) {
                    counter_per_second.get_or_create(&labels).set(*r);
                }
                if let Some(f) = forecasts.and_then(|f| f.get(counter)) {
                    counter_per_item.get_or_create(&labels).set(f.per_item);
                    for (estimate, value) in
                        [("expected", f.expected), ("p10", f.p10), ("p90", f.p90)]
                    {
                        let mut labels = labels.clone();
                        labels.push(("estimate".to_string(), estimate.to_string()));
                        counter_forecast.get_or_create(&labels).set(value);
                    }
                }
            }
        }
        if let Some(histogram) = snapshot
            .metrics
            .as_ref()
            .and_then(|m| m.items.as_ref())
            .and_then(SnapshotHistogram::of)
        {
            durations.get_or_create(&base).set(histogram);
        }
    }
    let by_name = IntGauges::default();
    let job_durations = Family::<Labels, SnapshotHistogram>::default();
    let mut statuses = std::collections::BTreeMap::<&str, u64>::new();
    let mut finished = std::collections::BTreeMap::<&str, HistogramData>::new();
    for t in &totals {
        *statuses.entry(t.status.as_str()).or_default() += t.jobs;
        by_name
            .get_or_create(&vec![
                ("name".to_string(), t.name.clone()),
                ("status".to_string(), t.status.to_string()),
            ])
            .set(t.jobs as i64);
        if t.status.is_finished() {
            let histogram = finished.entry(&t.name).or_insert_with(|| HistogramData {
                sum_seconds: 0.0,
                count: 0,
                buckets: JOB_DURATION_BOUNDS_SECONDS
                    .iter()
                    .chain([&f64::INFINITY])
                    .map(|le| (*le, 0))
                    .collect(),
            });
            histogram.add(t);
        }
    }
    for (name, histogram) in finished {
        job_durations
            .get_or_create(&vec![("name".to_string(), name.to_string())])
            .set(histogram);
    }
    let name_items = IntGauges::default();
    let item_durations = Family::<Labels, SnapshotHistogram>::default();
    for t in &item_totals {
        let name = ("name".to_string(), t.name.clone());
        let c = &t.items;
        for (status, n) in c.by_status() {
            name_items
                .get_or_create(&vec![
                    name.clone(),
                    ("status".to_string(), status.as_str().to_string()),
                ])
                .set(n as i64);
        }
        item_durations
            .get_or_create(&vec![name])
            .set(HistogramData::cumulative(
                t.duration_us as f64 / 1_000_000.0,
                t.timed,
                &BUCKET_BOUNDS_SECONDS,
                &t.at_most,
            ));
    }
    for (status, n) in statuses {
        by_status
            .get_or_create(&vec![("status".to_string(), status.to_string())])
            .set(n as i64);
    }
    registry.register("jobs", "Jobs in the store by status", by_status);
    registry.register("name_jobs", "Jobs in the store by name and status", by_name);
    registry.register(
        "name_job_duration_seconds",
        "Running time of the finished jobs of a name",
        job_durations,
    );
    registry.register(
        "name_items",
        "Items of the ended jobs of a name by status, as each run last ended",
        name_items,
    );
    registry.register(
        "name_item_duration_seconds",
        "Durations of the items that ended in the ended jobs of a name",
        item_durations,
    );
    registry.register("job_items", "A job's items by status", items);
    registry.register("job_percent", "A job's items done, percent", percent);
    registry.register(
        "job_in_flight",
        "A job's items with an attempt in flight",
        in_flight,
    );
    registry.register("job_live", "1 while a live process runs the job", live);
    registry.register(
        "job_agents",
        "A job's agents by state (newest snapshot)",
        agents,
    );
    registry.register(
        "job_throughput_items_per_second",
        "Items finished per second over the snapshot's rolling window",
        rate,
    );
    registry.register(
        "job_item_duration_seconds",
        "Item durations recorded by the newest snapshot",
        durations,
    );
    registry.register("job_alerts", "A job's active alerts", alerts);
    registry.register(
        "job_counter",
        "A running job's counter reported by its steps (newest snapshot)",
        counter_totals,
    );
    registry.register(
        "job_counter_per_item",
        "A running job's counter, mean per item that ended",
        counter_per_item,
    );
    registry.register(
        "job_counter_per_second",
        "A running job's counter per second over its run",
        counter_per_second,
    );
    registry.register(
        "job_counter_forecast",
        "A running job's counter expected at the end of the job (estimate: expected, p10, p90)",
        counter_forecast,
    );
    let mut text = String::new();
    encode(&mut text, &registry)
        .map_err(|_| ApiError::Internal("could not encode the metrics".into()))?;
    Ok(text)
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let retention = state.metrics_retention;
    let text = blocking(move || render(store.as_ref(), retention)).await?;
    Ok(([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], text).into_response())
}
