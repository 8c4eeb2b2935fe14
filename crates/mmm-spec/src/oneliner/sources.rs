//! The one-liner's input sources, as GNU parallel has them: `::: A B`, `:::: FILE`, `-a FILE`,
//! standard input; how each is split into arguments (`-0`, `-d`, `--colsep`); and how several
//! combine into items (every combination, the first source varying slowest; `--link` and
//! `:::+` pair them instead; `-N` groups several arguments into one item).

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{InputError, InputOrigin};

/// Where one source's arguments come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceKind {
    /// `::: A B C`: the arguments as written.
    Inline {
        /// The arguments.
        values: Vec<String>,
    },
    /// `:::: FILE`, `-a FILE`, `--input FILE`: one argument per record of the file.
    File {
        /// The path as written, resolved against the job's directory.
        path: PathBuf,
    },
    /// Standard input (`:::: -`, `-a -`, `--input -`, or no source on a pipe).
    Stdin,
}

/// One input source of a one-liner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgSource {
    /// Where its arguments come from.
    #[serde(flatten)]
    pub kind: SourceKind,
    /// `:::+` / `::::+`: paired with the source before it instead of combined.
    #[serde(default, skip_serializing_if = "is_false")]
    pub linked: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// What ends one argument in a file or on standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delimiter {
    /// A newline (the default).
    #[default]
    Newline,
    /// A NUL byte (`-0`, `--null`).
    Nul,
    /// Any text (`-d`), with `\n`, `\t`, `\0` and `\\` already turned into their characters.
    Text(String),
}

impl Delimiter {
    /// Reads `-d`'s argument as GNU parallel does: backslash escapes for newline, tab, NUL
    /// and backslash; anything else as written.
    pub fn from_escaped(text: &str) -> Delimiter {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('0') => out.push('\0'),
                Some('r') => out.push('\r'),
                Some('\\') | None => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
        match out.as_str() {
            "\n" => Delimiter::Newline,
            "\0" => Delimiter::Nul,
            _ => Delimiter::Text(out),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Delimiter::Newline => "\n",
            Delimiter::Nul => "\0",
            Delimiter::Text(text) => text,
        }
    }
}

/// A one-liner's sources and how they make items.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgsInput {
    /// The sources in the order given.
    pub sources: Vec<ArgSource>,
    /// `--link`: every source paired with the others (shorter ones wrap around).
    #[serde(default, skip_serializing_if = "is_false")]
    pub link: bool,
    /// What ends an argument in a file or on standard input.
    #[serde(default)]
    pub delimiter: Delimiter,
    /// `--colsep REGEX`: each argument split into columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colsep: Option<String>,
    /// `-N n`: n arguments per item (`Some(0)`: the command gets none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_args: Option<usize>,
}

impl ArgsInput {
    /// True when each item is one argument from one source: its value is that string,
    /// otherwise a list of strings (one per source or column).
    pub fn is_single_value(&self) -> bool {
        self.sources.len() == 1 && self.colsep.is_none() && self.max_args.is_none_or(|n| n <= 1)
    }

    /// True when the input is read from standard input.
    pub fn reads_stdin(&self) -> bool {
        self.sources.iter().any(|s| s.kind == SourceKind::Stdin)
    }

    /// How many values an item has when that is known before reading the input.
    pub fn values_per_item(&self) -> Option<usize> {
        match (self.colsep.is_some(), self.max_args) {
            (true, _) => None,
            (false, Some(n)) if n > 1 => Some(self.sources.len() * n),
            (false, _) => Some(self.sources.len()),
        }
    }

    /// What identifies the input's content cheaply (for a resume): the files' sizes and
    /// modification times; standard input and inline values cannot change.
    pub fn fingerprint(&self, base_dir: &Path) -> Option<String> {
        let mut parts = Vec::new();
        for source in &self.sources {
            match &source.kind {
                SourceKind::Inline { .. } => parts.push("inline".to_string()),
                SourceKind::Stdin => parts.push("stdin".to_string()),
                SourceKind::File { path } => {
                    let meta = std::fs::metadata(base_dir.join(path)).ok()?;
                    let modified = meta
                        .modified()
                        .ok()?
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()?;
                    parts.push(format!("file:{}:{}", meta.len(), modified.as_nanos()));
                }
            }
        }
        Some(parts.join(","))
    }

