//! `mmm run`: build the plan (job file or one-liner), record the job, run it with live
//! progress, print a summary, and turn the final status into the exit code.
//!
//! The one-liner reads GNU parallel's command line: [`gnu`] prepares the words before clap
//! (the form without `--`, unsupported options), [`sources`] splits the words after the
//! command into input sources, [`dry_run`] prints the commands instead of running them.

mod dry_run;
pub(crate) mod gnu;
mod sources;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::wiring::{ViewArgs, execute, open_store, runtime, start_beside_run};
use super::{Exit, UsageError};
use mmm_core::job::JobId;
use mmm_runner::Start;
use mmm_spec::{
    ArgSource, ArgsInput, Delimiter, HaltPolicy, JobOrigin, OneLinerOptions, OriginSource,
    Overrides, SourceKind, Tag,
};

pub(crate) const AFTER_HELP: &str = "\
Examples:
  mmm run examples/demo.yml                 run a job file
  mmm run job.yml -j 8                      ... with 8 agents
  mmm run -j 2 -- echo {} ::: a b c         run `echo` once per item, like GNU parallel
  mmm run -j 8 --input urls.txt -- curl -fsS {}
  mmm run -j 4 -- convert {} -resize 50% out/{/} ::: *.jpg
  find . -name '*.jpg' | mmm run -j 8 -- convert {} -resize 50% small/{/}
  mmm run -k echo {1}-{2} ::: a b ::: 1 2     every combination, in input order (no `--` needed
                                            when a ::: or :::: follows)
  mmm run --link -- echo {1} {2} ::: a b ::: 1 2      pairs: a 1, b 2
  mmm run --dry-run -- gzip {} :::: files.txt         print the commands, run nothing

