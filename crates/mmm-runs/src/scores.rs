//! Reading score files: the numbers beside the configured metric (or all of them, by dotted
//! path),
//! and which of several epochs' scores is best.
//!
//! A score file that cannot be read, is not JSON, or lacks the metric gives a problem message
//! for the run, never a panic and never a failed scan.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::{Direction, ScoreRules};

/// The scores of one epoch (or of an evaluation).
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// The numbers beside the metric (or all numbers), by dotted path.
    pub values: BTreeMap<String, f64>,
    /// The metric's value, when a metric is configured.
    pub metric: Option<f64>,
}

/// Reads the score file at `path` (`shown` names it in problems).
pub fn read(path: &Path, shown: &str, rules: &ScoreRules) -> Result<Scores, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    parse(&bytes, shown, rules)
}

/// At most this many numbers are kept from a score file without a metric (a file may hold
/// per-sample scores under object keys).
pub const NUMBERS_LIMIT: usize = 50;

/// Parses the contents of a score file. Scores are named by their dotted path in the file
/// (`aggregated.accuracy`).
pub fn parse(bytes: &[u8], shown: &str, rules: &ScoreRules) -> Result<Scores, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{shown}: not valid JSON: {e}"))?;
    let Some(metric) = &rules.metric else {
        let mut values = BTreeMap::new();
        leaves(&value, "", &mut values);
        return Ok(Scores {
            values,
            metric: None,
        });
    };
    let (parent_path, leaf) = match metric.rsplit_once('.') {
        Some((parent, leaf)) => (Some(parent), leaf),
        None => (None, metric.as_str()),
    };
    let parent = match parent_path {
        Some(p) => p.split('.').try_fold(&value, |v, key| v.get(key)),
        None => Some(&value),
    };
    let number = parent.and_then(|p| p.get(leaf)).and_then(|v| v.as_f64());
    match (parent, number) {
        (Some(parent), Some(number)) => {
            let prefix = parent_path.map_or(String::new(), |p| format!("{p}."));
            let values = parent
                .as_object()
                .map(|map| {
                    map.iter()
                        .filter_map(|(k, v)| v.as_f64().map(|n| (format!("{prefix}{k}"), n)))
                        .collect()
                })
                .unwrap_or_default();
            Ok(Scores {
                values,
                metric: Some(number),
            })
        }
        _ => Err(format!("{shown}: no number at `{metric}` (scores.metric)")),
    }
}

/// The numbers inside objects (not lists), by dotted path, up to [`NUMBERS_LIMIT`].
fn leaves(value: &serde_json::Value, prefix: &str, out: &mut BTreeMap<String, f64>) {
    let Some(map) = value.as_object() else {
        return;
    };
    for (k, v) in map {
        if out.len() >= NUMBERS_LIMIT {
            return;
        }
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            serde_json::Value::Number(n) => {
                if let Some(n) = n.as_f64() {
                    out.insert(path, n);
                }
            }
            serde_json::Value::Object(_) => leaves(v, &path, out),
            _ => {}
        }
    }
}

/// True when `candidate` is strictly better than `best` in `direction` (ties keep the earlier
/// epoch).
pub fn is_better(candidate: f64, best: f64, direction: Direction) -> bool {
    match direction {
        Direction::Max => candidate > best,
        Direction::Min => candidate < best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(metric: Option<&str>) -> ScoreRules {
        ScoreRules {
            file: "s.json".into(),
            metric: metric.map(str::to_string),
            direction: Direction::Max,
        }
    }

    #[test]
    fn numbers_beside_the_metric() {
        let text = br#"{"aggregated": {"acc": 0.9, "loss": 0.1, "name": "x"}, "per_datapoint": {"acc": [1, 0]}}"#;
        let s = parse(text, "s.json", &rules(Some("aggregated.acc"))).unwrap();
        assert_eq!(s.metric, Some(0.9));
        assert_eq!(
            s.values,
            BTreeMap::from([
                ("aggregated.acc".to_string(), 0.9),
                ("aggregated.loss".to_string(), 0.1)
            ])
        );
    }

    #[test]
    fn without_a_metric_the_top_level_numbers() {
        let s = parse(
            br#"{"acc": 1, "f1": 0.5, "list": [1]}"#,
            "s.json",
            &rules(None),
        )
        .unwrap();
        assert_eq!(s.metric, None);
        assert_eq!(s.values.len(), 2);
        let s = parse(b"[1, 2]", "s.json", &rules(None)).unwrap();
        assert!(s.values.is_empty());
    }

    #[test]
    fn bad_files_are_problems_not_panics() {
        let e = parse(b"{oops", "epoch_1/s.json", &rules(None)).unwrap_err();
        assert!(e.starts_with("epoch_1/s.json: not valid JSON"), "{e}");
        let e = parse(br#"{"acc": "high"}"#, "s.json", &rules(Some("acc"))).unwrap_err();
        assert_eq!(e, "s.json: no number at `acc` (scores.metric)");
        let e = parse(br#"{"a": 1}"#, "s.json", &rules(Some("x.y.z"))).unwrap_err();
        assert!(e.contains("x.y.z"), "{e}");
        let e = read(Path::new("/nonexistent/s.json"), "s.json", &rules(None)).unwrap_err();
        assert!(e.starts_with("s.json: cannot read"), "{e}");
    }

    #[test]
    fn direction_decides_better() {
        assert!(is_better(0.9, 0.8, Direction::Max));
        assert!(!is_better(0.8, 0.8, Direction::Max));
        assert!(is_better(0.1, 0.2, Direction::Min));
        assert!(!is_better(0.3, 0.2, Direction::Min));
    }
}
