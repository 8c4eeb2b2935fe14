//! Deciding what a run folder is from what it holds, and failing fast, with a message that
//! lists what was found and what each kind expects, when it is neither.
//!
//! The rules, in order (the first that holds wins):
//! 1. one of the evaluator's expected files exists: evaluator;
//! 2. an epoch folder (`epoch_N/`) exists: trainer;
//! 3. a log matches the trainer's log pattern: trainer;
//! 4. a log matches the evaluator's log pattern: evaluator;
//! 5. the run's config file has the total-epochs key: trainer;
//! 6. otherwise the folder is [`Unclassifiable`].

use std::fmt;
use std::path::{Path, PathBuf};

use super::{RunFolder, RunKind, RunsConfig};

/// At most this many names are listed in the "found" line of the message.
const FOUND_LIMIT: usize = 30;

/// One folder's entries, read once per scan.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The entries, sorted by name.
    pub entries: Vec<ListEntry>,
}

/// One entry of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The file or folder name.
    pub name: String,
    /// True for a folder (or a link to one).
    pub is_dir: bool,
}

impl Listing {
    /// Lists `path` (names that are not UTF-8 are skipped: no rule can name them).
    pub fn read(path: &Path) -> std::io::Result<Listing> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_dir = super::is_dir(&entry);
            entries.push(ListEntry { name, is_dir });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Listing { entries })
    }

    /// True when a file (not a folder) called `name` is listed.
    pub fn has_file(&self, name: &str) -> bool {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .is_ok_and(|i| !self.entries[i].is_dir)
    }

    /// The epoch folders (`prefix` + a number): their numbers and names, sorted by number
    /// (of two names for one number, like `epoch_1` and `epoch_01`, the first by name).
    pub fn epochs(&self, prefix: &str) -> Vec<(u32, &str)> {
        let mut epochs: Vec<(u32, &str)> = self
            .entries
            .iter()
            .filter(|e| e.is_dir)
            .filter_map(|e| {
                let digits = e.name.strip_prefix(prefix)?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some((digits.parse().ok()?, e.name.as_str()))
            })
            .collect();
        epochs.sort();
        epochs.dedup_by_key(|(n, _)| *n);
        epochs
    }

    /// The files whose names match `glob`.
    pub fn files_matching<'a>(
        &'a self,
        glob: &'a super::glob::Glob,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |e| !e.is_dir && glob.matches(&e.name))
            .map(|e| e.name.as_str())
    }
}

/// A run's own config file, read as JSON or YAML.
#[derive(Debug, Clone, PartialEq)]
pub enum RunConfigFile {
    /// There is none.
    Missing,
    /// Its contents.
    Parsed(serde_json::Value),
    /// It could not be read or parsed: why.
    Bad(String),
}

impl RunConfigFile {
    /// Reads `config.config_file` in `folder`: YAML when the name ends in `.yml`/`.yaml`,
    /// JSON otherwise.
    pub fn read(folder: &Path, config: &RunsConfig) -> RunConfigFile {
        let path = folder.join(&config.config_file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return RunConfigFile::Missing,
            Err(e) => {
                return RunConfigFile::Bad(format!(
                    "{}: cannot read: {e}",
                    config.config_file.display()
                ));
            }
        };
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        );
        let parsed = if yaml {
            serde_saphyr::from_str::<serde_json::Value>(&text).map_err(|e| {
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid YAML")
                    .to_string()
            })
        } else {
            serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(value) => RunConfigFile::Parsed(value),
            Err(e) => RunConfigFile::Bad(format!(
                "{}: not valid {}: {e}",
                config.config_file.display(),
                if yaml { "YAML" } else { "JSON" }
            )),
        }
    }

    /// The value at a dotted key (`training.epochs`), if the file has it.
    pub fn lookup(&self, dotted: &str) -> Option<&serde_json::Value> {
        let RunConfigFile::Parsed(value) = self else {
            return None;
        };
        dotted.split('.').try_fold(value, |v, key| v.get(key))
    }

    /// The file's top-level keys, for messages.
    fn keys(&self) -> Option<Vec<String>> {
        match self {
            RunConfigFile::Parsed(serde_json::Value::Object(map)) => {
                Some(map.keys().cloned().collect())
            }
            _ => None,
        }
    }
}

