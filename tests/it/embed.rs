//! The embedding API end to end (issue 22): `examples/embed.rs`, a program feeding 300 items
//! from a plain loop, records a job that `mmm jobs`, `mmm progress --json`, `mmm stats` and the
//! dashboard's API show with the counts the program reported.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::Workspace;

/// The example's binary, built by cargo next to this test binary's folder.
fn example() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "embed"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example embed failed");
    let deps = std::env::current_exe().unwrap();
    let target = deps.parent().unwrap().parent().unwrap();
    let path = target.join("examples").join("embed");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embed_example_records_a_job_every_view_shows() {
    let ws = Workspace::new();
    let store = ws.join(".mmm");
    let run = Command::new(example())
        .args([store.to_str().unwrap(), "300"])
        .current_dir(ws.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        out.contains("completed_with_failures: 299 completed, 1 in the DLQ, 6 retries"),
        "{out}"
    );

    let jobs = ws.jobs_json();
    let [job] = jobs.as_array().unwrap().as_slice() else {
        panic!("one job: {jobs:#}")
    };
    assert_eq!(job["name"], "embedded-demo");
    assert_eq!(job["status"], "completed_with_failures");
    assert_eq!(job["counts"]["completed"], 299);
    assert_eq!(job["counts"]["dead_lettered"], 1);
    assert_eq!(job["dlq"][0]["key"], "item-299");
    let id = job["id"].as_str().unwrap().to_string();

    let state = ws.json(&["progress", &id, "--json"]);
    assert_eq!(state["percent"], 100.0);
    let progress = &state["snapshot"]["payload"]["progress"];
    assert_eq!(progress["completed"], 299);
    assert_eq!(progress["dead_lettered"], 1);
    assert_eq!(progress["retries"], 6);
    let bytes: i64 = (0..300).map(|i| 1_000 + i).sum();
    assert_eq!(state["snapshot"]["payload"]["counters"]["bytes"], bytes);
    let steps: Vec<&str> = state["snapshot"]["payload"]["metrics"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["fetch", "resize"]);

    let stats = ws.json(&["stats", "--json", "--name", "embedded-*"]);
    assert_eq!(stats["names"][0]["runs"], 1);
    assert_eq!(stats["names"][0]["items"]["processed"], 300);
    assert_eq!(stats["names"][0]["items"]["retries"], 6);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mmm_web::serve(
        listener,
        mmm_web::AppState::new(ws.store(), None),
        std::future::pending(),
    ));
    let reply = crate::web::get(addr, &format!("/api/jobs/{id}"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let served = reply.json();
    assert_eq!(served["job"]["counts"]["completed"], 299);
    assert_eq!(served["job"]["counts"]["dead_lettered"], 1);
    // How right the ETA was: a 3-second job shows an estimate at each second's snapshot.
    let reply = crate::web::get(addr, &format!("/api/jobs/{id}/eta-accuracy"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let accuracy = &reply.json()["eta_accuracy"];
    let estimates = accuracy["estimates"]
        .as_u64()
        .expect("estimates were shown");
    assert!(estimates >= 1 && accuracy["covered"].as_u64().unwrap() <= estimates);
}
