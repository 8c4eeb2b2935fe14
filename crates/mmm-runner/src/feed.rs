//! The map's items before the agents take them: a new job's input loaded and recorded; a
//! resumed job's record brought up to date with its input and its counts restored; and, when
//! one process runs the map, the in-memory queue filled (a resume pages its unfinished items
//! in while the agents already work).

use std::collections::{HashMap, HashSet};

use crate::phase::Halt;
use crate::queue::WorkQueue;
use crate::run::Run;
use crate::source::Work;
use crate::{Executor, JobFailure, Resume, RunError, Start};
use mmm_core::event::{Event, InputChanged, InputUnavailable, ItemsLoaded};
use mmm_core::job::now_ms;
use mmm_spec::{InputError, Item};
use mmm_store::{ItemRecord, NewItem, Write};

/// How many unfinished items a resume keeps queued in memory at most (plus one page).
const QUEUED_ITEMS: usize = 4_096;

/// The resume whose items are on record, if `start` is one: a resume of a job that stopped
/// before its items were recorded loads them as a new job does.
pub(crate) fn on_record(start: &Start) -> Option<&Resume> {
    match start {
        Start::Resume(resume) if resume.counts.total() > 0 => Some(resume),
        _ => None,
    }
}

/// Fills the agents' queue, then closes it: every item of a new job (loaded, recorded); for a
/// resume, the unfinished items page by page (agents start on the first page), after the
/// items that are new in the input are recorded.
pub(crate) async fn feed<E: Executor>(
    run: &Run<E>,
    start: &Start,
    queue: &WorkQueue,
) -> Result<(), Halt> {
    let fed = feed_items(run, start, queue).await;
    queue.close();
    fed
}

async fn feed_items<E: Executor>(
    run: &Run<E>,
    start: &Start,
    queue: &WorkQueue,
) -> Result<(), Halt> {
    let job = run.job;
    let Some(resume) = on_record(start) else {
        if run.plan.map.streamed_input().is_some() {
            return stream_input(run, queue).await;
        }
        let items = load_and_record(run).await?;
        run.shown.expect(0..items.len() as u64);
        queue.push_all(items.into_iter().enumerate().map(|(i, item)| Work {
            index: i as u64,
            item,
            attempts_used: 0,
            next_number: 1,
        }));
        return Ok(());
    };
    restore_counts(run, resume).await?;
    // A small first page so the agents start at once; then larger ones.
    let mut after = None;
    let mut page = 256;
    loop {
        // Keep at most a few pages in memory, however many items are left.
        queue.wait_below(QUEUED_ITEMS).await;
        let rows = run
            .blocking(move |s| s.unfinished_items(job, after, page))
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.index);
        let full = rows.len() == page;
        run.shown.expect(rows.iter().map(|u| u.index));
        queue.push_all(rows.into_iter().map(|u| {
            let value =
                serde_json::from_str(&u.value).unwrap_or(serde_json::Value::String(u.value));
            Work {
                index: u.index,
                item: Item { key: u.key, value },
                attempts_used: u.attempts,
                next_number: u.last_number + 1,
            }
        }));
        if !full {
            break;
        }
        page = 2_048;
    }
    Ok(())
}

/// Items recorded and queued together at most, when they come faster than that.
const PAGE: usize = 1_024;

/// A new job whose input streams (`MapPlan::streamed_input`): each page of items is recorded
/// and queued as it is read, the agents starting on the first, and reading waits while the
/// queue is full, so memory does not grow with the input. A stream that never ends
/// (`tail -f log | mmm run ...`) is worked through as it comes; a resume finds on record every
/// item read so far. The total grows as items come and is known once the input is read.
async fn stream_input<E: Executor>(run: &Run<E>, queue: &WorkQueue) -> Result<(), Halt> {
    let mut records = read_records(run).map_err(|source| JobFailure::Input { source })?;
    run.tracker.set_input_open(true);
    let streamed = stream_records(run, queue, &mut records).await;
    run.tracker.set_input_open(false);
    let (count, whole) = streamed?;
    if whole {
        input_read(run, count);
    }
    Ok(())
}

/// Records and queues the records as they come, a page at a time; returns how many came and
/// whether the input was read to its end (not when the run stopped first).
async fn stream_records<E: Executor>(
    run: &Run<E>,
    queue: &WorkQueue,
    records: &mut Records,
) -> Result<(u64, bool), Halt> {
    let mut count: u64 = 0;
    while let Some(page) = next_page(records).await {
        let first_index = count;
        let items =
            record_page(run, page, &mut count).map_err(|source| JobFailure::Input { source })?;
        let indices = first_index..count;
        run.shown.expect(indices.clone());
        queue.push_all(indices.zip(items).map(|(index, item)| Work {
            index,
            item,
            attempts_used: 0,
            next_number: 1,
        }));
        if run.stopping() {
            return Ok((count, false));
        }
        queue.wait_below(QUEUED_ITEMS).await;
    }
    Ok((count, true))
}

