//! `mmm completions SHELL`: the shell's completion script, and completing job ids.
//!
//! The script is clap_complete's dynamic registration: at each Tab the shell runs mmm again
//! with `MMM_COMPLETE=SHELL` set, and mmm answers before parsing anything
//! ([`complete_if_asked`]). So the candidates always match the installed binary, and values
//! known only at run time complete too: the job ids of the store.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::env::{CompleteEnv, Shells};

use super::{Cli, Exit, UsageError};

/// The variable that asks mmm for completions instead of running a command.
const COMPLETE_VAR: &str = "MMM_COMPLETE";

/// Shown after `mmm completions --help`.
pub(crate) const AFTER_HELP: &str = "\
The script calls mmm at each Tab, so it stays right after an upgrade; the ids of the
newest 200 jobs complete from the store named by --store or MMM_STORE (default .mmm).

Install:
  bash        echo 'source <(mmm completions bash)' >> ~/.bashrc
  zsh         echo 'source <(mmm completions zsh)' >> ~/.zshrc
  fish        echo 'mmm completions fish | source' >> ~/.config/fish/config.fish
  elvish      echo 'eval (mmm completions elvish | slurp)' >> ~/.config/elvish/rc.elv
  powershell  mmm completions powershell | Out-String | Invoke-Expression  (in $PROFILE)";

/// Arguments of `mmm completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to write the script for.
    shell: clap_complete::Shell,
}

/// Prints the completion script of a shell.
pub(crate) fn completions(args: CompletionsArgs) -> anyhow::Result<Exit> {
    let name = args.shell.to_string();
    let shells = Shells::builtins();
    let shell = shells
        .completer(&name)
        .ok_or_else(|| UsageError::new(format!("no completion script for {name}")))?;
    // The script runs this very binary, so completions work when mmm is not on PATH
    // (e.g. target/release/mmm) and name the same program the user installed.
    let completer = std::env::current_exe()?;
    let mut script = Vec::new();
    shell.write_registration(
        COMPLETE_VAR,
        "mmm",
        "mmm",
        &completer.to_string_lossy(),
        &mut script,
    )?;
    std::io::stdout().lock().write_all(&script)?;
    Ok(Exit::Success)
}

/// When the shell asks for completions (`MMM_COMPLETE` set), prints them and exits; otherwise
/// returns at once. Called first thing in `main`, before anything is written to stdout.
pub(crate) fn complete_if_asked() {
    CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .complete();
}
