//! How the CLI writes: human text or JSON, durations and ages people can read, and a broken
//! pipe treated as success (`mmm jobs | head`); and the shapes several subcommands write:
//! an attempt, a job's owner, a plain progress line.

mod attempt;
mod destination;
mod owner;
mod progress_line;

pub(crate) use attempt::{AttemptView, attempt_view};
pub(crate) use destination::write_output;
pub(crate) use owner::owner_description;
pub(crate) use progress_line::progress_line;

use std::io::Write;

use serde::Serialize;

/// True when the error is a write to a closed pipe.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A serde_json error as anyhow sees it. serde_json wraps write errors in its own type,
/// which hides a broken pipe from `is_broken_pipe`; they go back to the io::Error they are.
pub(crate) fn json_error(e: serde_json::Error) -> anyhow::Error {
    if e.is_io() {
        std::io::Error::from(e).into()
    } else {
        e.into()
    }
}

/// Writes `value` as pretty JSON and a newline to stdout.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(json_error)?;
    writeln!(out)?;
    Ok(())
}

/// A duration as people say it: `850ms`, `12.3s`, `4m05s`, `2h03m`, `3d04h`.
pub(crate) use mmm_core::metrics::format_duration as duration;

/// How long ago an epoch-ms timestamp was: `12s ago`, `3m ago`, `2h ago`, `5d ago`.
pub(crate) fn age(at_ms: i64, now_ms: i64) -> String {
    let s = ((now_ms - at_ms).max(0) / 1000) as u64;
    if s < 60 {
        format!("{s}s ago")
    } else if s < 3600 {
        format!("{}m ago", s / 60)
    } else if s < 86_400 {
        format!("{}h ago", s / 3600)
    } else {
        format!("{}d ago", s / 86_400)
    }
}

/// A thousands-separated count: `3,412`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A plain text table: a header row and rows, columns padded to fit; `right` marks columns
/// aligned right (numbers).
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i > 0 {
                s.push_str("  ");
            }
            if right.contains(&i) {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if i + 1 < cells.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(duration(Duration::from_secs(7380)), "2h03m");
        assert_eq!(
            duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d04h"
        );
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(3412), "3,412");
        assert_eq!(count(1_000_000), "1,000,000");
    }

    #[test]
    fn tables_pad_and_align() {
        let t = table(
            &["ID", "N"],
            &[
                vec!["a".into(), "10".into()],
                vec!["bbb".into(), "2".into()],
            ],
            &[1],
        );
        assert_eq!(t, "ID    N\na    10\nbbb   2\n");
    }
}
