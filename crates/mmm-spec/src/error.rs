//! The errors of the spec module: [`SpecError`] (a job file or one-liner refused),
//! [`TemplateError`] (a template's syntax), [`RenderError`] (a template could not be
//! filled for one item) and [`InputError`] (the map's items could not be loaded).
//!
//! Every message names what is wrong and ends with a `hint:` line that says what was
//! expected, because these errors are read by people fixing a job file.

use std::fmt;
use std::path::PathBuf;

/// A position in a job file: `path:line:column`, both numbers 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The job file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// Why a job file or one-liner was refused. Displays as `file:line:column: message` plus a
/// second line `  hint: ...`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The job file could not be read.
    #[error("{}: cannot read the job file: {source}\n  hint: check the path and its permissions", .path.display())]
    Read {
        /// The job file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file is not valid YAML.
    #[error("{at}: invalid YAML: {}\n  hint: check the indentation and quoting here; a value containing `: ` or starting with `{{`, `[`, `*`, `&` or `#` must be quoted", .source.info())]
    Syntax {
        /// Where the parser gave up.
        at: Location,
        /// The parser's error (boxed: it is large and errors travel in `Result`s).
        #[source]
        source: Box<serde_saphyr::granit_parser::ScanError>,
    },

    /// The file holds no YAML document at all.
    #[error("{}:1:1: the job file is empty\n  hint: a job file needs at least `map:` with `input:` and `steps:`; see docs/job-file.md", .path.display())]
    Empty {
        /// The job file.
        path: PathBuf,
    },

    /// The file holds more than one YAML document (`---`).
    #[error(
        "{at}: a second YAML document starts here\n  hint: a job file holds exactly one document; remove the `---` line or split the file"
    )]
    MultipleDocuments {
        /// Where the second document starts.
        at: Location,
    },

    /// The document is nested deeper or aliased more than a job file ever needs.
    #[error(
        "{at}: the document is too large (more than {limit} nodes after expanding aliases)\n  hint: a job file is small; move data into the map's input file instead"
    )]
    TooLarge {
        /// Where the limit was hit.
        at: Location,
        /// The node limit.
        limit: usize,
    },

    /// A key that is not one of the accepted keys of its section.
    #[error("{at}: unknown key `{key}` in {section}\n  hint: {}", unknown_key_hint(.key, .accepted))]
    UnknownKey {
        /// Where the key is.
        at: Location,
        /// The key as written.
        key: String,
        /// The section, e.g. `map` or `map.steps[2]`.
        section: String,
        /// The keys that section accepts.
        accepted: &'static [&'static str],
    },

    /// The same key twice in one mapping.
    #[error(
        "{at}: duplicate key `{key}` (first given on line {first_line})\n  hint: give each key once; remove one of them"
    )]
    DuplicateKey {
        /// Where the second occurrence is.
        at: Location,
        /// The key.
        key: String,
        /// The line of the first occurrence.
        first_line: usize,
    },

    /// A mapping key that is not plain text (a list or mapping used as a key).
    #[error(
        "{at}: a key must be plain text\n  hint: write `name: value`; lists and mappings cannot be keys"
    )]
    ComplexKey {
        /// Where the key is.
        at: Location,
    },

    /// A required key is absent.
    #[error("{at}: {section} is missing the key `{key}`\n  hint: add it, for example: {example}")]
    MissingKey {
        /// The section's position.
        at: Location,
        /// The section, e.g. `map`.
        section: String,
        /// The missing key.
        key: &'static str,
        /// An example of the key with a value.
        example: &'static str,
    },

    /// A value of the wrong kind (a list where text is expected, ...).
    #[error("{at}: {} must be {expected}, found {found}\n  hint: for example: {example}", quoted_field(.field))]
    WrongType {
        /// Where the value is.
        at: Location,
        /// The field, e.g. `map.retries`.
        field: String,
        /// What was expected, e.g. `a whole number`.
        expected: &'static str,
        /// What was found, e.g. `a list`.
        found: &'static str,
        /// An example of a correct value.
        example: &'static str,
    },

    /// A duration that humantime cannot read.
    #[error(
        "{at}: `{field}` is not a duration: `{value}` ({source})\n  hint: write a duration like `30s`, `500ms`, `2m` or `1h30m`"
    )]
    BadDuration {
        /// Where the value is.
        at: Location,
        /// The field, e.g. `map.timeout`.
        field: String,
        /// The value as written.
        value: String,
        /// humantime's reason (boxed: it is large and errors travel in `Result`s).
        #[source]
        source: Box<humantime::DurationError>,
    },

    /// A number outside its allowed range (or not a number).
    #[error("{at}: `{field}` must be {expected}, found `{value}`\n  hint: write {expected}, for example `{field_leaf}: {example}`", field_leaf = leaf(.field))]
    BadNumber {
        /// Where the value is.
        at: Location,
        /// The field, e.g. `map.max_parallel`.
        field: String,
        /// The value as written.
        value: String,
        /// What is allowed, e.g. `a whole number of at least 1`.
        expected: &'static str,
        /// A good value.
        example: &'static str,
    },

    /// A value that must be one of a few words.
    #[error("{at}: `{field}` cannot be `{value}`\n  hint: {}", unknown_key_hint(.value, .accepted))]
    UnknownValue {
        /// Where the value is.
        at: Location,
        /// The field, e.g. `map.input.format`.
        field: String,
        /// The value as written.
        value: String,
        /// The accepted values.
        accepted: &'static [&'static str],
    },

    /// `env:` names must be usable as shell variables, and not clash with template names.
    #[error(
        "{at}: `{name}` cannot be an env name\n  hint: use letters, digits and `_`, not starting with a digit, and none of `item`, `item_key`, `map`"
    )]
    BadEnvName {
        /// Where the name is.
        at: Location,
        /// The name as written.
        name: String,
    },

    /// `map.steps` is an empty list.
    #[error(
        "{at}: `map.steps` is empty\n  hint: give at least one step, for example:\n    steps:\n      - shell: echo ${{item}}"
    )]
    NoSteps {
        /// Where the list is.
        at: Location,
    },

    /// Two steps with the same name.
    #[error(
        "{at}: step name `{name}` is already used by step {first}\n  hint: step names identify attempts in the store; give each step its own `name:`"
    )]
    DuplicateStepName {
        /// Where the second name is.
        at: Location,
        /// The name.
        name: String,
        /// The 1-based number of the first step with that name.
        first: usize,
    },

    /// A JSONPath that does not parse.
    #[error(
        "{at}: `{expression}` is not a valid JSONPath: {source}\n  hint: write an RFC 9535 JSONPath such as `$[*]`, `$.items[*]` or `$..photos[*]`"
    )]
    BadJsonPath {
        /// Where the value is.
        at: Location,
        /// The expression as written.
        expression: String,
        /// The parser's reason.
        #[source]
        source: serde_json_path::ParseError,
    },

    /// `json_path` given for an input that is not JSON.
    #[error(
        "{at}: `json_path` only applies to JSON input, but this input is read as {format}\n  hint: remove `json_path`, or use a `.json` file (or `format: json` for a command)"
    )]
    JsonPathWithoutJson {
        /// Where `json_path` is.
        at: Location,
        /// How the input is read: `lines` or `jsonl`.
        format: &'static str,
    },

    /// A template that does not parse.
    #[error("{at}: bad template in `{field}`: {source}\n  hint: {}", .source.hint())]
    BadTemplate {
        /// Where the problem is (the value's start when the exact spot cannot be mapped).
        at: Location,
        /// The field, e.g. `map.steps[1].shell`.
        field: String,
        /// What is wrong.
        #[source]
        source: TemplateError,
    },

    /// A placeholder used where it has no value (`${item}` in setup, `${map.*}` in a step).
    #[error("{at}: `{field}` uses `{placeholder}`, which has no value there\n  hint: {}", scope_hint(.placeholder))]
    OutOfScope {
        /// Where the template is.
        at: Location,
        /// The field, e.g. `setup[1].shell`.
        field: String,
        /// The placeholder, e.g. `${item.path}`.
        placeholder: String,
    },

    /// The input file does not exist and no setup command could create it.
    #[error("{at}: the input file {} does not exist\n  hint: create it, fix the path (relative paths start at {}), or add a `setup:` command that writes it", .path.display(), .base_dir.display())]
    MissingInputFile {
        /// Where the input is named.
        at: Location,
        /// The resolved path.
        path: PathBuf,
        /// The directory relative paths resolve against.
        base_dir: PathBuf,
    },

    /// `map.isolation: worktree` for a job that is not in a git repository.
    #[error("{at}: `map.isolation: worktree` needs a git repository, but {} is not in one\n  hint: run the job from inside a repository (`git init` and a first commit), or remove `isolation:`", .base_dir.display())]
    NotAGitRepository {
        /// Where `isolation:` is.
        at: Location,
        /// The job's directory.
        base_dir: PathBuf,
    },

    /// `map.on_conflict` without worktree isolation.
    #[error(
        "{at}: `map.on_conflict` only applies to `isolation: worktree`\n  hint: add `isolation: worktree` to `map:`, or remove `on_conflict:`"
    )]
    OnConflictWithoutWorktree {
        /// Where `on_conflict:` is.
        at: Location,
    },

    /// A one-liner without a command.
    #[error(
        "mmm run: no command given\n  hint: put the command after `--`, e.g. `mmm run -j 4 -- gzip {{}} ::: a.txt b.txt`"
    )]
    OneLinerNoCommand,

    /// A one-liner without items.
    #[error(
        "mmm run: no items given\n  hint: list them after `:::` (`mmm run -- echo {{}} ::: a b c`) or name a file with `--input FILE`"
    )]
    OneLinerNoItems,

    /// A one-liner with both `:::` items and `--input`.
    #[error("mmm run: items given both after `:::` and with `--input`\n  hint: use one of them")]
    OneLinerBothItems,

    /// A one-liner option given a value it cannot take, or options that cannot go together.
    #[error("mmm run: {message}")]
    OneLinerOption {
        /// What is wrong, naming the option.
        message: String,
    },

    /// A one-liner whose command cannot be quoted safely.
    #[error("mmm run: cannot use the command `{command}`: {source}\n  hint: {}", .source.hint())]
    OneLinerTemplate {
        /// The command line.
        command: String,
        /// What is wrong.
        #[source]
        source: TemplateError,
    },
}