/// The input's values as a reader thread sends them.
type Records = tokio::sync::mpsc::Receiver<Result<serde_json::Value, InputError>>;

/// Starts reading a streamed input on a thread of its own, not a blocking task: a read that
/// never returns (an idle pipe) must not hold up the runtime's shutdown; the thread ends with
/// the process. The channel's bound is what reading runs ahead of recording.
fn read_records<E: Executor>(run: &Run<E>) -> Result<Records, InputError> {
    let (tx, rx) = tokio::sync::mpsc::channel(PAGE);
    let plan = run.plan.clone();
    let reader = std::thread::Builder::new()
        .name("mmm-input".into())
        .spawn(move || {
            let Some(input) = plan.map.streamed_input() else {
                return;
            };
            match input.open(&plan.base_dir) {
                Ok(records) => {
                    for record in records {
                        let failed = record.is_err();
                        if tx.blocking_send(record).is_err() || failed {
                            return;
                        }
                    }
                }
                Err(error) => {
                    let _ = tx.blocking_send(Err(error));
                }
            }
        });
    match reader {
        Ok(_) => Ok(rx),
        Err(source) => Err(InputError::Reader { source }),
    }
}

/// The next records, as many as are there up to a page (waiting for the first); `None` once
/// the input ended.
async fn next_page(records: &mut Records) -> Option<Vec<Result<serde_json::Value, InputError>>> {
    let first = records.recv().await?;
    let mut page = Vec::with_capacity(PAGE);
    page.push(first);
    while page.len() < PAGE {
        match records.try_recv() {
            Ok(record) => page.push(record),
            Err(_) => break,
        }
    }
    Some(page)
}

/// Has the writer record a page of read records as the items after the `count` read before
/// (which it moves on), and tells the tracker the total so far; returns the items, or the
/// error of a record the input could not give.
fn record_page<E: Executor>(
    run: &Run<E>,
    page: Vec<Result<serde_json::Value, InputError>>,
    count: &mut u64,
) -> Result<Vec<Item>, InputError> {
    let mut items = Vec::with_capacity(page.len());
    for record in page {
        let value = record?;
        *count += 1;
        items.push(Item::at_position(*count as usize, value));
    }
    run.writer.add_items(run.job, new_rows(&items));
    run.tracker.set_total(*count);
    Ok(items)
}

fn new_rows(items: &[Item]) -> Vec<NewItem> {
    items
        .iter()
        .map(|item| NewItem {
            key: item.key.clone(),
            value: item.value.to_string(),
        })
        .collect()
}

/// The whole input is on record: its count, and its fingerprint (a resume whose input file
/// has not changed since need not read it again).
fn input_read<E: Executor>(run: &Run<E>, count: u64) {
    let job = run.job;
    let plan = &run.plan;
    let loaded = ItemsLoaded { count };
    let mut writes = vec![Write::event(job, None, Event::ItemsLoaded(loaded))];
    if !plan.map.reads_stdin() {
        writes.push(Write::InputFingerprint {
            job,
            at: now_ms(),
            fingerprint: plan.map.input_fingerprint(&plan.base_dir),
        });
    }
    run.record(writes);
}

/// Loads the input (after setup, which may write it) in a blocking task.
async fn load_input<E: Executor>(run: &Run<E>) -> Result<Vec<Item>, Halt> {
    let plan = run.plan.clone();
    let job = run.job;
    let loaded =
        tokio::task::spawn_blocking(move || plan.map.load_items(&plan.base_dir, &plan.env))
            .await
            .map_err(|source| RunError::Panicked { job, source })?;
    Ok(loaded.map_err(|source| JobFailure::Input { source })?)
}