    /// The only source, when the items can be read from it one by one as they come: standard
    /// input or one file, split at a one-byte delimiter, one argument per item. Several
    /// sources need every value first (they combine).
    pub fn streamed_source(&self) -> Option<&SourceKind> {
        match self.sources.as_slice() {
            [ArgSource { kind, .. }]
                if !matches!(kind, SourceKind::Inline { .. })
                    && self.max_args.is_none_or(|n| n <= 1)
                    && self.delimiter.as_str().len() == 1 =>
            {
                Some(kind)
            }
            _ => None,
        }
    }

    /// True when the items can be taken from standard input one by one as they arrive.
    pub fn streams_stdin(&self) -> bool {
        self.streamed_source() == Some(&SourceKind::Stdin)
    }

    /// The items' values read from `reader` (which holds `origin`'s text) one record at a
    /// time, for an input with a [`streamed_source`](Self::streamed_source).
    pub fn records<R: BufRead>(
        &self,
        reader: R,
        origin: InputOrigin,
    ) -> Result<Records<R>, InputError> {
        Ok(Records {
            reader,
            origin,
            delimiter: self
                .delimiter
                .as_str()
                .as_bytes()
                .first()
                .copied()
                .unwrap_or(b'\n'),
            colsep: self.colsep_regex()?,
            single: self.is_single_value(),
            line: 1,
        })
    }

    fn colsep_regex(&self) -> Result<Option<regex::Regex>, InputError> {
        match &self.colsep {
            Some(pattern) => {
                regex::Regex::new(pattern)
                    .map(Some)
                    .map_err(|source| InputError::BadColsep {
                        pattern: pattern.clone(),
                        source,
                    })
            }
            None => Ok(None),
        }
    }

    /// Reads every source and combines them into the items' values.
    pub fn load(&self, base_dir: &Path) -> Result<Vec<Value>, InputError> {
        let colsep = self.colsep_regex()?;
        let mut columns: Vec<(Vec<Vec<String>>, bool)> = Vec::new();
        for source in &self.sources {
            let values = self.read(source, base_dir)?;
            let rows = values
                .into_iter()
                .map(|value| match &colsep {
                    Some(re) => re.split(&value).map(str::to_string).collect(),
                    None => vec![value],
                })
                .collect();
            columns.push((rows, source.linked));
        }
        let tuples = combine(columns, self.link);
        let tuples = match self.max_args {
            Some(n) if n > 1 => tuples
                .chunks(n)
                .map(|chunk| chunk.concat())
                .collect::<Vec<_>>(),
            _ => tuples,
        };
        let single = self.is_single_value();
        Ok(tuples
            .into_iter()
            .map(|mut tuple| match (single, tuple.len()) {
                (true, 1) => Value::String(tuple.pop().unwrap_or_default()),
                _ => Value::Array(tuple.into_iter().map(Value::String).collect()),
            })
            .collect())
    }

    /// One source's arguments.
    fn read(&self, source: &ArgSource, base_dir: &Path) -> Result<Vec<String>, InputError> {
        let (bytes, origin) = match &source.kind {
            SourceKind::Inline { values } => return Ok(values.clone()),
            SourceKind::File { path } => {
                let path = base_dir.join(path);
                let bytes = std::fs::read(&path).map_err(|source| InputError::Read {
                    path: path.clone(),
                    source,
                })?;
                (bytes, InputOrigin::File(path))
            }
            SourceKind::Stdin => {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .lock()
                    .read_to_end(&mut bytes)
                    .map_err(|source| InputError::Stdin { source })?;
                (bytes, InputOrigin::Stdin)
            }
        };
        split_records(&bytes, &self.delimiter, &origin)
    }
}

