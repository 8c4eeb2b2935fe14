//! The `mmm` binary: parse arguments, run, exit with the code `cli` chose.

fn main() -> std::process::ExitCode {
    mmm::cli::main()
}
