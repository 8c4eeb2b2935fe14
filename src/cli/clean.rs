//! `mmm clean JOB`: removes what a job with worktree isolation created in its repository.

use anyhow::Context;

use super::wiring::open_job;
use super::{Exit, UsageError};
use mmm_core::job::now_ms;
use mmm_runner::worktree::{Repo, branch_name};
use mmm_spec::Isolation;

pub(crate) const AFTER_HELP: &str = "\
Removes the job's worktrees (<repo>/.git/mmm/<job>/agent-N) and their folder, and prunes
git's record of them. The integration branch (mmm/<name>-<job>) holds the job's merged work,
so it is deleted only with --branch, or when it is already merged into the repository's HEAD.
A job whose runner is still alive is refused: stop it first.

Examples:
  mmm clean 0190a3f2                 remove the job's worktrees, keep its branch
  mmm clean 0190a3f2 --branch        ... and delete its integration branch";

/// Arguments of `mmm clean`.
#[derive(Debug, clap::Args)]
pub(crate) struct CleanArgs {
    /// The job: an id or an unambiguous prefix (`mmm jobs` lists them).
    #[arg(add = super::wiring::job_id_completer())]
    job: String,
    /// Also delete the job's integration branch, even when it is not merged.
    #[arg(long)]
    branch: bool,
}

/// What the recorded plan says about where the job ran.
fn recorded_place(spec: &str) -> Option<(std::path::PathBuf, bool)> {
    let plan: serde_json::Value = serde_json::from_str(spec).ok()?;
    let base_dir = plan.get("base_dir")?.as_str()?.into();
    let isolated = plan
        .pointer("/map/isolation")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v == Isolation::Worktree.as_str());
    Some((base_dir, isolated))
}

/// Runs `mmm clean`.
pub(crate) fn clean(store_location: &str, args: CleanArgs) -> anyhow::Result<Exit> {
    let (store, id) = open_job(store_location, &args.job)?;
    let job = store
        .job(id)
        .with_context(|| format!("could not read job {}", id.short()))?;
    let short = id.short();
    if mmm_store::owner::owner_is_alive(&job, now_ms(), &mmm_store::owner::host_name()) {
        return Err(UsageError::new(format!(
            "job {short} is still running (pid {}); stop it first (Ctrl-C, or kill -TERM {})",
            job.owner_pid.unwrap_or(0),
            job.owner_pid.unwrap_or(0)
        ))
        .into());
    }
    let Some((base_dir, true)) = recorded_place(&job.spec) else {
        eprintln!("mmm: job {short} does not use worktree isolation: nothing to clean");
        return Ok(Exit::Success);
    };
    let repo = Repo::discover(&base_dir).with_context(|| {
        format!(
            "job {short} ran in {}, which is no longer a git repository",
            base_dir.display()
        )
    })?;
    let removed = repo
        .remove_job_worktrees(&short)
        .context("could not remove the job's worktrees")?;
    if removed.is_empty() {
        eprintln!("mmm: job {short} has no worktrees left");
    }
    for path in &removed {
        eprintln!("mmm: removed {}", path.display());
    }
    let branch = branch_name(&job.name, &short);
    if repo
        .resolve(&format!("refs/heads/{branch}"))
        .context("could not read the branch")?
        .is_none()
    {
        return Ok(Exit::Success);
    }
    let merged = repo.is_merged_into_head(&branch).unwrap_or(false);
    if args.branch || merged {
        repo.delete_branch(&branch)
            .with_context(|| format!("could not delete branch {branch}"))?;
        let why = if merged {
            "already merged into HEAD"
        } else {
            "--branch"
        };
        eprintln!("mmm: deleted branch {branch} ({why})");
    } else {
        eprintln!(
            "mmm: kept branch {branch}: it holds work not merged into HEAD; merge it \
             (git merge {branch}) or delete it (mmm clean {short} --branch)"
        );
    }
    Ok(Exit::Success)
}
