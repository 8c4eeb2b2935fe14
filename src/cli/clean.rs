//! `mmm clean JOB`: removes what a job with worktree isolation created in its repository, and
//! the lines `mmm run` / `mmm resume` print about the job's integration branch (with
//! `--merge-into`, the fast-forward).

use anyhow::Context;

use super::Exit;
use mmm_core::job::{JobStatus, now_ms};
use mmm_runner::RunSummary;
use mmm_runner::worktree::{FastForward, Repo, branch_name};
use mmm_spec::{Isolation, JobPlan};

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
    let (store, id) = super::dlq::open_job(store_location, &args.job)?;
    let job = store
        .job(id)
        .with_context(|| format!("could not read job {}", id.short()))?;
    let short = id.short();
    if mmm_store::owner::owner_is_alive(&job, now_ms(), &mmm_store::owner::host_name()) {
        return Err(super::UsageError::new(format!(
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

/// After a run with worktree isolation: says where the merged work is and how to merge it,
/// or fast-forwards `merge_into` to it.
pub(crate) fn report_branch(
    summary: &RunSummary,
    plan: &JobPlan,
    merge_into: Option<&str>,
    quiet: bool,
) {
    if plan.map.isolation != Isolation::Worktree {
        return;
    }
    let Ok(repo) = Repo::discover(&plan.base_dir) else {
        return;
    };
    let short = summary.job_id.short();
    let branch = branch_name(&plan.name, &short);
    let reference = format!("refs/heads/{branch}");
    if !matches!(repo.resolve(&reference), Ok(Some(_))) {
        return;
    }
    let ahead = repo.commits_between("HEAD", &reference).unwrap_or(0);
    if summary.status == JobStatus::Interrupted {
        if !quiet {
            eprintln!(
                "mmm: the work merged so far is on branch {branch}; `mmm resume {short}` continues"
            );
        }
        return;
    }
    match merge_into {
        Some(target)
            if matches!(
                summary.status,
                JobStatus::Completed | JobStatus::CompletedWithFailures
            ) =>
        {
            match repo.fast_forward(target, &branch) {
                Ok(FastForward::Done { from, to }) => eprintln!(
                    "mmm: fast-forwarded {target} to {branch} ({} -> {})",
                    &from[..from.len().min(10)],
                    &to[..to.len().min(10)]
                ),
                Ok(FastForward::UpToDate) => {
                    eprintln!("mmm: {target} is already at {branch}: nothing to merge")
                }
                Ok(FastForward::Refused(why)) => eprintln!(
                    "mmm: cannot fast-forward {target} to {branch}: {why}; merge it yourself: \
                     git checkout {target} && git merge {branch}"
                ),
                Err(e) => eprintln!("mmm: could not fast-forward {target}: {e}"),
            }
        }
        _ if !quiet => eprintln!(
            "mmm: the merged work is on branch {branch} ({ahead} commits not on HEAD); \
             merge it: git merge {branch} (or run with --merge-into BRANCH); \
             then mmm clean {short} --branch"
        ),
        _ => {}
    }
}
