//! Running one command: its own process group, the item in the environment, output captured
//! (a bounded tail for the record, the whole of it when it is to be shown), a timeout that
//! kills the whole group, and a stop request that gives it a grace period first.
//!
//! [`Executor`] is the seam the runner schedules through; [`ProcessExecutor`] is the real one.
//! Tests give the runner a fake executor so scheduling is deterministic.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

use mmm_spec::RenderedCommand;

pub use crate::capture::OutputLog;

/// How much of each output stream an attempt keeps for the record.
pub const TAIL_BYTES: usize = 4096;

/// How long descendants that outlive a command may hold its output open before they are
/// killed.
const LINGER: Duration = Duration::from_millis(500);

/// How long reports still buffered in the report pipe are read after the output closed.
const REPORT_DRAIN: Duration = Duration::from_millis(50);

/// How hard the job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopLevel {
    /// Keep going.
    Run,
    /// Start nothing new; let running commands finish within the grace period.
    Graceful,
    /// Kill running commands now (a second Ctrl-C).
    Immediate,
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    /// What to run.
    pub command: RenderedCommand,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Kill the process group after this long.
    pub timeout: Option<Duration>,
    /// Keep all the output (to show it), not just the tail.
    pub keep_output: bool,
    /// Told about the command's output and reports while it runs; with one, the command
    /// gets a report pipe (`MMM_PROGRESS_FD`, see [`super::report`]).
    pub observer: Option<Observer>,
    /// Where the output goes as it is read, to be kept whole (the item's log, docs/logs.md).
    pub log: Option<Arc<dyn OutputLog>>,
    /// While this says `true` (`mmm pause --suspend`), the command's process group is stopped
    /// (SIGSTOP; SIGCONT when it turns `false`) and its timeout does not run. `None`: never.
    pub suspend: Option<watch::Receiver<bool>>,
}

/// What the runner wants to know while a command runs.
pub trait CommandObserver: Send + Sync {
    /// The command started as process (and process group) `pid`; `None` once it ended.
    fn process(&self, pid: Option<u32>);
    /// The command wrote output (it is alive and talking).
    fn output(&self);
    /// The bytes the command just wrote to its standard output (`stderr`: error), as they
    /// were read (`--line-buffer` shows them line by line). Nothing by default.
    fn wrote(&self, _stderr: bool, _bytes: &[u8]) {}
    /// The command reported on its report pipe.
    fn report(&self, report: super::report::Report);
    /// A line on the report pipe was not understood.
    fn bad_report(&self, line: &str, error: &str);
}

/// A shared [`CommandObserver`].
#[derive(Clone)]
pub struct Observer(pub std::sync::Arc<dyn CommandObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// Held while a command is spawned with an inheritable report pipe, and by every other
/// spawn: a child started meanwhile by another agent would inherit that pipe too and keep
/// it open. Spawning is short (posix_spawn), so agents hardly ever wait on it.
static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the spawn lock: anything else in mmm that starts a process (`on_alert`) holds it
/// while spawning, so its child cannot inherit an agent's report pipe.
pub(crate) fn spawn_lock() -> std::sync::MutexGuard<'static, ()> {
    SPAWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The report pipe of one command: the read end for us; the write end, inheritable, for
/// the child (closed here as soon as the child has it).
fn report_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    fcntl(&write, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok((read, write))
}

/// Standard input for a command: `/dev/null`, opened once and duplicated for each command
/// (`Stdio::null()` opens it anew, a path lookup on every spawn).
fn null_input() -> Stdio {
    static DEV_NULL: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    DEV_NULL
        .get_or_init(|| std::fs::File::open("/dev/null").ok())
        .as_ref()
        .and_then(|null| null.try_clone().ok())
        .map_or_else(Stdio::null, Stdio::from)
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (not by us).
    Signal(i32),
    /// Ran past its timeout; its group was killed.
    TimedOut,
    /// The job was stopped; its group was killed.
    Interrupted,
    /// Could not be started.
    SpawnFailed(String),
}

impl Exit {
    /// True for exit code 0.
    pub fn is_success(&self) -> bool {
        *self == Exit::Code(0)
    }

    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            Exit::Code(c) => Some(*c),
            _ => None,
        }
    }

    /// A one-line description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Exit::Code(c) => format!("exited with code {c}"),
            Exit::Signal(s) => match Signal::try_from(*s) {
                Ok(sig) => format!("killed by {sig}"),
                Err(_) => format!("killed by signal {s}"),
            },
            Exit::TimedOut => "timed out; its process group was killed".to_string(),
            Exit::Interrupted => "interrupted by a stop request".to_string(),
            Exit::SpawnFailed(e) => format!("could not start: {e}"),
        }
    }
}

