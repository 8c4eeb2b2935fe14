//! The words after a one-liner's command as GNU parallel reads them: `::: A B` (arguments),
//! `:::: FILE ...` (files, `-` for standard input), and `:::+` / `::::+` (paired with the
//! source before instead of combined).

use std::path::Path;

use mmm_spec::{ArgSource, SourceKind};

use crate::cli::UsageError;

/// Splits `CMD ... ::: A B :::: F` into the command words and the input sources.
pub(super) fn split(words: &[String]) -> Result<(Vec<String>, Vec<ArgSource>), UsageError> {
    let Some(first) = words.iter().position(|w| is_separator(w)) else {
        return Ok((words.to_vec(), Vec::new()));
    };
    let mut sources: Vec<ArgSource> = Vec::new();
    let mut at = first;
    while at < words.len() {
        let separator = words[at].as_str();
        let end = words[at + 1..]
            .iter()
            .position(|w| is_separator(w))
            .map_or(words.len(), |n| at + 1 + n);
        let values = &words[at + 1..end];
        let linked = separator.ends_with('+');
        if linked && sources.is_empty() {
            return Err(UsageError::new(format!(
                "mmm run: `{separator}` pairs with the input source before it, but there is none\n  \
                 hint: start with `:::` or `::::`"
            )));
        }
        if values.is_empty() {
            return Err(UsageError::new(format!(
                "mmm run: `{separator}` is followed by nothing\n  hint: give arguments after \
                 `:::`, file names after `::::`"
            )));
        }
        if separator.starts_with("::::") {
            for (i, path) in values.iter().enumerate() {
                sources.push(file_source(Path::new(path), linked && i == 0));
            }
        } else {
            sources.push(ArgSource {
                kind: SourceKind::Inline {
                    values: values.to_vec(),
                },
                linked,
            });
        }
        at = end;
    }
    Ok((words[..first].to_vec(), sources))
}

/// A source read from a file, or from standard input for `-`.
pub(super) fn file_source(path: &Path, linked: bool) -> ArgSource {
    let kind = match path.to_str() {
        Some("-") => SourceKind::Stdin,
        _ => SourceKind::File {
            path: path.to_path_buf(),
        },
    };
    ArgSource { kind, linked }
}

fn is_separator(word: &str) -> bool {
    matches!(word, ":::" | ":::+" | "::::" | "::::+")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn sources_follow_their_separators() {
        let (command, sources) =
            split(&words("echo {1} {2} ::: a b :::+ 1 2 :::: f - ::: x")).expect("valid");
        assert_eq!(command, ["echo", "{1}", "{2}"]);
        let kinds: Vec<(&SourceKind, bool)> = sources.iter().map(|s| (&s.kind, s.linked)).collect();
        assert_eq!(kinds.len(), 5);
        assert!(
            matches!(kinds[0], (SourceKind::Inline { values }, false) if values == &["a", "b"])
        );
        assert!(matches!(kinds[1], (SourceKind::Inline { .. }, true)));
        assert!(matches!(kinds[2], (SourceKind::File { path }, false) if path == Path::new("f")));
        assert!(matches!(kinds[3], (SourceKind::Stdin, false)));
        assert!(matches!(kinds[4], (SourceKind::Inline { .. }, false)));
        let (command, sources) = split(&words("echo x")).expect("valid");
        assert_eq!((command.len(), sources.len()), (2, 0));
    }

    #[test]
    fn empty_or_dangling_separators_are_errors() {
        assert!(split(&words("echo :::")).is_err());
        assert!(split(&words("echo :::+ a")).is_err());
        assert!(split(&words("echo ::: a ::::")).is_err());
    }
}
