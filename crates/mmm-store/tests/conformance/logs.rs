//! Item logs ([`mmm_store::Logs`]): chunks written with the batch, read back in the order
//! they were written (whole, or one item's or attempt's), dropped past a cap, gone with
//! their job, and pruned only from finished jobs, with what that freed.

use super::*;
use mmm_store::logs::{ChunkBuilder, LogQuery, LogStream, NewLogChunk};

/// A chunk of `text` on standard output (and `err` on standard error) for an attempt.
fn chunk(job: JobId, item_index: u64, attempt: u32, seq: u32, offset: u64, text: &str) -> Write {
    let mut builder = ChunkBuilder::default();
    builder.push(LogStream::Stdout, 5_000 + i64::from(seq), text.as_bytes());
    builder.push(LogStream::Stderr, 5_001 + i64::from(seq), b"err\n");
    let (at, bytes, data) = builder.seal().unwrap();
    Write::LogChunk {
        job,
        chunk: Box::new(NewLogChunk {
            item_index,
            attempt,
            seq,
            offset,
            bytes,
            at,
            data,
        }),
    }
}

fn read(store: &dyn Store, job: JobId, query: LogQuery) -> Vec<(u64, String, u32, u32, u64)> {
    store
        .log_chunks(job, &query)
        .unwrap()
        .into_iter()
        .map(|c| (c.item_index, c.item_key, c.attempt, c.seq, c.offset))
        .collect()
}

fn all() -> LogQuery {
    LogQuery {
        limit: 100,
        ..LogQuery::default()
    }
}

pub(crate) fn log_chunks_are_read_in_order_dropped_and_pruned(store: &dyn Store) {
    let job = new_job("logs", 1_000);
    store.create_job(&job, &new_items(3)).unwrap();
    let other = new_job("other", 1_000);
    store.create_job(&other, &new_items(1)).unwrap();
    let id = job.id;
    set_status(store, id, JobStatus::Running, 1_010);
    store
        .apply(&[
            started(id, 1, 1, 2_000),
            chunk(id, 1, 1, 0, 0, "one\n"),
            started(id, 0, 1, 2_001),
            chunk(id, 0, 1, 0, 0, "zero\n"),
            chunk(id, 1, 1, 1, 8, "one again\n"),
            chunk(other.id, 0, 1, 0, 0, "elsewhere\n"),
        ])
        .unwrap();
    store
        .apply(&[started(id, 1, 2, 2_100), chunk(id, 1, 2, 0, 0, "retry\n")])
        .unwrap();

    // In the order written, with the item's key; only the job's own.
    let every = read(store, id, all());
    assert_eq!(
        every,
        vec![
            (1, "item-1".to_string(), 1, 0, 0),
            (0, "item-0".to_string(), 1, 0, 0),
            (1, "item-1".to_string(), 1, 1, 8),
            (1, "item-1".to_string(), 2, 0, 0),
        ]
    );
    // The bytes come back as written.
    let first = &store.log_chunks(id, &all()).unwrap()[0];
    let frames = mmm_store::logs::decode(first.at, &first.data).unwrap();
    assert_eq!(frames[0].bytes, b"one\n");
    assert_eq!(frames[1].stream, LogStream::Stderr);
    assert_eq!(first.bytes, 8);

    // One item, one attempt, after an id, a page.
    let item_one = LogQuery {
        item: Some(1),
        ..all()
    };
    assert_eq!(read(store, id, item_one.clone()).len(), 3);
    let attempt_two = LogQuery {
        attempt: Some(2),
        ..item_one.clone()
    };
    assert_eq!(
        read(store, id, attempt_two),
        vec![(1, "item-1".into(), 2, 0, 0)]
    );
    let ids: Vec<i64> = store
        .log_chunks(id, &all())
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let after = LogQuery {
        after_id: ids[1],
        limit: 1,
        ..all()
    };
    assert_eq!(read(store, id, after), vec![(1, "item-1".into(), 1, 1, 8)]);

    // A cap drops a range of an attempt's chunks, nothing else.
    store
        .apply(&[Write::LogDropped {
            job: id,
            item_index: 1,
            attempt: 1,
            from_seq: 0,
            to_seq: 1,
            at: 2_200,
        }])
        .unwrap();
    assert_eq!(read(store, id, item_one).len(), 2);

    // A running job keeps its logs, whatever the age asked for.
    let kept = store.prune_logs(None, Some(i64::MAX)).unwrap();
    assert_eq!(kept.chunks, 0);
    assert!(matches!(
        store.prune_logs(Some(JobId::new()), None),
        Err(StoreError::JobNotFound { .. })
    ));
    // A finished job's go, and say what they held; a job finished too recently keeps its.
    set_status(store, id, JobStatus::Completed, 3_000);
    set_status(store, other.id, JobStatus::Completed, 9_000);
    let pruned = store.prune_logs(None, Some(5_000)).unwrap();
    assert_eq!((pruned.jobs, pruned.chunks), (1, 3));
    assert!(pruned.stored_bytes > 0);
    assert_eq!(pruned.output_bytes, (5 + 4) + (10 + 4) + (6 + 4));
    assert!(read(store, id, all()).is_empty());
    assert_eq!(read(store, other.id, all()).len(), 1);
    assert_eq!(store.prune_logs(Some(other.id), None).unwrap().chunks, 1);

    // Deleting a job deletes its logs.
    store
        .apply(&[chunk(other.id, 0, 1, 1, 14, "again\n")])
        .unwrap();
    store.delete_job(other.id).unwrap();
    assert!(matches!(
        store.log_chunks(other.id, &all()),
        Err(StoreError::JobNotFound { .. })
    ));
}
