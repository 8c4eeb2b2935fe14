//! Issue 21: a PostgreSQL store that goes away mid-job (a restart, a failover, a network
//! blip) is waited for: the coordinator and its worker keep their commands running, reconnect
//! and finish the job without anyone typing `mmm resume`; an outage longer than
//! `--store-outage-limit` stops the job, resumable. The test cuts the connections with a TCP
//! proxy of its own between mmm and the server (restarting the shared server would disturb
//! other tests).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mmm_core::alerts::Rule;
use mmm_core::event::Event;
use mmm_core::job::{AttemptOutcome, JobId, JobStatus};
use mmm_store::Store;

use crate::harness::{Killed, Workspace, exit_code, wait_until};
use crate::postgres::{Schema, base_url, skipped};

/// A TCP proxy to the PostgreSQL server that the test can cut: every connection through it is
/// closed, and new ones are closed as soon as they are accepted, until it is restored.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy listens");
        let port = listener.local_addr().expect("an address").port();
        let down = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (accept_down, accept_live) = (down.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if accept_down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut live = accept_live.lock().expect("lock");
                for stream in [&client, &server] {
                    live.push(stream.try_clone().expect("a clone"));
                }
                pipe(
                    client.try_clone().expect("a clone"),
                    server.try_clone().expect("a clone"),
                );
                pipe(server, client);
            }
        });
        Proxy { port, down, live }
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for stream in self.live.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// `url` (the test server's, with its schema) pointed at the proxy: the test server's
    /// user, password and database, `url`'s options.
    fn url(&self, url: &str) -> String {
        let config: tokio_postgres::Config = base_url().parse().expect("a PostgreSQL URL");
        let user = config.get_user().unwrap_or("postgres");
        let password = config
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        let database = config.get_dbname().unwrap_or("postgres");
        let query = url.split_once('?').map_or("", |(_, query)| query);
        format!(
            "postgres://{user}{password}@127.0.0.1:{}/{database}?{query}",
            self.port
        )
    }
}

