//! The web dashboard's address, and the dashboard beside a run (`mmm run --dashboard`).

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;

use super::open_store;
use mmm_store::Store;
use mmm_web::{self as web, AppState};

/// Starts the dashboard beside a run (`mmm run --dashboard`): on 127.0.0.1, at `port` or the
/// next free one. Returns the URL; the server stops with the process. It reads through a store
/// handle of its own (its own SQLite connection), so its reads never hold the runner's, and it
/// runs on a thread and async runtime of its own: a runner with a thousand agents keeps its
/// runtime's workers busy spawning processes, and the server's tasks would wait behind theirs
/// (seconds, measured by `cargo bench --bench web`), while the operating system shares the CPU
/// between threads fairly.
pub(crate) fn start_beside_run(store_location: &str, port: u16) -> anyhow::Result<String> {
    let store: Arc<dyn Store> = open_store(store_location, false)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the dashboard's async runtime")?;
    let (started, url) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mmm-dashboard".to_string())
        .spawn(move || {
            runtime.block_on(async move {
                let ip: IpAddr = [127, 0, 0, 1].into();
                let listener = match web::bind(ip, port, true).await {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = started.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                let _ = started.send(url_of(&listener, None));
                let state = AppState::new(store, None);
                if let Err(e) = web::serve(listener, state, std::future::pending()).await {
                    eprintln!("mmm: the dashboard stopped: {e}");
                }
            })
        })
        .context("could not start the dashboard's thread")?;
    url.recv()
        .context("the dashboard's thread ended before it listened")?
}

/// The dashboard's URL on `listener`, with the token to pass when one is required.
pub(crate) fn url_of(
    listener: &tokio::net::TcpListener,
    token: Option<&str>,
) -> anyhow::Result<String> {
    let addr = listener
        .local_addr()
        .context("could not read the dashboard's address")?;
    Ok(match token {
        Some(t) => format!("http://{addr}/?token={t}"),
        None => format!("http://{addr}/"),
    })
}