/// What came of one command.
#[derive(Debug, Clone)]
pub struct CommandResult {
    /// How it ended.
    pub exit: Exit,
    /// Measured wall time.
    pub duration: Duration,
    /// Standard output: all of it with `keep_output`, else the last [`TAIL_BYTES`].
    pub stdout: Vec<u8>,
    /// Standard error, likewise.
    pub stderr: Vec<u8>,
}

/// Runs commands for the runner.
pub trait Executor: Send + Sync + 'static {
    /// Runs one command to its end, honouring its timeout and the stop signal.
    fn run(
        &self,
        request: CommandRequest,
        stop: watch::Receiver<StopLevel>,
    ) -> impl Future<Output = CommandResult> + Send;
}

/// The real executor: child processes.
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    /// How long running commands may finish after a graceful stop request.
    pub stop_grace: Duration,
    /// How long a process group has between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

impl Default for ProcessExecutor {
    fn default() -> Self {
        ProcessExecutor {
            stop_grace: Duration::from_secs(3),
            kill_grace: Duration::from_secs(2),
        }
    }
}

impl Executor for ProcessExecutor {
    async fn run(
        &self,
        request: CommandRequest,
        mut stop: watch::Receiver<StopLevel>,
    ) -> CommandResult {
        let started = Instant::now();
        let mut cmd = match &request.command {
            RenderedCommand::Shell(line) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(line);
                c
            }
            RenderedCommand::Argv(words) => {
                let mut c = Command::new(&words[0]);
                c.args(&words[1..]);
                c
            }
        };
        // process_group(0) keeps std's posix_spawn fast path (a pre_exec hook would not).
        cmd.envs(request.env.iter().map(|(k, v)| (k, v)))
            .stdin(null_input())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // A command that runs where mmm runs needs no chdir: it would be a path walk in the
        // child while the spawning thread waits for it (most jobs run in their own folder).
        if std::env::current_dir().ok().as_deref() != Some(request.cwd.as_path()) {
            cmd.current_dir(&request.cwd);
        }
        let spawned = {
            let _spawning = spawn_lock();
            match request.observer.as_ref().map(|_| report_pipe()) {
                Some(Ok((read, write))) => {
                    use std::os::fd::AsRawFd;
                    cmd.env(super::report::FD_VARIABLE, write.as_raw_fd().to_string());
                    // `write` is dropped (closed here) when this block ends, after the spawn.
                    cmd.spawn().map(|child| (child, Some(read)))
                }
                Some(Err(e)) => Err(std::io::Error::other(format!(
                    "could not create the report pipe: {e}"
                ))),
                None => cmd.spawn().map(|child| (child, None)),
            }
        };
        // Dropped now, while the command runs, rather than after it: freeing its copy of the
        // environment is then off the path from one command's end to the next one's start.
        drop(cmd);
        let (mut child, report_fd) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                return CommandResult {
                    exit: Exit::SpawnFailed(e.to_string()),
                    duration: started.elapsed(),
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                };
            }
        };
        let pgid = child.id().map(|pid| Pid::from_raw(pid as i32));
        if let Some(observer) = &request.observer {
            observer.0.process(child.id());
        }
        let limit = if request.keep_output {
            usize::MAX
        } else {
            TAIL_BYTES
        };
        let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
        let observer = request.observer.as_ref().map(|o| o.0.as_ref());
        let log = request.log.as_deref();
        let deadline = request
            .timeout
            .map(|t| tokio::time::Instant::from_std(started + t));
        // Waiting and reading run in this one task: no extra task and wake-up per command.
        let exited = tokio::sync::Notify::new();
        let waiting = async {
            let ended = self
                .wait(
                    &mut child,
                    pgid,
                    deadline,
                    &mut stop,
                    request.suspend.clone(),
                )
                .await;
            exited.notify_one();
            (ended, started.elapsed())
        };
        let reading = async {
            let reads = async {
                tokio::join!(
                    read_tail(out_pipe, false, limit, observer, log),
                    read_tail(err_pipe, true, limit, observer, log)
                )
            };
            // Reports are read while the output is; once the output is closed, what is left
            // on the report pipe is read without waiting for writers that outlive the command.
            let reports = read_reports(report_fd, observer);
            let reads = async {
                tokio::pin!(reports, reads);
                let mut reports_open = true;
                loop {
                    tokio::select! {
                        done = &mut reads => {
                            if reports_open {
                                let _ = tokio::time::timeout(REPORT_DRAIN, &mut reports).await;
                            }
                            break done;
                        }
                        () = &mut reports, if reports_open => reports_open = false,
                    }
                }
            };
            tokio::pin!(reads);
            // Descendants that outlive the leader may hold the pipes open: give them a
            // moment, then kill what is left of the group so nothing outlives its item.
            let lingering = async {
                exited.notified().await;
                tokio::time::sleep(LINGER).await;
            };
            tokio::select! {
                done = &mut reads => done,
                _ = lingering => {
                    signal_group(pgid, Signal::SIGKILL);
                    reads.await
                }
            }
        };
        let (((status, forced), duration), (out, err)) = tokio::join!(waiting, reading);
        let exit = match forced {
            Some(exit) => exit,
            None => match status {
                Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(code), _) => Exit::Code(code),
                    (None, Some(sig)) => Exit::Signal(sig),
                    (None, None) => Exit::Code(-1),
                },
                Err(e) => Exit::SpawnFailed(format!("waiting for the process failed: {e}")),
            },
        };
        if let Some(observer) = &request.observer {
            observer.0.process(None);
        }
        CommandResult {
            exit,
            duration,
            stdout: out,
            stderr: err,
        }
    }
}

