//! The async runtime the subcommands that run jobs or serve block on.

use anyhow::Context;

/// A multi-threaded tokio runtime with its I/O and time drivers.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}
