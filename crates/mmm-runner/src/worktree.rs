//! Agents in git worktrees (`map.isolation: worktree`, docs/worktrees.md): the job's
//! integration branch, a pool of one detached worktree per agent, the per-item reset, and the
//! serialized merge of an item's commits into the branch.
//!
//! Everything here is plain `git` run as a child process, synchronously: callers in async code
//! use `spawn_blocking`. Nothing needs a checkout of the user's working tree:
//! - the branch `mmm/<job-name>-<short id>` is created with `git update-ref` from `HEAD`;
//! - worktrees live under `<git common dir>/mmm/<short id>/agent-N` (inside `.git`, so they
//!   never show as untracked files), created once with `git worktree add --detach`;
//! - before each item, `git reset --hard <tip>` and `git clean -fdx` touch only what changed;
//! - a merge is `git merge-tree --write-tree`, `git commit-tree` (always a merge commit with
//!   `MMM-Job:` / `MMM-Item-Index:` trailers) and `git update-ref NEW OLD`, an atomic
//!   compare-and-swap: a kill at any moment leaves the branch either before or after the
//!   merge, never half-way, and the trailers tell a resume which items already landed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The trailer naming the job in each merge commit.
pub const JOB_TRAILER: &str = "MMM-Job";
/// The trailer naming the item's position (its index in the store) in each merge commit.
pub const INDEX_TRAILER: &str = "MMM-Item-Index";
/// The trailer naming the item's key (for people; newlines replaced by spaces).
pub const ITEM_TRAILER: &str = "MMM-Item";

/// Identity for the commits mmm makes when the repository has none configured.
const FALLBACK_NAME: &str = "mmm";
const FALLBACK_EMAIL: &str = "mmm@localhost";

/// A git command that failed, or could not run.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` could not be started (not installed, or the working directory vanished).
    #[error("could not run `git {args}` in {}: {source}", .dir.display())]
    Spawn {
        /// The arguments.
        args: String,
        /// Where it was run.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `git` ran and failed.
    #[error("`git {args}` in {} failed ({status}): {}", .dir.display(), .stderr.trim())]
    Failed {
        /// The arguments.
        args: String,
        /// Where it was run.
        dir: PathBuf,
        /// The exit status.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// The folder is not inside a git repository.
    #[error(
        "{} is not inside a git repository; `map.isolation: worktree` needs one (run `git init` and commit, or drop the key)",
        .0.display()
    )]
    NotARepository(PathBuf),
    /// The repository has no commit to branch from.
    #[error(
        "the repository at {} has no commit yet; commit something first (`git commit --allow-empty -m init`)",
        .0.display()
    )]
    NoCommit(PathBuf),
    /// Someone else kept moving the integration branch while mmm merged into it.
    #[error("branch {0} kept moving while mmm merged into it; is another process writing to it?")]
    BranchMoving(String),
    /// A folder under the job's worktree directory could not be created or removed.
    #[error("could not prepare {}: {source}", .path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    /// True when the failure is not the item's fault: lock contention, a vanished worktree,
    /// a git that could not start. Such failures are retried and never dead-letter an item.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            GitError::Spawn { .. } | GitError::Io { .. } | GitError::BranchMoving(_) => true,
            GitError::Failed { stderr, .. } => {
                let s = stderr.to_ascii_lowercase();
                [
                    "index.lock",
                    ".lock': file exists",
                    "cannot lock ref",
                    "unable to lock",
                    "unable to create",
                    "not a git repository",
                    "no such file or directory",
                    "is not a working tree",
                    "unable to write new index",
                    "resource temporarily unavailable",
                ]
                .iter()
                .any(|needle| s.contains(needle))
            }
            GitError::NotARepository(_) | GitError::NoCommit(_) => false,
        }
    }
}

/// Runs `git args` in `dir`; its standard output (trimmed at the end) on success.
fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    git_env(dir, args, &[])
}

fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String, GitError> {
    let output = run_git(dir, args, env)?;
    if !output.status.success() {
        return Err(failed(dir, args, &output));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_string())
}