impl SpecError {
    /// Where in the job file the problem is, when it is at a place in a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            SpecError::Syntax { at, .. }
            | SpecError::MultipleDocuments { at }
            | SpecError::TooLarge { at, .. }
            | SpecError::UnknownKey { at, .. }
            | SpecError::DuplicateKey { at, .. }
            | SpecError::ComplexKey { at }
            | SpecError::MissingKey { at, .. }
            | SpecError::WrongType { at, .. }
            | SpecError::BadDuration { at, .. }
            | SpecError::BadNumber { at, .. }
            | SpecError::UnknownValue { at, .. }
            | SpecError::BadEnvName { at, .. }
            | SpecError::NoSteps { at }
            | SpecError::DuplicateStepName { at, .. }
            | SpecError::BadJsonPath { at, .. }
            | SpecError::JsonPathWithoutJson { at, .. }
            | SpecError::BadTemplate { at, .. }
            | SpecError::OutOfScope { at, .. }
            | SpecError::MissingInputFile { at, .. }
            | SpecError::NotAGitRepository { at, .. }
            | SpecError::OnConflictWithoutWorktree { at } => Some(at),
            SpecError::Read { .. }
            | SpecError::Empty { .. }
            | SpecError::OneLinerNoCommand
            | SpecError::OneLinerNoItems
            | SpecError::OneLinerBothItems
            | SpecError::OneLinerOption { .. }
            | SpecError::OneLinerTemplate { .. } => None,
        }
    }
}