/// Standard input's records as items' values, read one at a time as they arrive.
pub struct Records<R> {
    reader: R,
    origin: InputOrigin,
    delimiter: u8,
    colsep: Option<regex::Regex>,
    single: bool,
    /// The line the next record starts on, for errors.
    line: usize,
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<Value, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut bytes = Vec::new();
        match self.reader.read_until(self.delimiter, &mut bytes) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(source) => return Some(Err(self.origin.read_error(source))),
        }
        if bytes.last() == Some(&self.delimiter) {
            bytes.pop();
        }
        let line = self.line;
        self.line +=
            bytes.iter().filter(|b| **b == b'\n').count() + usize::from(self.delimiter == b'\n');
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                return Some(Err(InputError::NotUtf8 {
                    origin: self.origin.clone(),
                    line,
                }));
            }
        };
        let mut values: Vec<String> = match &self.colsep {
            Some(re) => re.split(&text).map(str::to_string).collect(),
            None => vec![text],
        };
        Some(Ok(match (self.single, values.len()) {
            (true, 1) => Value::String(values.pop().unwrap_or_default()),
            _ => Value::Array(values.into_iter().map(Value::String).collect()),
        }))
    }
}

/// Splits text into records at each delimiter; a final delimiter ends the last record
/// rather than starting an empty one. Empty records are arguments (as in GNU parallel).
fn split_records(
    bytes: &[u8],
    delimiter: &Delimiter,
    origin: &InputOrigin,
) -> Result<Vec<String>, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|error| InputError::NotUtf8 {
        origin: origin.clone(),
        line: bytes[..error.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1,
    })?;
    let delimiter = delimiter.as_str();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let text = text.strip_suffix(delimiter).unwrap_or(text);
    Ok(text.split(delimiter).map(str::to_string).collect())
}

/// Combines the sources' rows: linked sources are paired (`:::+` stops at the shorter,
/// `--link` wraps the shorter around), and the groups so formed give every combination, the
/// first group varying slowest.
fn combine(sources: Vec<(Vec<Vec<String>>, bool)>, link_all: bool) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<Vec<Vec<String>>>> = Vec::new();
    for (rows, linked) in sources {
        match groups.last_mut() {
            Some(group) if linked || link_all => group.push(rows),
            _ => groups.push(vec![rows]),
        }
    }
    let paired: Vec<Vec<Vec<String>>> = groups
        .into_iter()
        .map(|group| pair(group, link_all))
        .collect();
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for group in paired {
        let mut next = Vec::with_capacity(out.len() * group.len());
        for prefix in &out {
            for row in &group {
                let mut tuple = prefix.clone();
                tuple.extend(row.iter().cloned());
                next.push(tuple);
            }
        }
        out = next;
    }
    out
}

