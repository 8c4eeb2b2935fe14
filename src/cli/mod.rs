//! The command line: arguments (clap), one file per subcommand, and the one place that picks
//! the process exit code. What several subcommands share is in `wiring/` (the store, a run in
//! this process, the resume, ...) and `output/` (how things are written); subcommand files
//! use those two, never each other.
//!
//! Only this module prints, reads arguments and the environment, and names concrete store
//! backends; everything below it returns values and errors.

mod budget;
mod check;
mod clean;
mod completions;
mod control;
mod dlq;
mod events;
mod export;
mod health;
mod jobs;
mod logs;
mod man;
pub(crate) mod output;
mod progress_cmd;
mod replay;
mod report;
mod resume;
mod run;
mod runs;
mod serve;
mod stats;
mod store_cmd;
mod validate;
mod wiring;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, documented in `mmm --help` and README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: the job completed (or the command succeeded).
    Success,
    /// 1: the job failed (setup, input or reduce), or an error stopped the command.
    Failure,
    /// 2: bad usage: unknown option, invalid job file, unknown job id.
    Usage,
    /// 3: the map finished but some items are in the dead-letter queue.
    CompletedWithFailures,
    /// 130: the job was interrupted (Ctrl-C, SIGTERM, SIGHUP); `mmm jobs` lists it.
    Interrupted,
    /// A one-liner's `--halt` stopped the job: GNU parallel's exit status for it (the
    /// failing command's with `fail=1`, else the number of failed items; 0 for `success`).
    Halted(u8),
}

impl Exit {
    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::CompletedWithFailures => 3,
            Exit::Interrupted => 130,
            Exit::Halted(code) => code,
        }
    }
}

const EXIT_CODES: &str = "\
Exit codes:
  0    the job completed, or the command succeeded
  1    the job failed (setup, input or reduce), or an error stopped the command, or
       `mmm check` found problems
  2    usage error: bad option, invalid job file, unknown job id
  3    the job completed with failures: some items are in the dead-letter queue
  130  the job was interrupted (Ctrl-C, SIGTERM, SIGHUP, `mmm drain`) or cancelled
       (`mmm cancel`)
  a one-liner stopped by --halt exits as GNU parallel does: the failing command's exit
  status with fail=1, 0 with success=N, else the number of failed items (at most 101)";

/// mmm runs long, parallel batch jobs durably and shows exactly where they stand.
#[derive(Debug, Parser)]
#[command(name = "mmm", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Where jobs are recorded: a directory (holding mmm.db), a .db file, or a PostgreSQL URL
    /// (postgres://USER@HOST:PORT/DATABASE?schema=NAME; shared with `mmm worker`s).
    #[arg(
        long,
        global = true,
        env = "MMM_STORE",
        default_value = ".mmm",
        value_name = "PATH"
    )]
    store: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a job file, or a command over items like GNU parallel.
    #[command(after_help = run::AFTER_HELP)]
    Run(Box<run::RunArgs>),
    /// List jobs, newest first, with status, progress, counts and durations.
    Jobs(jobs::JobsArgs),
    /// Per job name over a period: runs, success rate, items, duration percentiles, steps,
    /// deadlines, the ETA's error, against the period before.
    #[command(after_help = stats::AFTER_HELP)]
    Stats(stats::StatsArgs),
    /// Check a job file and print the normalised plan, without running anything.
    Validate(validate::ValidateArgs),
    /// Continue an interrupted job where it stood.
    #[command(after_help = resume::AFTER_HELP)]
    Resume(resume::ResumeArgs),
    /// List a job's checkpoints (what `mmm resume --from` can rewind to).
    Checkpoints(resume::CheckpointsArgs),
    /// The dead-letter queue of a job: list, show, export, retry, purge.
    #[command(after_help = dlq::AFTER_HELP)]
    Dlq(dlq::DlqArgs),
    /// Verify the store: SQLite's integrity and each job's record (exit 1 on problems).
    #[command(after_help = check::CHECK_HELP)]
    Check(check::CheckArgs),
    /// A job's event log; with --follow, live until the run ends.
    #[command(after_help = events::AFTER_HELP)]
    Events(events::EventsArgs),
    /// Print items' whole output (stdout and stderr, every attempt), or follow it live.
    #[command(after_help = logs::AFTER_HELP)]
    Logs(logs::LogsArgs),
    /// Is the store writable, is every running job's runner alive and unstuck? (exit 1 if not)
    #[command(after_help = health::AFTER_HELP)]
    Health(health::HealthArgs),
    /// From inside a step: report its progress, a message or counters to the job.
    #[command(after_help = report::AFTER_HELP)]
    Report(report::ReportArgs),
    /// Recover a job's record after a crash, reporting every change.
    #[command(after_help = check::REPAIR_HELP)]
    Repair(check::RepairArgs),
    /// Observed ML runs (training and evaluation folders): kind, status, progress, scores.
    #[command(after_help = runs::AFTER_HELP)]
    Runs(runs::RunsArgs),
    /// Where a job stands: a live full-screen viewer, a summary, JSON, or a line at an interval.
    #[command(after_help = progress_cmd::AFTER_HELP)]
    Progress(progress_cmd::ProgressArgs),
    /// Export a job's report: JSON, CSV of its items or its snapshots, or one HTML file.
    #[command(after_help = export::AFTER_HELP)]
    Export(export::ExportArgs),
    /// Play a job's recorded history through the viewer, with pause and seek.
    #[command(after_help = replay::AFTER_HELP)]
    Replay(replay::ReplayArgs),
    /// Remove what a job created in its git repository (worktrees; the branch with --branch).
    #[command(after_help = clean::AFTER_HELP)]
    Clean(clean::CleanArgs),
    /// The web dashboard for every job in the store (JSON API, WebSocket, /metrics).
    #[command(after_help = serve::AFTER_HELP)]
    Serve(serve::ServeArgs),
    /// Join the map phase of jobs in a PostgreSQL store from this host (scale-out).
    #[command(after_help = worker::AFTER_HELP)]
    Worker(worker::WorkerArgs),
    /// Copy a job's record between stores (SQLite <-> PostgreSQL) to continue it elsewhere.
    Store(store_cmd::StoreArgs),
    /// Pause a running job: no new item starts (from any terminal or host).
    #[command(after_help = control::PAUSE_HELP)]
    Pause(control::PauseArgs),
    /// Unpause a paused job: items start again.
    Unpause(control::JobArg),
    /// Change the number of agents of a running job.
    #[command(after_help = control::SCALE_HELP)]
    Scale(control::ScaleArgs),
    /// Let a running job finish its items in flight, then stop it (interrupted, resumable).
    #[command(after_help = control::DRAIN_HELP)]
    Drain(control::JobArg),
    /// Cancel a running job: its commands are stopped, it ends `cancelled`.
    #[command(after_help = control::CANCEL_HELP)]
    Cancel(control::CancelArgs),
    /// Show a job's budgets on counters, or set them (a raised budget continues a job it paused).
    #[command(after_help = budget::AFTER_HELP)]
    Budget(budget::BudgetArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = completions::AFTER_HELP)]
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff), or write every page into a folder.
    #[command(after_help = man::AFTER_HELP)]
    Man(man::ManArgs),
}