/// A field for a message: `map.retries` in backticks, but "the job file" as words.
fn quoted_field(field: &str) -> String {
    if field.starts_with("the ") {
        field.to_string()
    } else {
        format!("`{field}`")
    }
}

/// The last segment of a dotted field path: `map.retries` -> `retries`.
fn leaf(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

/// "did you mean `x`? accepted: a, b, c" for an unknown key or value.
fn unknown_key_hint(given: &str, accepted: &[&str]) -> String {
    let list = accepted
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest(given, accepted) {
        Some(best) => format!("did you mean `{best}`? accepted here: {list}"),
        None => format!("accepted here: {list}"),
    }
}

fn scope_hint(placeholder: &str) -> &'static str {
    if placeholder.starts_with("${map") {
        "`${map.*}` counts exist only in `reduce:` commands, after the map has finished"
    } else {
        "`${item...}` and `${item_key}` exist only in the map's `steps:` and `key:`"
    }
}

/// The accepted word closest to `given`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(given: &str, accepted: &[&'a str]) -> Option<&'a str> {
    let given = given.to_lowercase();
    accepted
        .iter()
        .map(|candidate| (edit_distance(&given, candidate), *candidate))
        .filter(|(distance, candidate)| {
            // Allow about one typo per two characters, so `retry` finds `retries` but
            // `foo` does not "find" `map`.
            *distance <= (candidate.chars().count() / 2).max(1)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edit distance in characters, counting a swap of two neighbours as one edit (so `nmae`
/// is one typo away from `name`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between the first i chars of a and the first j chars of b.
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Why a template's text does not parse. `offset` counts characters from the template start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// `${` without a closing `}`.
    #[error("`${{` at character {} is never closed", offset + 1)]
    Unclosed {
        /// Where the `${` starts.
        offset: usize,
    },
    /// A placeholder this module does not know, in a template that is not a shell line.
    #[error("`${{{text}}}` at character {} is not a placeholder", offset + 1)]
    UnknownPlaceholder {
        /// Where the `${` starts.
        offset: usize,
        /// The text between the braces.
        text: String,
    },
    /// `${item...}` with a malformed path.
    #[error("`${{{text}}}` at character {}: {reason}", offset + 1)]
    BadItemPath {
        /// Where the `${` starts.
        offset: usize,
        /// The text between the braces.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `${map.NAME}` with an unknown NAME.
    #[error("`${{map.{name}}}` at character {} is not a map count", offset + 1)]
    UnknownMapCount {
        /// Where the `${` starts.
        offset: usize,
        /// The name after `map.`.
        name: String,
    },
    /// A placeholder in a part of a shell line where its quoting cannot be known for sure.
    #[error("`{text}` at character {} is {context}, where it cannot be quoted safely", offset + 1)]
    UnsafeContext {
        /// Where the placeholder starts.
        offset: usize,
        /// The placeholder.
        text: String,
        /// Where it is, e.g. `inside backticks`.
        context: &'static str,
    },
}

impl TemplateError {
    /// Where the problem starts, in characters from the template start.
    pub fn offset(&self) -> usize {
        match self {
            TemplateError::Unclosed { offset }
            | TemplateError::UnknownPlaceholder { offset, .. }
            | TemplateError::BadItemPath { offset, .. }
            | TemplateError::UnknownMapCount { offset, .. }
            | TemplateError::UnsafeContext { offset, .. } => *offset,
        }
    }

    /// What the user should write instead.
    pub fn hint(&self) -> &'static str {
        match self {
            TemplateError::Unclosed { .. } => {
                "close the placeholder with `}`, e.g. `${item.path}`; write `$${` for a literal `${`"
            }
            TemplateError::UnknownPlaceholder { .. } => {
                "placeholders are `${item}`, `${item.field}`, `${item.list[0]}`, `${item_key}`, `${map.completed}` and `${NAME}` for a variable; write `$${` for a literal `${`"
            }
            TemplateError::BadItemPath { .. } => {
                "write fields as `${item.a.b}` and list elements as `${item.list[0]}`"
            }
            TemplateError::UnknownMapCount { .. } => {
                "map counts are `total`, `completed`, `dead_lettered` (also `failed`) and `skipped`"
            }
            TemplateError::UnsafeContext { .. } => {
                "assign the value to a variable first (`v=${item.x}`) and use \"$v\" there; use `$(...)` instead of backticks"
            }
        }
    }
}

/// Why a template could not be rendered for an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// `${item.a.b}` where the item has no such field or element.
    #[error("`{placeholder}`: the item has no `{missing}`\n  hint: {available}")]
    MissingField {
        /// The placeholder as written, e.g. `${item.a.b}`.
        placeholder: String,
        /// The part of the path that was not found, e.g. `item.a.b`.
        missing: String,
        /// What the item does have, e.g. "the item's top-level keys are: name, size".
        available: String,
    },
    /// `${item...}` or `{}` outside the map (no item to render).
    #[error(
        "`{placeholder}`: there is no item here\n  hint: item placeholders work only in the map's steps and key"
    )]
    NoItem {
        /// The placeholder.
        placeholder: String,
    },
    /// `${item_key}` without a key (e.g. while computing the key itself).
    #[error(
        "`${{item_key}}`: the item has no key yet\n  hint: `${{item_key}}` cannot be used in `key:` itself"
    )]
    NoItemKey,
    /// `${map.*}` outside reduce.
    #[error(
        "`{placeholder}`: map counts exist only after the map\n  hint: use `${{map.*}}` in `reduce:` commands"
    )]
    NoMapCounts {
        /// The placeholder.
        placeholder: String,
    },
    /// `${NAME}` that is neither in `env:` nor in the process environment.
    #[error(
        "`${{{name}}}` is not set\n  hint: add `{name}` to `env:`, or export it before starting mmm"
    )]
    UnknownVariable {
        /// The variable's name.
        name: String,
    },
    /// A value containing a NUL byte, which no command line can carry.
    #[error(
        "`{placeholder}`: the value contains a NUL byte\n  hint: command lines cannot contain NUL; read the value from `MMM_ITEM` instead"
    )]
    NulByte {
        /// The placeholder.
        placeholder: String,
    },
}