impl ProcessExecutor {
    /// Waits for the leader to exit, enforcing the timeout and stop requests. Returns its
    /// status and, when mmm ended it, why.
    async fn wait(
        &self,
        child: &mut tokio::process::Child,
        pgid: Option<Pid>,
        deadline: Option<tokio::time::Instant>,
        stop: &mut watch::Receiver<StopLevel>,
        mut suspend: Option<watch::Receiver<bool>>,
    ) -> (std::io::Result<std::process::ExitStatus>, Option<Exit>) {
        let mut forced: Option<Exit> = None;
        let mut deadline = deadline;
        // Since when the group is stopped (`mmm pause --suspend`).
        let mut suspended: Option<tokio::time::Instant> = None;
        let status = loop {
            let level = *stop.borrow_and_update();
            if level == StopLevel::Immediate && forced.is_none() {
                forced = Some(Exit::Interrupted);
                signal_group(pgid, Signal::SIGKILL);
            }
            // A stop request continues a stopped group: it gets its grace like any other.
            let want =
                level == StopLevel::Run && suspend.as_mut().is_some_and(|s| *s.borrow_and_update());
            match (want, suspended) {
                (true, None) => {
                    signal_group(pgid, Signal::SIGSTOP);
                    suspended = Some(tokio::time::Instant::now());
                }
                (false, Some(since)) => {
                    signal_group(pgid, Signal::SIGCONT);
                    // The time stopped does not count against the timeout.
                    deadline = deadline.map(|d| d + since.elapsed());
                    suspended = None;
                }
                _ => {}
            }
            let grace_end = (level == StopLevel::Graceful && forced.is_none())
                .then(|| tokio::time::Instant::now() + self.stop_grace);
            tokio::select! {
                status = child.wait() => break status,
                _ = sleep_until_opt(deadline), if forced.is_none() && suspended.is_none() => {
                    forced = Some(Exit::TimedOut);
                    break terminate(child, pgid, self.kill_grace).await;
                }
                _ = sleep_until_opt(grace_end), if grace_end.is_some() => {
                    forced = Some(Exit::Interrupted);
                    break terminate(child, pgid, self.kill_grace).await;
                }
                changed = stop.changed() => {
                    if changed.is_err() {
                        // The runner is gone: nobody will read the result; kill and reap.
                        forced = Some(Exit::Interrupted);
                        break terminate(child, pgid, Duration::ZERO).await;
                    }
                }
                changed = suspension_changed(&mut suspend) => {
                    if changed.is_err() {
                        // Nobody can suspend it any more: as if never suspended.
                        suspend = None;
                    }
                }
            }
        };
        (status, forced)
    }
}

