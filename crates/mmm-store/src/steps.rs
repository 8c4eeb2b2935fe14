//! How an attempt's steps are recorded: [`StepRecord`], and [`StoredSteps`], the compact form
//! both backends store them in (and read back in either form).

use serde::Serialize;

/// How one step of an attempt went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub name: String,
    /// `ran` or `skipped`.
    pub skipped: bool,
    /// Measured wall time, microseconds.
    pub duration_us: u64,
    /// Exit code, when it ran and exited.
    pub exit_code: Option<i32>,
}

/// An attempt's steps as the backends store them: one array per step, `[name, duration_us,
/// exit_code]`, with a fourth element `true` when the step was skipped, e.g.
/// `[["resize",5740,0],["upload",0,null,true]]`. Objects with field names (`StepRecord`'s
/// JSON, what stores before schema version 4 hold) took 52 bytes for a one-step attempt of
/// a one-liner; this takes 19 (docs/PERFORMANCE.md, "Store size per item"). Reading takes
/// either form, row by row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StoredSteps(pub(crate) Vec<StepRecord>);

impl StoredSteps {
    /// The stored form of `steps`.
    pub(crate) fn to_json(steps: &[StepRecord]) -> serde_json::Value {
        serde_json::Value::Array(
            steps
                .iter()
                .map(|step| {
                    let mut fields = vec![
                        serde_json::Value::from(step.name.as_str()),
                        serde_json::Value::from(step.duration_us),
                        serde_json::Value::from(step.exit_code),
                    ];
                    if step.skipped {
                        fields.push(serde_json::Value::Bool(true));
                    }
                    serde_json::Value::Array(fields)
                })
                .collect(),
        )
    }
}

impl<'de> serde::Deserialize<'de> for StoredSteps {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// One step in either stored form; a ran step's array has no fourth element.
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Step {
            Ran(String, u64, Option<i32>),
            Flagged(String, u64, Option<i32>, bool),
            Named(StepRecord),
        }
        let steps = Vec::<Step>::deserialize(deserializer)?;
        Ok(StoredSteps(
            steps
                .into_iter()
                .map(|step| match step {
                    Step::Ran(name, duration_us, exit_code) => StepRecord {
                        name,
                        skipped: false,
                        duration_us,
                        exit_code,
                    },
                    Step::Flagged(name, duration_us, exit_code, skipped) => StepRecord {
                        name,
                        skipped,
                        duration_us,
                        exit_code,
                    },
                    Step::Named(step) => step,
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_stored_as_arrays_and_read_in_either_form() {
        let steps = vec![
            StepRecord {
                name: "resize".into(),
                skipped: false,
                duration_us: 5_740,
                exit_code: Some(0),
            },
            StepRecord {
                name: "upload".into(),
                skipped: true,
                duration_us: 0,
                exit_code: None,
            },
            StepRecord {
                name: "killed".into(),
                skipped: false,
                duration_us: 9,
                exit_code: None,
            },
        ];
        let stored = StoredSteps::to_json(&steps).to_string();
        assert_eq!(
            stored,
            r#"[["resize",5740,0],["upload",0,null,true],["killed",9,null]]"#
        );
        let read: StoredSteps = serde_json::from_str(&stored).unwrap();
        assert_eq!(read.0, steps);
        // As stores before schema version 4 hold them: objects, every field named.
        let old = serde_json::to_string(&steps).unwrap();
        assert!(old.contains(r#""skipped":false"#), "{old}");
        let read: StoredSteps = serde_json::from_str(&old).unwrap();
        assert_eq!(read.0, steps);
        let empty: StoredSteps = serde_json::from_str("[]").unwrap();
        assert!(empty.0.is_empty());
        assert!(serde_json::from_str::<StoredSteps>(r#"[["x","slow",0]]"#).is_err());
    }
}