Input sources (GNU parallel's): `::: A B` arguments; `:::: FILE` (- for standard input) one
argument per line; -a FILE likewise; `:::+`/`::::+` pair with the previous source instead of
combining; standard input when no source is given and it is not a terminal. Several sources
give every combination, the first varying slowest; {1} {2} ... are the source values.
-0/-d change the separator, --colsep splits lines into columns {1} {2}, -N takes N arguments
per command. Unsupported GNU parallel options are refused (exit 2); docs/oneliner.md lists
them and the differences.

Replacement strings (one-liner): {} item, {/} basename, {//} dirname, {.} without extension,
{/.} basename without extension, {#} sequence number, {%} agent slot; {N}, {N/}, {N//}, {N.},
{N/.} the Nth value of an item of several. Without any, {} is appended. Values are passed as data: quoted for the shell, never evaluated. Each command also
gets MMM_ITEM (JSON), MMM_ITEM_RAW, MMM_ITEM_KEY, MMM_JOB_ID, MMM_AGENT, MMM_ATTEMPT,
MMM_STEP and MMM_RUNNER_PID (the mmm process running it).

Ctrl-C (or SIGTERM/SIGHUP) stops dispatching, lets running commands finish for --grace, then
kills their process groups and records the job `interrupted`; a second Ctrl-C kills at once.";

/// Arguments of `mmm run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The job file (YAML). Omit it to run the command given after `--`.
    file: Option<PathBuf>,
    /// Number of parallel agents: N, or relative to the CPUs as +N, -N, N% [default:
    /// map.max_parallel, or the number of CPUs].
    #[arg(short = 'j', long = "jobs", short_alias = 'P', alias = "max-procs", value_name = "N", allow_hyphen_values = true, value_parser = parse_jobs)]
    jobs: Option<u32>,
    /// One-liner: read the items from FILE, one per line (- for standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    input: Option<PathBuf>,
    /// One-liner: an input source read from FILE, one argument per line (- for standard
    /// input); may be repeated (every combination).
    #[arg(
        short = 'a',
        long = "arg-file",
        value_name = "FILE",
        conflicts_with = "file"
    )]
    arg_file: Vec<PathBuf>,
    /// One-liner: arguments in files and on standard input end with a NUL byte, not a newline.
    #[arg(short = '0', long = "null", conflicts_with = "file")]
    null: bool,
    /// One-liner: arguments in files and on standard input end with DELIM (\n, \t, \0 understood).
    #[arg(
        short = 'd',
        long = "delimiter",
        value_name = "DELIM",
        conflicts_with_all = ["null", "file"]
    )]
    delimiter: Option<String>,
    /// One-liner: split each argument into columns {1} {2} ... at the regular expression REGEX.
    #[arg(long, value_name = "REGEX", conflicts_with = "file")]
    colsep: Option<String>,
    /// One-liner: N arguments per command ({1}..{N}); -N0 runs the command with none.
    #[arg(
        short = 'N',
        long = "max-replace-args",
        value_name = "N",
        conflicts_with = "file"
    )]
    max_args: Option<usize>,
    /// One-liner: pair the input sources (a 1, b 2) instead of combining them; shorter ones
    /// wrap around.
    #[arg(long, visible_alias = "xapply", conflicts_with = "file")]
    link: bool,
    /// One-liner: print each item's output in input order (items still run in parallel).
    #[arg(short = 'k', long = "keep-order", conflicts_with = "file")]
    keep_order: bool,
    /// One-liner: print each line of output as soon as it is whole (lines of items running
    /// together are mixed, never cut), instead of each item's output whole when it ends.
    #[arg(long, visible_alias = "lb", conflicts_with_all = ["file", "keep_order"])]
    line_buffer: bool,
    /// One-liner: put the item's arguments and a tab before each line of its output.
    #[arg(long, conflicts_with = "file")]
    tag: bool,
    /// One-liner: put STR (with replacement strings) and a tab before each output line.
    #[arg(long, value_name = "STR", conflicts_with_all = ["tag", "file"])]
    tagstring: Option<String>,
    /// One-liner: print the commands that would run, and run (and record) nothing.
    #[arg(long, conflicts_with = "file")]
    dry_run: bool,
    /// One-liner: pass the command words as they are, never through a shell (GNU parallel's
    /// quoting of the command).
    #[arg(short = 'q', long = "quote", conflicts_with = "file")]
    quote: bool,
    /// One-liner: wait DURATION between two command starts (seconds, or 1.5s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "file")]
    delay: Option<Duration>,
    /// One-liner: stop early, as GNU parallel: WHEN,WHY with WHEN `now` (kill running
    /// commands) or `soon` (let them finish) and WHY `fail=N`, `success=N`, `done=N` (or N%),
    /// e.g. `now,fail=1`. The job is left interrupted (resumable) with why it halted.
    #[arg(long, alias = "halt-on-error", value_name = "WHEN,WHY", allow_hyphen_values = true, value_parser = parse_halt, conflicts_with = "file")]
    halt: Option<HaltArg>,
    /// One-liner: output is grouped per item; the default, accepted for GNU parallel's sake.
    #[arg(long)]
    group: bool,
    /// Accepted for GNU parallel's sake: mmm has no citation notice.
    #[arg(long, hide = true)]
    will_cite: bool,
    /// Per-attempt timeout: seconds, or 30s, 2m (overrides map.timeout).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Retries after a failed attempt before an item goes to the DLQ (overrides map.retries).
    #[arg(long, value_name = "N")]
    retries: Option<u32>,
    /// What the store keeps of each attempt's output, read back with `mmm logs`: `full` (all
    /// of it up to --log-cap, past it the first and last halves), `tail` (the last --log-cap),
    /// `none` (only the last 4 KiB of each stream, for the DLQ). Overrides the job file's
    /// `logs:` [default: full].
    #[arg(long, value_name = "full|tail|none", value_parser = parse_log_keep)]
    logs: Option<mmm_spec::LogKeep>,
    /// The most output the store keeps per attempt, e.g. 1GiB, 500MB (overrides the job
    /// file's `log_cap:`) [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_log_cap)]
    log_cap: Option<u64>,
    /// Start at most RATE attempts across all agents (and, on a PostgreSQL store, all hosts):
    /// N/s, N/min or N/h, e.g. 20/s or 500/min (overrides map.rate; docs/api-work.md).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    rate: Option<mmm_spec::Rate>,
    /// Pause the job (resumably) once the counter NAME, reported by steps with `mmm report
    /// --counter NAME=+N`, reaches MAX (decimals allowed: cost_usd=49.5); may be repeated; `mmm
    /// budget JOB NAME=MAX` raises it and the job continues (overrides map.budget of that
    /// counter).
    #[arg(long, value_name = "NAME=MAX", value_parser = parse_budget)]
    budget: Vec<mmm_spec::Budget>,
    #[command(flatten)]
    view: ViewArgs,
    /// Serve the web dashboard while the job runs (on 127.0.0.1; the URL is printed).
    #[arg(long)]
    dashboard: bool,
    /// The dashboard's port; the next free one is taken when it is busy.
    #[arg(
        long,
        default_value_t = 8080,
        value_name = "PORT",
        requires = "dashboard"
    )]
    port: u16,
    /// One-liner: the command, then its input sources (`::: ARGS`, `:::: FILES`); without
    /// any, the items are read from standard input.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs `mmm run`.
