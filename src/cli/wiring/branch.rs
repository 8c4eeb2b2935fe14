//! After a run of a job with worktree isolation: where its merged work is and how to merge
//! it, or the branch given with `--merge-into` fast-forwarded to it.

use mmm_core::job::JobStatus;
use mmm_runner::RunSummary;
use mmm_runner::worktree::{FastForward, Repo, branch_name};
use mmm_spec::{Isolation, JobPlan};

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