/// Copies bytes from `from` to `to` on a thread of its own until either side closes.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        if let Err(error) = std::io::copy(&mut from, &mut to) {
            assert!(
                !matches!(error.kind(), ErrorKind::OutOfMemory),
                "the proxy failed: {error}"
            );
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// The server's host and port, from the test URL.
fn upstream() -> String {
    let config: tokio_postgres::Config = base_url().parse().expect("a PostgreSQL URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// `mmm ARGS`, its stderr to `log` in the workspace, killed when dropped.
fn spawn(ws: &Workspace, args: &[&str], log: &str) -> Killed {
    Killed(ws.spawn_logged(args, log))
}

/// The coordinator's exit code; past `within`, fails with both processes' logs and the job's
/// record, so that a hang says where it is.
fn exit_with_logs(ws: &Workspace, schema: &Schema, child: &mut Child, within: Duration) -> i32 {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            return status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let record = schema.store().jobs().map(|jobs| format!("{jobs:?}"));
            panic!(
                "the coordinator did not end in {within:?}\n--- coordinator.log\n{}\n--- worker.log\n{}\n--- the job\n{record:?}",
                ws.read("coordinator.log"),
                ws.read("worker.log"),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The job's items that succeeded more than once.
fn succeeded_twice(store: &dyn Store, job: JobId) -> Vec<u64> {
    let mut succeeded: HashMap<u64, u32> = HashMap::new();
    for attempt in store.attempts(job, None).expect("attempts") {
        if attempt.outcome == Some(AttemptOutcome::Succeeded) {
            *succeeded.entry(attempt.item_index).or_default() += 1;
        }
    }
    let mut twice: Vec<u64> = succeeded
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(item, _)| item)
        .collect();
    twice.sort_unstable();
    twice
}

fn completed(schema: &Schema) -> u64 {
    schema
        .store()
        .jobs()
        .ok()
        .and_then(|jobs| jobs.into_iter().next())
        .map_or(0, |job| job.counts.completed)
}

#[test]
fn issue_21_two_store_outages_mid_job_are_ridden_out_by_the_coordinator_and_a_worker() {
    if skipped("issue_21_two_store_outages_mid_job_are_ridden_out_by_the_coordinator_and_a_worker")
    {
        return;
    }
    const ITEMS: u64 = 600;
    let schema = Schema::new();
    let proxy = Proxy::start(upstream());
    let url = proxy.url(&schema.url());
    let ws = Workspace::new();
    let items: String = (1..=ITEMS).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 2\n  steps:\n    - shell: sleep 0.05\n",
    );
    let mut coordinator = spawn(
        &ws,
        &["run", "job.yml", "--progress", "none", "--store", &url],
        "coordinator.log",
    );
    wait_until(Duration::from_secs(60), "the map to start", || {
        completed(&schema) > 0
    });
    let job = schema.only_job().id;
    let id = job.to_string();
    let mut worker = spawn(
        &ws,
        &[
            "worker",
            "--store",
            &url,
            "--job",
            &id,
            "-j",
            "2",
            "--name",
            "w",
            "--exit-when-idle",
        ],
        "worker.log",
    );
    for (after, outage) in [(100, Duration::from_secs(3)), (250, Duration::from_secs(2))] {
        wait_until(Duration::from_secs(120), "more items done", || {
            completed(&schema) >= after
        });
        proxy.cut();
        std::thread::sleep(outage);
        proxy.restore();
    }
    let code = exit_with_logs(&ws, &schema, &mut coordinator.0, Duration::from_secs(300));
    assert_eq!(code, 0, "coordinator: {}", ws.read("coordinator.log"));
    let code = exit_code(&mut worker.0, Duration::from_secs(60), "the worker");
    assert_eq!(code, 0, "worker: {}", ws.read("worker.log"));

    let record = schema.only_job();
    assert_eq!(record.status, JobStatus::Completed, "{record:?}");
    assert_eq!(
        (record.counts.completed, record.counts.total()),
        (ITEMS, ITEMS)
    );
    let store = schema.store();
    assert_eq!(succeeded_twice(store.as_ref(), job), Vec::<u64>::new());
    let events = store.events(job, 0, 100_000).expect("events");
    let outages: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::StoreUnavailable(outage) => Some(outage.duration_ms),
            _ => None,
        })
        .collect();
    assert!(
        outages.len() >= 2 && outages.iter().any(|&ms| ms >= 2_500),
        "the two outages as events: {outages:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            &e.event,
            Event::AlertRaised(alert) if alert.rule == Rule::StoreUnavailable
        )),
        "a store_unavailable alert"
    );
    let agents: std::collections::BTreeSet<String> = store
        .attempts(job, None)
        .expect("attempts")
        .into_iter()
        .map(|a| a.agent)
        .collect();
    assert!(
        agents.iter().any(|a| a.starts_with("w/")),
        "the worker took part: {agents:?}"
    );
}

#[test]
fn issue_21_an_outage_longer_than_the_limit_stops_the_job_resumably() {
    if skipped("issue_21_an_outage_longer_than_the_limit_stops_the_job_resumably") {
        return;
    }
    const ITEMS: u64 = 300;
    let schema = Schema::new();
    let proxy = Proxy::start(upstream());
    let url = proxy.url(&schema.url());
    let ws = Workspace::new();
    let items: String = (1..=ITEMS).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        "map:\n  input: items.txt\n  max_parallel: 2\n  steps:\n    - shell: sleep 0.02\n",
    );
    let mut run = spawn(
        &ws,
        &[
            "run",
            "job.yml",
            "--store",
            &url,
            "--store-outage-limit",
            "2s",
            "--progress",
            "none",
        ],
        "run.log",
    );
    wait_until(Duration::from_secs(60), "some items done", || {
        if let Ok(Some(status)) = run.0.try_wait() {
            panic!("mmm ended early ({status}): {}", ws.read("run.log"));
        }
        completed(&schema) >= 20
    });
    proxy.cut();
    let code = exit_code(&mut run.0, Duration::from_secs(60), "the run to give up");
    let log = ws.read("run.log");
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("--store-outage-limit"), "{log}");
    assert!(log.contains("mmm resume"), "{log}");

    proxy.restore();
    let job = schema.only_job();
    assert_ne!(job.status, JobStatus::Completed);
    let id = job.id.to_string();
    ws.run(&["resume", &id, "--store", &url, "--progress", "none"])
        .success();
    let record = schema.only_job();
    assert_eq!(record.status, JobStatus::Completed, "{record:?}");
    assert_eq!(
        (record.counts.completed, record.counts.total()),
        (ITEMS, ITEMS)
    );
    assert_eq!(
        succeeded_twice(schema.store().as_ref(), job.id),
        Vec::<u64>::new()
    );
}