pub(crate) fn run(store_location: &str, args: RunArgs) -> anyhow::Result<Exit> {
    let origin = build_origin(&args)?;
    let plan = origin.plan()?.plan;
    if args.dry_run {
        return dry_run::print(&plan);
    }
    let store = open_store(store_location, true)?;
    let start = Start::New {
        origin: Some(serde_json::to_string(&origin).context("could not record the job's origin")?),
    };
    if args.dashboard {
        let url = start_beside_run(store_location, args.port)?;
        eprintln!("mmm: dashboard at {url}");
    }
    runtime()?.block_on(async {
        execute(
            store,
            Arc::new(plan),
            JobId::new(),
            start,
            &args.view,
            store_location,
        )
        .await
    })
}

/// How the plan is built: the job file or the one-liner, with the command-line overrides.
fn build_origin(args: &RunArgs) -> anyhow::Result<JobOrigin> {
    let overrides = Overrides {
        max_parallel: args.jobs.map(|j| j as usize),
        timeout_ms: args.timeout.map(|t| t.as_millis() as u64),
        retries: args.retries,
        logs: args.logs,
        log_cap: args.log_cap,
        rate: args.rate,
        budgets: args.budget.clone(),
    };
    match &args.file {
        Some(file) => {
            if !args.command.is_empty() {
                return Err(UsageError::new(format!(
                    "give either a job file ({}) or a command after `--`, not both",
                    file.display()
                ))
                .into());
            }
            Ok(JobOrigin::file(file, overrides)?)
        }
        None => oneliner_origin(args, overrides),
    }
}

/// A one-liner's origin: its command, its input sources and GNU parallel options.
fn oneliner_origin(args: &RunArgs, overrides: Overrides) -> anyhow::Result<JobOrigin> {
    if args.command.is_empty() {
        return Err(UsageError::new(
            "nothing to run: give a job file (mmm run job.yml) or a command \
             (mmm run -j 4 -- echo {} ::: a b c); see mmm run --help",
        )
        .into());
    }
    let (command, mut listed) = sources::split(&args.command)?;
    let mut given: Vec<ArgSource> = args
        .input
        .iter()
        .chain(&args.arg_file)
        .map(|path| sources::file_source(path, false))
        .collect();
    given.append(&mut listed);
    if given.is_empty() {
        if std::io::stdin().is_terminal() {
            return Err(UsageError::new(
                "mmm run: no items given\n  hint: list them after `:::` (`mmm run -- echo \
                 {} ::: a b c`), name a file with `:::: FILE` or `-a FILE`, or pipe them \
                 in (`ls | mmm run -- gzip`)",
            )
            .into());
        }
        given.push(ArgSource {
            kind: SourceKind::Stdin,
            linked: false,
        });
    }
    if given.iter().filter(|s| s.kind == SourceKind::Stdin).count() > 1 {
        return Err(UsageError::new(
            "mmm run: standard input is named as more than one input source\n  hint: \
             read it once (`:::: -` or `-a -`)",
        )
        .into());
    }
    let delimiter = match (&args.delimiter, args.null) {
        (Some(text), _) => Delimiter::from_escaped(text),
        (None, true) => Delimiter::Nul,
        (None, false) => Delimiter::Newline,
    };
    let options = OneLinerOptions {
        input: ArgsInput {
            sources: given,
            link: args.link,
            delimiter,
            colsep: args.colsep.clone(),
            max_args: args.max_args,
        },
        quote: args.quote,
        keep_order: args.keep_order,
        line_buffer: args.line_buffer,
        tag: match (&args.tagstring, args.tag) {
            (Some(text), _) => Some(Tag::Text(text.clone())),
            (None, true) => Some(Tag::Args),
            (None, false) => None,
        },
        delay_ms: args.delay.map(|d| d.as_millis() as u64),
        halt: args.halt.as_ref().and_then(|h| h.0),
    };
    let base_dir = std::env::current_dir().context("could not read the current directory")?;
    Ok(JobOrigin {
        source: OriginSource::OneLiner {
            command,
            args: Vec::new(),
            input: None,
            base_dir,
            options: Box::new(options),
        },
        overrides,
    })
}