fn run_git(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<std::process::Output, GitError> {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        // Never ask: no editor, no pager, no credential prompt.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_EDITOR", "true")
        .env("GIT_PAGER", "cat")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    for (k, v) in env {
        command.env(k, v);
    }
    let _spawning = super::process::spawn_lock();
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    drop(_spawning);
    child
        .and_then(|child| child.wait_with_output())
        .map_err(|source| GitError::Spawn {
            args: args.join(" "),
            dir: dir.to_path_buf(),
            source,
        })
}

fn failed(dir: &Path, args: &[&str], output: &std::process::Output) -> GitError {
    GitError::Failed {
        args: args.join(" "),
        dir: dir.to_path_buf(),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// True when `git` can be run at all.
pub fn git_available() -> bool {
    Command::new("git")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A repository found from a folder inside it.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The top of the main working tree.
    pub top: PathBuf,
    /// The common git directory (`.git` of the main working tree).
    pub common_dir: PathBuf,
    /// Where the folder it was found from is, relative to `top` (`tools/`; empty at the top).
    pub prefix: PathBuf,
}

impl Repo {
    /// Finds the repository `dir` is in.
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let out = match git(
            dir,
            &[
                "rev-parse",
                // First: it is an empty line at the top, which a trim would lose at the end.
                "--show-prefix",
                "--path-format=absolute",
                "--show-toplevel",
                "--git-common-dir",
            ],
        ) {
            Ok(out) => out,
            Err(GitError::Failed { stderr, .. }) if stderr.contains("not a git repository") => {
                return Err(GitError::NotARepository(dir.to_path_buf()));
            }
            Err(e) => return Err(e),
        };
        let mut lines = out.lines();
        match (lines.next(), lines.next(), lines.next()) {
            (Some(prefix), Some(top), Some(common)) => Ok(Repo {
                top: PathBuf::from(top),
                common_dir: PathBuf::from(common),
                prefix: PathBuf::from(prefix),
            }),
            _ => Err(GitError::NotARepository(dir.to_path_buf())),
        }
    }

    /// The folder holding a job's worktrees.
    pub fn job_dir(&self, short_id: &str) -> PathBuf {
        self.common_dir.join("mmm").join(short_id)
    }

    /// The commit a ref points to, or `None` when it does not exist.
    pub fn resolve(&self, reference: &str) -> Result<Option<String>, GitError> {
        let args = ["rev-parse", "--verify", "--quiet", reference];
        let output = run_git(&self.top, &args, &[])?;
        match output.status.code() {
            Some(0) => Ok(Some(
                String::from_utf8_lossy(&output.stdout).trim().to_string(),
            )),
            Some(1) => Ok(None),
            _ => Err(failed(&self.top, &args, &output)),
        }
    }

    /// Creates `branch` at `HEAD` unless it exists; its tip either way.
    pub fn ensure_branch(&self, branch: &str) -> Result<String, GitError> {
        let reference = format!("refs/heads/{branch}");
        if let Some(tip) = self.resolve(&reference)? {
            return Ok(tip);
        }
        let head = self
            .resolve("HEAD^{commit}")?
            .ok_or_else(|| GitError::NoCommit(self.top.clone()))?;
        // Empty old value: only if it still does not exist.
        git(
            &self.top,
            &[
                "update-ref",
                "-m",
                "mmm: integration branch",
                &reference,
                &head,
                "",
            ],
        )?;
        Ok(head)
    }

    /// Deletes `branch` (used by `mmm clean --branch`). False when it did not exist.
    pub fn delete_branch(&self, branch: &str) -> Result<bool, GitError> {
        let reference = format!("refs/heads/{branch}");
        match self.resolve(&reference)? {
            None => Ok(false),
            Some(tip) => {
                git(&self.top, &["update-ref", "-d", &reference, &tip])?;
                Ok(true)
            }
        }
    }

    /// The item indexes whose merge commits (with `MMM-Job: job`) are on `branch`.
    pub fn landed_items(&self, branch: &str, job: &str) -> Result<HashSet<u64>, GitError> {
        let reference = format!("refs/heads/{branch}");
        if self.resolve(&reference)?.is_none() {
            return Ok(HashSet::new());
        }
        let format = format!(
            "--format=%(trailers:key={JOB_TRAILER},valueonly,separator=%x20)%x09%(trailers:key={INDEX_TRAILER},valueonly,separator=%x20)"
        );
        let out = git(
            &self.top,
            &["log", "--first-parent", "--merges", &format, &reference],
        )?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let (j, index) = line.split_once('\t')?;
                (j.trim() == job).then(|| index.trim().parse().ok())?
            })
            .collect())
    }

    /// How many commits `to` has that `from` has not (`git rev-list --count from..to`).
    pub fn commits_between(&self, from: &str, to: &str) -> Result<u64, GitError> {
        let out = git(
            &self.top,
            &["rev-list", "--count", &format!("{from}..{to}")],
        )?;
        Ok(out.trim().parse().unwrap_or(0))
    }

    /// True when `branch` is fully merged into `HEAD` (nothing would be lost deleting it).
    pub fn is_merged_into_head(&self, branch: &str) -> Result<bool, GitError> {
        let reference = format!("refs/heads/{branch}");
        let args = ["merge-base", "--is-ancestor", &reference, "HEAD"];
        let output = run_git(&self.top, &args, &[])?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(failed(&self.top, &args, &output)),
        }
    }

    /// Removes the job's worktrees and their folder; the paths removed.
    pub fn remove_job_worktrees(&self, short_id: &str) -> Result<Vec<PathBuf>, GitError> {
        let dir = self.job_dir(short_id);
        let mut removed = Vec::new();
        for path in self.worktrees()? {
            if path.starts_with(&dir) {
                // A failure here (already gone) is settled by the prune below.
                let _ = git(
                    &self.top,
                    &["worktree", "remove", "--force", &path.to_string_lossy()],
                );
                removed.push(path);
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| GitError::Io {
                path: dir.clone(),
                source,
            })?;
            if !removed.contains(&dir) {
                removed.push(dir.clone());
            }
        }
        // The parent `mmm/` folder goes when no other job uses it.
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        git(&self.top, &["worktree", "prune"])?;
        Ok(removed)
    }

    /// The registered worktrees' paths (the main one first).
    pub fn worktrees(&self) -> Result<Vec<PathBuf>, GitError> {
        let out = git(&self.top, &["worktree", "list", "--porcelain"])?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("worktree "))
            .map(PathBuf::from)
            .collect())
    }

    /// Fast-forwards `target` to `branch` when `target` is an ancestor of it. When `target` is
    /// checked out in the main working tree, this is `git merge --ff-only` there (which also
    /// refuses to overwrite local changes).
    pub fn fast_forward(&self, target: &str, branch: &str) -> Result<FastForward, GitError> {
        let target_ref = format!("refs/heads/{target}");
        let branch_ref = format!("refs/heads/{branch}");
        let Some(new) = self.resolve(&branch_ref)? else {
            return Ok(FastForward::Refused(format!(
                "branch {branch} does not exist"
            )));
        };
        let Some(old) = self.resolve(&target_ref)? else {
            return Ok(FastForward::Refused(format!(
                "branch {target} does not exist"
            )));
        };
        if old == new {
            return Ok(FastForward::UpToDate);
        }
        let args = ["merge-base", "--is-ancestor", &old, &new];
        let output = run_git(&self.top, &args, &[])?;
        match output.status.code() {
            Some(0) => {}
            Some(1) => {
                return Ok(FastForward::Refused(format!(
                    "{target} has commits that are not on {branch}"
                )));
            }
            _ => return Err(failed(&self.top, &args, &output)),
        }
        let current = git(&self.top, &["symbolic-ref", "--quiet", "HEAD"]).unwrap_or_default();
        if current == target_ref {
            let args = ["merge", "--ff-only", "--quiet", &new];
            let output = run_git(&self.top, &args, &[])?;
            if !output.status.success() {
                return Ok(FastForward::Refused(format!(
                    "`git merge --ff-only` in {} refused: {}",
                    self.top.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
        } else {
            git(
                &self.top,
                &[
                    "update-ref",
                    "-m",
                    "mmm: fast-forward",
                    &target_ref,
                    &new,
                    &old,
                ],
            )?;
        }
        Ok(FastForward::Done { from: old, to: new })
    }
}

/// What `--merge-into` came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FastForward {
    /// The target moved from one commit to the other.
    Done {
        /// Its old tip.
        from: String,
        /// Its new tip.
        to: String,
    },
    /// The target already was at the branch's tip.
    UpToDate,
    /// Not a fast-forward (or not possible); why.
    Refused(String),
}

/// The integration branch's name for a job: `mmm/<name>-<short id>`, with the name reduced to
/// characters that are safe in a ref.
pub fn branch_name(job_name: &str, short_id: &str) -> String {
    let mut name: String = job_name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '-',
        })
        .collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() {
        name = "job".to_string();
    }
    name.truncate(60);
    format!("mmm/{name}-{short_id}")
}

