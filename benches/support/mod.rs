//! What the dashboard benchmarks (web.rs, page.rs) share: a job file, the real `mmm` beside
//! them, and waiting for its job.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmm_store::Store;

/// `job.yml` in `dir`: `items` items (`items.jsonl`) on `agents` agents, one step running
/// `command`.
pub(crate) fn write_job(dir: &std::path::Path, items: usize, agents: usize, command: &str) {
    let lines: String = (0..items)
        .map(|i| format!("{{\"id\":\"i{i}\"}}\n"))
        .collect();
    std::fs::write(dir.join("items.jsonl"), lines).unwrap();
    std::fs::write(
        dir.join("job.yml"),
        format!(
            "map:\n  input: items.jsonl\n  key: \"${{item.id}}\"\n  max_parallel: {agents}\n  steps:\n    - name: work\n      shell: {command}\n"
        ),
    )
    .unwrap();
}

/// The store in `dir` and the id of its first job, once it is recorded.
pub(crate) fn first_job(dir: &std::path::Path) -> (Arc<dyn Store>, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(store) = mmm_store::open(dir.join(".mmm").to_str().unwrap(), false)
            && let Ok(jobs) = store.jobs()
            && let Some(job) = jobs.first()
        {
            let id = job.id.to_string();
            return (store, id);
        }
        assert!(Instant::now() < deadline, "the job was never recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `mmm ARGS` in `dir` (`run ... --dashboard` or `serve`), and the dashboard's URL it prints
/// (`http://127.0.0.1:PORT/`). Its stderr is drained for as long as it runs, so that it never
/// writes to a closed pipe.
pub(crate) fn with_dashboard(dir: &std::path::Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmm"))
        .args(args)
        .current_dir(dir)
        .env_remove("MMM_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mmm runs");
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (url, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("mmm: dashboard at ")
                && let Some(printed) = rest.split_whitespace().next()
            {
                let _ = url.send(printed.to_string());
            }
        }
    });
    let url = printed
        .recv_timeout(Duration::from_secs(30))
        .expect("mmm prints the dashboard's URL");
    (child, url)
}
