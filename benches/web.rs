//! The dashboard's figures (docs/PERFORMANCE.md), measured against a real `mmm run` in another
//! process and the web server in this one, reading the same store:
//!
//! 1. event-to-client latency over `/ws` while 1,000 agents work (`now - event.at` for every
//!    event a WebSocket client receives; `at` is stamped by the runner when the change happens),
//!    with the server in this process and in the runner's (`mmm run --dashboard`);
//! 2. the runner's wall time for the same job with 0 and with 100 WebSocket clients following it;
//! 3. this process's resident memory while one client follows a busy job, reading everything
//!    or nothing, each second after a warm-up.
//!
//! Not a test: `cargo bench --bench web` (prints the figures). Each part takes 10-30 s;
//! `WEB_BENCH=latency|latency-in-process|runner|memory` runs only that part (e.g. under a profiler);
//! `WEB_BENCH_RUNS` sets the runner part's runs (3), `WEB_BENCH_CLIENTS` its clients (100).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use mmm_web::{self as web, AppState};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

mod support;
use support::{first_job, with_dashboard, write_job};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

fn mmm_run(dir: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_mmm"))
        .args(["run", "job.yml", "--progress", "none"])
        .current_dir(dir)
        .env_remove("MMM_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mmm runs")
}

async fn server(store: std::sync::Arc<dyn mmm_store::Store>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(web::serve(
        listener,
        AppState::new(store, None),
        std::future::pending(),
    ));
    addr
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn follow(addr: std::net::SocketAddr, job: &str) -> Socket {
    // The clients stand in for browsers on other machines: a small read buffer keeps their
    // own CPU (tungstenite zeroes the buffer's free part on every read) off the shared cores.
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/ws"), Some(config), true)
            .await
            .unwrap();
    socket
        .send(Message::text(
            json!({"subscribe": "job", "job": job}).to_string(),
        ))
        .await
        .unwrap();
    socket
}

fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn latency() {
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), 6_000, 1_000, "sleep 1");
    let mut child = mmm_run(dir.path());
    let (store, job) = first_job(dir.path());
    let addr = server(store.clone()).await;
    let floor = store_floor(store, &job);
    let (latencies, resyncs) = event_latencies(follow(addr, &job).await).await;
    let _ = child.kill();
    let _ = child.wait();
    print_floor(floor);
    print_latencies("runner in another process", latencies, resyncs);
}

/// The floor: how late events become visible in the store at all (the runner's batching
/// writer and its commit), seen by a reader polling every 5 ms for 20 s beside the server.
fn store_floor(
    store: std::sync::Arc<dyn mmm_store::Store>,
    job: &str,
) -> std::thread::JoinHandle<Vec<i64>> {
    let job_id = store.resolve_job(job).unwrap();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut after = 0;
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            for event in store.events(job_id, after, 10_000).unwrap() {
                seen.push(now_ms() - event.at);
                after = event.seq;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    })
}

fn print_floor(floor: std::thread::JoinHandle<Vec<i64>>) {
    let mut floor = floor.join().unwrap();
    floor.sort_unstable();
    println!(
        "visible in the store (a reader polling every 5 ms): p50 {} ms, p99 {} ms",
        quantile(&floor, 0.5),
        quantile(&floor, 0.99),
    );
}

/// `now - event.at` for every event a client receives over 20 s, and the resyncs it got.
async fn event_latencies(mut socket: Socket) -> (Vec<i64>, usize) {
    let mut latencies = Vec::new();
    let mut resyncs = 0;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(5), socket.next()).await
        else {
            break;
        };
        let received = now_ms();
        let message: Value = serde_json::from_str(text.as_str()).unwrap();
        if message["resync"] == true {
            resyncs += 1;
        }
        for event in message["events"].as_array().into_iter().flatten() {
            latencies.push(received - event["at"].as_i64().unwrap());
        }
    }
    (latencies, resyncs)
}

fn print_latencies(setting: &str, mut latencies: Vec<i64>, resyncs: usize) {
    latencies.sort_unstable();
    println!(
        "latency, 1,000 agents, {setting}: {} events, p50 {} ms, p99 {} ms, max {} ms, resyncs {resyncs}",
        latencies.len(),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        quantile(&latencies, 1.0),
    );
}

