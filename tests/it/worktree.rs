//! Agents in git worktrees (issue 9): each item's commits merged into the job's integration
//! branch through one queue, conflicts into the DLQ with their paths, infrastructure failures
//! retried without counting, a SIGKILL mid-merge then resume landing every item exactly once,
//! and nothing left behind in the repository.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mmm_core::job::{AttemptOutcome, ItemStatus};

use crate::harness::{Workspace, kill9, wait_until};

/// Runs git in `dir`; its trimmed stdout. Panics (with git's message) when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A workspace that is a git repository with one commit; `None` (said loudly) without git.
fn repo() -> Option<Workspace> {
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("\n*** SKIPPED: git is not installed; the worktree tests need it ***\n");
        return None;
    }
    let ws = Workspace::new();
    let p = ws.path();
    git(p, &["init", "--quiet", "-b", "main"]);
    git(p, &["config", "user.email", "test@example.com"]);
    git(p, &["config", "user.name", "Test"]);
    ws.write(".gitignore", ".mmm/\nitems.txt\n*.yml\n");
    ws.write("shared.txt", "line one\nline two\n");
    git(p, &["add", "-A"]);
    git(p, &["commit", "--quiet", "-m", "init"]);
    Some(ws)
}

/// The job's integration branch (the only `mmm/` branch).
fn branch(ws: &Workspace) -> String {
    let branches = git(
        ws.path(),
        &["branch", "--list", "mmm/*", "--format=%(refname:short)"],
    );
    let names: Vec<&str> = branches.lines().collect();
    assert_eq!(names.len(), 1, "one integration branch: {names:?}");
    names[0].to_string()
}

