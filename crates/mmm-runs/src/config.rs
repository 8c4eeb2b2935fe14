//! The rules `mmm runs` applies: where run folders are, what makes a trainer or an evaluator,
//! where scores are, and the time limits of the statuses. Every rule has a default; a YAML
//! file (`--config runs.yml`) overrides any of them, and an unknown key or a bad value is
//! refused with its file, line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ObserveError;
use super::glob::Glob;

/// All the rules. `Default` gives the conventions documented in docs/runs.md.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunsConfig {
    /// Folders to search when the command line names none; relative ones are taken from
    /// the config file's folder.
    pub roots: Vec<PathBuf>,
    /// Which folders under a root are runs: one glob per path level (`*`, `*/*`,
    /// `exp_*/seed_*`). Hidden folders match only a level that starts with `.`.
    pub pattern: RunPattern,
    /// The run's own configuration file, relative to the run folder (JSON, or YAML when it
    /// ends in `.yml`/`.yaml`); read for the total number of epochs.
    pub config_file: PathBuf,
    /// The rules of a training run.
    pub trainer: TrainerRules,
    /// The rules of an evaluation run.
    pub evaluator: EvaluatorRules,
    /// A run whose log changed within this time is `running`.
    #[serde(with = "humantime_serde_compat")]
    pub running_within: Duration,
    /// A complete run whose last result is older than this is `outdated` (not `finished`).
    #[serde(with = "humantime_serde_compat")]
    pub outdated_after: Duration,
    /// Keep `progress.json` in each run folder (read back to skip unchanged folders).
    pub cache: bool,
}

impl Default for RunsConfig {
    fn default() -> Self {
        RunsConfig {
            roots: Vec::new(),
            pattern: RunPattern::default(),
            config_file: PathBuf::from("config.json"),
            trainer: TrainerRules::default(),
            evaluator: EvaluatorRules::default(),
            running_within: Duration::from_secs(3600),
            outdated_after: Duration::from_secs(30 * 86_400),
            cache: true,
        }
    }
}

/// The rules of a training run.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerRules {
    /// Epoch folders are named this prefix and the epoch number from 0: `epoch_0`, `epoch_1`.
    pub epoch_prefix: String,
    /// An epoch counts as done when each of these files exists in its folder and is not
    /// empty.
    pub expected_files: Vec<String>,
    /// The training log (a file-name glob in the run folder); its last change is the run's
    /// activity.
    pub log_pattern: Glob,
    /// Total epochs when the run's config file does not give them (`--epochs` overrides both).
    #[serde(deserialize_with = "epoch_count")]
    pub epochs: Option<u32>,
    /// The key of the total epochs in the run's config file; dots reach into nested mappings
    /// (`training.epochs`).
    pub epochs_key: String,
    /// A file in the run folder that says training stopped early (see docs/runs.md).
    pub early_stop_file: String,
    /// Where each epoch's scores are.
    pub scores: ScoreRules,
}

impl Default for TrainerRules {
    fn default() -> Self {
        TrainerRules {
            epoch_prefix: "epoch_".into(),
            expected_files: vec![
                "training_losses.pt".into(),
                "optimizer_buffer.json".into(),
                "validation_scores.json".into(),
            ],
            log_pattern: Glob::new("train_val*.log").expect("a valid glob"),
            epochs: None,
            epochs_key: "epochs".into(),
            early_stop_file: "early_stopped.json".into(),
            scores: ScoreRules {
                file: "validation_scores.json".into(),
                metric: None,
                direction: Direction::Max,
            },
        }
    }
}

/// The rules of an evaluation run.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluatorRules {
    /// The evaluation is done when each of these files exists in the run folder and is not
    /// empty.
    pub expected_files: Vec<String>,
    /// The evaluation log (a file-name glob in the run folder).
    pub log_pattern: Glob,
    /// Where the scores are.
    pub scores: ScoreRules,
}

impl Default for EvaluatorRules {
    fn default() -> Self {
        EvaluatorRules {
            expected_files: vec!["evaluation_scores.json".into()],
            log_pattern: Glob::new("eval_*.log").expect("a valid glob"),
            scores: ScoreRules {
                file: "evaluation_scores.json".into(),
                metric: None,
                direction: Direction::Max,
            },
        }
    }
}