/// The same latency with the server in the runner's process: `mmm run --dashboard`.
async fn latency_in_process() {
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), 6_000, 1_000, "sleep 1");
    // The next free port when 18080 is taken.
    let run = [
        "run",
        "job.yml",
        "--progress",
        "none",
        "--dashboard",
        "--port",
        "18080",
    ];
    let (mut child, url) = with_dashboard(dir.path(), &run);
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("an address");
    let (store, job) = first_job(dir.path());
    let floor = store_floor(store, &job);
    let (latencies, resyncs) = event_latencies(follow(addr, &job).await).await;
    let _ = child.kill();
    let _ = child.wait();
    print_floor(floor);
    print_latencies(
        "server in the runner's process (mmm run --dashboard)",
        latencies,
        resyncs,
    );
}

/// This process's CPU time (the server), and that of its waited-for children (the runner
/// and its commands), in seconds.
fn cpu_seconds() -> (f64, f64) {
    cpu_of("self")
}

/// CPU time of process `pid` ("self" for this one) and of its waited-for children, in
/// seconds: `/proc/PID/stat` fields 14-17, in clock ticks.
fn cpu_of(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<f64> = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17, so 11-14 after the name and state.
    let tick = 100.0;
    (
        (fields[11] + fields[12]) / tick,
        (fields[13] + fields[14]) / tick,
    )
}

/// The stand-in browsers of the runner part: `clients` WebSocket clients following `job`, in
/// a process of their own (this bench binary again, `WEB_BENCH_ROLE=clients`), so that the
/// server's CPU and theirs are measured apart. It says `joined` once all follow the job, and
/// `received MESSAGES BYTES` when its standard input closes.
struct Clients {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Clients {
    async fn start(addr: std::net::SocketAddr, job: &str, clients: usize) -> Clients {
        use std::io::BufRead;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("--bench")
            .env("WEB_BENCH_ROLE", "clients")
            .env("WEB_BENCH_ADDR", addr.to_string())
            .env("WEB_BENCH_JOB", job)
            .env("WEB_BENCH_CLIENTS", clients.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let lines = tokio::task::spawn_blocking(move || {
            let joined = lines.next().unwrap().unwrap();
            assert_eq!(joined, "joined");
            lines
        })
        .await
        .unwrap();
        Clients { child, lines }
    }

    /// Their CPU time so far, in seconds.
    fn cpu(&self) -> f64 {
        cpu_of(&self.child.id().to_string()).0
    }

    /// Stops them: the messages and bytes they received in all.
    fn stop(mut self) -> (u64, u64) {
        drop(self.child.stdin.take());
        let line = self.lines.next().unwrap().unwrap();
        self.child.wait().unwrap();
        let counts: Vec<u64> = line
            .trim_start_matches("received ")
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        (counts[0], counts[1])
    }
}

/// The clients' process (see [`Clients`]).
async fn clients_main() {
    let addr: std::net::SocketAddr = std::env::var("WEB_BENCH_ADDR").unwrap().parse().unwrap();
    let job = std::env::var("WEB_BENCH_JOB").unwrap();
    let clients: usize = std::env::var("WEB_BENCH_CLIENTS").unwrap().parse().unwrap();
    let received = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let mut sockets = Vec::new();
    for _ in 0..clients {
        sockets.push(follow(addr, &job).await);
    }
    for mut socket in sockets {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                received.0.fetch_add(1, Ordering::Relaxed);
                received
                    .1
                    .fetch_add(message.len() as u64, Ordering::Relaxed);
            }
        });
    }
    println!("joined");
    tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut rest = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut rest);
    })
    .await
    .unwrap();
    println!(
        "received {} {}",
        received.0.load(Ordering::Relaxed),
        received.1.load(Ordering::Relaxed)
    );
}