/// Subjects of the item commits (not merges) on `branch`, counted.
fn item_subjects(ws: &Workspace, branch: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for subject in git(
        ws.path(),
        &[
            "log",
            "--no-merges",
            "--format=%s",
            &format!("main..{branch}"),
        ],
    )
    .lines()
    {
        *counts.entry(subject.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Only `main` and (unless cleaned) the job's branch; only the main worktree; no job folder.
fn assert_nothing_leaked(ws: &Workspace, expect_branch: Option<&str>) {
    let worktrees = git(ws.path(), &["worktree", "list", "--porcelain"]);
    assert_eq!(
        worktrees
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count(),
        1,
        "only the main worktree is left:\n{worktrees}"
    );
    let mut branches: Vec<String> = git(ws.path(), &["branch", "--format=%(refname:short)"])
        .lines()
        .map(str::to_string)
        .collect();
    branches.sort();
    let mut expected = vec!["main".to_string()];
    expected.extend(expect_branch.map(str::to_string));
    expected.sort();
    assert_eq!(branches, expected);
    assert!(
        !ws.join(".git/mmm").exists(),
        "the job's worktree folder is removed"
    );
}

/// Shell lines that wait (up to 60 s) until items a, b and c are all in their step, so that
/// all three start from the same tip and conflict.
const BARRIER: &str = r#"marks="$(git rev-parse --path-format=absolute --git-common-dir)"; touch "$marks/go-${item}"; i=0; while [ "$(ls "$marks" | grep -c '^go-')" -lt 3 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"#;

const COMMIT_STEP: &str = r#"
    - name: commit
      shell: |
        echo ${item} > "file-${item}.txt"
        git add -A
        git commit --quiet -m "item ${item}"
"#;

#[test]
fn two_hundred_items_at_j4_land_every_commit_once_and_leave_nothing_behind() {
    let Some(ws) = repo() else { return };
    let items: String = (1..=200).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &items);
    ws.write(
        "job.yml",
        &format!(
            "name: fan out\nmap:\n  input: items.txt\n  key: \"${{item}}\"\n  max_parallel: 4\n  isolation: worktree\n  steps:{COMMIT_STEP}"
        ),
    );
    let run = ws.run(&["run", "job.yml", "--progress", "none"]);
    run.success();
    assert!(
        run.stderr()
            .contains("the merged work is on branch mmm/fan-out-"),
        "{}",
        run.stderr()
    );
    let branch = branch(&ws);
    let subjects = item_subjects(&ws, &branch);
    assert_eq!(subjects.len(), 200, "{subjects:?}");
    assert!(subjects.values().all(|&n| n == 1), "{subjects:?}");
    let files = git(ws.path(), &["ls-tree", "--name-only", &branch]);
    assert_eq!(
        files.lines().filter(|f| f.starts_with("file-")).count(),
        200
    );
    // One merge commit per item on the first-parent line, each naming its item.
    let merges = git(
        ws.path(),
        &["log", "--first-parent", "--merges", "--format=%B", &branch],
    );
    assert_eq!(merges.matches("MMM-Item-Index: ").count(), 200);
    assert_nothing_leaked(&ws, Some(&branch));

    // The counters reach the snapshots every view reads (progress --json, the API, exports;
    // the last snapshot may predate the last merges), and their events sum up exactly.
    let id = ws.short_id();
    let state = ws.json(&["progress", &id, "--json"]);
    let payload = &state["snapshot"]["payload"];
    let commits = payload["counters"]["commits"].as_i64().unwrap_or(0);
    assert!((1..=200).contains(&commits), "{payload}");
    assert!(
        payload["rates"]["counters_per_second"]["commits"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{payload}"
    );
    let report = ws.json(&["export", &id, "--format", "json"]);
    assert_eq!(
        report["state"]["snapshot"]["payload"]["counters"]["commits"],
        commits
    );
    let sums = counter_sums(&ws);
    assert_eq!(sums.get("commits"), Some(&200), "{sums:?}");
    assert_eq!(sums.get("merged_items"), Some(&200), "{sums:?}");

    // Clean: the branch holds unmerged work, so it stays without --branch.
    let kept = ws.run(&["clean", &id]);
    kept.success();
    assert!(kept.stderr().contains("kept branch"), "{}", kept.stderr());
    let cleaned = ws.run(&["clean", &id, "--branch"]);
    cleaned.success();
    assert!(
        cleaned.stderr().contains("deleted branch"),
        "{}",
        cleaned.stderr()
    );
    assert_nothing_leaked(&ws, None);
}

#[test]
fn conflicting_items_go_to_the_dlq_with_their_paths_and_the_rest_merge() {
    let Some(ws) = repo() else { return };
    ws.write("items.txt", "a\nb\nc\nown1\nown2\nown3\n");
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  key: "${item}"
  max_parallel: 3
  isolation: worktree
  steps:
    - shell: |
        case ${item} in
          own*) echo ${item} > "${item}.txt" ;;
          *) BARRIER
             printf 'line %s\nline two\n' ${item} > shared.txt ;;
        esac
        git add -A && git commit --quiet -m "item ${item}"
"#
        .replace("BARRIER", BARRIER)
        .as_str(),
    );
    let run = ws.run(&[
        "run",
        "job.yml",
        "--progress",
        "none",
        "--merge-into",
        "main",
    ]);
    run.code_is(3);
    let job = ws.only_job();
    let store = ws.store();
    let dead = store.items(job.id, Some(ItemStatus::DeadLettered)).unwrap();
    assert_eq!(dead.len(), 2, "two of a, b, c conflict: {dead:?}");
    for item in &dead {
        let attempts = store.attempts(job.id, Some(&item.key)).unwrap();
        let error = attempts[0].error.clone().unwrap_or_default();
        assert!(
            error.contains("merge conflict") && error.contains("shared.txt"),
            "{error}"
        );
    }
    let completed = store.items(job.id, Some(ItemStatus::Completed)).unwrap();
    assert_eq!(completed.len(), 4);
    // The rest merged, and main was fast-forwarded to the branch.
    assert!(
        run.stderr().contains("fast-forwarded main"),
        "{}",
        run.stderr()
    );
    for own in ["own1", "own2", "own3"] {
        assert!(ws.join(&format!("{own}.txt")).exists(), "{own} merged");
    }
    assert_eq!(counter_sums(&ws).get("merge_conflicts"), Some(&2));
    assert_nothing_leaked(&ws, Some(&branch(&ws)));
}

#[test]
fn on_conflict_resolves_and_merges() {
    let Some(ws) = repo() else { return };
    ws.write("items.txt", "a\nb\nc\n");
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  key: "${item}"
  max_parallel: 3
  isolation: worktree
  on_conflict: |
    test -n "$MMM_CONFLICT_PATHS" && test -n "$MMM_MERGE_TIP"
    { git show "$MMM_MERGE_TIP:shared.txt" | grep -v '^line two$'; echo "line ${item}"; echo "line two"; } > shared.tmp
    mv shared.tmp shared.txt
  steps:
    - shell: |
        BARRIER
        printf 'line %s\nline two\n' ${item} > shared.txt
        git commit --quiet -am "item ${item}"
"#
        .replace("BARRIER", BARRIER)
        .as_str(),
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let branch = branch(&ws);
    let shared = git(ws.path(), &["show", &format!("{branch}:shared.txt")]);
    for item in ["a", "b", "c"] {
        assert!(shared.contains(&format!("line {item}")), "{shared}");
    }
    assert!(!shared.contains("<<<<<<<"), "{shared}");
    assert_nothing_leaked(&ws, Some(&branch));
}