/// Where scores are and which one ranks them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRules {
    /// The JSON score file (in each epoch folder for a trainer, in the run folder for an
    /// evaluator).
    pub file: String,
    /// The number that ranks epochs, as a dotted path in the score file
    /// (`aggregated.accuracy`). The scores shown are the numbers beside it; without a metric,
    /// the numbers at the top of the file, and no best.
    #[serde(default)]
    pub metric: Option<String>,
    /// Whether a higher (`max`) or lower (`min`) metric is better.
    #[serde(default)]
    pub direction: Direction,
}

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is better (accuracy).
    #[default]
    Max,
    /// Lower is better (loss).
    Min,
}

/// Which folders under a root are runs: one glob per path level.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunPattern {
    levels: Vec<Glob>,
}

impl RunPattern {
    /// Parses `*`, `*/*`, `exp_*/seed_?`: levels separated by `/`, none empty, no `..`.
    pub fn new(text: &str) -> Result<RunPattern, String> {
        let text = text.trim_end_matches('/');
        if text.is_empty() || text.starts_with('/') {
            return Err(format!(
                "the run pattern `{text}` must be relative to the root, like `*` or `*/*`"
            ));
        }
        let levels = text
            .split('/')
            .map(|level| match level {
                "" | "." | ".." => Err(format!(
                    "the run pattern `{text}` has an empty, `.` or `..` level; write one glob per folder level, like `*/*`"
                )),
                _ => Glob::new(level),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunPattern { levels })
    }

    /// The globs, outermost first.
    pub fn levels(&self) -> &[Glob] {
        &self.levels
    }
}

impl Default for RunPattern {
    fn default() -> Self {
        RunPattern::new("*").expect("a valid pattern")
    }
}

impl TryFrom<String> for RunPattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        RunPattern::new(&text)
    }
}

