//! Control requests ([`mmm_store::Control`]): refused unless the job runs, numbered in order
//! with their event and the job's new control state in one transaction, applied once.

use super::*;
use mmm_core::control::{ControlAction, ControlState, MAX_AGENTS, Pause};
use mmm_core::event::{ControlApplied, Paused};
use mmm_store::ControlRequest;

fn request(action: ControlAction) -> ControlRequest {
    ControlRequest {
        action,
        host: "host-b".to_string(),
        pid: 77,
    }
}

pub(crate) fn control_requests_are_ordered_and_applied_once(store: &dyn Store) {
    let job = new_job("control", 1_000);
    store.create_job(&job, &new_items(2)).unwrap();
    let id = job.id;

    // A job that is not running takes no request, and nothing is recorded.
    let refused = store.request_control(id, &request(ControlAction::Drain), 1_010);
    assert!(
        matches!(
            refused,
            Err(StoreError::JobNotRunning {
                status: JobStatus::Pending,
                ..
            })
        ),
        "{refused:?}"
    );
    set_status(store, id, JobStatus::Running, 1_020);
    let refused = store.request_control(
        id,
        &request(ControlAction::Scale {
            agents: MAX_AGENTS + 1,
        }),
        1_030,
    );
    assert!(
        matches!(refused, Err(StoreError::ControlRefused { .. })),
        "{refused:?}"
    );
    assert!(store.pending_control(id, 0).unwrap().is_empty());
    assert!(
        store
            .events(id, 0, 100)
            .unwrap()
            .iter()
            .all(|e| !matches!(e.event, Event::ControlRequested(_)))
    );
    assert_eq!(store.control_state(id).unwrap(), ControlState::default());

    let pause = store
        .request_control(id, &request(ControlAction::Pause { suspend: true }), 1_040)
        .unwrap();
    let scale = store
        .request_control(id, &request(ControlAction::Scale { agents: 6 }), 1_050)
        .unwrap();
    assert_eq!((pause.seq, scale.seq), (1, 2));
    // The state as the requests leave it, before the owner applied them (a resume restores it).
    assert_eq!(
        store.control_state(id).unwrap(),
        ControlState {
            paused: Some(Pause { suspend: true }),
            agents: Some(6),
        }
    );
    let pending = store.pending_control(id, 0).unwrap();
    assert_eq!(pending, [pause.clone(), scale.clone()]);
    assert_eq!(pending[1].request.host, "host-b");
    assert_eq!(
        store.pending_control(id, 1).unwrap(),
        std::slice::from_ref(&scale)
    );
    let requested: Vec<(u64, ControlAction, u32)> = store
        .events(id, 0, 100)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::ControlRequested(r) => Some((r.request, r.action, r.pid)),
            _ => None,
        })
        .collect();
    assert_eq!(
        requested,
        [
            (1, ControlAction::Pause { suspend: true }, 77),
            (2, ControlAction::Scale { agents: 6 }, 77)
        ]
    );

    // Applied with its effect, once.
    let effect = Event::Paused(Paused {
        request: Some(1),
        suspend: true,
    });
    store
        .apply_control(id, 1, std::slice::from_ref(&effect), 1_060)
        .unwrap();
    store
        .apply_control(id, 1, std::slice::from_ref(&effect), 1_070)
        .unwrap();
    let paused_events = store
        .events(id, 0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == effect)
        .count();
    assert_eq!(paused_events, 1);
    assert_eq!(
        store.pending_control(id, 0).unwrap(),
        std::slice::from_ref(&scale)
    );
    // A worker follows every request, applied or not.
    let all = store.control_requests(id, 0).unwrap();
    assert_eq!(
        all.iter()
            .map(|r| (r.seq, r.applied_at))
            .collect::<Vec<_>>(),
        [(1, Some(1_060)), (2, None)]
    );
    assert_eq!(store.control_requests(id, 1).unwrap(), [scale]);

    let unpause = store
        .request_control(id, &request(ControlAction::Unpause), 1_080)
        .unwrap();
    assert_eq!(unpause.seq, 3);
    store
        .apply_control(
            id,
            3,
            &[Event::Unpaused(ControlApplied { request: 3 })],
            1_090,
        )
        .unwrap();
    assert_eq!(store.control_state(id).unwrap().paused, None);

    // A resume's `-j N` overrides the scale.
    store.set_control_agents(id, Some(2)).unwrap();
    assert_eq!(store.control_state(id).unwrap().agents, Some(2));
    store.set_control_agents(id, None).unwrap();
    assert_eq!(store.control_state(id).unwrap(), ControlState::default());

    // Another job's requests are its own, and an unknown job is not found.
    let other = new_job("other", 2_000);
    store.create_job(&other, &[]).unwrap();
    set_status(store, other.id, JobStatus::Running, 2_010);
    let first = store
        .request_control(other.id, &request(ControlAction::Drain), 2_020)
        .unwrap();
    assert_eq!(first.seq, 1);
    assert!(matches!(
        store.control_state(JobId::new()),
        Err(StoreError::JobNotFound { .. })
    ));

    // Requests made at once are numbered one after the other.
    let mut seqs: Vec<u64> = std::thread::scope(|scope| {
        let made: Vec<_> = (0..6)
            .map(|i| {
                scope.spawn(move || {
                    store
                        .request_control(
                            other.id,
                            &request(ControlAction::Scale { agents: i + 1 }),
                            2_030,
                        )
                        .unwrap()
                        .seq
                })
            })
            .collect();
        made.into_iter().map(|h| h.join().unwrap()).collect()
    });
    seqs.sort_unstable();
    assert_eq!(seqs, [2, 3, 4, 5, 6, 7]);

    // Deleting the job deletes its requests and state.
    store.delete_job(other.id).unwrap();
    assert!(store.pending_control(other.id, 0).unwrap().is_empty());
}
