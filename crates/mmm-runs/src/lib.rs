//! Observed runs: ML training and evaluation folders that mmm did not start but shows beside
//! its jobs (`mmm runs`, and the dashboard's Runs tab through `mmm serve --runs`).
//!
//! A scan finds the run folders under the roots ([`RunsConfig::pattern`]), classifies each by
//! its contents ([`classify`]), works out its progress and scores ([`progress`],
//! [`scores`]), keeps them in a `progress.json` cache in the folder ([`cache`]), and derives
//! the status from the log's age and the process table ([`status`], [`process`]). The result
//! is a list of serde-serialisable [`Run`]s; [`watch`] keeps that list current from file-system
//! notifications and publishes each change to its subscribers.
//!
//! Everything that depends on the time takes `now` as an argument, so tests are
//! deterministic. Nothing here prints or reads the environment.

pub mod cache;
pub mod classify;
pub mod config;
pub mod glob;
pub mod process;
pub mod progress;
pub mod scores;
pub mod status;
pub mod watch;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use classify::Unclassifiable;
pub use config::RunsConfig;
pub use process::ProcessTable;
pub use progress::Progress;

/// What a run folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A training run: `epoch_N/` folders.
    Trainer,
    /// An evaluation run: one set of result files.
    Evaluator,
}

impl RunKind {
    /// `trainer` or `evaluator`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Trainer => "trainer",
            RunKind::Evaluator => "evaluator",
        }
    }
}

/// Where a run stands (docs/runs.md says how each is decided).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Its log changed recently.
    Running,
    /// Complete.
    Finished,
    /// Complete, and its last result is older than the configured limit.
    Outdated,
    /// Not complete and quiet, but a process naming it is alive.
    Stuck,
    /// Not complete, quiet, and no process for it.
    Failed,
}

impl RunStatus {
    /// The status as a word.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Outdated => "outdated",
            RunStatus::Stuck => "stuck",
            RunStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observed run as views show it (`mmm runs --json`, the dashboard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The folder's path below its root, `/`-separated (`exp_1/seed_0`).
    pub name: String,
    /// The folder's absolute path.
    pub path: PathBuf,
    /// Trainer or evaluator.
    pub kind: RunKind,
    /// Where it stands.
    pub status: RunStatus,
    /// Progress and scores, as in the folder's `progress.json`.
    pub progress: Progress,
    /// When a log matching the kind's pattern last changed (epoch milliseconds).
    pub log_updated_ms: Option<i64>,
    /// The later of the log's change and the last result (epoch milliseconds).
    pub last_activity_ms: Option<i64>,
    /// The processes whose command line names the run's folder or a file in it.
    pub pids: Vec<u32>,
}

/// A run folder found under a root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunFolder {
    /// The folder's absolute path.
    pub path: PathBuf,
    /// Its path below the root, `/`-separated.
    pub name: String,
}

/// What a scan learned from a folder's contents: everything but the status, which also
/// depends on the time and the process table.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The folder.
    pub folder: RunFolder,
    /// Trainer or evaluator.
    pub kind: RunKind,
    /// Progress and scores.
    pub progress: Progress,
    /// The last change of a log matching the kind's pattern.
    pub log_updated: Option<SystemTime>,
}

impl Observation {
    /// The run as views show it, at `now`, with the processes in `processes`.
    pub fn to_run(&self, now: SystemTime, processes: &ProcessTable, config: &RunsConfig) -> Run {
        let pids = processes.pids_for(&self.folder.path);
        let status = status::status(self, now, !pids.is_empty(), config);
        let log_updated_ms = self.log_updated.map(epoch_ms);
        let last_result_ms = self
            .progress
            .last_update_time
            .map(|s| (s * 1000.0).round() as i64);
        Run {
            name: self.folder.name.clone(),
            path: self.folder.path.clone(),
            kind: self.kind,
            status,
            progress: self.progress.clone(),
            log_updated_ms,
            last_activity_ms: log_updated_ms.max(last_result_ms),
            pids,
        }
    }
}

