//! Loading the map's items: read the input file or run the input command, split the text
//! into JSON items per format, and give every item a unique key.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;
use serde_json_path::JsonPath;
use sha2::{Digest, Sha256};

use super::error::{InputError, InputOrigin};
use super::{InputFormat, InputSource, Item, MapPlan, RenderContext};

/// How many trailing lines of a failed input command's stderr the error shows.
const STDERR_TAIL_LINES: usize = 10;

impl MapPlan {
    /// What identifies the input's current content cheaply: a file's size and modification
    /// time, a constant for inline items (they are part of the plan), and `None` for a
    /// command's output, which can only be known by running it.
    pub fn input_fingerprint(&self, base_dir: &Path) -> Option<String> {
        match &self.input {
            InputSource::File { path, .. } => {
                let meta = std::fs::metadata(base_dir.join(path)).ok()?;
                let modified = meta
                    .modified()
                    .ok()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?;
                Some(format!("file:{}:{}", meta.len(), modified.as_nanos()))
            }
            InputSource::Inline(_) => Some("inline".to_string()),
            InputSource::Command { .. } => None,
            InputSource::Args(args) => args.fingerprint(base_dir),
        }
    }

    /// True when the items are read from standard input (a one-liner's): a resume takes them
    /// from the record and never reads it again.
    pub fn reads_stdin(&self) -> bool {
        matches!(&self.input, InputSource::Args(args) if args.reads_stdin())
    }

