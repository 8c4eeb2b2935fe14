//! File-name globs (`train_val*.log`, `seed_?`): `*` matches any run of characters, `?` one
//! character, everything else itself. One path level only: no `/`.

use serde::{Deserialize, Serialize};

/// A glob over one file or folder name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Glob {
    text: String,
    chars: Vec<char>,
}

impl Glob {
    /// A glob from its text; refused when it is empty or holds a `/`.
    pub fn new(text: &str) -> Result<Glob, String> {
        if text.is_empty() {
            return Err("a glob cannot be empty; `*` matches every name".into());
        }
        if text.contains('/') {
            return Err(format!(
                "the glob `{text}` holds a `/`; it matches one file or folder name"
            ));
        }
        Ok(Glob {
            text: text.to_string(),
            chars: text.chars().collect(),
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the glob starts with a `.`, so that it may match hidden names.
    pub fn is_for_hidden(&self) -> bool {
        self.text.starts_with('.')
    }

    /// True when the glob has no wildcard: it names exactly one entry.
    pub fn is_literal(&self) -> bool {
        !self.chars.iter().any(|c| matches!(c, '*' | '?'))
    }

    /// True when `name` matches the whole glob.
    pub fn matches(&self, name: &str) -> bool {
        // Iterative matching with one backtrack point per `*`: linear for typical globs,
        // never exponential.
        let name: Vec<char> = name.chars().collect();
        let pat = &self.chars;
        let (mut p, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            if p < pat.len() && (pat[p] == '?' || pat[p] == name[n]) {
                p += 1;
                n += 1;
            } else if p < pat.len() && pat[p] == '*' {
                star = Some((p, n));
                p += 1;
            } else if let Some((sp, sn)) = star {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            } else {
                return false;
            }
        }
        pat[p..].iter().all(|&c| c == '*')
    }
}

impl TryFrom<String> for Glob {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Glob::new(&text)
    }
}

impl From<Glob> for String {
    fn from(glob: Glob) -> String {
        glob.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, name: &str) -> bool {
        Glob::new(glob).unwrap().matches(name)
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("train_val*.log", "train_val.log"));
        assert!(m("train_val*.log", "train_val_2024-01-01.log"));
        assert!(!m("train_val*.log", "train_val.log.1"));
        assert!(!m("train_val*.log", "eval_1.log"));
        assert!(m("seed_?", "seed_1"));
        assert!(!m("seed_?", "seed_12"));
        assert!(m("*", "anything"));
        assert!(m("a*b*c", "aXXbYYbc"));
        assert!(!m("a*b*c", "aXXbYYb"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exactly"));
    }

    #[test]
    fn slashes_and_empty_globs_are_refused() {
        assert!(Glob::new("a/b").is_err());
        assert!(Glob::new("").is_err());
        assert!(Glob::new("epoch_*").unwrap().is_literal().eq(&false));
        assert!(Glob::new("config.json").unwrap().is_literal());
    }
}
