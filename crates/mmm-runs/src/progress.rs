//! A run's progress and scores: completed epochs out of the total (trainer) or done / not done
//! (evaluator), early stopping, best and latest scores; computed from the folder's files,
//! or read back from `progress.json` when none of them changed.
//!
//! Early-stopping convention: a trainer that stops before its last epoch writes the file
//! `trainer.early_stop_file` (default `early_stopped.json`) in the run folder. Its contents
//! may name the epoch it stopped at (`{"epoch": 6}` or `6`); if empty, the last completed
//! epoch is taken. Such a run is complete: progress 100 %.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::cache::{self, FileStamp};
use super::classify::{self, Listing, RunConfigFile};
use super::scores::{self, Scores};
use super::{Observation, ObserveError, RunFolder, RunKind, RunsConfig, epoch_secs};

/// What `progress.json` holds (and `mmm runs --json` shows under `progress`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The layout version of this record ([`cache::VERSION`]).
    pub version: u32,
    /// Trainer or evaluator.
    pub runner_type: RunKind,
    /// Epochs done, counted from `epoch_0` up to the first incomplete one; for an
    /// evaluator 1 when done, else 0.
    pub completed_epochs: u32,
    /// The total, when known (`--epochs`, the run's config file, or `trainer.epochs`); 1 for an
    /// evaluator.
    pub total_epochs: Option<u32>,
    /// 0 to 100; `null` for a trainer whose total is unknown.
    pub progress_percentage: Option<f64>,
    /// True when the early-stop file exists.
    pub early_stopped: bool,
    /// The epoch it stopped at.
    pub early_stopped_at_epoch: Option<u32>,
    /// When the run folder was created (epoch seconds), if the file system says.
    pub start_time: Option<f64>,
    /// The newest modification among the files progress is computed from (epoch seconds).
    pub last_update_time: Option<f64>,
    /// The metric that ranks scores (`scores.metric`), if configured.
    pub metric: Option<String>,
    /// The best epoch's scores (an evaluator's only scores).
    pub best_score: Option<BTreeMap<String, f64>>,
    /// The epoch whose scores are best.
    pub best_epoch: Option<u32>,
    /// The last completed epoch's scores (an evaluator's only scores).
    pub latest_score: Option<BTreeMap<String, f64>>,
    /// The epoch of `latest_score`.
    pub latest_epoch: Option<u32>,
    /// Why the progress is incomplete (e.g. the run's config file cannot be read).
    pub error_message: Option<String>,
    /// Problems that did not stop the progress (an unreadable score file, ...).
    pub warnings: Vec<String>,
    /// A digest of the inputs; the cache is valid while it matches.
    pub fingerprint: String,
}

impl Progress {
    /// True when the run has nothing left to do: every epoch done, stopped early, or the
    /// evaluation's files written.
    pub fn is_complete(&self) -> bool {
        match self.runner_type {
            RunKind::Evaluator => self.completed_epochs >= 1,
            RunKind::Trainer => {
                self.early_stopped
                    || self
                        .total_epochs
                        .is_some_and(|t| self.completed_epochs >= t)
            }
        }
    }
}

/// Lists, classifies and measures one run folder (see [`super::Scanner::observe`]).
pub(crate) fn observe(
    folder: &RunFolder,
    config: &RunsConfig,
    epochs: Option<u32>,
    rules_digest: &str,
) -> Result<Observation, ObserveError> {
    let listing = Listing::read(&folder.path).map_err(|source| ObserveError::ReadFolder {
        path: folder.path.clone(),
        source,
    })?;
    let kind =
        classify::classify(folder, &listing, config).map_err(ObserveError::Unclassifiable)?;
    let log_pattern = match kind {
        RunKind::Trainer => &config.trainer.log_pattern,
        RunKind::Evaluator => &config.evaluator.log_pattern,
    };
    let log_updated = listing
        .files_matching(log_pattern)
        .filter_map(|name| FileStamp::of(&folder.path.join(name)))
        .map(|s| s.modified)
        .max();
    let inputs = Inputs::gather(folder, &listing, kind, config);
    let fingerprint = cache::fingerprint(
        rules_digest,
        kind,
        inputs.stamps.iter().map(|(n, s)| (n.as_str(), *s)),
    );
    let cached = if config.cache && listing.has_file(cache::CACHE_FILE) {
        cache::read(&folder.path)
    } else {
        None
    };
    if let Some((progress, _)) = &cached
        && progress.fingerprint == fingerprint
        && progress.runner_type == kind
    {
        return Ok(Observation {
            folder: folder.clone(),
            kind,
            progress: progress.clone(),
            log_updated,
        });
    }
    let mut progress = match kind {
        RunKind::Trainer => trainer(folder, &listing, &inputs, config, epochs),
        RunKind::Evaluator => evaluator(folder, &inputs, config),
    };
    progress.fingerprint = fingerprint;
    if config.cache {
        let current = cached.as_ref().map(|(_, bytes)| bytes.as_slice());
        if let Err(e) = cache::write_if_changed(&folder.path, &progress, current) {
            progress
                .warnings
                .push(format!("cannot write {}: {e}", cache::CACHE_FILE));
        }
    }
    Ok(Observation {
        folder: folder.clone(),
        kind,
        progress,
        log_updated,
    })
}

