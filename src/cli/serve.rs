//! `mmm serve`: the web dashboard for every job in the store (docs/api.md); also the server
//! `mmm run --dashboard` starts beside a run.

use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;

use super::Exit;
use crate::store::{self, Store};
use crate::web::{self, AppState};

pub(crate) const AFTER_HELP: &str = "\
Examples:
  mmm serve                                 http://127.0.0.1:8080, this machine only
  mmm serve --port 9000
  mmm serve --bind 0.0.0.0                  reachable from other machines: a token is generated
                                            and printed; every request must carry it
  mmm serve --bind 0.0.0.0 --token SECRET   (or MMM_TOKEN=SECRET)

The token goes in `Authorization: Bearer TOKEN` or `?token=TOKEN` (the printed URL has it).
The endpoints and the WebSocket protocol are described in docs/api.md.";

/// Arguments of `mmm serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The port to listen on.
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    port: u16,
    /// The address to listen on; anything but loopback requires a token.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDRESS")]
    bind: IpAddr,
    /// The token every request must carry [default: none on loopback, generated otherwise].
    #[arg(long, env = "MMM_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Runs `mmm serve` until Ctrl-C.
pub(crate) fn serve(store_location: &str, args: ServeArgs) -> anyhow::Result<Exit> {
    let store = store::open(store_location, false).with_context(|| {
        format!(
            "could not open the store at {}",
            crate::store::shown_location(store_location)
        )
    })?;
    let token = token_for(args.bind, args.token)?;
    web::check_bind(args.bind, token.as_deref())?;
    super::run::runtime()?.block_on(async move {
        let listener = web::bind(args.bind, args.port, false).await?;
        let url = url(&listener, token.as_deref())?;
        eprintln!(
            "mmm: dashboard at {url} (store {}); Ctrl-C stops it",
            crate::store::shown_location(store_location)
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        web::serve(listener, AppState::new(store, token), shutdown).await?;
        Ok(Exit::Success)
    })
}

/// Starts the dashboard beside a run (`mmm run --dashboard`): on 127.0.0.1, at `port` or the
/// next free one. Returns the URL; the server stops with the runtime. It reads through a store
/// handle of its own (its own SQLite connection), so its reads never hold the runner's.
pub(crate) async fn start_beside_run(store_location: &str, port: u16) -> anyhow::Result<String> {
    let store: Arc<dyn Store> = store::open(store_location, false).with_context(|| {
        format!(
            "could not open the store at {}",
            crate::store::shown_location(store_location)
        )
    })?;
    let ip: IpAddr = [127, 0, 0, 1].into();
    let listener = web::bind(ip, port, true).await?;
    let url = url(&listener, None)?;
    tokio::spawn(async move {
        if let Err(e) =
            web::serve(listener, AppState::new(store, None), std::future::pending()).await
        {
            eprintln!("mmm: the dashboard stopped: {e}");
        }
    });
    Ok(url)
}

/// The token to require: the one given, or a new one off loopback.
fn token_for(bind: IpAddr, given: Option<String>) -> anyhow::Result<Option<String>> {
    match given {
        Some(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
        _ if bind.is_loopback() => Ok(None),
        _ => {
            let token = new_token()?;
            eprintln!("mmm: generated a token for {bind}: {token}");
            Ok(Some(token))
        }
    }
}

/// 128 random bits from the kernel, as hex.
fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("could not read /dev/urandom to make a token; pass --token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn url(listener: &tokio::net::TcpListener, token: Option<&str>) -> anyhow::Result<String> {
    let addr = listener
        .local_addr()
        .context("could not read the dashboard's address")?;
    Ok(match token {
        Some(t) => format!("http://{addr}/?token={t}"),
        None => format!("http://{addr}/"),
    })
}