/// Waits for the suspension to change; never, without one.
async fn suspension_changed(
    suspend: &mut Option<watch::Receiver<bool>>,
) -> Result<(), watch::error::RecvError> {
    match suspend {
        Some(suspend) => suspend.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn signal_group(pgid: Option<Pid>, signal: Signal) {
    if let Some(pgid) = pgid {
        // ESRCH (the group is already gone) is the expected, harmless case.
        let _ = killpg(pgid, signal);
    }
}

/// SIGTERM to the group, up to `grace` for it to exit, then SIGKILL to the group.
async fn terminate(
    child: &mut tokio::process::Child,
    pgid: Option<Pid>,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    if !grace.is_zero() {
        signal_group(pgid, Signal::SIGTERM);
        if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
            // The leader is gone; kill any of its group that ignored SIGTERM.
            signal_group(pgid, Signal::SIGKILL);
            return status;
        }
    }
    signal_group(pgid, Signal::SIGKILL);
    child.wait().await
}

/// Reads the report pipe line by line until every writer closed it.
async fn read_reports(fd: Option<std::os::fd::OwnedFd>, observer: Option<&dyn CommandObserver>) {
    use tokio::io::AsyncBufReadExt;
    let (Some(fd), Some(observer)) = (fd, observer) else {
        return;
    };
    let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return;
    };
    let mut lines = tokio::io::BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut lines)
            .take(super::report::MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                // A line cut at MAX_LINE: skip its rest.
                if line.last() != Some(&b'\n') && line.len() >= super::report::MAX_LINE {
                    let mut rest = Vec::new();
                    if lines.read_until(b'\n', &mut rest).await.is_err() {
                        return;
                    }
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                match super::report::parse_line(text) {
                    Ok(report) => observer.report(report),
                    Err(error) => observer.bad_report(text, error.as_str()),
                }
            }
        }
    }
}

/// Reads a pipe to its end (`stderr`: the error pipe), keeping at most the last `limit` bytes,
/// and passing every read to the observer and the log. While the log holds output it has not
/// sent, a read waits no longer than the log's due time (then the log sends it).
async fn read_tail(
    pipe: Option<impl AsyncRead + Unpin>,
    stderr: bool,
    limit: usize,
    observer: Option<&dyn CommandObserver>,
    log: Option<&dyn OutputLog>,
) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let due = log.and_then(OutputLog::due);
        let read = match (due, log) {
            (Some(due), Some(log)) => {
                match tokio::time::timeout_at(due.into(), pipe.read(&mut buf)).await {
                    Ok(read) => read,
                    Err(_) => {
                        log.seal();
                        continue;
                    }
                }
            }
            _ => pipe.read(&mut buf).await,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(observer) = observer {
                    observer.output();
                    observer.wrote(stderr, &buf[..n]);
                }
                if let Some(log) = log
                    && log.wrote(stderr, &buf[..n])
                {
                    log.caught_up().await;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > limit.saturating_mul(2) {
                    let cut = kept.len() - limit;
                    kept.drain(..cut);
                }
            }
        }
    }
    if kept.len() > limit {
        let cut = kept.len() - limit;
        kept.drain(..cut);
    }
    kept
}

/// The tail of some output as text: lossy UTF-8, at most [`TAIL_BYTES`], cut at a line start
/// when one is near.
pub fn tail_text(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    let mut slice = &bytes[start..];
    if start > 0
        && let Some(nl) = slice.iter().position(|b| *b == b'\n')
        && nl < 200
    {
        slice = &slice[nl + 1..];
    }
    String::from_utf8_lossy(slice).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(line: &str, cwd: PathBuf) -> CommandRequest {
        CommandRequest {
            command: RenderedCommand::Shell(line.to_string()),
            env: vec![("MMM_TEST_VALUE".into(), "it's data".into())],
            cwd,
            timeout: None,
            keep_output: true,
            observer: None,
            log: None,
            suspend: None,
        }
    }

    fn run(request: CommandRequest) -> CommandResult {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (_stop, stop) = watch::channel(StopLevel::Run);
        runtime.block_on(ProcessExecutor::default().run(request, stop))
    }

    #[test]
    fn a_command_finds_its_standard_input_empty_and_its_environment_set() {
        let here = std::env::current_dir().expect("current dir");
        let result = run(shell(
            "readlink /proc/self/fd/0; if read line; then echo \"read $line\"; else echo eof; fi; \
             echo \"$MMM_TEST_VALUE\"",
            here,
        ));
        assert_eq!(result.exit, Exit::Code(0));
        assert_eq!(
            String::from_utf8_lossy(&result.stdout),
            "/dev/null\neof\nit's data\n"
        );
    }

    #[test]
    fn a_command_runs_in_its_working_directory_whether_or_not_it_is_mmm_s() {
        let here = std::env::current_dir().expect("current dir");
        let result = run(shell("pwd -P", here.clone()));
        let expected = here.canonicalize().expect("canonical");
        assert_eq!(
            String::from_utf8_lossy(&result.stdout).trim(),
            expected.display().to_string()
        );

        let elsewhere = tempfile::tempdir().expect("tempdir");
        let result = run(shell("pwd -P", elsewhere.path().to_path_buf()));
        let expected = elsewhere.path().canonicalize().expect("canonical");
        assert_eq!(
            String::from_utf8_lossy(&result.stdout).trim(),
            expected.display().to_string()
        );
        assert_ne!(expected, here.canonicalize().expect("canonical"));
    }
}