/// Classifies a folder from its listing; reads the run's config file only when no file
/// decides (rule 5).
pub fn classify(
    folder: &RunFolder,
    listing: &Listing,
    config: &RunsConfig,
) -> Result<RunKind, Box<Unclassifiable>> {
    if config
        .evaluator
        .expected_files
        .iter()
        .any(|f| listing.has_file(f))
    {
        return Ok(RunKind::Evaluator);
    }
    if !listing.epochs(&config.trainer.epoch_prefix).is_empty() {
        return Ok(RunKind::Trainer);
    }
    if listing
        .files_matching(&config.trainer.log_pattern)
        .next()
        .is_some()
    {
        return Ok(RunKind::Trainer);
    }
    if listing
        .files_matching(&config.evaluator.log_pattern)
        .next()
        .is_some()
    {
        return Ok(RunKind::Evaluator);
    }
    let run_config = RunConfigFile::read(&folder.path, config);
    if run_config.lookup(&config.trainer.epochs_key).is_some() {
        return Ok(RunKind::Trainer);
    }
    Err(Box::new(Unclassifiable::new(
        folder,
        listing,
        config,
        &run_config,
    )))
}

/// A run folder that is neither a trainer nor an evaluator: what was found, what each kind
/// expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Unclassifiable {
    /// The folder.
    pub path: PathBuf,
    /// Its entries (folders end in `/`), at most 30, then how many more.
    pub found: Vec<String>,
    /// What the run's config file says, in a few words.
    pub config_note: String,
    /// What makes a trainer, in words.
    pub trainer_expects: String,
    /// What makes an evaluator, in words.
    pub evaluator_expects: String,
}

impl Unclassifiable {
    fn new(
        folder: &RunFolder,
        listing: &Listing,
        config: &RunsConfig,
        run_config: &RunConfigFile,
    ) -> Unclassifiable {
        let mut found: Vec<String> = listing
            .entries
            .iter()
            .take(FOUND_LIMIT)
            .map(|e| {
                if e.is_dir {
                    format!("{}/", e.name)
                } else {
                    e.name.clone()
                }
            })
            .collect();
        if listing.entries.len() > FOUND_LIMIT {
            found.push(format!(
                "… and {} more",
                listing.entries.len() - FOUND_LIMIT
            ));
        }
        let config_name = config.config_file.display();
        let config_note = match (run_config, run_config.keys()) {
            (RunConfigFile::Missing, _) => format!("no {config_name}"),
            (RunConfigFile::Bad(why), _) => why.clone(),
            (_, Some(keys)) if keys.is_empty() => format!("{config_name} is an empty mapping"),
            (_, Some(keys)) => format!("{config_name} keys: {}", keys.join(", ")),
            (_, None) => format!("{config_name} is not a mapping"),
        };
        let t = &config.trainer;
        let e = &config.evaluator;
        Unclassifiable {
            path: folder.path.clone(),
            found,
            config_note,
            trainer_expects: format!(
                "an epoch folder `{}N/`, a log matching `{}`, or `{}` in {config_name}",
                t.epoch_prefix,
                t.log_pattern.as_str(),
                t.epochs_key
            ),
            evaluator_expects: format!(
                "{}, or a log matching `{}`",
                e.expected_files.join(" or "),
                e.log_pattern.as_str()
            ),
        }
    }
}