/// The files progress is computed from, with their stamps (`None`: absent).
struct Inputs {
    stamps: Vec<(String, Option<FileStamp>)>,
    index: HashMap<String, usize>,
}

impl Inputs {
    fn gather(folder: &RunFolder, listing: &Listing, kind: RunKind, config: &RunsConfig) -> Inputs {
        let mut names: Vec<String> = Vec::new();
        match kind {
            RunKind::Trainer => {
                let t = &config.trainer;
                for (_, dir) in listing.epochs(&t.epoch_prefix) {
                    for file in t.expected_files.iter().chain([&t.scores.file]) {
                        names.push(format!("{dir}/{file}"));
                    }
                }
                names.push(config.config_file.to_string_lossy().into_owned());
                names.push(t.early_stop_file.clone());
            }
            RunKind::Evaluator => {
                let e = &config.evaluator;
                names.extend(e.expected_files.iter().chain([&e.scores.file]).cloned());
            }
        }
        names.dedup();
        let stamps: Vec<(String, Option<FileStamp>)> = names
            .into_iter()
            .map(|name| {
                // Top-level files absent from the listing need no stat.
                let stamp = if !name.contains('/') && !listing.has_file(&name) {
                    None
                } else {
                    FileStamp::of(&folder.path.join(&name))
                };
                (name, stamp)
            })
            .collect();
        let index = stamps
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        Inputs { stamps, index }
    }

    fn stamp(&self, name: &str) -> Option<FileStamp> {
        self.index.get(name).and_then(|&i| self.stamps[i].1)
    }

    /// True when the file exists and is not empty.
    fn is_filled(&self, name: &str) -> bool {
        self.stamp(name).is_some_and(|s| s.len > 0)
    }

    /// The newest modification among the inputs, leaving out the run's config file.
    fn last_update(&self, config: &RunsConfig) -> Option<SystemTime> {
        let config_name = config.config_file.to_string_lossy();
        self.stamps
            .iter()
            .filter(|(n, _)| *n != config_name)
            .filter_map(|(_, s)| s.map(|s| s.modified))
            .max()
    }
}

fn blank(kind: RunKind, folder: &RunFolder, inputs: &Inputs, config: &RunsConfig) -> Progress {
    let metric = match kind {
        RunKind::Trainer => config.trainer.scores.metric.clone(),
        RunKind::Evaluator => config.evaluator.scores.metric.clone(),
    };
    Progress {
        version: cache::VERSION,
        runner_type: kind,
        completed_epochs: 0,
        total_epochs: None,
        progress_percentage: None,
        early_stopped: false,
        early_stopped_at_epoch: None,
        start_time: std::fs::metadata(&folder.path)
            .and_then(|m| m.created())
            .ok()
            .map(epoch_secs),
        last_update_time: inputs.last_update(config).map(epoch_secs),
        metric,
        best_score: None,
        best_epoch: None,
        latest_score: None,
        latest_epoch: None,
        error_message: None,
        warnings: Vec::new(),
        fingerprint: String::new(),
    }
}