    /// Loads the items (runs the input command if there is one), computes and checks keys.
    pub fn load_items(
        &self,
        base_dir: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<Item>, InputError> {
        let values = match &self.input {
            InputSource::File {
                path,
                format,
                json_path,
            } => {
                let path = base_dir.join(path);
                let bytes = std::fs::read(&path).map_err(|source| InputError::Read {
                    path: path.clone(),
                    source,
                })?;
                parse_items(
                    &bytes,
                    *format,
                    json_path.as_deref(),
                    &InputOrigin::File(path),
                )?
            }
            InputSource::Command {
                command,
                format,
                json_path,
            } => {
                let stdout = run_command(command, base_dir, env)?;
                let origin = InputOrigin::Command(command.clone());
                parse_items(&stdout, *format, json_path.as_deref(), &origin)?
            }
            InputSource::Inline(args) => args.iter().cloned().map(Value::String).collect(),
            InputSource::Args(args) => args.load(base_dir)?,
        };
        self.keyed(values, env)
    }

    /// Pairs each value with its key and checks that keys are unique.
    fn keyed(
        &self,
        values: Vec<Value>,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<Item>, InputError> {
        let mut positions: HashMap<String, usize> = HashMap::new();
        let mut items = Vec::with_capacity(values.len());
        for (index, value) in values.into_iter().enumerate() {
            let position = index + 1;
            let key = match &self.key {
                Some(template) => {
                    let ctx = RenderContext {
                        item: Some(&value),
                        item_key: None,
                        seq: position as u64,
                        slot: 0,
                        env,
                        map: None,
                    };
                    let key = template
                        .render_plain(&ctx)
                        .map_err(|source| InputError::Key { position, source })?;
                    if key.is_empty() {
                        return Err(InputError::EmptyKey { position });
                    }
                    key
                }
                None => default_key(position, &value),
            };
            if let Some(first) = positions.insert(key.clone(), position) {
                return Err(InputError::DuplicateKey {
                    key,
                    first,
                    second: position,
                });
            }
            items.push(Item { key, value });
        }
        Ok(items)
    }
}

/// The key of an item without `key:`: its 1-based position and a short content hash, so a
/// reordered or edited input file does not silently match old results.
pub(super) fn default_key(position: usize, value: &Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    let hex: String = digest
        .iter()
        .take(4)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{position:06}-{hex}")
}

/// Runs the input command with `sh -c` and returns its standard output.
fn run_command(
    command: &str,
    base_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Vec<u8>, InputError> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(base_dir)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| InputError::Spawn {
            command: command.to_string(),
            source,
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let status = match output.status.code() {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_string(),
    };
    Err(InputError::CommandFailed {
        command: command.to_string(),
        status,
        stderr_tail: stderr_tail(&output.stderr),
    })
}

/// The last lines of stderr, indented, each ending in a newline.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..]
        .iter()
        .map(|line| format!("  | {line}\n"))
        .collect()
}

/// Splits input text into items.
fn parse_items(
    bytes: &[u8],
    format: InputFormat,
    json_path: Option<&str>,
    origin: &InputOrigin,
) -> Result<Vec<Value>, InputError> {
    match format {
        InputFormat::Json => {
            let document: Value =
                serde_json::from_slice(bytes).map_err(|source| InputError::Json {
                    origin: origin.clone(),
                    line: source.line(),
                    column: source.column(),
                    source,
                })?;
            let expression = json_path.unwrap_or("$[*]");
            let path = JsonPath::parse(expression).map_err(|source| InputError::BadJsonPath {
                expression: expression.to_string(),
                source,
            })?;
            Ok(path.query(&document).all().into_iter().cloned().collect())
        }
        InputFormat::Jsonl => {
            let mut items = Vec::new();
            for (index, line) in text_lines(bytes, origin)? {
                let value = serde_json::from_str(line).map_err(|source| InputError::JsonLine {
                    origin: origin.clone(),
                    line: index + 1,
                    source,
                })?;
                items.push(value);
            }
            Ok(items)
        }
        InputFormat::Lines => Ok(text_lines(bytes, origin)?
            .into_iter()
            .map(|(_, line)| Value::String(line.to_string()))
            .collect()),
    }
}

/// The non-empty lines of UTF-8 text with their 0-based line numbers, without a trailing
/// `\r` (files written on Windows).
fn text_lines<'t>(
    bytes: &'t [u8],
    origin: &InputOrigin,
) -> Result<Vec<(usize, &'t str)>, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|error| InputError::NotUtf8 {
        origin: origin.clone(),
        line: bytes[..error.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1,
    })?;
    Ok(text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{CommandTemplate, StepPlan, Template};
    use serde_json::json;
    use std::time::Duration;

    /// A one-step map over `input`, keyed by `key` (the other modules' tests use it too).
    pub(crate) fn plan(input: InputSource, key: Option<&str>) -> MapPlan {
        MapPlan {
            input,
            key: key.map(|k| Template::parse_plain(k).expect("key parses")),
            max_parallel: 1,
            timeout: None,
            retries: 0,
            backoff: Duration::from_secs(1),
            steps: vec![StepPlan {
                name: "s".to_string(),
                command: CommandTemplate::Shell(Template::parse_plain("true").expect("parses")),
                when: None,
                timeout: None,
            }],
            isolation: crate::Isolation::Shared,
            on_conflict: None,
            delay: None,
            halt: None,
            rate: None,
            budgets: Vec::new(),
            throttle_exit_codes: crate::DEFAULT_THROTTLE_EXIT_CODES.to_vec(),
        }
    }

    fn file(dir: &Path, name: &str, content: &str) -> InputSource {
        std::fs::write(dir.join(name), content).expect("write input");
        let path = std::path::PathBuf::from(name);
        let format = super::super::parse::format_of(&path);
        InputSource::File {
            path,
            format,
            json_path: None,
        }
    }

    fn values(items: &[Item]) -> Vec<Value> {
        items.iter().map(|item| item.value.clone()).collect()
    }

    #[test]
    fn json_with_default_and_custom_paths() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = BTreeMap::new();
        let source = file(dir.path(), "a.json", r#"[{"p": 1}, {"p": 2}]"#);
        let items = plan(source, None)
            .load_items(dir.path(), &env)
            .expect("loads");
        assert_eq!(values(&items), vec![json!({"p": 1}), json!({"p": 2})]);

        std::fs::write(dir.path().join("b.json"), r#"{"data": {"xs": [1, 2, 3]}}"#).expect("write");
        let source = InputSource::File {
            path: "b.json".into(),
            format: InputFormat::Json,
            json_path: Some("$.data.xs[?@ > 1]".to_string()),
        };
        let items = plan(source, None)
            .load_items(dir.path(), &env)
            .expect("loads");
        assert_eq!(values(&items), vec![json!(2), json!(3)]);

        // Selecting nothing is zero items, not an error.
        let source = InputSource::File {
            path: "b.json".into(),
            format: InputFormat::Json,
            json_path: Some("$.nothing[*]".to_string()),
        };
        assert!(
            plan(source, None)
                .load_items(dir.path(), &env)
                .expect("loads")
                .is_empty()
        );
    }

    #[test]
    fn invalid_json_names_file_line_and_column() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = file(dir.path(), "bad.json", "[\n  1,\n  oops\n]");
        let error = plan(source, None)
            .load_items(dir.path(), &BTreeMap::new())
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("bad.json:3:3: invalid JSON"), "{text}");
    }

