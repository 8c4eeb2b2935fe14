//! How a job id prefix, as a user types it, names one job ([`crate::JobReads::resolve_job`]).

use crate::StoreError;
use mmm_core::job::JobId;

/// The hex digits a job id must start with, lowercase, for `prefix` as given: hyphens are
/// dropped so that a UUID pasted in its usual form is found too. Anything but 1 to 32 hex
/// digits is [`StoreError::InvalidJobId`]. The result holds no wildcard of `LIKE` or `GLOB`.
pub(crate) fn hex_prefix(prefix: &str) -> Result<String, StoreError> {
    let hex: String = prefix
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || hex.len() > 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(StoreError::InvalidJobId {
            prefix: prefix.to_string(),
        });
    }
    Ok(hex)
}

/// The job `prefix` names, given the ids that start with it (newest first): none is
/// [`StoreError::JobNotFound`], several [`StoreError::AmbiguousJob`].
pub(crate) fn the_one(prefix: &str, matches: Vec<JobId>) -> Result<JobId, StoreError> {
    match matches.as_slice() {
        [] => Err(StoreError::JobNotFound {
            job: prefix.to_string(),
        }),
        [id] => Ok(*id),
        _ => Err(StoreError::AmbiguousJob {
            prefix: prefix.to_string(),
            matches: matches.iter().map(JobId::to_string).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_hex_digits_in_lowercase() {
        assert_eq!(hex_prefix("01A2-b3").unwrap(), "01a2b3");
        for bad in ["", "-", "xyz", "01a2%", &"a".repeat(33)] {
            assert!(
                matches!(hex_prefix(bad), Err(StoreError::InvalidJobId { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn one_match_names_the_job() {
        let (a, b) = (JobId::new(), JobId::new());
        assert_eq!(the_one("0", vec![a]).unwrap(), a);
        assert!(matches!(
            the_one("0", Vec::new()),
            Err(StoreError::JobNotFound { .. })
        ));
        match the_one("0", vec![b, a]) {
            Err(StoreError::AmbiguousJob { matches, .. }) => {
                assert_eq!(matches, [b.to_string(), a.to_string()]);
            }
            other => panic!("expected AmbiguousJob, got {other:?}"),
        }
    }
}
