//! Issue 18: a one-liner a GNU parallel user can switch to. Items from standard input,
//! several sources and their combinations, `{1}` forms, `-k`, `--tag`, the form without `--`,
//! unsupported options refused, and resumes of one-liners with several sources or stdin.

use std::collections::BTreeMap;
use std::time::Duration;

use mmm_core::job::ItemStatus;

use crate::harness::{Workspace, collect_lines, kill9, wait_until};

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn issue_18_items_come_from_standard_input() {
    let ws = Workspace::new();
    let run = ws.run_with_stdin(&["run", "--quiet", "-k", "--", "echo", "x"], b"1\n2\n3\n");
    run.success();
    assert_eq!(run.stdout(), "x 1\nx 2\nx 3\n");
    let job = ws.only_job();
    assert_eq!(job.counts.completed, 3);

    // `--input -` and `:::: -` name standard input too; -0 splits at NUL bytes.
    let run = ws.run_with_stdin(
        &["run", "--quiet", "-k", "--input", "-", "--", "echo"],
        b"a b\n",
    );
    run.success();
    assert_eq!(run.stdout(), "a b\n");
    let run = ws.run_with_stdin(
        &[
            "run", "--quiet", "-k", "-0", "--", "echo", "x{}x", "::::", "-",
        ],
        b"one\0two lines\nhere\0",
    );
    run.success();
    assert_eq!(run.stdout(), "xonex\nxtwo lines\nherex\n");
}

#[test]
fn issue_18_several_sources_give_every_combination() {
    let ws = Workspace::new();
    let run = ws.run(&[
        "run", "--quiet", "--", "echo", "{1}-{2}", ":::", "a", "b", ":::", "1", "2",
    ]);
    run.success();
    assert_eq!(sorted_lines(&run.stdout()), ["a-1", "a-2", "b-1", "b-2"]);
    // Each item records the value of each of its sources.
    let job = ws.only_job();
    let values: Vec<String> = ws
        .store()
        .items(job.id, None)
        .expect("items")
        .into_iter()
        .map(|item| item.value)
        .collect();
    assert_eq!(
        values,
        [
            r#"["a","1"]"#,
            r#"["a","2"]"#,
            r#"["b","1"]"#,
            r#"["b","2"]"#
        ]
    );
}

#[test]
fn issue_18_sources_from_files_link_and_positional_forms() {
    let ws = Workspace::new();
    ws.write("dirs.txt", "d/x.tar.gz\ne/y.txt\n");
    let run = ws.run(&[
        "run", "--quiet", "-k", "-a", "dirs.txt", "--", "echo", "{1/}", "{1//}", "{1.}", "{1/.}",
        "{2}", ":::", "n",
    ]);
    run.success();
    assert_eq!(
        run.stdout(),
        "x.tar.gz d d/x.tar x.tar n\ny.txt e e/y y n\n"
    );
    let run = ws.run(&[
        "run", "--quiet", "-k", "--link", "--", "echo", ":::", "a", "b", "c", ":::", "1", "2",
    ]);
    run.success();
    assert_eq!(run.stdout(), "a 1\nb 2\nc 1\n");
    let run = ws.run(&[
        "run", "--quiet", "-k", "--", "echo", ":::", "a", "b", ":::+", "1", "2", "3",
    ]);
    run.success();
    assert_eq!(run.stdout(), "a 1\nb 2\n");
}

#[test]
fn issue_18_keep_order_prints_in_input_order_when_items_finish_in_reverse() {
    let ws = Workspace::new();
    // Item 1 ends last, item 3 first: each waits for the file of the item after it.
    let run = ws.run(&[
        "run",
        "--quiet",
        "-k",
        "-j",
        "3",
        "--",
        "n={}; while [ $n -lt 3 ] && [ ! -e done.$((n+1)) ]; do sleep 0.01; done; echo $n; echo $n >> ended.txt; touch done.$n",
        ":::",
        "1",
        "2",
        "3",
    ]);
    run.success();
    assert_eq!(run.stdout(), "1\n2\n3\n");
    // They did end in reverse: each waited for the one after it.
    assert_eq!(ws.read("ended.txt"), "3\n2\n1\n");
}