    #[test]
    fn jsonl_skips_blank_lines_and_names_bad_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = BTreeMap::new();
        let source = file(dir.path(), "a.jsonl", "{\"a\":1}\r\n\n\"two\"\n");
        let items = plan(source, None)
            .load_items(dir.path(), &env)
            .expect("loads");
        assert_eq!(values(&items), vec![json!({"a": 1}), json!("two")]);

        let source = file(dir.path(), "b.ndjson", "1\n\n{nope\n");
        let error = plan(source, None).load_items(dir.path(), &env).unwrap_err();
        assert!(
            matches!(error, InputError::JsonLine { line: 3, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("b.ndjson:3: invalid JSON line"));
    }

    #[test]
    fn lines_are_strings_without_carriage_returns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = file(dir.path(), "urls.txt", "a b\r\n\nc\n");
        let items = plan(source, None)
            .load_items(dir.path(), &BTreeMap::new())
            .expect("loads");
        assert_eq!(values(&items), vec![json!("a b"), json!("c")]);
    }

    #[test]
    fn non_utf8_lines_are_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("bin.txt"), b"ok\n\xff\n").expect("write");
        let source = InputSource::File {
            path: "bin.txt".into(),
            format: InputFormat::Lines,
            json_path: None,
        };
        let error = plan(source, None)
            .load_items(dir.path(), &BTreeMap::new())
            .unwrap_err();
        assert!(
            matches!(error, InputError::NotUtf8 { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn commands_run_in_base_dir_with_env() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("here.txt"), "x").expect("write");
        let env = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
        let source = InputSource::Command {
            command: "ls; echo \"$GREETING\"".to_string(),
            format: InputFormat::Lines,
            json_path: None,
        };
        let items = plan(source, None)
            .load_items(dir.path(), &env)
            .expect("loads");
        assert_eq!(values(&items), vec![json!("here.txt"), json!("hi")]);

        let source = InputSource::Command {
            command: "echo '{\"xs\": [1]}'".to_string(),
            format: InputFormat::Json,
            json_path: Some("$.xs[*]".to_string()),
        };
        let items = plan(source, None)
            .load_items(dir.path(), &env)
            .expect("loads");
        assert_eq!(values(&items), vec![json!(1)]);
    }

    #[test]
    fn failing_commands_report_exit_code_and_stderr() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = InputSource::Command {
            command: "echo first >&2; echo oh no >&2; exit 3".to_string(),
            format: InputFormat::Lines,
            json_path: None,
        };
        let error = plan(source, None)
            .load_items(dir.path(), &BTreeMap::new())
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("failed (exit code 3)"), "{text}");
        assert!(text.contains("  | oh no\n"), "{text}");
    }

    #[test]
    fn inline_items_are_strings() {
        let items = plan(InputSource::Inline(vec!["a".into(), "b c".into()]), None)
            .load_items(Path::new("."), &BTreeMap::new())
            .expect("loads");
        assert_eq!(values(&items), vec![json!("a"), json!("b c")]);
    }

    #[test]
    fn default_keys_are_position_and_hash() {
        let items = plan(InputSource::Inline(vec!["a".into(), "a".into()]), None)
            .load_items(Path::new("."), &BTreeMap::new())
            .expect("loads");
        // sha256 of `"a"` (with the JSON quotes) starts with ac8d8342.
        assert_eq!(items[0].key, "000001-ac8d8342");
        assert_eq!(items[1].key, "000002-ac8d8342");
    }

    #[test]
    fn key_templates_must_give_unique_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = BTreeMap::new();
        let source = file(
            dir.path(),
            "a.jsonl",
            "{\"id\":\"x\"}\n{\"id\":\"y\"}\n{\"id\":\"x\"}\n",
        );
        let error = plan(source, Some("${item.id}"))
            .load_items(dir.path(), &env)
            .unwrap_err();
        assert!(
            matches!(&error, InputError::DuplicateKey { key, first: 1, second: 3 } if key == "x"),
            "{error}"
        );

        let source = file(dir.path(), "b.jsonl", "{\"id\":\"x\"}\n{\"name\":\"y\"}\n");
        let error = plan(source, Some("${item.id}"))
            .load_items(dir.path(), &env)
            .unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("item 2: cannot compute its key"), "{text}");
        assert!(text.contains("`name`"), "{text}");

        let source = file(dir.path(), "c.jsonl", "{\"id\":\"a\"}\n{\"id\":\"b\"}\n");
        let items = plan(source, Some("id-${item.id}"))
            .load_items(dir.path(), &env)
            .expect("loads");
        assert_eq!(items[1].key, "id-b");
    }
}
