//! `mmm man [SUBCOMMAND] [--dir DIR]`: the manual pages, written from the same definitions as
//! `--help` (clap_mangen), so they cannot drift from the binary.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::{Cli, Exit, UsageError};

/// Shown after `mmm man --help`.
pub(crate) const AFTER_HELP: &str = "\
Examples:
  mmm man | man -l -                       read the page of mmm
  mmm man run | man -l -                   the page of `mmm run`
  mmm man --dir ~/.local/share/man/man1    install every page (mmm.1, mmm-run.1, ...)";

/// Arguments of `mmm man`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// The subcommand whose page to print (e.g. `run`, `dlq retry`) [default: mmm's own].
    subcommand: Vec<String>,
    /// Write every page (mmm.1 and one per subcommand) into this folder instead.
    #[arg(long, value_name = "DIR", conflicts_with = "subcommand")]
    dir: Option<PathBuf>,
}

/// Prints one page in roff, or writes them all.
pub(crate) fn man(args: ManArgs) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    command.build();
    if let Some(dir) = args.dir {
        std::fs::create_dir_all(&dir)?;
        let written = write_pages(&command, &dir)?;
        eprintln!("wrote {written} manual pages to {}", dir.display());
        return Ok(Exit::Success);
    }
    let mut page = &command;
    for name in &args.subcommand {
        page = page.find_subcommand(name).ok_or_else(|| {
            let known: Vec<&str> = page.get_subcommands().map(|c| c.get_name()).collect();
            UsageError::new(format!(
                "`{name}` is not a subcommand of `{}`; these are: {}",
                page.get_display_name().unwrap_or("mmm"),
                known.join(", ")
            ))
        })?;
    }
    let mut roff = Vec::new();
    page_of(page).render(&mut roff)?;
    std::io::stdout().lock().write_all(&roff)?;
    Ok(Exit::Success)
}

/// The page of one command, naming mmm's version (a subcommand has none of its own).
fn page_of(command: &clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(command.clone()).source(format!("mmm {}", env!("CARGO_PKG_VERSION")))
}

/// Writes the page of `command` and of every subcommand below it; returns how many.
fn write_pages(command: &clap::Command, dir: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() != "help" {
            written += write_pages(sub, dir)?;
        }
    }
    page_of(command).generate_to(dir)?;
    Ok(written + 1)
}
