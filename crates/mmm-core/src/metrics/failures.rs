//! Failure clusters: failures grouped by cause, so 400 failures read as 3 causes.
//!
//! A failure's signature is how it ended ([`FailureKind`]: exit code, signal, timeout) plus the
//! last [`SIGNATURE_LINES`] non-empty lines of its output, normalised: the item's own key and
//! value, paths, UUIDs, hex ids and numbers (so timestamps and durations too) become
//! placeholders (`<item>`, `<path>`, `<uuid>`, `<n>`) and whitespace runs one space. Failures with the same signature form a
//! [`FailureCluster`] with a count, first and last seen, a few example items and the original
//! text of the first one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::job::AttemptOutcome;

/// Non-empty lines at the end of the output that make a signature.
pub const SIGNATURE_LINES: usize = 3;

/// Example item keys kept per cluster.
pub const MAX_EXAMPLES: usize = 5;

/// Distinct clusters kept; failures with a new signature beyond this are only counted
/// ([`FailureClusters::overflow`]), so a job whose every failure is unique cannot grow memory
/// without bound.
pub const MAX_CLUSTERS: usize = 1000;

/// Item keys and values shorter than this are not replaced in messages: replacing `1` or `ok`
/// would mangle unrelated text.
const MIN_REPLACED_LEN: usize = 3;

/// How a failed attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureKind {
    /// A step exited with this non-zero code.
    Exit {
        /// The exit code.
        code: i32,
    },
    /// A step was killed by this signal (not by mmm).
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// A step ran past its timeout.
    TimedOut,
    /// A step could not be started.
    SpawnFailed,
    /// No exit code: e.g. a command that could not be rendered for the item.
    NoExit,
}

impl FailureKind {
    /// The kind of a recorded attempt (the store keeps the outcome and the exit code; a signal
    /// shows there as no exit code).
    pub fn from_attempt(outcome: Option<AttemptOutcome>, exit_code: Option<i32>) -> Self {
        match (outcome, exit_code) {
            (Some(AttemptOutcome::TimedOut), _) => FailureKind::TimedOut,
            (_, Some(code)) => FailureKind::Exit { code },
            _ => FailureKind::NoExit,
        }
    }

    /// A short label, e.g. `exit 2`, `signal 9`, `timed out`.
    pub fn label(&self) -> String {
        match self {
            FailureKind::Exit { code } => format!("exit {code}"),
            FailureKind::Signal { signal } => format!("signal {signal}"),
            FailureKind::TimedOut => "timed out".to_string(),
            FailureKind::SpawnFailed => "could not start".to_string(),
            FailureKind::NoExit => "no exit code".to_string(),
        }
    }
}

/// One failure to file.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// The item's key.
    pub item_key: &'a str,
    /// The item's value as substituted into commands (JSON or plain text), if known.
    pub item_value: Option<&'a str>,
    /// How it ended.
    pub kind: FailureKind,
    /// The tail of its standard error (or the attempt's error text when stderr is empty).
    pub output: &'a str,
    /// When it ended, epoch ms.
    pub at_ms: i64,
}

/// The last [`SIGNATURE_LINES`] non-empty lines of `output`, trimmed, joined with `\n`.
pub fn last_lines(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(SIGNATURE_LINES);
    lines[start..].join("\n")
}

