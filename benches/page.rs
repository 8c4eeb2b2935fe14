//! The dashboard page's frame rate in real headless Chromium (docs/PERFORMANCE.md): a real
//! `mmm run --dashboard` with 1,000 agents working through `sleep 1` items, its job page open
//! in Chromium, and a script on the page that counts the frames the browser paints
//! (`requestAnimationFrame`, asked for every frame, so a busy main thread shows as fewer
//! frames) and times each of the page's own renders, for 10 s. The same is measured on the
//! page of the finished job: the browser's own ceiling.
//!
//! Not a test: `cargo bench --bench page` (prints the figures; needs Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs). Takes about a minute.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../tests/shared/chromium.rs"]
mod chromium;
mod support;
use support::{first_job, with_dashboard, write_job};

/// How long each measurement on the page lasts.
const WINDOW_MS: u64 = 10_000;

/// Counts painted frames, times the page's renders and its handling of WebSocket messages
/// (parse and apply), and sums the main thread's long tasks, for [`WINDOW_MS`]; returns
/// `{frames, ms, render_ms: [..], message_ms: [..], long_tasks, long_task_ms}`.
const MEASURE: &str = r#"
const done = arguments[arguments.length - 1];
const window_ms = arguments[0];
const renders = [], messages = [];
const original = window.renderJob;
window.renderJob = function () {
  const started = performance.now();
  original.apply(this, arguments);
  renders.push(performance.now() - started);
};
const socket = live.socket, onmessage = socket.onmessage;
socket.onmessage = (m) => {
  const started = performance.now();
  onmessage(m);
  messages.push(performance.now() - started);
};
let long_tasks = 0, long_task_ms = 0;
const observer = new PerformanceObserver((list) => {
  for (const t of list.getEntries()) { long_tasks++; long_task_ms += t.duration; }
});
observer.observe({ type: 'longtask' });
let frames = 0;
const t0 = performance.now();
function frame(now) {
  frames++;
  if (now - t0 < window_ms) { requestAnimationFrame(frame); return; }
  window.renderJob = original;
  socket.onmessage = onmessage;
  observer.disconnect();
  done({ frames, ms: now - t0, render_ms: renders, message_ms: messages, long_tasks, long_task_ms });
}
requestAnimationFrame(frame);
"#;

/// Waits until the agent grid's legend says `want` (e.g. agents running), at most 60 s.
async fn wait_for_legend(client: &fantoccini::Client, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let legend = client
            .execute(
                "return document.getElementById('agent-legend').textContent",
                vec![],
            )
            .await
            .unwrap_or(Value::Null);
        if legend.as_str().is_some_and(|l| l.contains(want)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent grid never showed {want:?}: {legend}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted_ms(value: &Value) -> Vec<f64> {
    let mut ms: Vec<f64> = value
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

async fn measure(client: &fantoccini::Client, setting: &str) {
    let result = client
        .execute_async(MEASURE, vec![json!(WINDOW_MS)])
        .await
        .expect("the measuring script runs");
    let frames = result["frames"].as_f64().unwrap();
    let seconds = result["ms"].as_f64().unwrap() / 1000.0;
    let renders = sorted_ms(&result["render_ms"]);
    let messages = sorted_ms(&result["message_ms"]);
    // `+ 0.0`: the sum of nothing is -0.0.
    let busy: f64 = renders.iter().chain(&messages).sum::<f64>() / 1000.0 + 0.0;
    println!(
        "{setting}: {:.1} frames/s over {seconds:.1} s; {} renders ({:.1}/s), each p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         {} messages ({:.1}/s), each p50 {:.2} ms, p99 {:.1} ms; the page's own work {:.1}% of the time; \
         {} long tasks, {:.0} ms in all",
        frames / seconds,
        renders.len(),
        renders.len() as f64 / seconds,
        quantile(&renders, 0.5),
        quantile(&renders, 0.99),
        quantile(&renders, 1.0),
        messages.len(),
        messages.len() as f64 / seconds,
        quantile(&messages, 0.5),
        quantile(&messages, 0.99),
        busy / seconds * 100.0,
        result["long_tasks"],
        result["long_task_ms"].as_f64().unwrap_or(0.0),
    );
}

fn main() {
    // `cargo test --benches` runs bench targets once with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // 1,000 agents finish about 1,000 items a second: enough for the measurement and the
        // start of a loaded machine.
        write_job(dir.path(), 40_000, 1_000, "sleep 1");
        let run = ["run", "job.yml", "--progress", "none", "--dashboard"];
        let (mut child, url) =
            with_dashboard(dir.path(), &[&run[..], &["--port", "18280"]].concat());
        let (_, job) = first_job(dir.path());
        let profile = tempfile::tempdir().unwrap();
        // A laptop-sized window.
        let (_driver, client) = chromium::session(1440, 900, profile.path()).await;
        client
            .set_window_size(1440, 900)
            .await
            .expect("the window can be sized");
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(60)),
                None,
                None,
            ))
            .await
            .expect("the script timeout can be set");
        client
            .goto(&format!("{url}#/job/{job}"))
            .await
            .expect("the page loads");
        wait_for_legend(&client, "running").await;
        measure(&client, "job page, 1,000 agents working").await;
        let _ = child.kill();
        let _ = child.wait();
        // The same page once nothing changes, from `mmm serve` (the run's dashboard stopped
        // with it): what the browser paints at most.
        let (mut server, url) = with_dashboard(dir.path(), &["serve", "--port", "18281"]);
        client
            .goto(&format!("{url}#/job/{job}"))
            .await
            .expect("the page loads");
        wait_for_legend(&client, "running").await;
        measure(&client, "job page, the job stopped").await;
        let _ = server.kill();
        let _ = server.wait();
        let _ = client.close().await;
    });
}