/// How an item's merge went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// The item made no commit: nothing to merge.
    Nothing,
    /// The item's commits are on the branch through merge commit `merge`.
    Merged {
        /// How many commits the item made.
        commits: u64,
        /// The merge commit now at the branch's tip.
        merge: String,
    },
    /// The item's changes conflict with the branch in these paths.
    Conflict {
        /// The conflicting paths.
        paths: Vec<String>,
        /// The branch's tip the item conflicted with.
        tip: String,
        /// The item's head.
        head: String,
    },
}

/// One agent's worktree.
#[derive(Debug, Clone)]
pub struct Worktree {
    /// Its folder.
    pub path: PathBuf,
}

/// The worktree pool and the integration branch of one job.
#[derive(Debug)]
pub struct Pool {
    repo: Repo,
    /// The integration branch, without `refs/heads/`.
    branch: String,
    job: String,
    dir: PathBuf,
    worktrees: Vec<Worktree>,
    /// Env for the commits mmm makes (identity fallback).
    identity: Vec<(String, String)>,
    /// Items whose merges were already on the branch when the pool opened (a resume).
    landed: HashSet<u64>,
    /// The branch's tip as mmm last set or read it: saves a git process per reset and per
    /// merge. A stale value costs nothing wrong: resets start from an older commit (merged
    /// with `merge-tree` as usual) and the `update-ref` compare-and-swap fails, clears it and
    /// reads the ref again.
    known_tip: std::sync::Mutex<Option<String>>,
}