/// The normalised message of a failure: its last lines with the varying parts replaced
/// (`<item>`, `<path>`, `<uuid>`, `<n>`) and whitespace runs collapsed.
pub fn normalise(output: &str, item_key: &str, item_value: Option<&str>) -> String {
    let mut text = last_lines(output);
    // The longer first, so a key inside the value does not cut the value in pieces.
    let mut own: Vec<&str> = [Some(item_key), item_value]
        .into_iter()
        .flatten()
        .map(|s| s.trim_matches('"'))
        .filter(|s| s.len() >= MIN_REPLACED_LEN)
        .collect();
    own.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in own {
        text = text.replace(s, "<item>");
    }
    text.lines()
        .map(|line| {
            line.split_whitespace()
                .map(normalise_token)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Punctuation that may wrap a token (`'/tmp/x':`, `(0x1f)`) and is kept around it.
fn is_wrapper(c: char) -> bool {
    matches!(
        c,
        '\'' | '"' | '`' | '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';' | ':' | '.' | '!' | '?'
    )
}

fn normalise_token(token: &str) -> String {
    let core = token.trim_matches(is_wrapper);
    if core.is_empty() {
        return token.to_string();
    }
    let start = token.find(core).unwrap_or(0);
    let (prefix, suffix) = (&token[..start], &token[start + core.len()..]);
    let replaced = if core.contains('/') && core.chars().any(|c| c.is_alphanumeric()) {
        "<path>".to_string()
    } else if is_uuid(core) {
        "<uuid>".to_string()
    } else {
        normalise_pieces(core)
    };
    format!("{prefix}{replaced}{suffix}")
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Splits at non-alphanumeric characters and replaces each piece: a number, or a hex run with
/// a digit in it (ids, addresses, `0x1f`), becomes `<n>`: one placeholder for both, since a
/// hex id is sometimes all digits; otherwise digit runs become `<n>` (so `02T03` and `v2` keep
/// their letters).
fn normalise_pieces(core: &str) -> String {
    let mut out = String::with_capacity(core.len());
    let mut piece = String::new();
    for c in core.chars() {
        if c.is_alphanumeric() {
            piece.push(c);
        } else {
            out.push_str(&normalise_piece(&piece));
            piece.clear();
            out.push(c);
        }
    }
    out.push_str(&normalise_piece(&piece));
    out
}

fn normalise_piece(piece: &str) -> String {
    if !piece.chars().any(|c| c.is_ascii_digit()) {
        return piece.to_string();
    }
    let body = piece
        .strip_prefix("0x")
        .or_else(|| piece.strip_prefix("0X"))
        .unwrap_or(piece);
    if !body.is_empty() && body.chars().all(|c| c.is_ascii_hexdigit()) {
        return "<n>".to_string();
    }
    let mut out = String::with_capacity(piece.len());
    let mut in_digits = false;
    for c in piece.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str("<n>");
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Failures sharing one signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureCluster {
    /// How they ended.
    pub kind: FailureKind,
    /// The normalised last lines.
    pub signature: String,
    /// The last lines of the first failure, as they were.
    pub message: String,
    /// Failures in the cluster.
    pub count: u64,
    /// First failure, epoch ms.
    pub first_seen_ms: i64,
    /// Latest failure, epoch ms.
    pub last_seen_ms: i64,
    /// Keys of the first few items (at most [`MAX_EXAMPLES`]).
    pub examples: Vec<String>,
}

impl FailureCluster {
    /// One line for people: `3x exit 1 <the message's last line>`.
    pub fn line(&self) -> String {
        let message = self.message.lines().last().unwrap_or_default();
        format!("{}x {} {message}", self.count, self.kind.label())
    }
}

/// Failures grouped by signature. Adding is O(output length).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailureClusters {
    /// In order of first appearance; [`FailureClusters::sorted`] orders them by count.
    clusters: Vec<FailureCluster>,
    #[serde(skip)]
    index: HashMap<(FailureKind, String), usize>,
    /// Failures with a new signature after [`MAX_CLUSTERS`] clusters existed.
    overflow: u64,
}

impl FailureClusters {
    /// No failures yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Files one failure.
    pub fn add(&mut self, failure: &Failure<'_>) {
        let signature = normalise(failure.output, failure.item_key, failure.item_value);
        let key = (failure.kind, signature);
        if let Some(&i) = self.index.get(&key) {
            let c = &mut self.clusters[i];
            c.count += 1;
            c.first_seen_ms = c.first_seen_ms.min(failure.at_ms);
            c.last_seen_ms = c.last_seen_ms.max(failure.at_ms);
            if c.examples.len() < MAX_EXAMPLES {
                c.examples.push(failure.item_key.to_string());
            }
            return;
        }
        if self.clusters.len() >= MAX_CLUSTERS {
            self.overflow += 1;
            return;
        }
        self.index.insert(key.clone(), self.clusters.len());
        self.clusters.push(FailureCluster {
            kind: key.0,
            signature: key.1,
            message: last_lines(failure.output),
            count: 1,
            first_seen_ms: failure.at_ms,
            last_seen_ms: failure.at_ms,
            examples: vec![failure.item_key.to_string()],
        });
    }

    /// The clusters, largest first (ties: the earliest first).
    pub fn sorted(&self) -> Vec<&FailureCluster> {
        let mut v: Vec<&FailureCluster> = self.clusters.iter().collect();
        v.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.first_seen_ms.cmp(&b.first_seen_ms))
        });
        v
    }

    /// Number of clusters.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// True when no failure was filed.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty() && self.overflow == 0
    }

    /// Failures filed, in clusters or not.
    pub fn total(&self) -> u64 {
        self.clusters.iter().map(|c| c.count).sum::<u64>() + self.overflow
    }

    /// Failures not in any cluster because [`MAX_CLUSTERS`] was reached.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_ids_paths_and_the_item_are_normalised() {
        let a = normalise(
            "loading model 12\nstarting\nerror at 2024-01-02T03:04:05.123Z: request 3f2a9c1e-8b7d-4c6e-9f00-123456789abc failed\n  open /tmp/job-81/photo_0001.jpg: No such file   or directory\n",
            "photo_0001",
            None,
        );
        let b = normalise(
            "starting\nerror at 2025-12-31T23:59:59.999Z: request 00000000-1111-2222-3333-444455556666 failed\nopen /var/tmp/x/y.jpg: No such file or directory",
            "photo_0002",
            None,
        );
        assert_eq!(a, b);
        assert_eq!(
            a,
            "starting\nerror at <n>-<n>-<n>T<n>:<n>:<n>.<n>Z: request <uuid> failed\nopen <path>: No such file or directory"
        );
        assert_eq!(
            normalise("bad pointer 0xdeadbeef in 7fa3c2 (v2)", "k", None),
            "bad pointer <n> in <n> (v<n>)"
        );
        assert_eq!(
            normalise("cannot parse \"cat.jpg\"", "cat.jpg", Some("\"cat.jpg\"")),
            "cannot parse \"<item>\""
        );
    }

    /// Issue 4's acceptance: 300 failures from 3 causes, every message with its own numbers,
    /// ids, paths and timestamps, read as 3 clusters.
    #[test]
    fn three_causes_over_300_failures_are_3_clusters() {
        let mut c = FailureClusters::new();
        for i in 0..300u64 {
            let key = format!("photo_{i:04}");
            let value = format!("{{\"path\":\"/data/in/{key}.jpg\"}}");
            let (kind, output) = match i % 3 {
                0 => (
                    FailureKind::Exit { code: 1 },
                    format!(
                        "Traceback (most recent call last):\n  File \"/app/resize.py\", line 42, in <module>\nFileNotFoundError: [Errno 2] No such file or directory: '/data/in/{key}.jpg'\n"
                    ),
                ),
                1 => (
                    FailureKind::TimedOut,
                    format!(
                        "[2026-11-24T01:{:02}:{:02}.{:03}Z] GET https://api.example.com/v1/items/{i}\ncurl: (28) Operation timed out after {} milliseconds with {} bytes received\nrequest-id: {:016x}",
                        i % 60,
                        (i * 7) % 60,
                        i * 13 % 1000,
                        30_000 + i,
                        i * 1024,
                        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ),
                ),
                _ => (
                    FailureKind::Exit { code: 137 },
                    format!(
                        "worker {} allocating {} MB for {key}\n\nKilled\n",
                        uuid_like(i),
                        512 + i
                    ),
                ),
            };
            c.add(&Failure {
                item_key: &key,
                item_value: Some(&value),
                kind,
                output: &output,
                at_ms: 1_000 * i as i64,
            });
        }
        let clusters = c.sorted();
        let summary: Vec<(FailureKind, u64, &str)> = clusters
            .iter()
            .map(|c| (c.kind, c.count, c.signature.as_str()))
            .collect();
        assert_eq!(clusters.len(), 3, "{summary:#?}");
        assert!(clusters.iter().all(|c| c.count == 100), "{summary:#?}");
        assert_eq!(clusters[0].first_seen_ms, 0);
        assert_eq!(clusters[0].last_seen_ms, 297_000);
        assert_eq!(
            clusters[0].examples,
            vec![
                "photo_0000",
                "photo_0003",
                "photo_0006",
                "photo_0009",
                "photo_0012"
            ]
        );
        assert!(clusters[0].message.contains("photo_0000"));
        assert!(serde_json::to_string(&c).is_ok_and(|j| j.contains("\"count\":100")));
    }

    fn uuid_like(i: u64) -> String {
        let h = i.wrapping_mul(0x2545_F491_4F6C_DD1D);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            h >> 32,
            (h >> 16) & 0xffff,
            h & 0xffff,
            (h >> 48) & 0xffff,
            h & 0xffff_ffff_ffff
        )
    }

    #[test]
    fn only_the_last_three_non_empty_lines_count() {
        assert_eq!(last_lines("1\n2\n\n3\n4\n\n"), "2\n3\n4");
        assert_eq!(last_lines(""), "");
    }

    #[test]
    fn same_text_with_different_exit_codes_are_different_causes() {
        let mut c = FailureClusters::new();
        for (i, code) in [1, 2, 1].into_iter().enumerate() {
            c.add(&Failure {
                item_key: &format!("item-{i}"),
                item_value: None,
                kind: FailureKind::Exit { code },
                output: "boom",
                at_ms: i as i64,
            });
        }
        let s = c.sorted();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].count, 2);
        assert_eq!(s[0].examples, vec!["item-0", "item-2"]);
        assert_eq!((s[0].first_seen_ms, s[0].last_seen_ms), (0, 2));
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn clusters_are_bounded() {
        let mut c = FailureClusters::new();
        for i in 0..(MAX_CLUSTERS + 10) {
            // Letters are kept, so each of these is its own cause.
            let word: String = format!("{i:x}")
                .chars()
                .map(|d| (b'g' + d.to_digit(16).unwrap_or(0) as u8) as char)
                .collect();
            c.add(&Failure {
                item_key: "k",
                item_value: None,
                kind: FailureKind::NoExit,
                output: &word,
                at_ms: 0,
            });
        }
        assert_eq!(c.len(), MAX_CLUSTERS);
        assert_eq!(c.overflow(), 10);
        assert_eq!(c.total(), MAX_CLUSTERS as u64 + 10);
    }

    #[test]
    fn kind_from_a_recorded_attempt() {
        assert_eq!(
            FailureKind::from_attempt(Some(AttemptOutcome::TimedOut), None),
            FailureKind::TimedOut
        );
        assert_eq!(
            FailureKind::from_attempt(Some(AttemptOutcome::Failed), Some(3)),
            FailureKind::Exit { code: 3 }
        );
        assert_eq!(
            FailureKind::from_attempt(Some(AttemptOutcome::Failed), None),
            FailureKind::NoExit
        );
    }
}
