//! A job name glob (`nightly-*`, `eval-?`, `run-[ab]`): `*` any run of characters, `?` one
//! character, `[...]` one of a set (`[^...]` or `[!...]`: none of it), everything else itself,
//! case-sensitive. SQLite matches it with `GLOB` (which spells "none of" only `[^...]`),
//! PostgreSQL with `~` and the regular expression written here.

/// The anchored regular expression that matches what `glob` matches.
pub(crate) fn to_regex(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let mut regex = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => regex.push_str(".*"),
            '?' => regex.push('.'),
            '[' => match class_end(&chars, i) {
                Some(end) => {
                    regex.push('[');
                    let mut j = i + 1;
                    if matches!(chars[j], '^' | '!') {
                        regex.push('^');
                        j += 1;
                    }
                    for &c in &chars[j..end] {
                        if matches!(c, '\\' | '[' | ']' | '^') {
                            regex.push('\\');
                        }
                        regex.push(c);
                    }
                    regex.push(']');
                    i = end;
                }
                // An unclosed `[` is itself, as in GLOB.
                None => regex.push_str("\\["),
            },
            c => {
                if !c.is_alphanumeric() && c != ' ' {
                    regex.push('\\');
                }
                regex.push(c);
            }
        }
        i += 1;
    }
    regex.push('$');
    regex
}

/// `glob` for SQLite's `GLOB`: a set written `[!...]` becomes `[^...]`.
pub(crate) fn to_sqlite(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::with_capacity(glob.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '['
            && let Some(end) = class_end(&chars, i)
        {
            out.push('[');
            let mut j = i + 1;
            if chars[j] == '!' {
                out.push('^');
                j += 1;
            }
            out.extend(&chars[j..=end]);
            i = end + 1;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The index of the `]` closing the set that opens at `start`; a `]` first in the set (after
/// an optional `^`/`!`) is a member, as in GLOB.
fn class_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start + 1;
    if matches!(chars.get(j), Some('^' | '!')) {
        j += 1;
    }
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    (j..chars.len()).find(|&k| chars[k] == ']')
}

#[cfg(test)]
mod tests {
    use super::to_regex;

    #[test]
    fn globs_become_anchored_regular_expressions() {
        assert_eq!(to_regex("nightly-*"), "^nightly\\-.*$");
        assert_eq!(to_regex("eval-?"), "^eval\\-.$");
        assert_eq!(to_regex("run-[ab]"), "^run\\-[ab]$");
        assert_eq!(to_regex("run-[!ab]"), "^run\\-[^ab]$");
        assert_eq!(to_regex("a.b(c)"), "^a\\.b\\(c\\)$");
        assert_eq!(to_regex("open[x"), "^open\\[x$");
        assert_eq!(to_regex("[]x]"), "^[\\]x]$");
    }

    #[test]
    fn sqlite_globs_spell_negation_with_a_caret() {
        use super::to_sqlite;
        assert_eq!(to_sqlite("run-[!ab]*"), "run-[^ab]*");
        assert_eq!(to_sqlite("run-[^ab]"), "run-[^ab]");
        assert_eq!(to_sqlite("a[!x"), "a[!x");
        assert_eq!(to_sqlite("x!y"), "x!y");
    }
}