/// A new job (or one stopped before its items were recorded) whose items the agents claim
/// through the store: records every item before the claims start. A streamed input is
/// recorded page by page without holding it (waiting for the writer every few pages, so its
/// backlog stays bounded too); any other is loaded whole.
pub(crate) async fn record_all<E: Executor>(run: &Run<E>) -> Result<(), Halt> {
    if run.plan.map.streamed_input().is_none() {
        load_and_record(run).await?;
        return Ok(());
    }
    /// Pages sent to the writer before waiting for it.
    const PAGES_IN_FLIGHT: usize = 16;
    let mut records = read_records(run).map_err(|source| JobFailure::Input { source })?;
    let mut count: u64 = 0;
    let mut pages = 0;
    while let Some(page) = next_page(&mut records).await {
        record_page(run, page, &mut count).map_err(|source| JobFailure::Input { source })?;
        pages += 1;
        if pages % PAGES_IN_FLIGHT == 0 {
            run.flush().await?;
        }
        if run.stopping() {
            return Err(Halt::Interrupted);
        }
    }
    input_read(run, count);
    Ok(())
}

/// A new job (or one stopped before its items were recorded) whose input is loaded whole:
/// loads its items, has the store writer record them, and tells the tracker. The agents need
/// not wait for the record: their writes come after it.
pub(crate) async fn load_and_record<E: Executor>(run: &Run<E>) -> Result<Vec<Item>, Halt> {
    let job = run.job;
    let items = load_input(run).await?;
    run.writer.add_items(job, new_rows(&items));
    run.tracker.set_total(items.len() as u64);
    input_read(run, items.len() as u64);
    Ok(items)
}

/// A resume: brings the record up to date with the input (when it may have changed) and the
/// tracker with the record's counts.
pub(crate) async fn restore_counts<E: Executor>(run: &Run<E>, resume: &Resume) -> Result<(), Halt> {
    let job = run.job;
    let c = match resume.reload_input && update_from_input(run).await? {
        true => run.blocking(move |s| s.job(job)).await?.counts,
        false => resume.counts,
    };
    run.tracker.set_total(c.total());
    run.tracker.preload(c.completed, c.dead_lettered, c.skipped);
    Ok(())
}

/// Loads the input again and brings the record up to date before any item is queued: records
/// the items that are new in it, gives items whose value changed under the same key their new
/// value (requeuing them if they had finished), and reports the items that vanished from it.
/// True when the record changed. If the input cannot be loaded, the recorded items are enough
/// to go on.
async fn update_from_input<E: Executor>(run: &Run<E>) -> Result<bool, Halt> {
    let job = run.job;
    let items = match load_input(run).await {
        Err(Halt::Failed(failure)) => {
            let unavailable = InputUnavailable {
                error: failure.to_string(),
            };
            run.record(vec![Write::event(
                job,
                None,
                Event::InputUnavailable(unavailable),
            )]);
            return Ok(false);
        }
        loaded => loaded?,
    };
    let known = run.blocking(move |s| s.items(job, None)).await?;
    let by_key: HashMap<&str, &ItemRecord> = known.iter().map(|i| (i.key.as_str(), i)).collect();
    let present: HashSet<&str> = items.iter().map(|i| i.key.as_str()).collect();
    let vanished: Vec<String> = known
        .iter()
        .filter(|k| !present.contains(k.key.as_str()))
        .map(|k| k.key.clone())
        .collect();
    let mut changed: Vec<(u64, String)> = Vec::new();
    let mut new_rows: Vec<NewItem> = Vec::new();
    for item in &items {
        match by_key.get(item.key.as_str()) {
            None => new_rows.push(NewItem {
                key: item.key.clone(),
                value: item.value.to_string(),
            }),
            Some(record) => {
                let stored: serde_json::Value =
                    serde_json::from_str(&record.value).unwrap_or(serde_json::Value::Null);
                if stored != item.value {
                    changed.push((record.index, item.value.to_string()));
                }
            }
        }
    }
    if new_rows.is_empty() && vanished.is_empty() && changed.is_empty() {
        return Ok(false);
    }
    let (added, changed_count) = (new_rows.len() as u64, changed.len());
    run.flush().await?;
    let requeued = run
        .blocking(move |s| s.update_item_values(job, &changed, now_ms()))
        .await?;
    if !new_rows.is_empty() {
        run.blocking(move |s| s.add_items(job, &new_rows)).await?;
    }
    let plan = &run.plan;
    let input_changed = InputChanged {
        new_items: added,
        vanished_items: vanished.len() as u64,
        vanished_examples: vanished.iter().take(10).cloned().collect(),
        changed_items: changed_count as u64,
        requeued_items: requeued.len() as u64,
    };
    run.record(vec![
        Write::event(job, None, Event::InputChanged(input_changed)),
        Write::InputFingerprint {
            job,
            at: now_ms(),
            fingerprint: plan.map.input_fingerprint(&plan.base_dir),
        },
    ]);
    run.flush().await?;
    Ok(true)
}