impl From<RunPattern> for String {
    fn from(pattern: RunPattern) -> String {
        pattern
            .levels
            .iter()
            .map(Glob::as_str)
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// A number of epochs: a whole number of at least 1, or nothing.
fn epoch_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<i64>::deserialize(d)? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|&n| n >= 1)
            .map(Some)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{n}` is not a number of epochs; write a whole number of at least 1"
                ))
            }),
    }
}

/// Durations written like `30m`, `1h`, `30d` (humantime).
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write one like `30m`, `1h` or `30d`"
            ))
        })
    }

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

impl RunsConfig {
    /// Reads a config file; relative `roots` are taken from the file's folder.
    pub fn load(path: &Path) -> Result<RunsConfig, ObserveError> {
        let text = std::fs::read_to_string(path).map_err(|source| ObserveError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = RunsConfig::parse(path, &text)?;
        let base = path.parent().unwrap_or(Path::new(""));
        for root in &mut config.roots {
            if root.is_relative() {
                *root = base.join(&*root);
            }
        }
        Ok(config)
    }

    /// Parses the text of a config file (`path` names it in errors). An empty file gives
    /// the defaults.
    pub fn parse(path: &Path, text: &str) -> Result<RunsConfig, ObserveError> {
        if text.trim().is_empty() || text.lines().all(|l| l.trim_start().starts_with('#')) {
            return Ok(RunsConfig::default());
        }
        let options = serde_saphyr::options! { with_snippet: false };
        let config: RunsConfig =
            serde_saphyr::from_str_with_options(text, options).map_err(|e| {
                let (line, column) = e
                    .location()
                    .map_or((0, 0), |l| (l.line() as usize, l.column() as usize));
                ObserveError::ConfigSyntax {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: plain_message(&e.to_string()),
                }
            })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ObserveError> {
        let invalid = |key: &str, message: String| ObserveError::ConfigInvalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        if self.trainer.expected_files.is_empty() {
            return Err(invalid(
                "trainer.expected_files",
                "an epoch needs at least one expected file".into(),
            ));
        }
        if self.evaluator.expected_files.is_empty() {
            return Err(invalid(
                "evaluator.expected_files",
                "an evaluation needs at least one expected file".into(),
            ));
        }
        if self.trainer.epoch_prefix.is_empty() || self.trainer.epoch_prefix.contains('/') {
            return Err(invalid(
                "trainer.epoch_prefix",
                "write the start of the epoch folders' names, like `epoch_`".into(),
            ));
        }
        let names = self
            .trainer
            .expected_files
            .iter()
            .chain(&self.evaluator.expected_files)
            .chain([
                &self.trainer.early_stop_file,
                &self.trainer.scores.file,
                &self.evaluator.scores.file,
            ]);
        for name in names {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(invalid(
                    "a file name",
                    format!("`{name}` must be a plain file name, without `/`"),
                ));
            }
        }
        Ok(())
    }
}

/// serde-saphyr's message without the location it also prints (we print our own prefix).
fn plain_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered).trim();
    match first.find(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RunsConfig, ObserveError> {
        RunsConfig::parse(Path::new("runs.yml"), text)
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), RunsConfig::default());
        assert_eq!(parse("# nothing\n").unwrap(), RunsConfig::default());
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            "roots: [logs]\npattern: 'exp_*/seed_*'\nconfig_file: run.yaml\nrunning_within: 10m\noutdated_after: 7d\ncache: false\n\
             trainer:\n  epoch_prefix: ep\n  expected_files: [a.pt]\n  log_pattern: 'train*.txt'\n  epochs: 12\n  epochs_key: opt.epochs\n  early_stop_file: STOP\n  scores: {file: s.json, metric: acc, direction: min}\n\
             evaluator:\n  expected_files: [e.json, f.json]\n  log_pattern: 'ev*.txt'\n  scores: {file: e.json, metric: agg.f1}\n",
        )
        .unwrap();
        assert_eq!(config.roots, [PathBuf::from("logs")]);
        assert_eq!(String::from(config.pattern.clone()), "exp_*/seed_*");
        assert_eq!(config.config_file, PathBuf::from("run.yaml"));
        assert_eq!(config.running_within, Duration::from_secs(600));
        assert_eq!(config.outdated_after, Duration::from_secs(7 * 86_400));
        assert!(!config.cache);
        let t = &config.trainer;
        assert_eq!(t.epoch_prefix, "ep");
        assert_eq!(t.expected_files, ["a.pt"]);
        assert_eq!(t.log_pattern.as_str(), "train*.txt");
        assert_eq!(t.epochs, Some(12));
        assert_eq!(t.epochs_key, "opt.epochs");
        assert_eq!(t.early_stop_file, "STOP");
        assert_eq!(t.scores.file, "s.json");
        assert_eq!(t.scores.metric.as_deref(), Some("acc"));
        assert_eq!(t.scores.direction, Direction::Min);
        let e = &config.evaluator;
        assert_eq!(e.expected_files, ["e.json", "f.json"]);
        assert_eq!(e.log_pattern.as_str(), "ev*.txt");
        assert_eq!(e.scores.metric.as_deref(), Some("agg.f1"));
        assert_eq!(e.scores.direction, Direction::Max);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_position() {
        let error = parse("trainer:\n  epochs: 3\n  epoch: 4\n").unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("runs.yml:3:3: "), "{text}");
        assert!(text.contains("epoch"), "{text}");
    }

    #[test]
    fn bad_values_are_refused_with_their_position() {
        let text = parse("running_within: soon\n").unwrap_err().to_string();
        assert!(text.starts_with("runs.yml:1:17: "), "{text}");
        assert!(text.contains("`soon` is not a duration"), "{text}");
        let text = parse("trainer:\n  scores: {file: s.json, direction: up}\n")
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("runs.yml:2:"), "{text}");
        let text = parse("pattern: '/abs'\n").unwrap_err().to_string();
        assert!(text.contains("relative to the root"), "{text}");
        let text = parse("trainer:\n  epochs: -1\n").unwrap_err().to_string();
        assert!(
            text.starts_with("runs.yml:2:11: `-1` is not a number of epochs"),
            "{text}"
        );
        let text = parse("trainer: {epochs: 0}\n").unwrap_err().to_string();
        assert!(text.contains("`0` is not a number of epochs"), "{text}");
        assert_eq!(
            parse("trainer: {epochs: ~}\n").unwrap().trainer.epochs,
            None
        );
        let text = parse("evaluator: {expected_files: []}\n")
            .unwrap_err()
            .to_string();
        assert!(text.contains("evaluator.expected_files"), "{text}");
        let text = parse("trainer: {expected_files: [a/b]}\n")
            .unwrap_err()
            .to_string();
        assert!(text.contains("`a/b` must be a plain file name"), "{text}");
        let text = parse("trainer: {log_pattern: 'a/*'}\n")
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("runs.yml:1:"), "{text}");
    }

    #[test]
    fn relative_roots_are_taken_from_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.yml");
        std::fs::write(&path, "roots: [logs, /abs]\n").unwrap();
        let config = RunsConfig::load(&path).unwrap();
        assert_eq!(
            config.roots,
            [dir.path().join("logs"), PathBuf::from("/abs")]
        );
        let error = RunsConfig::load(&dir.path().join("missing.yml")).unwrap_err();
        assert!(error.to_string().contains("missing.yml"), "{error}");
    }
}