impl Pool {
    /// Opens the pool of a job: the branch (created from `HEAD` unless it exists), then one
    /// worktree per agent, reusing those a killed run left behind.
    pub fn open(
        base_dir: &Path,
        job_name: &str,
        job_id: &str,
        short_id: &str,
        agents: usize,
    ) -> Result<Pool, GitError> {
        let repo = Repo::discover(base_dir)?;
        let branch = branch_name(job_name, short_id);
        let tip = repo.ensure_branch(&branch)?;
        let landed = repo.landed_items(&branch, job_id)?;
        git(&repo.top, &["worktree", "prune"])?;
        let dir = repo.job_dir(short_id);
        std::fs::create_dir_all(&dir).map_err(|source| GitError::Io {
            path: dir.clone(),
            source,
        })?;
        let identity = if git(&repo.top, &["config", "user.email"]).is_ok() {
            Vec::new()
        } else {
            [
                ("GIT_AUTHOR_NAME", FALLBACK_NAME),
                ("GIT_AUTHOR_EMAIL", FALLBACK_EMAIL),
                ("GIT_COMMITTER_NAME", FALLBACK_NAME),
                ("GIT_COMMITTER_EMAIL", FALLBACK_EMAIL),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let mut pool = Pool {
            repo,
            branch,
            job: job_id.to_string(),
            dir,
            worktrees: Vec::new(),
            identity,
            landed,
            known_tip: std::sync::Mutex::new(Some(tip.clone())),
        };
        let registered = pool.repo.worktrees()?;
        for agent in 0..agents {
            let path = pool.dir.join(format!("agent-{}", agent + 1));
            let usable = registered.contains(&path) && git(&path, &["rev-parse", "HEAD"]).is_ok();
            if !usable {
                pool.add_worktree(&path, &tip)?;
            }
            pool.worktrees.push(Worktree { path });
        }
        Ok(pool)
    }

    fn add_worktree(&self, path: &Path, tip: &str) -> Result<(), GitError> {
        if path.exists() {
            std::fs::remove_dir_all(path).map_err(|source| GitError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        git(&self.repo.top, &["worktree", "prune"])?;
        git(
            &self.repo.top,
            &[
                "worktree",
                "add",
                "--detach",
                "--quiet",
                &path.to_string_lossy(),
                tip,
            ],
        )?;
        Ok(())
    }

    /// The integration branch (without `refs/heads/`).
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The repository.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// Agent `agent`'s worktree folder.
    pub fn path(&self, agent: usize) -> &Path {
        &self.worktrees[agent].path
    }

    /// Where agent `agent`'s commands run: the job's folder inside its worktree (the same
    /// place relative to the repository's top as the job's directory), or the worktree's top
    /// when that folder is not in the repository's tree.
    pub fn work_dir(&self, agent: usize) -> PathBuf {
        let dir = self.path(agent).join(&self.repo.prefix);
        if dir.is_dir() {
            dir
        } else {
            self.path(agent).to_path_buf()
        }
    }

    /// True when the merge of item `index` was already on the branch when the pool opened.
    pub fn has_landed(&self, index: u64) -> bool {
        self.landed.contains(&index)
    }

    /// How many items' merges were on the branch when the pool opened.
    pub fn landed_count(&self) -> usize {
        self.landed.len()
    }

    fn identity(&self) -> Vec<(&str, &str)> {
        self.identity
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The branch's tip.
    pub fn tip(&self) -> Result<String, GitError> {
        let reference = format!("refs/heads/{}", self.branch);
        self.repo
            .resolve(&reference)?
            .ok_or_else(|| GitError::Failed {
                args: format!("rev-parse {reference}"),
                dir: self.repo.top.clone(),
                status: "missing".into(),
                stderr: format!("the integration branch {} was deleted", self.branch),
            })
    }

    fn remembered_tip(&self) -> Result<String, GitError> {
        let known = self
            .known_tip
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match known {
            Some(tip) => Ok(tip),
            None => {
                let tip = self.tip()?;
                self.remember_tip(Some(tip.clone()));
                Ok(tip)
            }
        }
    }

    fn remember_tip(&self, tip: Option<String>) {
        *self.known_tip.lock().unwrap_or_else(|e| e.into_inner()) = tip;
    }

    /// Resets agent `agent`'s worktree to the branch's tip: only what changed is touched.
    /// Recreates the worktree when it is gone or broken. Returns the tip.
    pub fn reset(&self, agent: usize) -> Result<String, GitError> {
        let tip = self.remembered_tip()?;
        let path = self.path(agent);
        let reset = git(path, &["reset", "--hard", "--quiet", &tip])
            .and_then(|_| git(path, &["clean", "-fdxq"]));
        match reset {
            Ok(_) => Ok(tip),
            Err(e) if e.is_infrastructure() => {
                self.add_worktree(path, &tip)?;
                Ok(tip)
            }
            Err(e) => Err(e),
        }
    }

    /// Merges what agent `agent` committed since `base` into the branch. The caller
    /// serializes merges (one at a time per job); the final `update-ref` is a compare-and-swap
    /// anyway, so a branch moved behind mmm's back is merged into again, not overwritten.
    pub fn merge(
        &self,
        agent: usize,
        base: &str,
        index: u64,
        key: &str,
    ) -> Result<Merge, GitError> {
        let path = self.path(agent);
        let heads = git(path, &["rev-parse", "HEAD", "HEAD^{tree}"])?;
        let mut lines = heads.lines();
        let (head, head_tree) = match (lines.next(), lines.next()) {
            (Some(head), Some(tree)) => (head.to_string(), tree.to_string()),
            _ => {
                return Err(GitError::Failed {
                    args: "rev-parse HEAD HEAD^{tree}".into(),
                    dir: path.to_path_buf(),
                    status: "unexpected output".into(),
                    stderr: heads.clone(),
                });
            }
        };
        if head == base {
            return Ok(Merge::Nothing);
        }
        let commits: u64 = git(path, &["rev-list", "--count", &format!("{base}..{head}")])?
            .trim()
            .parse()
            .unwrap_or(0);
        if commits == 0 {
            // HEAD moved backwards or sideways without new commits: nothing of the item's.
            return Ok(Merge::Nothing);
        }
        let reference = format!("refs/heads/{}", self.branch);
        for _ in 0..5 {
            let tip = self.remembered_tip()?;
            let tree = if tip == base {
                head_tree.clone()
            } else {
                let args = [
                    "merge-tree",
                    "--write-tree",
                    "--name-only",
                    "--no-messages",
                    &tip,
                    &head,
                ];
                let output = run_git(path, &args, &[])?;
                let text = String::from_utf8_lossy(&output.stdout).into_owned();
                match output.status.code() {
                    Some(0) => text.lines().next().unwrap_or_default().to_string(),
                    Some(1) => {
                        let mut paths: Vec<String> =
                            text.lines().skip(1).map(str::to_string).collect();
                        paths.retain(|p| !p.is_empty());
                        paths.dedup();
                        return Ok(Merge::Conflict { paths, tip, head });
                    }
                    _ => return Err(failed(path, &args, &output)),
                }
            };
            let message = format!(
                "Merge item {}\n\n{JOB_TRAILER}: {}\n{INDEX_TRAILER}: {index}\n{ITEM_TRAILER}: {}\n",
                one_line(key, 60),
                self.job,
                one_line(key, 200),
            );
            let merge = git_env(
                path,
                &[
                    "commit-tree",
                    &tree,
                    "-p",
                    &tip,
                    "-p",
                    &head,
                    "-m",
                    &message,
                ],
                &self.identity(),
            )?;
            let args = [
                "update-ref",
                "-m",
                "mmm: merge item",
                &reference,
                &merge,
                &tip,
            ];
            let output = run_git(&self.repo.top, &args, &[])?;
            if output.status.success() {
                self.remember_tip(Some(merge.clone()));
                return Ok(Merge::Merged { commits, merge });
            }
            self.remember_tip(None);
            let error = failed(&self.repo.top, &args, &output);
            // The tip moved under us (someone else wrote the branch): merge again on top.
            if !error.is_infrastructure() {
                return Err(error);
            }
        }
        Err(GitError::BranchMoving(self.branch.clone()))
    }

    /// Puts agent `agent`'s worktree in the conflicted state of merging `tip` into the item's
    /// head, for `on_conflict` to resolve. Error output of the merge is expected (conflicts).
    pub fn start_conflict_merge(&self, agent: usize, tip: &str) -> Result<(), GitError> {
        let path = self.path(agent);
        let args = ["merge", "--no-ff", "--no-commit", "--quiet", tip];
        let output = run_git(path, &args, &self.identity())?;
        // 1 means conflicts: what on_conflict is for.
        match output.status.code() {
            Some(0) | Some(1) => Ok(()),
            _ => Err(failed(path, &args, &output)),
        }
    }

    /// After `on_conflict` exited 0: stages everything and commits the merge if the command
    /// did not. Returns the paths still unmerged (empty when resolved).
    pub fn finish_conflict_merge(&self, agent: usize, key: &str) -> Result<Vec<String>, GitError> {
        let path = self.path(agent);
        git(path, &["add", "-A"])?;
        let unmerged = git(
            path,
            &["diff", "--cached", "--name-only", "--diff-filter=U"],
        )?;
        let mut left: Vec<String> = unmerged.lines().map(str::to_string).collect();
        // Conflict markers left in files: not resolved.
        left.extend(conflict_marker_paths(path)?);
        left.sort();
        left.dedup();
        if !left.is_empty() {
            return Ok(left);
        }
        let in_merge = git(path, &["rev-parse", "--verify", "--quiet", "MERGE_HEAD"]).is_ok();
        if in_merge {
            let message = format!(
                "Resolve conflicts of item {} with {}",
                one_line(key, 60),
                self.branch
            );
            git_env(
                path,
                &["commit", "--quiet", "--no-verify", "-m", &message],
                &self.identity(),
            )?;
        }
        Ok(Vec::new())
    }

    /// Removes the worktrees and their folder (the branch stays).
    pub fn close(&self) -> Result<Vec<PathBuf>, GitError> {
        let short = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.repo.remove_job_worktrees(&short)
    }

    /// The job's worktree folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Staged files that still hold conflict markers (`git diff --check` prints
/// "path:line: leftover conflict marker" on stdout).
fn conflict_marker_paths(path: &Path) -> Result<Vec<String>, GitError> {
    let output = run_git(path, &["diff", "--cached", "--check"], &[])?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    Ok(text
        .lines()
        .filter(|l| l.contains("conflict marker"))
        .filter_map(|l| l.split(':').next())
        .map(str::to_string)
        .collect())
}

/// `text` on one line, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Option<tempfile::TempDir> {
        if !git_available() {
            eprintln!("SKIPPED: git is not installed; the worktree tests need it");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path();
        git(p, &["init", "--quiet", "-b", "main"]).expect("git init");
        git(p, &["config", "user.email", "t@example.com"]).expect("config");
        git(p, &["config", "user.name", "T"]).expect("config");
        std::fs::write(p.join("a.txt"), "one\ntwo\n").expect("write");
        git(p, &["add", "."]).expect("add");
        git(p, &["commit", "--quiet", "-m", "init"]).expect("commit");
        Some(dir)
    }

    fn commit_in(dir: &Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).expect("write");
        git(dir, &["add", "-A"]).expect("add");
        git(dir, &["commit", "--quiet", "-m", file]).expect("commit");
    }

    #[test]
    fn branch_names_are_safe_refs() {
        assert_eq!(branch_name("thumbs", "0190ab"), "mmm/thumbs-0190ab");
        assert_eq!(branch_name("a b/../c~^:", "x"), "mmm/a-b----c-x");
        assert_eq!(branch_name("///", "x"), "mmm/job-x");
    }

    #[test]
    fn infrastructure_failures_are_told_apart() {
        let lock = GitError::Failed {
            args: "reset".into(),
            dir: "/x".into(),
            status: "exit status: 128".into(),
            stderr: "fatal: Unable to create '/x/.git/index.lock': File exists.".into(),
        };
        assert!(lock.is_infrastructure());
        let other = GitError::Failed {
            args: "merge-tree".into(),
            dir: "/x".into(),
            status: "exit status: 128".into(),
            stderr: "fatal: bad object".into(),
        };
        assert!(!other.is_infrastructure());
        assert!(!GitError::NotARepository("/x".into()).is_infrastructure());
    }

    #[test]
    fn outside_a_repository_is_a_clear_error() {
        if !git_available() {
            eprintln!("SKIPPED: git is not installed");
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let error = Repo::discover(dir.path()).unwrap_err();
        assert!(matches!(error, GitError::NotARepository(_)), "{error}");
        assert!(error.to_string().contains("git init"), "{error}");
    }

    #[test]
    fn pool_merges_items_in_order_and_cleans_up() {
        let Some(dir) = repo() else { return };
        let p = dir.path();
        let pool = Pool::open(p, "my job", "job-1", "abc", 2).expect("pool");
        assert_eq!(pool.branch(), "mmm/my-job-abc");
        assert_eq!(pool.repo().worktrees().expect("list").len(), 3);
        // Two agents commit files of their own: both merge, the second on top of the first.
        let base0 = pool.reset(0).expect("reset");
        let base1 = pool.reset(1).expect("reset");
        commit_in(pool.path(0), "x.txt", "x\n");
        commit_in(pool.path(1), "y.txt", "y\n");
        let m0 = pool.merge(0, &base0, 0, "x").expect("merge");
        assert!(matches!(m0, Merge::Merged { commits: 1, .. }), "{m0:?}");
        let m1 = pool.merge(1, &base1, 1, "y").expect("merge");
        assert!(matches!(m1, Merge::Merged { commits: 1, .. }), "{m1:?}");
        // Nothing committed: nothing merged.
        let base = pool.reset(0).expect("reset");
        assert!(pool.path(0).join("y.txt").exists(), "reset to the new tip");
        assert_eq!(pool.merge(0, &base, 2, "z").expect("merge"), Merge::Nothing);
        // The trailers say which items landed.
        let landed = pool
            .repo()
            .landed_items(pool.branch(), "job-1")
            .expect("log");
        assert_eq!(landed, HashSet::from([0, 1]));
        assert!(
            pool.repo()
                .landed_items(pool.branch(), "job-2")
                .expect("log")
                .is_empty()
        );
        // Untracked files are cleaned by the next reset.
        std::fs::write(pool.path(1).join("junk"), "j").expect("write");
        pool.reset(1).expect("reset");
        assert!(!pool.path(1).join("junk").exists());
        let removed = pool.close().expect("close");
        assert!(!removed.is_empty());
        assert_eq!(pool.repo().worktrees().expect("list").len(), 1);
        assert!(!pool.dir().exists());
    }

    #[test]
    fn conflicts_name_their_paths_and_on_conflict_resolution_merges() {
        let Some(dir) = repo() else { return };
        let p = dir.path();
        let pool = Pool::open(p, "j", "job-1", "c1", 2).expect("pool");
        let b0 = pool.reset(0).expect("reset");
        let b1 = pool.reset(1).expect("reset");
        commit_in(pool.path(0), "a.txt", "ONE\ntwo\n");
        commit_in(pool.path(1), "a.txt", "uno\ntwo\n");
        assert!(matches!(
            pool.merge(0, &b0, 0, "k0").expect("merge"),
            Merge::Merged { .. }
        ));
        let Merge::Conflict { paths, tip, .. } = pool.merge(1, &b1, 1, "k1").expect("merge") else {
            panic!("expected a conflict");
        };
        assert_eq!(paths, vec!["a.txt".to_string()]);
        // Resolve as on_conflict would: take ours, then mmm finishes and merges again.
        pool.start_conflict_merge(1, &tip).expect("start");
        let unresolved = pool.finish_conflict_merge(1, "k1").expect("finish");
        assert_eq!(unresolved, vec!["a.txt".to_string()], "markers are left");
        std::fs::write(pool.path(1).join("a.txt"), "both\ntwo\n").expect("write");
        assert!(
            pool.finish_conflict_merge(1, "k1")
                .expect("finish")
                .is_empty()
        );
        let merged = pool.merge(1, &b1, 1, "k1").expect("merge");
        assert!(matches!(merged, Merge::Merged { .. }), "{merged:?}");
        let tip = pool.tip().expect("tip");
        let text = git(p, &["show", &format!("{tip}:a.txt")]).expect("show");
        assert_eq!(text, "both\ntwo");
        pool.close().expect("close");
    }

    #[test]
    fn commands_run_in_the_jobs_folder_inside_the_worktree() {
        let Some(dir) = repo() else { return };
        let p = dir.path();
        std::fs::create_dir(p.join("tools")).expect("mkdir");
        commit_in(p, "tools/keep", "k\n");
        let pool = Pool::open(&p.join("tools"), "j", "job-1", "s1", 1).expect("pool");
        assert_eq!(pool.work_dir(0), pool.path(0).join("tools/"));
        let top = Pool::open(p, "j", "job-2", "s2", 1).expect("pool");
        assert_eq!(top.work_dir(0), top.path(0));
        pool.close().expect("close");
        top.close().expect("close");
    }

    #[test]
    fn a_vanished_worktree_is_recreated_and_fast_forward_works() {
        let Some(dir) = repo() else { return };
        let p = dir.path();
        let pool = Pool::open(p, "j", "job-1", "v1", 1).expect("pool");
        std::fs::remove_dir_all(pool.path(0)).expect("rm");
        let base = pool.reset(0).expect("recreated");
        commit_in(pool.path(0), "n.txt", "n\n");
        pool.merge(0, &base, 0, "n").expect("merge");
        // Reopening (a resume) reuses the worktree and knows the landed item.
        let again = Pool::open(p, "j", "job-1", "v1", 1).expect("reopen");
        assert!(again.has_landed(0));
        pool.close().expect("close");
        // main is checked out: fast-forward through `git merge --ff-only`.
        let ff = pool.repo().fast_forward("main", pool.branch()).expect("ff");
        assert!(matches!(ff, FastForward::Done { .. }), "{ff:?}");
        assert!(p.join("n.txt").exists());
        assert_eq!(
            pool.repo().fast_forward("main", pool.branch()).expect("ff"),
            FastForward::UpToDate
        );
        commit_in(p, "m.txt", "m\n");
        git(p, &["checkout", "--quiet", "--detach"]).expect("detach");
        git(p, &["branch", "--quiet", "-f", "other", "HEAD"]).expect("branch");
        let refused = pool
            .repo()
            .fast_forward("other", pool.branch())
            .expect("ff");
        assert!(matches!(refused, FastForward::Refused(_)), "{refused:?}");
        assert!(pool.repo().delete_branch(pool.branch()).expect("delete"));
    }
}