#[test]
fn issue_18_tag_and_tagstring_prefix_each_line() {
    let ws = Workspace::new();
    let run = ws.run(&[
        "run",
        "--quiet",
        "-k",
        "--tag",
        "-q",
        "--",
        "printf",
        "%s\\n%s\\n",
        ":::",
        "a",
        ":::",
        "1",
    ]);
    run.success();
    assert_eq!(run.stdout(), "a 1\ta\na 1\t1\n");
    let run = ws.run(&[
        "run",
        "--quiet",
        "-k",
        "--tagstring",
        "<{2}>",
        "--",
        "echo",
        "{1}",
        ":::",
        "a",
        ":::",
        "1",
    ]);
    run.success();
    assert_eq!(run.stdout(), "<1>\ta\n");
}

#[test]
fn issue_18_the_form_without_double_dash_and_dry_run() {
    let ws = Workspace::new();
    let run = ws.run(&["run", "--dry-run", "-k", "echo", "{}", ":::", "a b", "c"]);
    run.success();
    assert_eq!(run.stdout(), "echo 'a b'\necho c\n");
    // A dry run records nothing.
    assert!(!ws.has_store());
    let run = ws.run(&["run", "--quiet", "-k", "-N2", "echo", ":::", "a", "b", "c"]);
    run.success();
    assert_eq!(run.stdout(), "a b\nc\n");
    let run = ws.run(&[
        "run", "--quiet", "-k", "--colsep", ",", "echo", "{2}", "{1}", ":::", "a,b",
    ]);
    run.success();
    assert_eq!(run.stdout(), "b a\n");
    // A ::: item is never taken for a command word, and `:::` never for an item.
    let run = ws.run(&[
        "run", "--quiet", "--", "echo", "{1}", "{2}", ":::", "a", ":::", "1",
    ]);
    run.success();
    assert_eq!(run.stdout(), "a 1\n");
}

#[test]
fn issue_18_unsupported_gnu_parallel_options_exit_2_naming_them() {
    let ws = Workspace::new();
    for (option, hint) in [
        ("--pipe", "split"),
        ("--sshlogin=host", "mmm worker"),
        ("--results", "mmm export"),
        ("-X", "-N"),
    ] {
        let run = ws.run(&["run", option, "echo", ":::", "a"]);
        run.code_is(2);
        let name = option.split('=').next().unwrap_or(option);
        assert!(
            run.stderr().contains(&format!("`{name}` is not supported")),
            "{option}: {}",
            run.stderr()
        );
        assert!(run.stderr().contains(hint), "{option}: {}", run.stderr());
    }
    assert!(!ws.has_store(), "nothing ran");
    // A one-liner option with a job file is refused, not ignored.
    ws.write(
        "job.yml",
        "map:\n  input: {command: echo a}\n  steps:\n    - shell: true\n",
    );
    let run = ws.run(&["run", "job.yml", "-k"]);
    run.code_is(2);
    assert!(run.stderr().contains("--keep-order"), "{}", run.stderr());
    // A positional string beyond the sources is refused rather than run empty.
    let run = ws.run(&["run", "--", "echo", "{3}", ":::", "a", ":::", "b"]);
    run.code_is(2);
    assert!(run.stderr().contains("{3}"), "{}", run.stderr());
}

#[test]
fn issue_18_a_killed_two_source_oneliner_resumes_with_each_combination_once() {
    let ws = Workspace::new();
    let mut child = ws.spawn(&[
        "run",
        "--progress",
        "none",
        "-j",
        "2",
        "--",
        "echo {1}-{2} >> ran.txt; sleep 0.2",
        ":::",
        "a",
        "b",
        "c",
        ":::",
        "1",
        "2",
        "3",
    ]);
    wait_until(Duration::from_secs(30), "two items completed", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed >= 2)
    });
    kill9(&mut child);
    let job = ws.only_job();
    let done_before: Vec<String> = ws
        .store()
        .items(job.id, Some(ItemStatus::Completed))
        .expect("items")
        .into_iter()
        .map(|i| i.value)
        .collect();
    assert!(job.counts.completed < 9, "killed too late to test a resume");
    let resumed = ws.run(&["resume", &job.id.short(), "--progress", "none"]);
    resumed.success();
    let items = ws.store().items(job.id, None).expect("items");
    assert_eq!(items.len(), 9);
    assert!(items.iter().all(|i| i.status == ItemStatus::Completed));
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    for line in ws.read("ran.txt").lines() {
        *ran.entry(line.to_string()).or_default() += 1;
    }
    assert_eq!(ran.len(), 9, "{ran:?}");
    for value in done_before {
        let list: Vec<String> = serde_json::from_str(&value).expect("a list");
        let line = list.join("-");
        assert_eq!(ran.get(&line), Some(&1), "{line} ran again: {ran:?}");
    }
}