impl fmt::Display for Unclassifiable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cannot tell what kind of run {} is (neither trainer nor evaluator)",
            self.path.display()
        )?;
        if self.found.is_empty() {
            writeln!(f, "  found: nothing (the folder is empty)")?;
        } else {
            writeln!(f, "  found: {}", self.found.join(", "))?;
        }
        writeln!(f, "  config: {}", self.config_note)?;
        writeln!(f, "  a trainer has: {}", self.trainer_expects)?;
        writeln!(f, "  an evaluator has: {}", self.evaluator_expects)?;
        write!(
            f,
            "  hint: if this folder is not a run, move it out of the root or narrow `pattern`; if it is, adjust the rules with --config (docs/runs.md)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_with(files: &[&str], dirs: &[&str]) -> (tempfile::TempDir, RunFolder, Listing) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        for d in dirs {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let folder = RunFolder {
            path: dir.path().to_path_buf(),
            name: "run".into(),
        };
        let listing = Listing::read(dir.path()).unwrap();
        (dir, folder, listing)
    }

    fn kind(files: &[&str], dirs: &[&str]) -> Result<RunKind, Box<Unclassifiable>> {
        let (_dir, folder, listing) = folder_with(files, dirs);
        classify(&folder, &listing, &RunsConfig::default())
    }

    #[test]
    fn each_rule_decides() {
        assert_eq!(
            kind(&["evaluation_scores.json"], &[]).unwrap(),
            RunKind::Evaluator
        );
        // The evaluator's file wins over epoch folders (rule 1 before rule 2).
        assert_eq!(
            kind(&["evaluation_scores.json"], &["epoch_0"]).unwrap(),
            RunKind::Evaluator
        );
        assert_eq!(kind(&[], &["epoch_0"]).unwrap(), RunKind::Trainer);
        assert_eq!(kind(&[], &["epoch_3"]).unwrap(), RunKind::Trainer);
        assert_eq!(kind(&["train_val_1.log"], &[]).unwrap(), RunKind::Trainer);
        assert_eq!(kind(&["eval_1.log"], &[]).unwrap(), RunKind::Evaluator);
        // A file called epoch_0 is not an epoch folder; `epoch_x/` is not one either.
        assert!(kind(&["epoch_0"], &["epoch_x"]).is_err());
    }

    #[test]
    fn config_with_epochs_makes_a_trainer() {
        let (_dir, folder, _) = folder_with(&[], &[]);
        std::fs::write(folder.path.join("config.json"), r#"{"epochs": 5}"#).unwrap();
        let listing = Listing::read(&folder.path).unwrap();
        assert_eq!(
            classify(&folder, &listing, &RunsConfig::default()).unwrap(),
            RunKind::Trainer
        );
    }

    #[test]
    fn unclassifiable_lists_what_it_found_and_what_each_kind_expects() {
        let (_dir, folder, _) = folder_with(&["git_0.log"], &["notes"]);
        std::fs::write(
            folder.path.join("config.json"),
            r#"{"model": {}, "dataset": "x", "runner": "R"}"#,
        )
        .unwrap();
        let listing = Listing::read(&folder.path).unwrap();
        let error = classify(&folder, &listing, &RunsConfig::default()).unwrap_err();
        let text = error.to_string();
        let expected = format!(
            "cannot tell what kind of run {} is (neither trainer nor evaluator)\n  \
             found: config.json, git_0.log, notes/\n  \
             config: config.json keys: dataset, model, runner\n  \
             a trainer has: an epoch folder `epoch_N/`, a log matching `train_val*.log`, or `epochs` in config.json\n  \
             an evaluator has: evaluation_scores.json, or a log matching `eval_*.log`\n  \
             hint: if this folder is not a run, move it out of the root or narrow `pattern`; if it is, adjust the rules with --config (docs/runs.md)",
            folder.path.display()
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn unclassifiable_says_when_the_folder_is_empty_or_the_config_is_bad() {
        let (_dir, folder, listing) = folder_with(&[], &[]);
        let text = classify(&folder, &listing, &RunsConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("found: nothing (the folder is empty)"),
            "{text}"
        );
        assert!(text.contains("config: no config.json"), "{text}");
        std::fs::write(folder.path.join("config.json"), "{not json").unwrap();
        let listing = Listing::read(&folder.path).unwrap();
        let text = classify(&folder, &listing, &RunsConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("config: config.json: not valid JSON"),
            "{text}"
        );
    }

    #[test]
    fn long_listings_are_cut() {
        let names: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let error = kind(&refs, &[]).unwrap_err();
        assert_eq!(error.found.len(), FOUND_LIMIT + 1);
        assert_eq!(error.found.last().unwrap(), "… and 10 more");
    }

    #[test]
    fn yaml_run_configs_are_read() {
        let (_dir, folder, _) = folder_with(&[], &[]);
        std::fs::write(folder.path.join("run.yaml"), "training:\n  epochs: 7\n").unwrap();
        let config = RunsConfig {
            config_file: "run.yaml".into(),
            ..RunsConfig::default()
        };
        let file = RunConfigFile::read(&folder.path, &config);
        assert_eq!(file.lookup("training.epochs"), Some(&serde_json::json!(7)));
        assert_eq!(file.lookup("training.steps"), None);
    }
}
