//! Completing job ids at a Tab (`mmm completions`): every argument that names a job adds
//! [`job_id_completer`].

use std::ffi::OsStr;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};

use super::open_store;
use mmm_store::JobQuery;

/// What an argument naming a job adds, so that Tab offers the store's job ids.
pub(crate) fn job_id_completer() -> ArgValueCompleter {
    ArgValueCompleter::new(job_ids)
}

/// How many of the newest jobs a Tab offers: a store of 100,000 jobs answers at once.
const OFFERED: usize = 200;

/// The ids of the store's newest jobs that start with what was typed, newest first, each with
/// its name and status as the shell's description. Nothing when the store cannot be opened:
/// a Tab must never create a store or print an error.
fn job_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(typed) = current.to_str() else {
        return Vec::new();
    };
    let Ok(store) = open_store(&store_location(), false) else {
        return Vec::new();
    };
    let newest = JobQuery {
        limit: Some(OFFERED),
        ..JobQuery::default()
    };
    let Ok(jobs) = store.jobs_matching(&newest) else {
        return Vec::new();
    };
    jobs.into_iter()
        .map(|job| (job.id.to_string(), job))
        .filter(|(id, _)| id.starts_with(typed))
        .map(|(id, job)| {
            CompletionCandidate::new(id).help(Some(format!("{} ({})", job.name, job.status).into()))
        })
        .collect()
}

/// The store the command line being completed names: its `--store`, else `MMM_STORE`, else
/// the default. The completer sees only the word being typed, so the line is read from the
/// arguments the shell passed (`mmm -- mmm WORDS...`).
fn store_location() -> String {
    // Lossy: a word that is not UTF-8 (a file name) must not stop the completion.
    let words: Vec<String> = std::env::args_os()
        .map(|word| word.to_string_lossy().into_owned())
        .collect();
    let from_line = words.iter().enumerate().find_map(|(i, word)| {
        if word == "--store" {
            words.get(i + 1).cloned()
        } else {
            word.strip_prefix("--store=").map(str::to_string)
        }
    });
    from_line
        .or_else(|| std::env::var("MMM_STORE").ok())
        .unwrap_or_else(|| mmm_store::DEFAULT_LOCATION.to_string())
}
