//! `mmm validate FILE`: check a job file without running anything and print the normalised
//! plan (every default filled in), as YAML or JSON.

use std::path::PathBuf;

use super::{Exit, output};
use mmm_spec as spec;

/// Arguments of `mmm validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// The job file to check.
    file: PathBuf,
    /// Print the plan as JSON instead of YAML.
    #[arg(long)]
    json: bool,
}

/// Runs `mmm validate`.
pub(crate) fn validate(args: ValidateArgs) -> anyhow::Result<Exit> {
    let plan = spec::load(&args.file)?;
    if args.json {
        output::print_json(&plan)?;
    } else {
        print!("{}", plan.to_yaml());
    }
    Ok(Exit::Success)
}