#[test]
fn a_worktree_deleted_under_an_agent_and_a_locked_branch_are_retried_not_dead_lettered() {
    let Some(ws) = repo() else { return };
    ws.write("items.txt", "zap\nlock\nplain\n");
    // `zap` deletes its own worktree once after committing (the merge then finds it gone);
    // `lock` holds the branch's ref lock for a moment (as a concurrent git would).
    ws.write(
        "job.yml",
        r#"
map:
  input: items.txt
  key: "${item}"
  max_parallel: 1
  retries: 0
  backoff: 1ms
  isolation: worktree
  steps:
    - shell: |
        echo ${item} > "${item}.txt"
        git add -A && git commit --quiet -m "item ${item}"
        marks="$(git rev-parse --path-format=absolute --git-common-dir)"
        case ${item} in
          zap)
            if [ ! -e "$marks/zapped" ]; then touch "$marks/zapped"; rm -rf "$MMM_WORKTREE"; fi ;;
          lock)
            if [ ! -e "$marks/locked" ]; then
              touch "$marks/locked"
              lock="$(git rev-parse --git-common-dir)/refs/heads/$MMM_BRANCH.lock"
              touch "$lock"
              (sleep 0.3; rm -f "$lock") >/dev/null 2>&1 &
            fi ;;
        esac
"#,
    );
    let run = ws.run(&["run", "job.yml", "--progress", "none"]);
    run.success();
    let job = ws.only_job();
    let store = ws.store();
    let completed = store.items(job.id, Some(ItemStatus::Completed)).unwrap();
    assert_eq!(completed.len(), 3, "{}", run.stderr());
    // zap's first attempt was an infrastructure failure: recorded, not counted.
    let zap = completed.iter().find(|i| i.key == "zap").unwrap();
    let attempts = store.attempts(job.id, Some(&zap.key)).unwrap();
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Interrupted));
    assert!(
        attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("git")),
        "{attempts:?}"
    );
    // The record holds together (`mmm check`) with the uncounted attempt in it.
    ws.run(&["check", &ws.short_id()]).success();
    let branch = branch(&ws);
    let subjects = item_subjects(&ws, &branch);
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects.values().all(|&n| n == 1), "{subjects:?}");
    assert_nothing_leaked(&ws, Some(&branch));
}

#[test]
fn sigkill_while_merging_then_resume_lands_every_item_exactly_once() {
    let Some(ws) = repo() else { return };
    const ITEMS: usize = 120;
    let items: String = (1..=ITEMS).map(|n| format!("{n}\n")).collect();
    ws.write("items.txt", &items);
    // Quick steps: the serialized merge queue is the bottleneck, so agents spend most of
    // their time merging or waiting to; kills land in and around merges.
    ws.write(
        "job.yml",
        &format!(
            "name: killed\nmap:\n  input: items.txt\n  key: \"${{item}}\"\n  max_parallel: 4\n  isolation: worktree\n  steps:{COMMIT_STEP}"
        ),
    );
    let mut child = ws.spawn(&["run", "job.yml", "--progress", "none"]);
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut waited = 0u64;
    loop {
        wait_until(Duration::from_secs(60), "the job to be recorded", || {
            !ws.jobs_so_far().is_empty()
        });
        // Wait until some item merged in this run, then kill at a varying moment.
        let before = merged_count(&ws);
        wait_until(Duration::from_secs(60), "a merge", || {
            merged_count(&ws) > before || child.try_wait().ok().flatten().is_some()
        });
        std::thread::sleep(Duration::from_millis(20 + (waited * 37) % 150));
        waited += 1;
        if child.try_wait().ok().flatten().is_some() || kills >= 4 {
            break;
        }
        kill9(&mut child);
        kills += 1;
        // Leftover worktrees are what a resume must repair.
        let id = ws.only_job().id.to_string();
        child = ws.spawn(&["resume", &id, "--progress", "none"]);
        assert!(Instant::now() < deadline, "the test ran too long");
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "the last run completes\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(kills >= 1, "the job was killed at least once");
    ws.run(&["check", &ws.short_id()]).success();
    let branch = branch(&ws);
    let subjects = item_subjects(&ws, &branch);
    assert_eq!(subjects.len(), ITEMS, "every item landed: {subjects:?}");
    let twice: Vec<_> = subjects.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "items merged more than once: {twice:?}");
    let merges = git(
        ws.path(),
        &["log", "--first-parent", "--merges", "--format=%B", &branch],
    );
    assert_eq!(merges.matches("MMM-Item-Index: ").count(), ITEMS);
    assert_eq!(
        ws.store()
            .items(ws.only_job().id, Some(ItemStatus::Completed))
            .unwrap()
            .len(),
        ITEMS
    );
    assert_nothing_leaked(&ws, Some(&branch));
}