/// Why a scan stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// The config file could not be read.
    #[error("{}: cannot read the runs config: {source}\n  hint: check the path given to --config", .path.display())]
    ConfigRead {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid YAML, has an unknown key or a bad value.
    #[error("{}:{line}:{column}: {message}\n  hint: docs/runs.md lists every key and its default", .path.display())]
    ConfigSyntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value that parsed but makes no sense.
    #[error("{}: `{key}`: {message}\n  hint: docs/runs.md lists every key and its default", .path.display())]
    ConfigInvalid {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A root given on the command line or in the config does not exist.
    #[error("{}: cannot use this root: {source}\n  hint: name folders that hold run folders, e.g. `mmm runs logs/`", .path.display())]
    Root {
        /// The root.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A folder could not be listed.
    #[error("{}: cannot list this folder: {source}\n  hint: check its permissions, or change `pattern` so it is not a run folder", .path.display())]
    ReadFolder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A run folder matches no kind.
    #[error(transparent)]
    Unclassifiable(Box<Unclassifiable>),
    /// File-system notifications could not be set up.
    #[error("cannot watch {}: {source}\n  hint: on Linux, raise fs.inotify.max_user_watches, or run without --watch", .path.display())]
    Watch {
        /// What was being watched.
        path: PathBuf,
        /// notify's error.
        #[source]
        source: notify::Error,
    },
}

/// Finds, classifies and measures run folders under a set of roots with one set of rules.
#[derive(Debug, Clone)]
pub struct Scanner {
    roots: Vec<PathBuf>,
    /// The roots that are run folders themselves (`mmm runs logs/exp_1`): each is that one
    /// run, named after its folder, and nothing below it is scanned.
    run_roots: Vec<PathBuf>,
    config: Arc<RunsConfig>,
    epochs: Option<u32>,
    /// A digest of the rules that shape `progress.json`: a change invalidates every cache.
    rules_digest: String,
}

impl Scanner {
    /// A scanner over `roots` (made absolute; each must be a folder). A root that the
    /// classification rules take for a run is that run; any other root holds runs at
    /// [`RunsConfig::pattern`]. `epochs` (from `--epochs`) overrides every other source of the
    /// total number of epochs.
    pub fn new(
        roots: &[PathBuf],
        config: RunsConfig,
        epochs: Option<u32>,
    ) -> Result<Scanner, ObserveError> {
        let mut absolute = Vec::new();
        for root in roots {
            let path = std::fs::canonicalize(root).map_err(|source| ObserveError::Root {
                path: root.clone(),
                source,
            })?;
            if !path.is_dir() {
                return Err(ObserveError::Root {
                    path: root.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder"),
                });
            }
            if !absolute.contains(&path) {
                absolute.push(path);
            }
        }
        let run_roots = absolute
            .iter()
            .filter(|root| is_a_run(root, &config))
            .cloned()
            .collect();
        let rules_digest = cache::rules_digest(&config, epochs);
        Ok(Scanner {
            roots: absolute,
            run_roots,
            config: Arc::new(config),
            epochs,
            rules_digest,
        })
    }

    /// The rules.
    pub fn config(&self) -> &RunsConfig {
        &self.config
    }

    /// The roots, absolute.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The run folders under the roots, sorted by path.
    pub fn run_folders(&self) -> Result<Vec<RunFolder>, ObserveError> {
        let mut found = Vec::new();
        for root in &self.roots {
            if self.run_roots.contains(root) {
                found.push(RunFolder {
                    path: root.clone(),
                    name: folder_name(root),
                });
                continue;
            }
            let mut level: Vec<(PathBuf, String)> = vec![(root.clone(), String::new())];
            for glob in self.config.pattern.levels() {
                let mut next = Vec::new();
                for (dir, name) in &level {
                    let entries =
                        std::fs::read_dir(dir).map_err(|source| ObserveError::ReadFolder {
                            path: dir.clone(),
                            source,
                        })?;
                    for entry in entries.flatten() {
                        let Some(entry_name) = entry.file_name().to_str().map(str::to_string)
                        else {
                            continue;
                        };
                        if entry_name.starts_with('.') && !glob.is_for_hidden() {
                            continue;
                        }
                        if !glob.matches(&entry_name) || !is_dir(&entry) {
                            continue;
                        }
                        let child_name = if name.is_empty() {
                            entry_name
                        } else {
                            format!("{name}/{entry_name}")
                        };
                        next.push((entry.path(), child_name));
                    }
                }
                level = next;
            }
            found.extend(
                level
                    .into_iter()
                    .map(|(path, name)| RunFolder { path, name }),
            );
        }
        found.sort();
        found.dedup_by(|a, b| a.path == b.path);
        Ok(found)
    }

    /// Classifies and measures one run folder, through its `progress.json` cache.
    pub fn observe(&self, folder: &RunFolder) -> Result<Observation, ObserveError> {
        progress::observe(folder, &self.config, self.epochs, &self.rules_digest)
    }

    /// Observes every run folder, in parallel; the first unclassifiable or unreadable
    /// folder (by path) stops the scan.
    pub fn observe_all(&self) -> Result<Vec<Observation>, ObserveError> {
        let folders = self.run_folders()?;
        folders.par_iter().map(|f| self.observe(f)).collect()
    }

    /// Every run under the roots at `now`, sorted by name, and beside them the folders that
    /// could not be read or classified (by path): what a listing shows before it fails.
    /// Only a root that cannot be listed stops it.
    pub fn scan_all(
        &self,
        now: SystemTime,
        processes: &ProcessTable,
    ) -> Result<Scan, ObserveError> {
        let folders = self.run_folders()?;
        let observed: Vec<Result<Observation, ObserveError>> =
            folders.par_iter().map(|f| self.observe(f)).collect();
        let mut scan = Scan::default();
        for observation in observed {
            match observation {
                Ok(o) => scan.runs.push(o.to_run(now, processes, &self.config)),
                Err(e) => scan.problems.push(e),
            }
        }
        Ok(scan)
    }

    /// Every run under the roots at `now`, sorted by name.
    pub fn scan(
        &self,
        now: SystemTime,
        processes: &ProcessTable,
    ) -> Result<Vec<Run>, ObserveError> {
        Ok(self
            .observe_all()?
            .iter()
            .map(|o| o.to_run(now, processes, &self.config))
            .collect())
    }

    /// True when `folder` exists and matches the run pattern under one of the roots.
    pub fn is_run_folder(&self, folder: &RunFolder) -> bool {
        if self.run_roots.contains(&folder.path) {
            return folder.path.is_dir();
        }
        let levels = self.config.pattern.levels();
        let parts: Vec<&str> = folder.name.split('/').collect();
        parts.len() == levels.len()
            && parts
                .iter()
                .zip(levels)
                .all(|(p, g)| g.matches(p) && (!p.starts_with('.') || g.is_for_hidden()))
            && self.roots.iter().any(|r| folder.path.starts_with(r))
            && folder.path.is_dir()
    }

    /// The run folder that `path` (a changed file's path) belongs to, or `None` when it is
    /// above the run level (a run folder may have appeared or gone) or outside the roots.
    pub fn folder_of(&self, path: &Path) -> FolderOf {
        let depth = self.config.pattern.levels().len();
        for root in &self.run_roots {
            let Ok(rest) = path.strip_prefix(root) else {
                continue;
            };
            if rest.as_os_str().is_empty() {
                return FolderOf::AboveRuns;
            }
            let file: Vec<&str> = rest
                .components()
                .filter_map(|c| c.as_os_str().to_str())
                .collect();
            return FolderOf::Run {
                folder: RunFolder {
                    path: root.clone(),
                    name: folder_name(root),
                },
                file: file.join("/"),
            };
        }
        for root in &self.roots {
            let Ok(rest) = path.strip_prefix(root) else {
                continue;
            };
            let parts: Vec<&str> = rest
                .components()
                .filter_map(|c| c.as_os_str().to_str())
                .collect();
            if parts.len() <= depth {
                return FolderOf::AboveRuns;
            }
            let name = parts[..depth].join("/");
            let folder_path = parts[..depth].iter().fold(root.clone(), |p, c| p.join(c));
            let file = parts[depth..].join("/");
            return FolderOf::Run {
                folder: RunFolder {
                    path: folder_path,
                    name,
                },
                file,
            };
        }
        FolderOf::Outside
    }
}

/// What a listing found: the runs it could read, and the folders it could not.
#[derive(Debug, Default)]
pub struct Scan {
    /// The runs, sorted by name.
    pub runs: Vec<Run>,
    /// The run folders that could not be listed or classified, sorted by path.
    pub problems: Vec<ObserveError>,
}

/// Where a changed path is, relative to the run folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderOf {
    /// Inside a (possible) run folder; `file` is the path below it.
    Run {
        /// The run folder.
        folder: RunFolder,
        /// The changed path below the run folder, `/`-separated.
        file: String,
    },
    /// A root, or a folder between a root and the run level.
    AboveRuns,
    /// Not under any root.
    Outside,
}

/// Scans `roots` with `config` at `now`, reading the process table: the one call a view needs.
pub fn scan(
    roots: &[PathBuf],
    config: RunsConfig,
    epochs: Option<u32>,
    now: SystemTime,
) -> Result<Vec<Run>, ObserveError> {
    Scanner::new(roots, config, epochs)?.scan(now, &ProcessTable::read())
}

/// True when the folder at `path` is a run by the classification rules.
fn is_a_run(path: &Path, config: &RunsConfig) -> bool {
    let Ok(listing) = classify::Listing::read(path) else {
        return false;
    };
    let folder = RunFolder {
        path: path.to_path_buf(),
        name: folder_name(path),
    };
    classify::classify(&folder, &listing, config).is_ok()
}

/// The name of a run given as a root: its folder's name.
fn folder_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

fn is_dir(entry: &std::fs::DirEntry) -> bool {
    match entry.file_type() {
        Ok(t) if t.is_dir() => true,
        // Follow symbolic links to folders.
        Ok(t) if t.is_symlink() => entry.path().is_dir(),
        _ => false,
    }
}

/// Epoch milliseconds of a time (0 before 1970).
pub(crate) fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Epoch seconds of a time, with fractions, as `progress.json` writes them.
pub(crate) fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
