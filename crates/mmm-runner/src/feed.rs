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
        if run.plan.map.stdin_stream().is_some() {
            return stream_stdin(run, queue).await;
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
        run.tracker
            .add_item_keys(rows.iter().map(|u| (u.index, u.key.clone())));
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

/// A new one-liner reading its items from standard input: each is recorded and queued as it
/// arrives, so a stream that never ends (`tail -f log | mmm run ...`) is worked through as it
/// comes, and a resume finds on record every item read so far. The total grows as items come.
async fn stream_stdin<E: Executor>(run: &Run<E>, queue: &WorkQueue) -> Result<(), Halt> {
    /// Items recorded and queued together at most, when they come faster than that.
    const BATCH: usize = 1_024;
    let job = run.job;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<serde_json::Value, InputError>>(BATCH);
    let plan = run.plan.clone();
    // A thread of its own, not a blocking task: a read that never returns (an idle pipe)
    // must not hold up the runtime's shutdown; the thread ends with the process.
    let reader = std::thread::Builder::new()
        .name("mmm-stdin".into())
        .spawn(move || {
            let Some(input) = plan.map.stdin_stream() else {
                return;
            };
            let stdin = std::io::stdin().lock();
            match input.records(stdin) {
                Ok(records) => {
                    for record in records {
                        if tx.blocking_send(record).is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    let _ = tx.blocking_send(Err(error));
                }
            }
        });
    if let Err(source) = reader {
        let source = InputError::Stdin { source };
        return Err(JobFailure::Input { source }.into());
    }
    run.tracker.set_input_open(true);
    let streamed = stream_records(run, queue, &mut rx).await;
    run.tracker.set_input_open(false);
    let count = streamed?;
    let loaded = ItemsLoaded { count };
    run.record(vec![Write::event(job, None, Event::ItemsLoaded(loaded))]);
    Ok(())
}

/// Records and queues the records as they come; returns how many came.
async fn stream_records<E: Executor>(
    run: &Run<E>,
    queue: &WorkQueue,
    rx: &mut tokio::sync::mpsc::Receiver<Result<serde_json::Value, InputError>>,
) -> Result<u64, Halt> {
    const BATCH: usize = 1_024;
    let job = run.job;
    let mut count: u64 = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        let first_index = count;
        let mut items = Vec::with_capacity(batch.len());
        for record in batch.drain(..) {
            let value = record.map_err(|source| JobFailure::Input { source })?;
            count += 1;
            items.push(Item::at_position(count as usize, value));
        }
        let rows = items
            .iter()
            .map(|item| NewItem {
                key: item.key.clone(),
                value: item.value.to_string(),
            })
            .collect();
        run.writer.add_items(job, rows);
        run.tracker.set_total(count);
        let indices = first_index..count;
        run.tracker.add_item_keys(
            indices
                .clone()
                .zip(&items)
                .map(|(index, item)| (index, item.key.clone())),
        );
        run.shown.expect(indices.clone());
        queue.push_all(indices.zip(items).map(|(index, item)| Work {
            index,
            item,
            attempts_used: 0,
            next_number: 1,
        }));
        if run.stopping() {
            break;
        }
    }
    Ok(count)
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

/// A new job (or one stopped before its items were recorded): loads its items, has the store
/// writer record them, and tells the tracker. The agents need not wait for the record: their
/// writes come after it.
pub(crate) async fn load_and_record<E: Executor>(run: &Run<E>) -> Result<Vec<Item>, Halt> {
    let job = run.job;
    let tracker = &run.tracker;
    let items = load_input(run).await?;
    let rows: Vec<NewItem> = items
        .iter()
        .map(|item| NewItem {
            key: item.key.clone(),
            value: item.value.to_string(),
        })
        .collect();
    run.writer.add_items(job, rows);
    tracker.set_total(items.len() as u64);
    tracker.add_item_keys(
        items
            .iter()
            .enumerate()
            .map(|(i, it)| (i as u64, it.key.clone())),
    );
    let loaded = ItemsLoaded {
        count: items.len() as u64,
    };
    run.record(vec![Write::event(job, None, Event::ItemsLoaded(loaded))]);
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
