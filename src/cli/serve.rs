//! `mmm serve`: the web dashboard for every job in the store (docs/api.md).

use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;

use super::Exit;
use super::wiring::{open_store, runtime, url_of, usage_or_runs_error};
use mmm_runs::watch::Watch;
use mmm_runs::{RunsConfig, Scanner};
use mmm_web::{self as web, AppState};

pub(crate) const AFTER_HELP: &str = "\
Examples:
  mmm serve                                 http://127.0.0.1:8080, this machine only
  mmm serve --port 9000
  mmm serve --bind 0.0.0.0                  reachable from other machines: a token is generated
                                            and printed; every request must carry it
  mmm serve --bind 0.0.0.0 --token SECRET   (or MMM_TOKEN=SECRET)
  mmm serve --runs logs/                    also the Runs tab: the ML runs under logs/, live
  mmm serve --runs-config runs.yml          rules and roots as `mmm runs --config runs.yml`

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
    /// Also show the observed runs under these folders in the Runs tab (as `mmm runs ROOT...`).
    #[arg(long = "runs", value_name = "ROOT", num_args = 1..)]
    runs: Vec<PathBuf>,
    /// The rules of the Runs tab, as YAML (as `mmm runs --config`; its `roots` serve when
    /// --runs names none).
    #[arg(long, value_name = "FILE")]
    runs_config: Option<PathBuf>,
    /// The total epochs of every trainer in the Runs tab (as `mmm runs --epochs`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    runs_epochs: Option<u32>,
    /// How long /metrics keeps a finished job's own series (after its record last changed);
    /// then only the series by job name count it, so the series do not grow with history.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    metrics_retention: std::time::Duration,
}

/// Runs `mmm serve` until Ctrl-C.
pub(crate) fn serve(store_location: &str, args: ServeArgs) -> anyhow::Result<Exit> {
    let store = open_store(store_location, false)?;
    let token = token_for(args.bind, args.token.clone())?;
    web::check_bind(args.bind, token.as_deref())?;
    let watch = runs_watch(&args)?;
    runtime()?.block_on(async move {
        let listener = web::bind(args.bind, args.port, false).await?;
        let url = url_of(&listener, token.as_deref())?;
        eprintln!(
            "mmm: dashboard at {url} (store {}); Ctrl-C stops it",
            mmm_store::shown_location(store_location)
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let mut state = AppState::new(store, token).with_metrics_retention(args.metrics_retention);
        if let Some(watch) = watch {
            state = state.with_runs(watch);
        }
        web::serve(listener, state, shutdown).await?;
        Ok(Exit::Success)
    })
}

/// The watch over the run folders the Runs tab shows, when `--runs` or `--runs-config` asks
/// for one; a bad config, a missing root or an unclassifiable folder is a usage error, as
/// for `mmm runs`.
fn runs_watch(args: &ServeArgs) -> anyhow::Result<Option<Watch>> {
    if args.runs.is_empty() && args.runs_config.is_none() {
        return Ok(None);
    }
    let config = match &args.runs_config {
        Some(path) => RunsConfig::load(path).map_err(usage_or_runs_error)?,
        None => RunsConfig::default(),
    };
    let roots = if !args.runs.is_empty() {
        args.runs.clone()
    } else if !config.roots.is_empty() {
        config.roots.clone()
    } else {
        vec![PathBuf::from(".")]
    };
    let scanner = Scanner::new(&roots, config, args.runs_epochs).map_err(usage_or_runs_error)?;
    let watch = Watch::start(scanner, Arc::new(SystemTime::now)).map_err(usage_or_runs_error)?;
    Ok(Some(watch))
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
