//! The thread that runs a store's private tokio runtime: every call of the store runs its work
//! there ([`Worker::run`]) and waits for the answer, from a plain thread or from async code.

use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::StoreError;

/// The task driving the store's connection, once connected.
pub(super) type ConnectionSlot = Arc<StdMutex<Option<tokio::task::JoinHandle<()>>>>;

/// The thread that runs the connection's private runtime.
pub(super) struct Worker {
    handle: tokio::runtime::Handle,
    location: Arc<str>,
    stop: Option<oneshot::Sender<()>>,
    /// The task driving the connection, awaited (briefly) after `stop` so that the server gets
    /// a clean goodbye.
    connection: ConnectionSlot,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Where [`super::session::connect`] leaves the task driving the connection.
    pub(super) fn connection_slot(&self) -> ConnectionSlot {
        Arc::clone(&self.connection)
    }

    /// Starts the thread and its runtime.
    pub(super) fn start(location: &Arc<str>) -> Result<Worker, StoreError> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, handle) = std::sync::mpsc::sync_channel(1);
        let connection: ConnectionSlot = Arc::default();
        let slot = Arc::clone(&connection);
        let thread = std::thread::Builder::new()
            .name("mmm-postgres".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(_) => return,
                };
                if ready.send(runtime.handle().clone()).is_err() {
                    return;
                }
                runtime.block_on(async move {
                    // A dropped sender means the same as a stop.
                    let _ = stopped.await;
                    let connection = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(connection) = connection {
                        let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                    }
                });
            })
            .map_err(|_| StoreError::Disconnected {
                location: location.to_string(),
            })?;
        let handle = handle.recv().map_err(|_| StoreError::Disconnected {
            location: location.to_string(),
        })?;
        Ok(Worker {
            handle,
            location: Arc::clone(location),
            stop: Some(stop),
            connection,
            thread: Some(thread),
        })
    }

    /// Runs `work` on the connection's runtime and waits for its result.
    pub(super) fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, result) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = answer.send(work.await);
        });
        // No answer means the task was dropped: the runtime is gone, or the work panicked.
        result.recv().map_err(|_| StoreError::Disconnected {
            location: self.location.to_string(),
        })?
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Quick: the connection is already closed (the session is dropped first).
            let _ = thread.join();
        }
    }
}