/// The job's counters, summed from their events (the durable record of them).
fn counter_sums(ws: &Workspace) -> BTreeMap<String, i64> {
    let store = ws.store();
    let job = ws.only_job().id;
    let mut sums = BTreeMap::new();
    for event in store.events(job, 0, 100_000).unwrap() {
        let payload = event.event.payload();
        if let Some(name) = payload.get("counter").and_then(|n| n.as_str()) {
            *sums.entry(name.to_string()).or_insert(0) += payload["delta"].as_i64().unwrap_or(0);
        }
    }
    sums
}

/// Merge commits on the job's branch so far (0 before it exists).
fn merged_count(ws: &Workspace) -> usize {
    let output = Command::new("git")
        .args([
            "log",
            "--first-parent",
            "--merges",
            "--format=%H",
            "--branches=mmm/*",
        ])
        .current_dir(ws.path())
        .output()
        .expect("git runs");
    String::from_utf8_lossy(&output.stdout).lines().count()
}

#[test]
fn isolation_outside_a_repository_fails_before_anything_runs() {
    let ws = Workspace::new();
    ws.write("items.txt", "a\n");
    ws.write(
        "job.yml",
        "setup:\n  - shell: touch setup-ran\nmap:\n  input: items.txt\n  isolation: worktree\n  steps: [{shell: 'true'}]\n",
    );
    let run = ws.run(&["run", "job.yml", "--progress", "none"]);
    run.code_is(2);
    assert!(
        run.stderr()
            .contains("job.yml:5:14: `map.isolation: worktree` needs a git repository"),
        "{}",
        run.stderr()
    );
    assert!(!ws.join("setup-ran").exists());
}

#[test]
fn an_item_whose_merge_landed_before_the_kill_is_not_merged_again() {
    let Some(ws) = repo() else { return };
    ws.write("items.txt", "1\n2\n3\n4\n");
    ws.write(
        "job.yml",
        &format!(
            "map:\n  input: items.txt\n  key: \"${{item}}\"\n  max_parallel: 2\n  isolation: worktree\n  steps:{COMMIT_STEP}"
        ),
    );
    ws.run(&["run", "job.yml", "--progress", "none"]).success();
    let branch = branch(&ws);
    let tip = git(ws.path(), &["rev-parse", &branch]);
    // As if the runner was SIGKILLed right after `update-ref` landed the merges of items 1
    // and 2, before the store recorded them completed.
    let job = ws.only_job();
    ws.sql(&format!(
        "UPDATE items SET status = 'running'
         WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = '{id}') AND key IN ('1', '2');
         UPDATE jobs SET status = 'running', phase = 'map', finished_at = NULL,
                         owner_pid = 999999 WHERE id = '{id}';",
        id = job.id
    ));
    ws.run(&["resume", &job.id.to_string(), "--progress", "none"])
        .success();
    assert_eq!(
        git(ws.path(), &["rev-parse", &branch]),
        tip,
        "nothing merged twice"
    );
    let store = ws.store();
    assert_eq!(
        store
            .items(job.id, Some(ItemStatus::Completed))
            .unwrap()
            .len(),
        4
    );
    let attempts = store.attempts(job.id, Some("1")).unwrap();
    let last = attempts.last().unwrap();
    assert!(last.stdout_tail.contains("already merged"), "{attempts:?}");
    assert_nothing_leaked(&ws, Some(&branch));
}