/// What items were read from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputOrigin {
    /// An input file (resolved path).
    File(PathBuf),
    /// The output of an input command.
    Command(String),
    /// Items given inline.
    Inline,
    /// Standard input.
    Stdin,
}

impl fmt::Display for InputOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputOrigin::File(path) => write!(f, "{}", path.display()),
            InputOrigin::Command(command) => write!(f, "the output of `{command}`"),
            InputOrigin::Inline => f.write_str("the inline items"),
            InputOrigin::Stdin => f.write_str("standard input"),
        }
    }
}

impl InputOrigin {
    /// The error for a failed read of this origin's text.
    pub(crate) fn read_error(&self, source: std::io::Error) -> InputError {
        match self {
            InputOrigin::File(path) => InputError::Read {
                path: path.clone(),
                source,
            },
            _ => InputError::Stdin { source },
        }
    }
}

/// Why the map's items could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The input file could not be read.
    #[error("{}: cannot read the input file: {source}\n  hint: check the path (relative paths start at the job file's directory) and that setup created it", .path.display())]
    Read {
        /// The resolved path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not one valid JSON document.
    #[error(
        "{origin}:{line}:{column}: invalid JSON: {source}\n  hint: a `.json` input must be one JSON document; use `.jsonl` for one value per line"
    )]
    Json {
        /// Where the text came from.
        origin: InputOrigin,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
    /// A line of JSONL input that is not valid JSON.
    #[error(
        "{origin}:{line}: invalid JSON line: {source}\n  hint: each non-empty line of JSONL input must be one complete JSON value"
    )]
    JsonLine {
        /// Where the text came from.
        origin: InputOrigin,
        /// 1-based line.
        line: usize,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
    /// Text input that is not UTF-8.
    #[error("{origin}:{line}: not UTF-8 text\n  hint: items are text; convert the input to UTF-8")]
    NotUtf8 {
        /// Where the text came from.
        origin: InputOrigin,
        /// 1-based line of the first bad byte.
        line: usize,
    },
    /// A JSONPath that does not parse (only possible for plans not built by [`super::load`]).
    #[error(
        "`{expression}` is not a valid JSONPath: {source}\n  hint: write an RFC 9535 JSONPath such as `$[*]`"
    )]
    BadJsonPath {
        /// The expression.
        expression: String,
        /// The parser's reason.
        #[source]
        source: serde_json_path::ParseError,
    },
    /// The input command could not be started.
    #[error(
        "cannot start the input command `{command}`: {source}\n  hint: check that `sh` is installed and the job's directory exists"
    )]
    Spawn {
        /// The command line.
        command: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input command failed.
    #[error(
        "the input command `{command}` failed ({status})\n{stderr_tail}  hint: run the command by hand in the job's directory to see what is wrong"
    )]
    CommandFailed {
        /// The command line.
        command: String,
        /// `exit code 2` or `killed by signal 9`.
        status: String,
        /// The last lines of its standard error, each indented, ending in a newline (or empty).
        stderr_tail: String,
    },
    /// The `key:` template failed for an item.
    #[error("item {position}: cannot compute its key: {source}")]
    Key {
        /// The item's 1-based position.
        position: usize,
        /// Why rendering failed.
        #[source]
        source: RenderError,
    },
    /// The `key:` template rendered empty for an item.
    #[error(
        "item {position}: its key is empty\n  hint: make `key:` refer to a field every item has"
    )]
    EmptyKey {
        /// The item's 1-based position.
        position: usize,
    },
    /// Two items with the same key.
    #[error(
        "items {first} and {second} have the same key `{key}`\n  hint: keys must be unique; make `key:` include a field that differs, or remove `key:` to use position + content hash"
    )]
    DuplicateKey {
        /// The key.
        key: String,
        /// 1-based position of the first item.
        first: usize,
        /// 1-based position of the second item.
        second: usize,
    },
    /// Standard input could not be read.
    #[error("cannot read the items from standard input: {source}")]
    Stdin {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The thread that reads a streamed input could not be started (the process is out of
    /// threads or memory): nothing was read.
    #[error("cannot start reading the items: {source}")]
    Reader {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `--colsep` that is not a regular expression.
    #[error(
        "--colsep `{pattern}` is not a valid regular expression: {source}\n  hint: escape special characters, e.g. `--colsep '\\|'`"
    )]
    BadColsep {
        /// The pattern.
        pattern: String,
        /// The parser's reason.
        #[source]
        source: regex::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_but_not_strangers() {
        let keys = ["name", "shell", "when", "timeout"];
        assert_eq!(closest("timeot", &keys), Some("timeout"));
        assert_eq!(closest("shel", &keys), Some("shell"));
        assert_eq!(closest("Name", &keys), Some("name"));
        assert_eq!(closest("command", &keys), None);
        assert_eq!(closest("foo", &["map"]), None);
        assert_eq!(closest("retry", &["retries", "timeout"]), Some("retries"));
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("nmae", "name"), 1);
    }
}