/// An error that already decided its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct UsageError {
    message: String,
}

impl UsageError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
        }
    }
}

/// Parses the arguments, runs the command, and returns the process exit code.
pub(crate) fn main() -> ExitCode {
    completions::complete_if_asked();
    let args = match run::gnu::prepare(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => return ExitCode::from(report(&e.into()).code()),
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            };
            let _ = e.print();
            return ExitCode::from(code.code());
        }
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => report(&e),
    };
    ExitCode::from(code.code())
}

fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run(args) => run::run(&cli.store, *args),
        Command::Jobs(args) => jobs::jobs(&cli.store, args),
        Command::Stats(args) => stats::stats(&cli.store, args),
        Command::Validate(args) => validate::validate(args),
        Command::Resume(args) => resume::resume(&cli.store, args),
        Command::Checkpoints(args) => resume::checkpoints(&cli.store, args),
        Command::Dlq(args) => dlq::dlq(&cli.store, args),
        Command::Check(args) => check::check(&cli.store, args),
        Command::Repair(args) => check::repair(&cli.store, args),
        Command::Events(args) => events::events(&cli.store, args),
        Command::Logs(args) => logs::logs(&cli.store, args),
        Command::Report(args) => report::report(args),
        Command::Health(args) => health::health(&cli.store, args),
        Command::Runs(args) => runs::runs(args),
        Command::Progress(args) => progress_cmd::progress(&cli.store, args),
        Command::Export(args) => export::export(&cli.store, args),
        Command::Replay(args) => replay::replay(&cli.store, args),
        Command::Serve(args) => serve::serve(&cli.store, args),
        Command::Worker(args) => worker::worker(&cli.store, args),
        Command::Store(args) => store_cmd::store(&cli.store, args),
        Command::Clean(args) => clean::clean(&cli.store, args),
        Command::Pause(args) => control::pause(&cli.store, args),
        Command::Unpause(args) => control::unpause(&cli.store, args),
        Command::Scale(args) => control::scale(&cli.store, args),
        Command::Drain(args) => control::drain(&cli.store, args),
        Command::Cancel(args) => control::cancel(&cli.store, args),
        Command::Budget(args) => budget::run(&cli.store, args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => man::man(args),
    }
}

/// Prints an error with its chain of causes and picks the exit code for it.
fn report(e: &anyhow::Error) -> Exit {
    if output::is_broken_pipe(e) {
        return Exit::Success;
    }
    let usage = e
        .chain()
        .any(|c| c.is::<UsageError>() || c.is::<mmm_spec::SpecError>());
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if usage { Exit::Usage } else { Exit::Failure }
}
