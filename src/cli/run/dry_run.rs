//! `mmm run --dry-run`: the commands a one-liner would run, one a line in input order, as
//! GNU parallel prints them; nothing runs and nothing is recorded.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;

use crate::cli::Exit;
use mmm_spec::{JobPlan, RenderContext};

/// Prints each item's command of the plan's first step.
pub(super) fn print(plan: &JobPlan) -> anyhow::Result<Exit> {
    let env = BTreeMap::new();
    let items = plan
        .map
        .load_items(&plan.base_dir, &env)
        .context("could not read the items")?;
    let mut out = std::io::stdout().lock();
    for (index, item) in items.iter().enumerate() {
        let ctx = RenderContext {
            item: Some(&item.value),
            item_key: Some(&item.key),
            seq: index as u64 + 1,
            slot: index % plan.map.max_parallel.max(1) + 1,
            env: &plan.env,
            map: None,
        };
        for step in &plan.map.steps {
            let command = step
                .command
                .render(&ctx)
                .with_context(|| format!("item {}: the command cannot be rendered", index + 1))?;
            writeln!(out, "{}", command.to_shell_line())?;
        }
    }
    out.flush()?;
    Ok(Exit::Success)
}
