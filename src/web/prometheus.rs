//! `GET /metrics`: the store's jobs as Prometheus metrics in the OpenMetrics text format,
//! read fresh on every scrape (the store is the source of truth; nothing is cached here).
//!
//! Per job (labels `job` = id, `name`): items by status, percent, items in flight, whether a
//! live process runs it, agents by state, throughput over the snapshot's window, the item
//! duration quantiles of the newest snapshot, and active alerts; and jobs by status.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;

use super::{ApiError, AppState, JobSummary, blocking};
use crate::store::Store;

/// The content type of the OpenMetrics text format.
pub(super) const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;
type FloatGauges = Family<Labels, Gauge<f64, AtomicU64>>;
type IntGauges = Family<Labels, Gauge>;

/// The exposition of every job in `store`.
pub(super) fn render(store: &dyn Store) -> Result<String, ApiError> {
    let jobs = JobSummary::load_all(store)?;
    let mut registry = Registry::with_prefix("mmm");
    let by_status = IntGauges::default();
    let items = IntGauges::default();
    let percent = FloatGauges::default();
    let in_flight = IntGauges::default();
    let live = IntGauges::default();
    let agents = IntGauges::default();
    let rate = FloatGauges::default();
    let durations = FloatGauges::default();
    let alerts = IntGauges::default();
    let mut statuses = std::collections::BTreeMap::<String, i64>::new();
    for job in &jobs {
        *statuses.entry(job.status.to_string()).or_default() += 1;
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
        for (status, n) in [
            ("pending", c.pending),
            ("running", c.running),
            ("completed", c.completed),
            ("failed", c.failed),
            ("dead_lettered", c.dead_lettered),
            ("skipped", c.skipped),
        ] {
            items.get_or_create(&with("status", status)).set(n as i64);
        }
        percent.get_or_create(&base).set(job.percent);
        in_flight.get_or_create(&base).set(c.running as i64);
        live.get_or_create(&base).set(i64::from(job.live));
        alerts.get_or_create(&base).set(job.alerts.len() as i64);
        let snapshot = store.latest_snapshot(job.id)?;
        let Some(snapshot) = snapshot else { continue };
        let payload = &snapshot.payload;
        if let Some(list) = payload.get("agents").and_then(Value::as_array) {
            let mut counts = std::collections::BTreeMap::<&str, i64>::new();
            for agent in list {
                let state = agent
                    .get("phase")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                *counts.entry(state).or_default() += 1;
            }
            for (state, n) in counts {
                agents.get_or_create(&with("state", state)).set(n);
            }
        }
        if let Some(r) = job.throughput {
            rate.get_or_create(&base).set(r);
        }
        if let Some(summary) = payload.pointer("/metrics/items").filter(|v| !v.is_null()) {
            for (quantile, field) in [
                ("0", "min_ms"),
                ("0.5", "p50_ms"),
                ("0.9", "p90_ms"),
                ("0.95", "p95_ms"),
                ("0.99", "p99_ms"),
                ("1", "max_ms"),
            ] {
                if let Some(ms) = summary.get(field).and_then(Value::as_f64) {
                    durations
                        .get_or_create(&with("quantile", quantile))
                        .set(ms / 1_000.0);
                }
            }
        }
    }
    for (status, n) in statuses {
        by_status
            .get_or_create(&vec![("status".to_string(), status)])
            .set(n);
    }
    registry.register("jobs", "Jobs in the store by status", by_status);
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
        "Item duration quantiles of the newest snapshot (0 = min, 1 = max)",
        durations,
    );
    registry.register("job_alerts", "A job's active alerts", alerts);
    let mut text = String::new();
    encode(&mut text, &registry)
        .map_err(|_| ApiError::Internal("could not encode the metrics".into()))?;
    Ok(text)
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let text = blocking(move || render(store.as_ref())).await?;
    Ok(([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], text).into_response())
}