/// Pairs the rows of linked sources, row by row.
fn pair(group: Vec<Vec<Vec<String>>>, wrap: bool) -> Vec<Vec<String>> {
    let lengths = group.iter().map(Vec::len);
    let len = match wrap {
        true => lengths.max().unwrap_or(0),
        false => lengths.min().unwrap_or(0),
    };
    if group.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    (0..len)
        .map(|i| {
            group
                .iter()
                .flat_map(|rows| rows[i % rows.len()].iter().cloned())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inline(values: &[&str], linked: bool) -> ArgSource {
        ArgSource {
            kind: SourceKind::Inline {
                values: values.iter().map(|v| v.to_string()).collect(),
            },
            linked,
        }
    }

    fn load(input: ArgsInput) -> Vec<Value> {
        input.load(Path::new("/nonexistent")).expect("loads")
    }

    #[test]
    fn several_sources_give_every_combination_first_slowest() {
        let input = ArgsInput {
            sources: vec![inline(&["a", "b"], false), inline(&["1", "2"], false)],
            ..ArgsInput::default()
        };
        assert_eq!(
            load(input),
            vec![
                json!(["a", "1"]),
                json!(["a", "2"]),
                json!(["b", "1"]),
                json!(["b", "2"])
            ]
        );
    }

    #[test]
    fn link_wraps_and_plus_stops_at_the_shorter() {
        let sources = vec![inline(&["a", "b", "c"], false), inline(&["1", "2"], false)];
        let input = ArgsInput {
            sources: sources.clone(),
            link: true,
            ..ArgsInput::default()
        };
        assert_eq!(
            load(input),
            vec![json!(["a", "1"]), json!(["b", "2"]), json!(["c", "1"])]
        );
        let input = ArgsInput {
            sources: vec![
                inline(&["a", "b"], false),
                inline(&["1", "2", "3"], true),
                inline(&["x"], false),
            ],
            ..ArgsInput::default()
        };
        assert_eq!(
            load(input),
            vec![json!(["a", "1", "x"]), json!(["b", "2", "x"])]
        );
    }

    #[test]
    fn one_source_gives_strings_and_n_groups_them() {
        let input = ArgsInput {
            sources: vec![inline(&["a", "b", "c"], false)],
            ..ArgsInput::default()
        };
        assert_eq!(
            load(input.clone()),
            vec![json!("a"), json!("b"), json!("c")]
        );
        let grouped = ArgsInput {
            max_args: Some(2),
            ..input
        };
        assert_eq!(load(grouped), vec![json!(["a", "b"]), json!(["c"])]);
    }

    #[test]
    fn records_split_at_the_delimiter_keeping_empty_ones() {
        let origin = InputOrigin::Stdin;
        let split = |text: &str, d: &Delimiter| split_records(text.as_bytes(), d, &origin);
        assert_eq!(
            split("a\n\nb\n", &Delimiter::Newline).expect("splits"),
            ["a", "", "b"]
        );
        assert_eq!(
            split("a\0b c\0", &Delimiter::Nul).expect("splits"),
            ["a", "b c"]
        );
        assert_eq!(
            split("a,b\n", &Delimiter::from_escaped(",")).expect("splits"),
            ["a", "b\n"]
        );
        assert!(split("", &Delimiter::Newline).expect("splits").is_empty());
        assert_eq!(Delimiter::from_escaped("\\0"), Delimiter::Nul);
        assert_eq!(Delimiter::from_escaped("\\n"), Delimiter::Newline);
        assert_eq!(
            Delimiter::from_escaped("\\t"),
            Delimiter::Text("\t".to_string())
        );
    }

    #[test]
    fn colsep_splits_into_columns_and_bad_patterns_are_errors() {
        let input = ArgsInput {
            sources: vec![inline(&["a,b", "c,d,e"], false)],
            colsep: Some(",".to_string()),
            ..ArgsInput::default()
        };
        assert_eq!(load(input), vec![json!(["a", "b"]), json!(["c", "d", "e"])]);
        let bad = ArgsInput {
            sources: vec![inline(&["a"], false)],
            colsep: Some("(".to_string()),
            ..ArgsInput::default()
        };
        let error = bad.load(Path::new(".")).unwrap_err();
        assert!(error.to_string().contains("--colsep"), "{error}");
    }

    #[test]
    fn stdin_streams_record_by_record_as_a_whole_read_would_split() {
        let input = ArgsInput {
            sources: vec![ArgSource {
                kind: SourceKind::Stdin,
                linked: false,
            }],
            ..ArgsInput::default()
        };
        assert!(input.streams_stdin());
        let values: Vec<Value> = input
            .records(&b"a\n\nb c\nlast"[..], InputOrigin::Stdin)
            .expect("valid")
            .collect::<Result<_, _>>()
            .expect("reads");
        assert_eq!(
            values,
            vec![json!("a"), json!(""), json!("b c"), json!("last")]
        );
        let columns = ArgsInput {
            colsep: Some(",".to_string()),
            ..input.clone()
        };
        let values: Vec<Value> = columns
            .records(&b"a,b\n"[..], InputOrigin::Stdin)
            .expect("valid")
            .collect::<Result<_, _>>()
            .expect("reads");
        assert_eq!(values, vec![json!(["a", "b"])]);
        let error = input
            .records(&b"ok\n\xff\n"[..], InputOrigin::Stdin)
            .expect("valid")
            .nth(1)
            .expect("a second record");
        assert!(
            matches!(error, Err(InputError::NotUtf8 { line: 2, .. })),
            "{error:?}"
        );
        // Several sources need every value first.
        let combined = ArgsInput {
            sources: vec![input.sources[0].clone(), inline(&["x"], false)],
            ..ArgsInput::default()
        };
        assert!(!combined.streams_stdin());
    }

    #[test]
    fn an_empty_source_gives_no_items() {
        let input = ArgsInput {
            sources: vec![inline(&["a"], false), inline(&[], false)],
            link: true,
            ..ArgsInput::default()
        };
        assert!(load(input).is_empty());
    }
}
