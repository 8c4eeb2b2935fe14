//! The `progress.json` cache in each run folder: what it holds (the [`Progress`] fields),
//! when it is still valid (its fingerprint), and writing it only when it changes.
//!
//! The fingerprint is a digest of the rules that shape the progress and of the size and
//! modification time of every file the progress is computed from (expected files and score
//! files of every epoch folder, the run's config file, the early-stop file). A scan stats
//! those files anyway; when the digest matches the cached one it skips reading and parsing
//! the config and score files. Logs are not part of it: they change all the time and only
//! decide the status, which is never cached.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{RunKind, RunsConfig, progress::Progress};

/// The cache file's name in each run folder.
pub const CACHE_FILE: &str = "progress.json";

/// The version of `progress.json`'s layout and of how it is computed: a cache of another
/// version is recomputed. Raise it when either changes.
pub const VERSION: u32 = 1;

/// Size and modification time of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub len: u64,
    /// Last modification.
    pub modified: SystemTime,
}

impl FileStamp {
    /// The stamp of the file at `path`, or `None` when there is no such file.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
        })
    }
}

/// A digest of the rules that shape a `progress.json` (and `--epochs`).
pub fn rules_digest(config: &RunsConfig, epochs: Option<u32>) -> String {
    let shaping = (
        &config.config_file,
        &config.trainer,
        &config.evaluator,
        epochs,
    );
    let text = serde_json::to_string(&shaping).expect("the rules serialise");
    hex(&Sha256::digest(text.as_bytes())[..16])
}

/// The fingerprint of a folder's inputs: the rules, the kind, and each file's stamp.
pub fn fingerprint<'a>(
    rules_digest: &str,
    kind: RunKind,
    stamps: impl Iterator<Item = (&'a str, Option<FileStamp>)>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rules_digest.as_bytes());
    hasher.update(kind.as_str().as_bytes());
    for (name, stamp) in stamps {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        if let Some(s) = stamp {
            let ns = s
                .modified
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            hasher.update(s.len.to_le_bytes());
            hasher.update(ns.to_le_bytes());
        }
        hasher.update([1]);
    }
    hex(&hasher.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cached progress in `folder` and the file's bytes, when there is a readable cache of
/// this version.
pub fn read(folder: &Path) -> Option<(Progress, Vec<u8>)> {
    let bytes = std::fs::read(folder.join(CACHE_FILE)).ok()?;
    let progress: Progress = serde_json::from_slice(&bytes).ok()?;
    (progress.version == VERSION).then_some((progress, bytes))
}

/// The bytes `progress.json` holds for `progress`.
pub fn to_bytes(progress: &Progress) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(progress).expect("progress serialises");
    bytes.push(b'\n');
    bytes
}

/// Writes `progress.json` unless it already holds these bytes (`current`: what was read).
/// Writes a temporary file and renames it, so a reader never sees half a file. Returns
/// whether it wrote.
pub fn write_if_changed(
    folder: &Path,
    progress: &Progress,
    current: Option<&[u8]>,
) -> std::io::Result<bool> {
    let bytes = to_bytes(progress);
    if current == Some(bytes.as_slice()) {
        return Ok(false);
    }
    let current = match current {
        Some(c) => Some(c.to_vec()),
        None => std::fs::read(folder.join(CACHE_FILE)).ok(),
    };
    if current.as_deref() == Some(bytes.as_slice()) {
        return Ok(false);
    }
    let temporary = folder.join(TEMPORARY_FILE);
    std::fs::write(&temporary, &bytes)?;
    std::fs::rename(&temporary, folder.join(CACHE_FILE))?;
    Ok(true)
}

/// The temporary file `write_if_changed` renames into place (watchers ignore it).
pub const TEMPORARY_FILE: &str = ".progress.json.tmp";