/// The runner's wall time for 3,000 `sleep 0` items on 8 agents, with `clients` following
/// it; prints the CPU the server, the clients and the runner took.
async fn run_time(clients: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), 3_000, 8, "sleep 0");
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut child = mmm_run(dir.path());
    let (store, job) = first_job(dir.path());
    let addr = server(store).await;
    let followers = if clients > 0 {
        Some(Clients::start(addr, &job, clients).await)
    } else {
        None
    };
    let cpu_joined = cpu_seconds();
    let clients_joined = followers.as_ref().map_or(0.0, Clients::cpu);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(status.success());
    let cpu_after = cpu_seconds();
    let clients_cpu = followers.as_ref().map_or(0.0, Clients::cpu);
    println!(
        "  {clients} clients: {:.2} s; CPU: server {:.2} s ({:.2} s of it while they joined), \
         clients {:.2} s ({:.2} s joining), runner and its commands {:.2} s",
        took.as_secs_f64(),
        cpu_after.0 - cpu_before.0,
        cpu_joined.0 - cpu_before.0,
        clients_cpu,
        clients_joined,
        cpu_after.1 - cpu_before.1,
    );
    if let Some(followers) = followers {
        let (messages, bytes) = followers.stop();
        let per_client_s = (clients as f64) * took.as_secs_f64();
        println!(
            "    each client got {:.1} messages/s, {:.0} KiB/s",
            messages as f64 / per_client_s,
            bytes as f64 / per_client_s / 1024.0,
        );
    }
    took
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Seconds of warm-up (the shared event log filling to its 5,000 events, the allocator's
/// arenas), then seconds measured (`WEB_BENCH_SECONDS`, default 30), of the memory figures.
const WARM_UP_S: usize = 15;
fn measured_seconds() -> usize {
    std::env::var("WEB_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// The server's resident memory each second while one client follows a busy job, reading
/// (`stalled` false) or not: the samples after the warm-up, and whether the job was still
/// running at the end (else the figures mean nothing).
async fn memory_with_one_client(stalled: bool) -> (Vec<u64>, bool) {
    let dir = tempfile::tempdir().unwrap();
    // About 1,500 items a second here: enough for the longest measurement asked for.
    write_job(
        dir.path(),
        2_000 * (WARM_UP_S + measured_seconds()),
        1_000,
        "sleep 0.5",
    );
    let mut child = mmm_run(dir.path());
    let (store, job) = first_job(dir.path());
    let addr = server(store).await;
    // Subscribes, then never reads again; or reads everything.
    let mut client = follow(addr, &job).await;
    let (reader, _kept) = if stalled {
        (None, Some(client))
    } else {
        let reader = tokio::spawn(async move { while let Some(Ok(_)) = client.next().await {} });
        (Some(reader), None)
    };
    let mut samples = Vec::new();
    for second in 0..WARM_UP_S + measured_seconds() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if second >= WARM_UP_S {
            samples.push(rss_kib() / 1024);
        }
    }
    let running = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    if let Some(reader) = reader {
        reader.abort();
    }
    (samples, running)
}

/// Runs of each runner-time measurement (`WEB_BENCH_RUNS` to change).
fn runs() -> usize {
    std::env::var("WEB_BENCH_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(3)
}

fn main() {
    // `cargo test --benches` runs bench targets once with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if std::env::var("WEB_BENCH_ROLE").as_deref() == Ok("clients") {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(clients_main());
        return;
    }
    let only = std::env::var("WEB_BENCH").ok();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        if part("latency") {
            latency().await;
        }
        if part("latency-in-process") {
            latency_in_process().await;
        }
        if part("runner") {
            runner_overhead().await;
        }
        if part("memory") {
            memory().await;
        }
    });
}

/// How many clients follow the runner in the runner part: 100, or `WEB_BENCH_CLIENTS` (1 shows
/// what a job's shared feed costs whatever the number of clients).
fn runner_clients() -> usize {
    std::env::var("WEB_BENCH_CLIENTS")
        .ok()
        .and_then(|clients| clients.parse().ok())
        .unwrap_or(100)
}

/// The runner's time alone and with 100 clients, alternating runs, medians: the machine is
/// shared, a single pair is noise.
async fn runner_overhead() {
    let (mut alone, mut watched) = (Vec::new(), Vec::new());
    let runs = runs();
    let clients = runner_clients();
    for _ in 0..runs {
        alone.push(run_time(0).await.as_secs_f64());
        watched.push(run_time(clients).await.as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "runner runs, alone: {alone:.2?} s; with {clients} WebSocket clients: {watched:.2?} s"
    );
    let (alone, watched) = (median(&mut alone), median(&mut watched));
    println!(
        "runner, 3,000 items on 8 agents, median of {runs}: {alone:.2} s alone, {watched:.2} s with {clients} WebSocket clients ({:+.1} %)",
        (watched / alone - 1.0) * 100.0
    );
}

async fn memory() {
    for (stalled, client) in [(false, "reading"), (true, "stalled")] {
        let (samples, running) = memory_with_one_client(stalled).await;
        let (min, max) = (samples.iter().min(), samples.iter().max());
        println!(
            "memory with one {client} client, MiB each second from {WARM_UP_S} s to {} s: {samples:?} (min {min:?}, max {max:?}){}",
            WARM_UP_S + measured_seconds(),
            if running {
                ""
            } else {
                "; THE JOB ENDED EARLY: not a valid measurement"
            }
        );
    }
}
