//! The items of ended jobs totalled by job name (issue 21, `/metrics`): each job's items by
//! status and its item durations as cumulative counts at
//! [`BUCKET_BOUNDS_SECONDS`], kept in `job_item_totals` when the job's run ends, and their
//! sums per name in `name_item_totals`, kept up to date with deltas in the same transaction.
//! A scrape reads one row per name, whatever the number of jobs and items the store holds.
//!
//! When a job enters a status that ends a run (a finished status, not `interrupted`:
//! [`crate::rules::transitions::ends_run`]), [`keep_statements`] replace its row: the old
//! row's figures are taken off its name's, the new row is counted from the job's items and
//! attempts by the database (an aggregate over an index range: nothing is loaded into memory,
//! however many items the job has), and added to its name's. So a resumed job that ends again
//! replaces its figures instead of counting twice. Before a job is deleted,
//! [`retire_statements`] take its figures off its name's. A name with no job left loses its row.
//!
//! An item's duration is its ended attempts' durations summed (as `mmm stats` counts it,
//! `stats/summary.rs`), for the items that ended: completed or dead-lettered. The SQL is the
//! same on both backends but for the placeholder of the job id (`?1` on SQLite, `$1` on
//! PostgreSQL), and the columns are named after the bounds they count at (`le_5000` counts the
//! items that took at most 5,000 µs), as the schema declares them.

use mmm_core::metrics::durations::BUCKET_BOUNDS_SECONDS;

/// The item statuses counted, in the order of their columns.
pub(crate) const STATUSES: [&str; 6] = [
    "pending",
    "running",
    "completed",
    "failed",
    "dead_lettered",
    "skipped",
];

/// The bounds of the item-duration buckets, µs.
pub(crate) fn bounds_us() -> impl Iterator<Item = i64> {
    BUCKET_BOUNDS_SECONDS
        .iter()
        .map(|s| (s * 1_000_000.0).round() as i64)
}

/// The columns of the figures, in order: the statuses, `timed` (the items the histogram
/// counts), `duration_us` (their durations summed), then one per bucket bound.
pub(crate) fn figure_columns() -> Vec<String> {
    STATUSES
        .iter()
        .map(|s| s.to_string())
        .chain(["timed".to_string(), "duration_us".to_string()])
        .chain(bounds_us().map(|b| format!("le_{b}")))
        .collect()
}

/// The statements that keep the totals of the job whose id is `job` (a placeholder) once its
/// run ended, in order.
pub(crate) fn keep_statements(job: &str) -> [String; 5] {
    let columns = figure_columns();
    let list = columns.join(", ");
    let status_sums = STATUSES.iter().map(|s| {
        format!("CAST(COALESCE(SUM(CASE WHEN t.status = '{s}' THEN 1 ELSE 0 END), 0) AS BIGINT)")
    });
    let timed = "t.status IN ('completed', 'dead_lettered')";
    let figures: Vec<String> = status_sums
        .chain([
            format!("CAST(COALESCE(SUM(CASE WHEN {timed} THEN 1 ELSE 0 END), 0) AS BIGINT)"),
            format!("CAST(COALESCE(SUM(CASE WHEN {timed} THEN t.us ELSE 0 END), 0) AS BIGINT)"),
        ])
        .chain(bounds_us().map(|b| {
            format!(
                "CAST(COALESCE(SUM(CASE WHEN {timed} AND t.us <= {b} THEN 1 ELSE 0 END), 0) \
                 AS BIGINT)"
            )
        }))
        .collect();
    let job_ref = format!("(SELECT job_ref FROM jobs WHERE id = {job})");
    let count = format!(
        "INSERT INTO job_item_totals (job_ref, name, {list})
         SELECT j.job_ref, j.name, f.*
         FROM jobs j,
              (SELECT {figures}
               FROM (SELECT i.status,
                            COALESCE((SELECT SUM(a.duration_us) FROM attempts a
                                      WHERE a.job_ref = i.job_ref AND a.item_idx = i.idx
                                        AND a.outcome IS NOT NULL), 0) AS us
                     FROM items i WHERE i.job_ref = {job_ref}) t) f
         WHERE j.id = {job}",
        figures = figures.join(",\n                      "),
    );
    let add_set: Vec<String> = std::iter::once("jobs".to_string())
        .chain(columns.iter().cloned())
        .map(|c| format!("{c} = name_item_totals.{c} + excluded.{c}"))
        .collect();
    let add = format!(
        "INSERT INTO name_item_totals (name, jobs, {list})
         SELECT name, 1, {list} FROM job_item_totals WHERE job_ref = {job_ref}
         ON CONFLICT (name) DO UPDATE SET {}",
        add_set.join(", ")
    );
    let [take_off, forget, drop_empty] = retire_statements(job);
    [take_off, forget, count, add, drop_empty]
}

/// The statements that take the totals of the job whose id is `job` (a placeholder) off its
/// name's, before the job is deleted (and before its totals are counted again), in order.
pub(crate) fn retire_statements(job: &str) -> [String; 3] {
    let set: Vec<String> = std::iter::once("jobs = name_item_totals.jobs - 1".to_string())
        .chain(
            figure_columns()
                .iter()
                .map(|c| format!("{c} = name_item_totals.{c} - o.{c}")),
        )
        .collect();
    let job_ref = format!("(SELECT job_ref FROM jobs WHERE id = {job})");
    [
        format!(
            "UPDATE name_item_totals SET {}
             FROM job_item_totals o
             WHERE o.job_ref = {job_ref} AND name_item_totals.name = o.name",
            set.join(", ")
        ),
        format!("DELETE FROM job_item_totals WHERE job_ref = {job_ref}"),
        format!(
            "DELETE FROM name_item_totals
             WHERE jobs <= 0 AND name = (SELECT name FROM jobs WHERE id = {job})"
        ),
    ]
}

/// The read of every name's totals, by name.
pub(crate) fn read_sql() -> String {
    format!(
        "SELECT name, jobs, {} FROM name_item_totals ORDER BY name",
        figure_columns().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema declares a column for each figure, so a change of the bounds needs a
    /// migration.
    #[test]
    fn the_schemas_declare_every_figure_column() {
        let schemas = [
            include_str!("schema.sql"),
            include_str!("migrations/0009_item_totals.sql"),
            include_str!("migrations/postgres/0009_item_totals.sql"),
        ];
        for schema in schemas {
            for table in ["job_item_totals", "name_item_totals"] {
                let start = schema
                    .find(&format!("CREATE TABLE {table} ("))
                    .expect("the table is declared");
                let declared: Vec<&str> = schema[start..]
                    .lines()
                    .skip(1)
                    .take_while(|l| !l.starts_with(')'))
                    .filter_map(|l| l.split_whitespace().next())
                    .collect();
                let key = if table == "job_item_totals" {
                    ["job_ref", "name"]
                } else {
                    ["name", "jobs"]
                };
                let expected: Vec<String> = key
                    .iter()
                    .map(|c| c.to_string())
                    .chain(figure_columns())
                    .collect();
                assert_eq!(declared, expected, "{table}");
            }
        }
    }

    #[test]
    fn bucket_columns_are_named_after_their_bounds_in_microseconds() {
        let columns = figure_columns();
        assert_eq!(columns[8], "le_5000");
        assert_eq!(columns.last().map(String::as_str), Some("le_3600000000"));
    }
}
