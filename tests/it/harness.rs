//! A temporary workspace with its own store, and helpers to run `mmm` in it and read the
//! store back through the library.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mmm_core::job::JobId;
use mmm_store::{AttemptRecord, JobRecord, Store};

/// A temporary directory to run `mmm` in.
pub(crate) struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub(crate) fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file (e.g. a job file) and returns its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }

    /// `mmm ARGS` in this workspace, with a non-terminal stdin/stdout.
    pub(crate) fn mmm(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mmm"));
        cmd.args(args)
            .current_dir(self.path())
            .env_remove("MMM_STORE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `mmm ARGS` to its end.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let output = self.mmm(args).output().expect("mmm runs");
        Run { output }
    }

    /// Runs `mmm ARGS` to its end with `input` on its standard input (a pipe).
    pub(crate) fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut child = self
            .mmm(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mmm starts");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        // Written from a thread: mmm may print before it has read everything.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().expect("mmm runs");
        writer.join().expect("the writer ends");
        Run { output }
    }

    /// Starts `mmm ARGS` without waiting.
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.mmm(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mmm starts")
    }

    /// `mmm ARGS` with its standard error (where it logs) written to `log` in the workspace,
    /// its standard output dropped: to start and read after it ends.
    pub(crate) fn logged(&self, args: &[&str], log: &str) -> Command {
        let file = std::fs::File::create(self.join(log))
            .unwrap_or_else(|e| panic!("creating the log {log}: {e}"));
        let mut cmd = self.mmm(args);
        cmd.stdout(Stdio::null()).stderr(file);
        cmd
    }

    /// Starts `mmm ARGS` without waiting, its log to `log` ([`Workspace::logged`]).
    pub(crate) fn spawn_logged(&self, args: &[&str], log: &str) -> Child {
        self.logged(args, log).spawn().expect("mmm starts")
    }

    /// The store `mmm` wrote in this workspace.
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        mmm_store::open(self.join(".mmm").to_str().unwrap(), false).expect("the store exists")
    }

    /// The jobs recorded so far; none while `mmm` is still creating its store. For polling:
    /// the database file can exist a moment before its schema does.
    pub(crate) fn jobs_so_far(&self) -> Vec<JobRecord> {
        mmm_store::open(self.join(".mmm").to_str().unwrap(), false)
            .and_then(|store| store.jobs())
            .unwrap_or_default()
    }

    pub(crate) fn has_store(&self) -> bool {
        self.join(".mmm").exists()
    }

    /// The only job in the store.
    pub(crate) fn only_job(&self) -> JobRecord {
        let jobs = self.store().jobs().unwrap();
        assert_eq!(jobs.len(), 1, "expected exactly one job, found {jobs:?}");
        jobs.into_iter().next().unwrap()
    }

    pub(crate) fn attempts(&self, job: JobId) -> Vec<AttemptRecord> {
        self.store().attempts(job, None).unwrap()
    }

    /// `mmm jobs --json` parsed.
    pub(crate) fn jobs_json(&self) -> serde_json::Value {
        let run = self.run(&["jobs", "--json"]);
        run.success();
        serde_json::from_str(&run.stdout()).expect("mmm jobs --json prints JSON")
    }
}

/// A finished `mmm` process.
pub(crate) struct Run {
    pub(crate) output: Output,
}

impl Run {
    pub(crate) fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts the exit code, showing the output when it differs.
    pub(crate) fn code_is(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code(),
            expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    pub(crate) fn success(&self) -> &Self {
        self.code_is(0)
    }
}

/// A child process killed and reaped when dropped, so a failing assertion leaves no process
/// (a server, a watcher, a Prometheus) behind.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGKILLs a child (`mmm` crashing as hard as it can) and reaps it.
pub(crate) fn kill9(child: &mut Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("the child can be signalled");
    child.wait().expect("the child is reaped");
}

/// Polls `condition` until it holds, failing the test after `within`.
pub(crate) fn wait_until(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (with a deadline) for `child` to exit; its exit code (-1 for a signal).
pub(crate) fn exit_code(child: &mut Child, within: Duration, what: &str) -> i32 {
    let mut status = None;
    wait_until(within, what, || {
        status = child.try_wait().expect("waits for the child");
        status.is_some()
    });
    status.and_then(|s| s.code()).unwrap_or(-1)
}

/// True while a process with this pid exists (and is not a zombie).
pub(crate) fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

impl Workspace {
    /// The store's database file.
    pub(crate) fn database(&self) -> PathBuf {
        self.join(".mmm").join("mmm.db")
    }

    /// Runs SQL straight on the store's database, behind mmm's back (to damage a record).
    pub(crate) fn sql(&self, sql: &str) {
        let conn = rusqlite::Connection::open(self.database()).expect("the store opens");
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// `mmm ARGS`, which must succeed, with its stdout parsed as JSON.
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let run = self.run(args);
        run.success();
        serde_json::from_str(&run.stdout())
            .unwrap_or_else(|e| panic!("mmm {args:?} printed no JSON ({e}):\n{}", run.stdout()))
    }

    /// The short id of the only job in the store.
    pub(crate) fn short_id(&self) -> String {
        self.only_job().id.short()
    }
}

impl Workspace {
    /// `mmm ARGS`, which must exit 1 (e.g. `check` finding problems), with its stdout as JSON.
    pub(crate) fn json_failing(&self, args: &[&str]) -> serde_json::Value {
        let run = self.run(args);
        run.code_is(1);
        serde_json::from_str(&run.stdout())
            .unwrap_or_else(|e| panic!("mmm {args:?} printed no JSON ({e}):\n{}", run.stdout()))
    }
}

/// The lines `child` writes to its (piped) stdout, gathered by a thread as they come; join the
/// thread after the child ended to have them all.
pub(crate) fn collect_lines(
    child: &mut Child,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader};
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("stdout is piped");
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    (lines, reader)
}