#[test]
fn issue_18_a_stdin_oneliner_resumes_without_stdin() {
    let ws = Workspace::new();
    let input: String = (1..=40).map(|n| format!("{n}\n")).collect();
    let mut child = ws
        .mmm(&[
            "run",
            "--progress",
            "none",
            "-j",
            "2",
            "--",
            "echo {} >> ran.txt; sleep 0.1",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mmm starts");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(input.as_bytes()).expect("written");
    }
    wait_until(Duration::from_secs(30), "a few items completed", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed >= 3)
    });
    kill9(&mut child);
    let job = ws.only_job();
    assert!(
        job.counts.completed < 40,
        "killed too late to test a resume"
    );
    // The resume's standard input is empty: the items come from the record.
    let resumed = ws.run(&["resume", &job.id.short(), "--progress", "none"]);
    resumed.success();
    let job = ws.only_job();
    assert_eq!((job.counts.completed, job.counts.total()), (40, 40));
    // Standard input was not read again: no item vanished from the input.
    let events = ws.run(&["events", &job.id.short(), "--type", "input_changed"]);
    events.success();
    assert!(events.stdout().trim().is_empty(), "{}", events.stdout());
    let ran: std::collections::BTreeSet<String> =
        ws.read("ran.txt").lines().map(str::to_string).collect();
    assert_eq!(ran.len(), 40);
}

#[test]
fn issue_18_halt_now_fail_1_kills_what_runs_and_jobs_says_why() {
    let ws = Workspace::new();
    let started = std::time::Instant::now();
    let run = ws.run(&[
        "run",
        "-j",
        "2",
        "--halt",
        "now,fail=1",
        "--",
        "case {} in slow) touch started; sleep 60;; fail) while [ ! -e started ]; do sleep 0.01; done; exit 5;; esac",
        ":::",
        "slow",
        "fail",
        "third",
    ]);
    // GNU parallel's exit status for fail=1: the failing command's.
    run.code_is(5);
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the sleeping command was not killed"
    );
    assert!(
        run.stderr().contains("halted (--halt now,fail=1)"),
        "{}",
        run.stderr()
    );
    let job = ws.only_job();
    assert_eq!(job.status.as_str(), "interrupted");
    assert_eq!((job.counts.completed, job.counts.dead_lettered), (0, 1));
    let attempts = ws.attempts(job.id);
    assert_eq!(
        attempts.len(),
        2,
        "the third item never started: {attempts:?}"
    );
    let listed = ws.run(&["jobs"]);
    listed.success();
    assert!(
        listed
            .stdout()
            .contains("halted (--halt now,fail=1): 1 item failed"),
        "{}",
        listed.stdout()
    );
    assert!(
        listed.stdout().contains("`fail` with exit code 5"),
        "{}",
        listed.stdout()
    );
    let json = ws.jobs_json();
    assert_eq!(json[0]["halted"]["policy"], "now,fail=1");
    // A halted job is resumable.
    let resumable = ws.run(&["jobs", "--resumable"]);
    assert!(
        resumable.stdout().contains(&job.id.short()),
        "{}",
        resumable.stdout()
    );
}

#[test]
fn issue_18_halt_soon_lets_running_items_finish() {
    let ws = Workspace::new();
    let run = ws.run(&[
        "run",
        "--quiet",
        "-j",
        "2",
        "--halt",
        "soon,fail=1",
        "--",
        "case {} in slow) touch started; while [ ! -e failed ]; do sleep 0.01; done; echo slow done;; fail) while [ ! -e started ]; do sleep 0.01; done; touch failed; exit 3;; esac",
        ":::",
        "slow",
        "fail",
        "third",
    ]);
    run.code_is(3);
    // The command running when the halt came ran to its end (`third` may have started
    // before the failure was seen, as in GNU parallel).
    assert!(run.stdout().starts_with("slow done\n"), "{}", run.stdout());
    let job = ws.only_job();
    assert_eq!(job.status.as_str(), "interrupted");
    let items = ws.store().items(job.id, None).expect("items");
    assert_eq!(items[0].status, ItemStatus::Completed, "{items:?}");
    assert_eq!(items[1].status, ItemStatus::DeadLettered, "{items:?}");
}