fn trainer(
    folder: &RunFolder,
    listing: &Listing,
    inputs: &Inputs,
    config: &RunsConfig,
    epochs_flag: Option<u32>,
) -> Progress {
    let t = &config.trainer;
    let mut p = blank(RunKind::Trainer, folder, inputs, config);
    let epochs = listing.epochs(&t.epoch_prefix);
    let mut done: Vec<(u32, &str)> = Vec::new();
    for (i, &(n, dir)) in epochs.iter().enumerate() {
        let complete = n as usize == i
            && t.expected_files
                .iter()
                .all(|f| inputs.is_filled(&format!("{dir}/{f}")));
        if !complete {
            break;
        }
        done.push((n, dir));
    }
    p.completed_epochs = done.len() as u32;

    p.total_epochs = match epochs_flag {
        Some(n) => Some(n),
        None => match RunConfigFile::read(&folder.path, config) {
            RunConfigFile::Bad(why) => {
                p.error_message = Some(why);
                t.epochs
            }
            file => match file.lookup(&t.epochs_key) {
                None => t.epochs,
                Some(v) => match v.as_u64().filter(|&n| n >= 1 && n <= u64::from(u32::MAX)) {
                    Some(n) => Some(n as u32),
                    None => {
                        p.error_message = Some(format!(
                            "{}: `{}` is {v}, not a whole number of epochs",
                            config.config_file.display(),
                            t.epochs_key
                        ));
                        t.epochs
                    }
                },
            },
        },
    };

    if listing.has_file(&t.early_stop_file) {
        p.early_stopped = true;
        let last_done = p.completed_epochs.checked_sub(1);
        p.early_stopped_at_epoch = match std::fs::read_to_string(
            folder.path.join(&t.early_stop_file),
        ) {
            Ok(text) if text.trim().is_empty() => last_done,
            Ok(text) => match stop_epoch(&text) {
                Some(n) => Some(n),
                None => {
                    p.warnings.push(format!(
                        "{}: expected nothing, a number, or {{\"epoch\": N}}; took the last completed epoch",
                        t.early_stop_file
                    ));
                    last_done
                }
            },
            Err(e) => {
                p.warnings
                    .push(format!("{}: cannot read: {e}", t.early_stop_file));
                last_done
            }
        };
    }

    p.progress_percentage = if p.early_stopped {
        Some(100.0)
    } else {
        p.total_epochs
            .map(|total| (f64::from(p.completed_epochs) * 100.0 / f64::from(total)).min(100.0))
    };

    let mut best: Option<(u32, Scores)> = None;
    for &(n, dir) in &done {
        let name = format!("{dir}/{}", t.scores.file);
        if !inputs.is_filled(&name) {
            continue;
        }
        match scores::read(&folder.path.join(&name), &name, &t.scores) {
            Ok(s) => {
                if let Some(value) = s.metric {
                    let better = match &best {
                        None => true,
                        Some((_, b)) => b
                            .metric
                            .is_some_and(|bv| scores::is_better(value, bv, t.scores.direction)),
                    };
                    if better {
                        best = Some((n, s.clone()));
                    }
                }
                p.latest_epoch = Some(n);
                p.latest_score = Some(s.values);
            }
            Err(problem) => p.warnings.push(problem),
        }
    }
    if let Some((n, s)) = best {
        p.best_epoch = Some(n);
        p.best_score = Some(s.values);
    }
    p
}

/// The epoch named in an early-stop file: `6` or `{"epoch": 6}`.
fn stop_epoch(text: &str) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let n = value.as_u64().or_else(|| value.get("epoch")?.as_u64())?;
    u32::try_from(n).ok()
}

fn evaluator(folder: &RunFolder, inputs: &Inputs, config: &RunsConfig) -> Progress {
    let e = &config.evaluator;
    let mut p = blank(RunKind::Evaluator, folder, inputs, config);
    let done = e.expected_files.iter().all(|f| inputs.is_filled(f));
    p.completed_epochs = u32::from(done);
    p.total_epochs = Some(1);
    p.progress_percentage = Some(if done { 100.0 } else { 0.0 });
    if done && inputs.is_filled(&e.scores.file) {
        match scores::read(&folder.path.join(&e.scores.file), &e.scores.file, &e.scores) {
            Ok(s) => {
                p.best_score = Some(s.values.clone());
                p.latest_score = Some(s.values);
            }
            Err(problem) => p.warnings.push(problem),
        }
    }
    p
}