/// `-j`: N, or relative to the number of CPUs as GNU parallel has it: `+N`, `-N`, `N%`.
fn parse_jobs(text: &str) -> Result<u32, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let bad = || format!("`{text}` is not a number of jobs: give N, +N, -N or N% (of {cpus} CPUs)");
    let number = |digits: &str| digits.parse::<i64>().map_err(|_| bad());
    let jobs = if let Some(percent) = text.strip_suffix('%') {
        cpus * number(percent)? / 100
    } else if let Some(more) = text.strip_prefix('+') {
        cpus + number(more)?
    } else if let Some(fewer) = text.strip_prefix('-') {
        cpus - number(fewer)?
    } else {
        let n = number(text)?;
        if n < 1 {
            return Err(format!("`{text}`: -j needs at least 1 job"));
        }
        n
    };
    Ok(jobs.clamp(1, 100_000) as u32)
}

/// `--rate`'s value.
fn parse_rate(text: &str) -> Result<mmm_spec::Rate, String> {
    mmm_spec::Rate::parse(text).map_err(|e| e.to_string())
}

/// `--budget`'s value.
fn parse_budget(text: &str) -> Result<mmm_spec::Budget, String> {
    mmm_spec::Budget::parse(text).map_err(|e| e.to_string())
}

/// `--halt`'s value: a policy, or none for `0`/`never`.
#[derive(Debug, Clone)]
struct HaltArg(Option<HaltPolicy>);

fn parse_halt(text: &str) -> Result<HaltArg, String> {
    HaltPolicy::parse(text)
        .map(HaltArg)
        .map_err(|e| e.to_string())
}

/// A duration as GNU parallel writes it (seconds: `2`, `0.5`) or with units (`2s`, `1m`).
fn parse_log_keep(text: &str) -> Result<mmm_spec::LogKeep, String> {
    mmm_spec::LogKeep::parse(text).ok_or_else(|| format!("`{text}`: expected full, tail or none"))
}

fn parse_log_cap(text: &str) -> Result<u64, String> {
    mmm_spec::parse_size(text)
        .ok_or_else(|| format!("`{text}`: expected a size such as 64MiB, 1GiB or 500MB"))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"));
    }
    humantime::parse_duration(text).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_may_be_relative_to_the_cpus() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        assert_eq!(parse_jobs("3"), Ok(3));
        assert_eq!(parse_jobs("+2"), Ok(cpus + 2));
        assert_eq!(parse_jobs("-1"), Ok((cpus - 1).max(1)));
        assert_eq!(parse_jobs("-100"), Ok(1));
        assert_eq!(parse_jobs("200%"), Ok(cpus * 2));
        assert!(parse_jobs("x").is_err());
        assert!(parse_jobs("0").is_err());
    }

    #[test]
    fn durations_are_seconds_or_with_units() {
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
