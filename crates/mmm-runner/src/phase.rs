//! The job's phases: why one ends early ([`Halt`]), and the two that run commands in order,
//! setup and reduce ([`run_commands`]).

use crate::run::Run;
use crate::{CommandRequest, Executor, Exit, JobFailure, RunError, process};
use mmm_core::event::{Event, PhaseCommandFinished, PhaseFinished, PhaseStarted};
use mmm_core::job::{Phase, now_ms};
use mmm_spec::{MapCounts, PhaseCommand, RenderContext};
use mmm_store::Write;

/// Why the job's phases ended before the last one finished.
#[derive(Debug)]
pub(crate) enum Halt {
    /// A stop request (or git trouble under worktree isolation): the job is recorded
    /// `interrupted`.
    Interrupted,
    /// The job's own fault: it is recorded `failed`.
    Failed(JobFailure),
    /// The runner cannot go on: the job is left as the store last recorded it.
    Broken(RunError),
}

impl From<RunError> for Halt {
    fn from(error: RunError) -> Self {
        Halt::Broken(error)
    }
}

impl From<JobFailure> for Halt {
    fn from(failure: JobFailure) -> Self {
        Halt::Failed(failure)
    }
}

/// Runs setup or reduce commands in order (`map`: the map's counts, for reduce).
pub(crate) async fn run_commands<E: Executor>(
    run: &Run<E>,
    phase: Phase,
    commands: &[PhaseCommand],
    map: Option<&MapCounts>,
) -> Result<(), Halt> {
    if commands.is_empty() {
        return Ok(());
    }
    let job = run.job;
    run.record(vec![
        Write::JobPhase {
            job,
            phase,
            at: now_ms(),
        },
        Write::event(
            job,
            None,
            Event::PhaseStarted(PhaseStarted {
                phase: phase.into(),
                worktrees: None,
            }),
        ),
    ]);
    for command in commands {
        if run.stopping() {
            return Err(Halt::Interrupted);
        }
        let ctx = RenderContext {
            item: None,
            item_key: None,
            seq: 0,
            slot: 0,
            env: &run.plan.env,
            map,
        };
        let rendered = command
            .command
            .render(&ctx)
            .map_err(|source| JobFailure::Render {
                phase,
                command: command.name.clone(),
                source,
            })?;
        let request = CommandRequest {
            command: rendered,
            env: run.command_env(None, "", &command.name),
            cwd: run.plan.base_dir.clone(),
            timeout: command.timeout,
            keep_output: true,
            observer: None,
            log: None,
            suspend: None,
        };
        let result = run.executor.run(request, run.stop.clone()).await;
        run.show(&command.name, &result);
        let finished = PhaseCommandFinished {
            phase,
            command: command.name.clone(),
            exit: result.exit.describe(),
            exit_code: result.exit.code(),
            duration_ms: result.duration.as_millis() as u64,
            stdout_tail: process::tail_text(&result.stdout),
            stderr_tail: process::tail_text(&result.stderr),
        };
        run.record(vec![Write::event(
            job,
            None,
            Event::PhaseCommandFinished(finished),
        )]);
        match result.exit {
            Exit::Code(0) => {}
            Exit::Interrupted => return Err(Halt::Interrupted),
            exit => {
                return Err(JobFailure::Command {
                    phase,
                    command: command.name.clone(),
                    exit,
                }
                .into());
            }
        }
    }
    let finished = PhaseFinished {
        phase: phase.into(),
        error: None,
    };
    run.record(vec![Write::event(
        job,
        None,
        Event::PhaseFinished(finished),
    )]);
    Ok(())
}
