//! `mmm export JOB --format results -o DIR`: GNU parallel's `--results` layout, one folder per
//! item, `DIR/1/NAME/` holding `stdout` and `stderr` (the item's last attempt, from its log in
//! the store), `seq` (its number in the input) and `item` (its value), so tools written for
//! `parallel --results` read mmm's output as they read parallel's.
//!
//! NAME is the item's value when it is text (the argument, as parallel names it), else its
//! key (or its key when two items have the same text), with GNU parallel's escapes (`\` as
//! `\\`, `/` as `\_`). Where
//! a cap dropped output, each stream says how much in a line of its own; where no log was kept
//! (`logs: none`, or pruned), the streams hold the attempt's last 4 KiB and the count of such
//! items is returned.

use std::io::Write;
use std::path::{Path, PathBuf};

use mmm_core::job::JobId;
use mmm_store::logs::{LogQuery, LogStream, decode, human_bytes};
use mmm_store::{AttemptRecord, Store, StoreError};

/// What [`write_results`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResultsWritten {
    /// Item folders written (items that ran).
    pub items: u64,
    /// Of those, items with no log in the store: their streams are the attempts' tails.
    pub from_tails: u64,
}

/// Why the results could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be written.
    #[error("could not write {}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The folder name of a key, as GNU parallel escapes it.
fn folder(key: &str) -> String {
    let escaped = key.replace('\\', "\\\\").replace('/', "\\_");
    match escaped.as_str() {
        "" => "\\_".to_string(),
        "." | ".." => format!("\\{escaped}"),
        _ => escaped,
    }
}

/// Writes job `job`'s results under `dir` (created when missing).
pub fn write_results(
    store: &dyn Store,
    job: JobId,
    dir: &Path,
) -> Result<ResultsWritten, ResultsError> {
    let mut last: std::collections::HashMap<u64, AttemptRecord> = Default::default();
    for attempt in store.attempts(job, None)? {
        let newer = last
            .get(&attempt.item_index)
            .is_none_or(|seen| seen.number < attempt.number);
        if newer {
            last.insert(attempt.item_index, attempt);
        }
    }
    let mut written = ResultsWritten::default();
    let mut names = std::collections::HashSet::new();
    for item in store.items(job, None)? {
        let Some(attempt) = last.remove(&item.index) else {
            continue;
        };
        let text = match serde_json::from_str::<serde_json::Value>(&item.value) {
            Ok(serde_json::Value::String(text)) => Some(text),
            _ => None,
        };
        let name = match &text {
            Some(text) if !names.contains(&folder(text)) => folder(text),
            _ => folder(&item.key),
        };
        names.insert(name.clone());
        let path = dir.join("1").join(name);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ResultsError::Write { path, source }
        };
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        let (stdout, stderr, logged) = streams(store, job, item.index, attempt.number)?;
        let (stdout, stderr) = if logged {
            (stdout, stderr)
        } else {
            written.from_tails += 1;
            (
                attempt.stdout_tail.into_bytes(),
                attempt.stderr_tail.into_bytes(),
            )
        };
        let value = text.unwrap_or_else(|| item.value.clone());
        for (name, bytes) in [
            ("stdout", stdout),
            ("stderr", stderr),
            ("seq", (item.index + 1).to_string().into_bytes()),
            ("item", value.into_bytes()),
        ] {
            let file = path.join(name);
            std::fs::File::create(&file)
                .and_then(|mut f| f.write_all(&bytes))
                .map_err(io(&file))?;
        }
        written.items += 1;
    }
    Ok(written)
}

/// An attempt's two streams as written (a line says where a cap dropped output), and whether
/// the store had a log of it.
fn streams(
    store: &dyn Store,
    job: JobId,
    item: u64,
    attempt: u32,
) -> Result<(Vec<u8>, Vec<u8>, bool), StoreError> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut query = LogQuery {
        item: Some(item),
        attempt: Some(attempt),
        after_id: 0,
        limit: 256,
    };
    let mut next_offset = 0;
    let mut logged = false;
    loop {
        let page = store.log_chunks(job, &query)?;
        for chunk in &page {
            logged = true;
            query.after_id = chunk.id;
            if chunk.offset > next_offset {
                let line = format!(
                    "\n[... {} elided ...]\n",
                    human_bytes(chunk.offset - next_offset)
                );
                out.extend_from_slice(line.as_bytes());
                err.extend_from_slice(line.as_bytes());
            }
            next_offset = chunk.offset + chunk.bytes;
            for frame in decode(chunk.at, &chunk.data)? {
                match frame.stream {
                    LogStream::Stdout => out.extend_from_slice(&frame.bytes),
                    LogStream::Stderr => err.extend_from_slice(&frame.bytes),
                }
            }
        }
        if page.len() < query.limit {
            break;
        }
    }
    Ok((out, err, logged))
}

#[cfg(test)]
mod tests {
    use super::folder;

    #[test]
    fn keys_become_folder_names_as_gnu_parallel_escapes_them() {
        assert_eq!(folder("photo-1.jpg"), "photo-1.jpg");
        assert_eq!(folder("a/b"), "a\\_b");
        assert_eq!(folder("a\\b"), "a\\\\b");
        assert_eq!(folder(".."), "\\..");
        assert_eq!(folder(""), "\\_");
    }
}