#[test]
fn issue_18_a_stream_on_stdin_is_worked_through_as_it_arrives() {
    use std::io::Write;
    let ws = Workspace::new();
    let mut child = ws
        .mmm(&[
            "run",
            "--progress",
            "plain",
            "--progress-interval",
            "50ms",
            "-j",
            "2",
            "--",
            "echo",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mmm starts");
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        use std::io::BufRead;
        let stderr = child.stderr.take().expect("piped");
        let progress = progress.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                progress.lock().expect("lock").push(line);
            }
        })
    };
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(b"a\nb\nc\n").expect("written");
    stdin.flush().expect("flushed");
    // The pipe stays open (like `tail -f`): the items that came are run anyway.
    wait_until(Duration::from_secs(30), "the first three items run", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed == 3)
    });
    // While the input is open the total is not known, and the progress says so.
    wait_until(
        Duration::from_secs(30),
        "a progress line without an ETA",
        || {
            progress
                .lock()
                .expect("lock")
                .iter()
                .any(|l| l.contains("ETA unknown: items still coming"))
        },
    );
    stdin.write_all(b"d\ne\n").expect("written");
    stdin.flush().expect("flushed");
    wait_until(Duration::from_secs(30), "the next two items run", || {
        ws.jobs_so_far()
            .first()
            .is_some_and(|j| j.counts.completed == 5)
    });
    assert!(
        child.try_wait().expect("waits").is_none(),
        "mmm ended before its input did"
    );
    drop(stdin);
    let status = child.wait().expect("mmm ends");
    reader.join().expect("stderr read");
    assert!(status.success(), "{status}");
    let job = ws.only_job();
    assert_eq!((job.counts.completed, job.counts.total()), (5, 5));
    let values: Vec<String> = ws
        .store()
        .items(job.id, None)
        .expect("items")
        .into_iter()
        .map(|i| i.value)
        .collect();
    assert_eq!(values, [r#""a""#, r#""b""#, r#""c""#, r#""d""#, r#""e""#]);
}

/// `--line-buffer`: each line is shown as soon as it is whole, while the command still runs
/// (it waits for a file the test writes only after seeing the first lines), tagged, never cut.
#[test]
fn issue_18_line_buffer_shows_each_line_while_the_command_runs() {
    let ws = Workspace::new();
    ws.write(
        "step.sh",
        "echo first-$1\nwhile [ ! -e go ]; do sleep 0.02; done\necho second-$1\n",
    );
    let mut child = ws.spawn(&[
        "run",
        "--progress",
        "none",
        "--line-buffer",
        "--tag",
        "-j",
        "2",
        "--",
        "sh",
        "step.sh",
        ":::",
        "a",
        "b",
    ]);
    let (lines, reader) = collect_lines(&mut child);
    wait_until(
        Duration::from_secs(20),
        "the first lines while both commands still run",
        || {
            let lines = lines.lock().unwrap();
            lines.iter().any(|l| l == "a\tfirst-a") && lines.iter().any(|l| l == "b\tfirst-b")
        },
    );
    ws.write("go", "");
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let lines = lines.lock().unwrap().clone();
    for line in ["a\tsecond-a", "b\tsecond-b"] {
        assert!(lines.iter().any(|l| l == line), "{line} in {lines:?}");
    }
    // An unterminated last line is shown as it is when the command ends (as GNU parallel
    // does: no newline added).
    let last = ws.run(&[
        "run",
        "--progress",
        "none",
        "--lb",
        "--",
        "printf",
        "x-{}",
        ":::",
        "1",
    ]);
    last.success();
    assert_eq!(last.stdout(), "x-1");

    // Not with -k (which holds whole items), and not with a job file.
    let refused = ws.run(&["run", "--line-buffer", "-k", "--", "echo", ":::", "x"]);
    refused.code_is(2);
}
