//! The `mmm` binary: parse arguments, run, exit with the code `cli` chose.
//!
//! `cli/` holds the subcommands and wires the crates together (it alone names a store backend,
//! prints, and reads the environment); `tui/` the terminal views (bars, the full-screen viewer).

mod cli;
mod tui;

fn main() -> std::process::ExitCode {
    cli::main()
}
