//! Reading the map's items one record at a time, for the inputs that allow it: a new job's
//! items go to the store in pages while the agents already work, so memory does not grow with
//! the input (a 10 GB `.jsonl`, or standard input that never ends).
//!
//! An input streams when each item's key can be known from the item alone: no `key:` (the
//! default key is the position and a hash of the value, unique by construction, so no set of
//! the keys seen is needed), and a source read front to back: a `lines` or `jsonl` file of a
//! job file, or the one-liner's only source (a file or standard input, one argument per
//! item). A `.json` document, an input command and several combined sources are loaded whole.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{InputError, InputOrigin};
use crate::{ArgsInput, InputFormat, InputSource, MapPlan, SourceKind};

/// The items' values as they are read.
pub type RecordStream = Box<dyn Iterator<Item = Result<Value, InputError>> + Send>;

/// An input whose items can be read one by one (see the module docs).
#[derive(Debug, Clone, Copy)]
pub enum StreamedInput<'p> {
    /// The one-liner's only source.
    Args {
        /// How its records are split into values.
        args: &'p ArgsInput,
        /// The file or standard input.
        source: &'p SourceKind,
    },
    /// A job file's `lines` or `jsonl` input file.
    File {
        /// The path as written, resolved against the job's directory.
        path: &'p Path,
        /// `lines` or `jsonl`.
        format: InputFormat,
    },
}

impl MapPlan {
    /// The input when its items can be read one by one, else `None` (loaded whole).
    pub fn streamed_input(&self) -> Option<StreamedInput<'_>> {
        if self.key.is_some() {
            return None;
        }
        match &self.input {
            InputSource::Args(args) => args
                .streamed_source()
                .map(|source| StreamedInput::Args { args, source }),
            InputSource::File {
                path,
                format: format @ (InputFormat::Lines | InputFormat::Jsonl),
                json_path: None,
            } => Some(StreamedInput::File {
                path,
                format: *format,
            }),
            _ => None,
        }
    }
}

impl StreamedInput<'_> {
    /// True when the items come from standard input (read once: a resume takes them from
    /// the record).
    pub fn reads_stdin(&self) -> bool {
        matches!(
            self,
            StreamedInput::Args {
                source: SourceKind::Stdin,
                ..
            }
        )
    }

    /// Opens the input and reads its values in order, lazily.
    pub fn open(&self, base_dir: &Path) -> Result<RecordStream, InputError> {
        match *self {
            StreamedInput::Args { args, source } => match source {
                SourceKind::File { path } => {
                    let (reader, origin) = open_file(&base_dir.join(path))?;
                    Ok(Box::new(args.records(reader, origin)?))
                }
                SourceKind::Stdin => {
                    let stdin = BufReader::new(std::io::stdin());
                    Ok(Box::new(args.records(stdin, InputOrigin::Stdin)?))
                }
                // `streamed_source` never gives inline values; they are in the plan already.
                SourceKind::Inline { values } => Ok(Box::new(
                    values.clone().into_iter().map(|v| Ok(Value::String(v))),
                )),
            },
            StreamedInput::File { path, format } => {
                let (reader, origin) = open_file(&base_dir.join(path))?;
                Ok(Box::new(TextLines {
                    reader,
                    origin,
                    json: format == InputFormat::Jsonl,
                    next_line: 1,
                }))
            }
        }
    }
}

fn open_file(path: &PathBuf) -> Result<(BufReader<File>, InputOrigin), InputError> {
    let file = File::open(path).map_err(|source| InputError::Read {
        path: path.clone(),
        source,
    })?;
    // Large reads: the input is read front to back once.
    let reader = BufReader::with_capacity(256 * 1024, file);
    Ok((reader, InputOrigin::File(path.clone())))
}

/// The non-empty lines of a `lines` or `jsonl` file as values, read as a whole load reads them
/// (a trailing `\r` dropped, empty lines skipped, errors naming the line).
struct TextLines<R> {
    reader: R,
    origin: InputOrigin,
    json: bool,
    /// The 1-based number of the next line.
    next_line: usize,
}

impl<R: BufRead> Iterator for TextLines<R> {
    type Item = Result<Value, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            match self.reader.read_until(b'\n', &mut bytes) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => return Some(Err(self.origin.read_error(source))),
            }
            let line = self.next_line;
            self.next_line += 1;
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            if bytes.is_empty() {
                continue;
            }
            let Ok(text) = std::str::from_utf8(&bytes) else {
                let origin = self.origin.clone();
                return Some(Err(InputError::NotUtf8 { origin, line }));
            };
            if !self.json {
                return Some(Ok(Value::String(text.to_string())));
            }
            return Some(
                serde_json::from_str(text).map_err(|source| InputError::JsonLine {
                    origin: self.origin.clone(),
                    line,
                    source,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Template;
    use serde_json::json;

    fn plan(input: InputSource) -> MapPlan {
        crate::input::tests::plan(input, None)
    }

    fn file(format: InputFormat) -> InputSource {
        InputSource::File {
            path: PathBuf::from("in"),
            format,
            json_path: None,
        }
    }

    /// A streamed file gives exactly the values a whole load gives, errors included.
    #[test]
    fn a_streamed_file_reads_as_a_whole_load_does() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (format, text) in [
            (InputFormat::Lines, "a\r\n\nb c\n\nlast"),
            (InputFormat::Jsonl, "{\"n\":1}\n\n[2]\r\n\"three\"\n"),
        ] {
            std::fs::write(dir.path().join("in"), text).expect("write");
            let plan = plan(file(format));
            let whole: Vec<Value> = plan
                .load_items(dir.path(), &Default::default())
                .expect("loads")
                .into_iter()
                .map(|item| item.value)
                .collect();
            let streamed: Vec<Value> = plan
                .streamed_input()
                .expect("streams")
                .open(dir.path())
                .expect("opens")
                .collect::<Result<_, _>>()
                .expect("reads");
            assert_eq!(streamed, whole, "{format:?}");
        }
        std::fs::write(dir.path().join("in"), "{}\n\nnot json\n").expect("write");
        let error = plan(file(InputFormat::Jsonl))
            .streamed_input()
            .expect("streams")
            .open(dir.path())
            .expect("opens")
            .nth(1)
            .expect("a second value");
        assert!(
            matches!(error, Err(InputError::JsonLine { line: 3, .. })),
            "{error:?}"
        );
        assert_eq!(
            plan(file(InputFormat::Lines))
                .streamed_input()
                .expect("streams")
                .open(dir.path())
                .expect("opens")
                .next()
                .expect("a value")
                .expect("text"),
            json!("{}")
        );
    }

    #[test]
    fn keyed_json_and_combined_inputs_are_loaded_whole() {
        let json = plan(file(InputFormat::Json));
        assert!(json.streamed_input().is_none());
        let mut keyed = plan(file(InputFormat::Lines));
        keyed.key = Some(Template::parse_plain("{{ item }}").expect("parses"));
        assert!(keyed.streamed_input().is_none());
        let command = plan(InputSource::Command {
            command: "seq 3".into(),
            format: InputFormat::Lines,
            json_path: None,
        });
        assert!(command.streamed_input().is_none());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let Err(error) = plan(file(InputFormat::Lines))
            .streamed_input()
            .expect("streams")
            .open(dir.path())
        else {
            panic!("a missing file opens");
        };
        assert!(error.to_string().contains("in: cannot read"), "{error}");
    }
}
