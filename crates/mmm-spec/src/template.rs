//! Templates: parsing `${...}` placeholders (and the one-liner's `{}` replacement strings)
//! once at load time, and rendering them for one item.
//!
//! In a shell line every substituted value must reach the shell as literal data, whatever
//! it contains. So while parsing a shell line a small lexer tracks where each placeholder
//! sits (unquoted, inside `'...'`, inside `"..."`, inside `$(...)`), and rendering quotes
//! the value for exactly that position. Where the lexer cannot be sure of the position
//! (backticks, `$((...))`, here-documents, `case` inside `$(...)`), the template is refused
//! at load time instead of guessed at.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::{RenderError, TemplateError};
use super::{CommandTemplate, RenderContext, RenderedCommand, Template};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Part {
    /// Text copied as is.
    Literal(String),
    /// A value substituted when rendering.
    Value {
        /// What the value is.
        placeholder: Placeholder,
        /// How it must be quoted in a shell line.
        quoting: Quoting,
        /// The placeholder as written (`${item.path}`, `{/}`), for messages.
        text: String,
    },
}

/// What a placeholder refers to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Placeholder {
    /// `${item}`, `${item.a.b}`, `${item.list[0]}`.
    Item(Vec<Segment>),
    /// `${item_key}`.
    ItemKey,
    /// `${map.completed}` and friends.
    Map(MapCount),
    /// `${NAME}`: a variable from `env:` (or, in plain templates, the process environment).
    Env(String),
    /// A GNU parallel replacement string of the one-liner.
    Replacement(Replacement),
}

/// One step of an item path.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Segment {
    /// `.name`
    Field(String),
    /// `[3]`
    Index(usize),
}

/// The counts `${map.*}` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MapCount {
    Total,
    Completed,
    DeadLettered,
    Skipped,
}

/// GNU parallel's replacement strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replacement {
    /// `{}`: the item.
    Whole,
    /// `{/}`: everything after the last `/`.
    Basename,
    /// `{//}`: Perl's `File::Basename::dirname`.
    Dirname,
    /// `{.}`: without the last extension.
    NoExtension,
    /// `{/.}`: basename without the last extension.
    BasenameNoExtension,
    /// `{#}`: the item's sequence number.
    Seq,
    /// `{%}`: the agent's slot.
    Slot,
}

/// The replacement strings, longest first so `{//}` is not read as `{/}`.
const REPLACEMENTS: [(&str, Replacement); 7] = [
    ("{//}", Replacement::Dirname),
    ("{/.}", Replacement::BasenameNoExtension),
    ("{/}", Replacement::Basename),
    ("{.}", Replacement::NoExtension),
    ("{#}", Replacement::Seq),
    ("{%}", Replacement::Slot),
    ("{}", Replacement::Whole),
];

/// Where a placeholder sits in a shell line, which decides how its value is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Quoting {
    /// Not a shell line: substitute the value as is.
    Raw,
    /// Outside any quotes: wrap in `'...'`.
    Unquoted,
    /// Inside `"..."`: backslash-escape `\`, `$`, `` ` `` and `"`.
    DoubleQuoted,
    /// Inside `'...'`: end the quote around each `'` of the value.
    SingleQuoted,
}

/// Which placeholder syntax a template uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// Job files: `${...}`, with `$${` for a literal `${`.
    Job,
    /// The one-liner: GNU parallel's `{}`, `{/}`, ...; `${...}` belongs to the shell.
    OneLiner,
}

impl Template {
    /// Parses a template that is not a shell line (`when:`, `key:`): values are substituted
    /// as they are.
    pub(super) fn parse_plain(source: &str) -> Result<Template, TemplateError> {
        Lexer::new(source, Syntax::Job, None).run()
    }

    /// Parses a shell line of a job file. `${NAME}` is substituted only for names in `env`;
    /// any other `${...}` is the shell's own and stays as written.
    pub(super) fn parse_shell(
        source: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Template, TemplateError> {
        Lexer::new(source, Syntax::Job, Some(env)).run()
    }

    /// Parses one word of a one-liner run without a shell: replacement strings are
    /// substituted as they are. Cannot fail: anything that is not a replacement string is text.
    pub(super) fn parse_oneliner_word(source: &str) -> Template {
        let parts = Lexer::new(source, Syntax::OneLiner, None)
            .run()
            .map(|t| t.parts);
        Template {
            source: source.to_string(),
            // A plain one-liner word has no placeholder syntax that can fail.
            parts: parts.unwrap_or_else(|_| vec![Part::Literal(source.to_string())]),
        }
    }

    /// Parses a one-liner's shell line: replacement strings are substituted shell-quoted.
    pub(super) fn parse_oneliner_shell(source: &str) -> Result<Template, TemplateError> {
        let no_env = BTreeMap::new();
        Lexer::new(source, Syntax::OneLiner, Some(&no_env)).run()
    }

    /// The placeholders of this template with their text as written.
    pub(super) fn placeholders(&self) -> impl Iterator<Item = (&Placeholder, &str)> {
        self.parts.iter().filter_map(|part| match part {
            Part::Value {
                placeholder, text, ..
            } => Some((placeholder, text.as_str())),
            Part::Literal(_) => None,
        })
    }

    /// Renders without quoting (for `when:` and `key:`).
    pub fn render_plain(&self, ctx: &RenderContext<'_>) -> Result<String, RenderError> {
        render_parts(&self.parts, ctx, Target::Plain)
    }

    /// Renders a shell line, quoting each value for its position.
    fn render_shell(&self, ctx: &RenderContext<'_>) -> Result<String, RenderError> {
        render_parts(&self.parts, ctx, Target::Shell)
    }

    /// Renders a `when:` condition and decides it.
    ///
    /// `A == B` and `A != B` compare the two rendered, trimmed sides as text (the operator
    /// must be written in the template, not come from a value). Otherwise the rendered,
    /// trimmed text is false when it is empty, `false`, `0`, `no`, `off` or `null` (any
    /// case), and true otherwise.
    pub fn evaluate_condition(&self, ctx: &RenderContext<'_>) -> Result<bool, RenderError> {
        if let Some((left, operator, right)) = split_comparison(&self.parts) {
            let left = render_parts(&left, ctx, Target::Plain)?;
            let right = render_parts(&right, ctx, Target::Plain)?;
            let equal = left.trim() == right.trim();
            return Ok(match operator {
                Comparison::Equal => equal,
                Comparison::NotEqual => !equal,
            });
        }
        let text = self.render_plain(ctx)?;
        Ok(is_truthy(&text))
    }
}

impl CommandTemplate {
    /// Renders the command for one item (or for a setup/reduce command).
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<RenderedCommand, RenderError> {
        match self {
            CommandTemplate::Shell(line) => Ok(RenderedCommand::Shell(line.render_shell(ctx)?)),
            CommandTemplate::Argv(words) => {
                let words = words
                    .iter()
                    .map(|word| word.render_plain(ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(RenderedCommand::Argv(words))
            }
        }
    }
}

/// Whether a rendered condition counts as true.
fn is_truthy(text: &str) -> bool {
    let text = text.trim().to_lowercase();
    !matches!(text.as_str(), "" | "false" | "0" | "no" | "off" | "null")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equal,
    NotEqual,
}

/// Splits the parts at the first `==` or `!=` written in the template's literal text.
fn split_comparison(parts: &[Part]) -> Option<(Vec<Part>, Comparison, Vec<Part>)> {
    for (index, part) in parts.iter().enumerate() {
        let Part::Literal(text) = part else { continue };
        let found = [("==", Comparison::Equal), ("!=", Comparison::NotEqual)]
            .into_iter()
            .filter_map(|(op, comparison)| text.find(op).map(|at| (at, comparison)))
            .min_by_key(|(at, _)| *at);
        let Some((at, comparison)) = found else {
            continue;
        };
        let mut left = parts[..index].to_vec();
        left.push(Part::Literal(text[..at].to_string()));
        let mut right = vec![Part::Literal(text[at + 2..].to_string())];
        right.extend_from_slice(&parts[index + 1..]);
        return Some((left, comparison, right));
    }
    None
}

/// What a rendering is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Values as they are; `${NAME}` falls back to the process environment.
    Plain,
    /// Values quoted for their position; `${NAME}` not in `env:` is left to the shell.
    Shell,
}

fn render_parts(
    parts: &[Part],
    ctx: &RenderContext<'_>,
    target: Target,
) -> Result<String, RenderError> {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Literal(text) => out.push_str(text),
            Part::Value {
                placeholder,
                quoting,
                text,
            } => match resolve(placeholder, text, ctx, target)? {
                Some(value) => {
                    if value.contains('\0') {
                        return Err(RenderError::NulByte {
                            placeholder: text.clone(),
                        });
                    }
                    match target {
                        Target::Plain => out.push_str(&value),
                        Target::Shell => out.push_str(&quote(&value, *quoting)),
                    }
                }
                // A `${NAME}` the job does not define: the shell expands it from the
                // environment it is given.
                None => out.push_str(text),
            },
        }
    }
    Ok(out)
}

/// The value of one placeholder; `None` means "leave it to the shell".
fn resolve(
    placeholder: &Placeholder,
    text: &str,
    ctx: &RenderContext<'_>,
    target: Target,
) -> Result<Option<String>, RenderError> {
    let no_item = || RenderError::NoItem {
        placeholder: text.to_string(),
    };
    match placeholder {
        Placeholder::Item(path) => {
            let item = ctx.item.ok_or_else(no_item)?;
            lookup(item, path, text).map(|value| Some(value_text(value)))
        }
        Placeholder::ItemKey => ctx
            .item_key
            .map(|key| Some(key.to_string()))
            .ok_or(RenderError::NoItemKey),
        Placeholder::Map(count) => {
            let counts = ctx.map.ok_or_else(|| RenderError::NoMapCounts {
                placeholder: text.to_string(),
            })?;
            let value = match count {
                MapCount::Total => counts.total,
                MapCount::Completed => counts.completed,
                MapCount::DeadLettered => counts.dead_lettered,
                MapCount::Skipped => counts.skipped,
            };
            Ok(Some(value.to_string()))
        }
        Placeholder::Env(name) => {
            if let Some(value) = ctx.env.get(name) {
                return Ok(Some(value.clone()));
            }
            match target {
                Target::Shell => Ok(None),
                Target::Plain => std::env::var(name)
                    .map(Some)
                    .map_err(|_| RenderError::UnknownVariable { name: name.clone() }),
            }
        }
        Placeholder::Replacement(replacement) => {
            let value = match replacement {
                Replacement::Seq => ctx.seq.to_string(),
                Replacement::Slot => ctx.slot.to_string(),
                _ => {
                    let item = value_text(ctx.item.ok_or_else(no_item)?);
                    apply_replacement(*replacement, &item)
                }
            };
            Ok(Some(value))
        }
    }
}

/// An item's text: a string as it is, anything else as compact JSON (`null` for null).
pub(super) fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Follows an item path; the error names the missing part and what the item has.
fn lookup<'v>(item: &'v Value, path: &[Segment], text: &str) -> Result<&'v Value, RenderError> {
    let mut current = item;
    let mut walked = String::from("item");
    for segment in path {
        let next = match segment {
            Segment::Field(name) => {
                walked.push('.');
                walked.push_str(name);
                current.get(name.as_str())
            }
            Segment::Index(index) => {
                walked.push_str(&format!("[{index}]"));
                current.get(*index)
            }
        };
        current = next.ok_or_else(|| RenderError::MissingField {
            placeholder: text.to_string(),
            missing: walked.clone(),
            available: describe_item(item),
        })?;
    }
    Ok(current)
}

/// What an item offers, for the hint of a missing field.
fn describe_item(item: &Value) -> String {
    match item {
        Value::Object(map) if map.is_empty() => "the item is an empty object".to_string(),
        Value::Object(map) => {
            let keys = map
                .keys()
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("the item's top-level keys are: {keys}")
        }
        Value::Array(list) => format!(
            "the item is a list of {} elements; use `${{item[0]}}` for an element",
            list.len()
        ),
        Value::String(_) => {
            "the item is a string, which has no fields; use `${item}` for it".to_string()
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => {
            format!("the item is `{item}`, which has no fields; use `${{item}}` for it")
        }
    }
}

/// GNU parallel's replacement strings, defined (in `parallel --rpl`) as Perl:
/// `{/}` = `s:.*/::`, `{.}` = `s:\.[^/.]+$::`, `{/.}` = both, `{//}` = `dirname`.
fn apply_replacement(replacement: Replacement, item: &str) -> String {
    match replacement {
        Replacement::Whole => item.to_string(),
        Replacement::Basename => basename(item).to_string(),
        Replacement::Dirname => dirname(item),
        Replacement::NoExtension => without_extension(item).to_string(),
        Replacement::BasenameNoExtension => without_extension(basename(item)).to_string(),
        // Numbers, not derived from the item; handled by the caller.
        Replacement::Seq | Replacement::Slot => item.to_string(),
    }
}

/// `s:.*/::`: everything after the last `/`.
fn basename(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, base)| base)
}

/// `s:\.[^/.]+$::`: drops a final `.` followed by at least one character that is neither
/// `/` nor `.`; `dir.x/file` and `file.` are left alone, `file.tar.gz` becomes `file.tar`.
fn without_extension(path: &str) -> &str {
    let Some(dot) = path.rfind('.') else {
        return path;
    };
    let extension = &path[dot + 1..];
    if extension.is_empty() || extension.contains('/') {
        path
    } else {
        &path[..dot]
    }
}

/// Perl's `File::Basename::dirname` on Unix: trailing slashes are ignored, a name without
/// a slash is in `.`, and the root stays `/`.
fn dirname(path: &str) -> String {
    let path = strip_trailing_slashes(path);
    let directory = match path.rfind('/') {
        Some(slash) => &path[..=slash],
        None => "./",
    };
    strip_trailing_slashes(directory).to_string()
}

/// Perl's `s{(.)/*\z}{$1}s`: removes trailing slashes but keeps the first character.
fn strip_trailing_slashes(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() && !path.is_empty() {
        &path[..1]
    } else {
        trimmed
    }
}

/// Quotes a value for its position in a shell line so the shell reads it as literal data.
pub(super) fn quote(value: &str, quoting: Quoting) -> String {
    match quoting {
        Quoting::Raw => value.to_string(),
        Quoting::Unquoted => format!("'{}'", value.replace('\'', r"'\''")),
        Quoting::SingleQuoted => value.replace('\'', r"'\''"),
        Quoting::DoubleQuoted => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, '\\' | '$' | '`' | '"') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    }
}

/// Where the lexer is in a shell line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Outside quotes: the top level, or inside `$(...)` (`substitution`), counting plain
    /// `(` so the right `)` closes the substitution.
    Unquoted { parens: usize, substitution: bool },
    /// Inside `'...'`.
    Single,
    /// Inside `"..."`.
    Double,
    /// Inside `` `...` ``.
    Backtick,
    /// Inside `$((...))`.
    Arithmetic { parens: usize },
    /// After an unquoted `#` at the start of a word, up to the end of the line.
    Comment,
}

/// What the lexer found at a `$` or `{`.
enum Found {
    /// One of our placeholders, `len` characters long.
    Ours(Placeholder, usize),
    /// A `${` that belongs to the shell (`${HOME}`, `${x:-default}`): only the `${` is
    /// copied, and lexing goes on inside, as the shell does, so quotes there are tracked.
    Shells,
}

/// Splits a template into literal text and placeholders; in a shell line it also tracks
/// the quoting context of each placeholder.
struct Lexer<'e> {
    chars: Vec<char>,
    pos: usize,
    syntax: Syntax,
    /// `Some` for a shell line: the job's `env:` names.
    env: Option<&'e BTreeMap<String, String>>,
    frames: Vec<Frame>,
    /// At the start of a shell word (where `#` starts a comment and `case` is a keyword).
    word_start: bool,
    /// Set once the lexer has seen something after which it cannot be sure of the quoting
    /// context (a here-document, `case` inside `$(...)`, bash's `$'...'`); says what.
    uncertain: Option<&'static str>,
    parts: Vec<Part>,
    literal: String,
}

impl<'e> Lexer<'e> {
    fn new(source: &str, syntax: Syntax, env: Option<&'e BTreeMap<String, String>>) -> Self {
        Lexer {
            chars: source.chars().collect(),
            pos: 0,
            syntax,
            env,
            frames: vec![Frame::Unquoted {
                parens: 0,
                substitution: false,
            }],
            word_start: true,
            uncertain: None,
            parts: Vec::new(),
            literal: String::new(),
        }
    }

    fn run(mut self) -> Result<Template, TemplateError> {
        while self.pos < self.chars.len() {
            if self.syntax == Syntax::Job && self.starts_with("$${") {
                self.literal.push_str("${");
                self.pos += 3;
                self.word_start = false;
                continue;
            }
            if self.frame() != Frame::Comment {
                match self.placeholder_here()? {
                    Some(Found::Ours(placeholder, len)) => {
                        let text: String = self.chars[self.pos..self.pos + len].iter().collect();
                        let quoting = self.quoting(&text)?;
                        self.flush_literal();
                        self.parts.push(Part::Value {
                            placeholder,
                            quoting,
                            text,
                        });
                        self.pos += len;
                        self.word_start = false;
                        continue;
                    }
                    Some(Found::Shells) => {
                        self.copy(2);
                        self.word_start = false;
                        continue;
                    }
                    None => {}
                }
            }
            if self.env.is_some() {
                self.shell_step();
            } else {
                self.copy(1);
            }
        }
        self.flush_literal();
        Ok(Template {
            source: self.chars.iter().collect(),
            parts: self.parts,
        })
    }

    fn frame(&self) -> Frame {
        self.frames.last().copied().unwrap_or(Frame::Unquoted {
            parens: 0,
            substitution: false,
        })
    }

    fn starts_with(&self, text: &str) -> bool {
        let wanted: Vec<char> = text.chars().collect();
        self.chars
            .get(self.pos..self.pos + wanted.len())
            .is_some_and(|here| here == wanted.as_slice())
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    /// Copies `len` characters (or what is left) into the current literal.
    fn copy(&mut self, len: usize) {
        let end = (self.pos + len).min(self.chars.len());
        self.literal.extend(&self.chars[self.pos..end]);
        self.pos = end;
    }

    fn flush_literal(&mut self) {
        if !self.literal.is_empty() {
            self.parts
                .push(Part::Literal(std::mem::take(&mut self.literal)));
        }
    }

    /// Recognises a placeholder at the current position.
    fn placeholder_here(&self) -> Result<Option<Found>, TemplateError> {
        match self.syntax {
            Syntax::OneLiner => Ok(REPLACEMENTS
                .iter()
                .find(|(text, _)| self.starts_with(text))
                .map(|(text, replacement)| {
                    Found::Ours(Placeholder::Replacement(*replacement), text.len())
                })),
            Syntax::Job => {
                if !self.starts_with("${") {
                    return Ok(None);
                }
                let offset = self.pos;
                let Some(close) = self.chars[offset..].iter().position(|c| *c == '}') else {
                    return self.unclosed(offset);
                };
                let len = close + 1;
                let content: String = self.chars[offset + 2..offset + close].iter().collect();
                self.classify(content.trim(), offset, len)
            }
        }
    }

    /// A `${` without a `}`: an error in a plain template or where it starts one of our
    /// placeholders; in a shell line otherwise plain text (like `'${'`).
    fn unclosed(&self, offset: usize) -> Result<Option<Found>, TemplateError> {
        let after: String = self.chars[offset + 2..].iter().collect();
        let after = after.trim_start();
        let name_end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let ours = after.starts_with("item")
            || after.starts_with("map.")
            || self
                .env
                .is_some_and(|env| env.contains_key(&after[..name_end]));
        match self.env {
            Some(_) if !ours => Ok(Some(Found::Shells)),
            _ => Err(TemplateError::Unclosed { offset }),
        }
    }

    /// Decides what the text between `${` and `}` means.
    fn classify(
        &self,
        content: &str,
        offset: usize,
        len: usize,
    ) -> Result<Option<Found>, TemplateError> {
        if content == "item" || content.starts_with("item.") || content.starts_with("item[") {
            let path =
                parse_item_path(&content[4..]).map_err(|reason| TemplateError::BadItemPath {
                    offset,
                    text: content.to_string(),
                    reason,
                })?;
            return Ok(Some(Found::Ours(Placeholder::Item(path), len)));
        }
        if content == "item_key" {
            return Ok(Some(Found::Ours(Placeholder::ItemKey, len)));
        }
        if let Some(name) = content.strip_prefix("map.") {
            let count = match name {
                "total" => MapCount::Total,
                "completed" => MapCount::Completed,
                "dead_lettered" | "failed" => MapCount::DeadLettered,
                "skipped" => MapCount::Skipped,
                _ => {
                    return Err(TemplateError::UnknownMapCount {
                        offset,
                        name: name.to_string(),
                    });
                }
            };
            return Ok(Some(Found::Ours(Placeholder::Map(count), len)));
        }
        match self.env {
            // A shell line: substitute the job's own variables, leave the rest to the shell
            // (`${HOME}`, `${x:-default}`, ...).
            Some(env) if env.contains_key(content) => Ok(Some(Found::Ours(
                Placeholder::Env(content.to_string()),
                len,
            ))),
            Some(_) => Ok(Some(Found::Shells)),
            None if is_variable_name(content) => Ok(Some(Found::Ours(
                Placeholder::Env(content.to_string()),
                len,
            ))),
            None => Err(TemplateError::UnknownPlaceholder {
                offset,
                text: content.to_string(),
            }),
        }
    }

    /// How a placeholder at the current position must be quoted.
    fn quoting(&self, text: &str) -> Result<Quoting, TemplateError> {
        if self.env.is_none() {
            return Ok(Quoting::Raw);
        }
        let unsafe_here = |context: &'static str| TemplateError::UnsafeContext {
            offset: self.pos,
            text: text.to_string(),
            context,
        };
        let frame = self.frame();
        match frame {
            Frame::Backtick => return Err(unsafe_here("inside backticks")),
            Frame::Arithmetic { .. } => {
                return Err(unsafe_here("inside arithmetic `$((...))` or `((...))`"));
            }
            _ => {}
        }
        if let Some(reason) = self.uncertain {
            return Err(unsafe_here(reason));
        }
        Ok(match frame {
            Frame::Single => Quoting::SingleQuoted,
            Frame::Double => Quoting::DoubleQuoted,
            _ => Quoting::Unquoted,
        })
    }

    /// Consumes one shell token's worth of literal text, updating the quoting frames.
    fn shell_step(&mut self) {
        let c = self.chars[self.pos];
        match self.frame() {
            Frame::Unquoted {
                parens,
                substitution,
            } => self.unquoted_step(c, parens, substitution),
            Frame::Single => {
                if c == '\'' {
                    self.frames.pop();
                }
                self.copy(1);
            }
            Frame::Double => match c {
                '\\' => {
                    let escaped = matches!(self.peek(1), Some('$' | '`' | '"' | '\\' | '\n'));
                    self.copy(if escaped { 2 } else { 1 });
                }
                '"' => {
                    self.frames.pop();
                    self.copy(1);
                }
                '`' => {
                    self.frames.push(Frame::Backtick);
                    self.copy(1);
                }
                '$' => self.dollar(),
                _ => self.copy(1),
            },
            Frame::Backtick => match c {
                '\\' => self.copy(2),
                '`' => {
                    self.frames.pop();
                    self.copy(1);
                }
                _ => self.copy(1),
            },
            Frame::Arithmetic { parens } => {
                match c {
                    '(' => self.set_frame(Frame::Arithmetic { parens: parens + 1 }),
                    ')' if parens > 0 => self.set_frame(Frame::Arithmetic { parens: parens - 1 }),
                    ')' => {
                        self.frames.pop();
                        if self.peek(1) == Some(')') {
                            self.copy(1);
                        }
                    }
                    _ => {}
                }
                self.copy(1);
            }
            Frame::Comment => {
                if c == '\n' {
                    self.frames.pop();
                    self.word_start = true;
                }
                self.copy(1);
            }
        }
    }

    fn unquoted_step(&mut self, c: char, parens: usize, substitution: bool) {
        let at_word_start = self.word_start;
        self.word_start = false;
        match c {
            '\\' => self.copy(2),
            '\'' => {
                self.frames.push(Frame::Single);
                self.copy(1);
            }
            '"' => {
                self.frames.push(Frame::Double);
                self.copy(1);
            }
            '`' => {
                self.frames.push(Frame::Backtick);
                self.copy(1);
            }
            '#' if at_word_start => {
                self.frames.push(Frame::Comment);
                self.copy(1);
            }
            '$' => self.dollar(),
            // bash's `(( ... ))` command evaluates `$(...)` even inside single quotes.
            '(' if at_word_start && self.peek(1) == Some('(') => {
                self.frames.push(Frame::Arithmetic { parens: 0 });
                self.copy(2);
            }
            '(' => {
                self.set_frame(Frame::Unquoted {
                    parens: parens + 1,
                    substitution,
                });
                self.word_start = true;
                self.copy(1);
            }
            ')' => {
                if parens > 0 {
                    self.set_frame(Frame::Unquoted {
                        parens: parens - 1,
                        substitution,
                    });
                } else if substitution {
                    self.frames.pop();
                }
                self.word_start = true;
                self.copy(1);
            }
            '<' if self.peek(1) == Some('<') => {
                self.uncertain
                    .get_or_insert("after `<<` (a here-document, whose quoting differs)");
                self.copy(2);
            }
            ' ' | '\t' | '\n' | ';' | '&' | '|' => {
                self.word_start = true;
                self.copy(1);
            }
            _ => {
                if at_word_start && substitution && self.starts_with("case") {
                    let after = self.peek(4);
                    if after.is_none_or(|c| c.is_whitespace()) {
                        // Its `pattern)` lines would look like the end of the `$(`.
                        self.uncertain.get_or_insert("after `case` inside `$(...)`");
                    }
                }
                self.copy(1);
            }
        }
    }

    /// `$(` opens a command substitution, `$((` arithmetic; any other `$` is text.
    fn dollar(&mut self) {
        if self.starts_with("$'") {
            // bash reads `$'...'` with backslash escapes, dash as `$` then `'...'`.
            self.uncertain
                .get_or_insert("after `$'...'` (which bash and dash quote differently)");
            self.copy(1);
        } else if self.starts_with("$((") {
            self.frames.push(Frame::Arithmetic { parens: 0 });
            self.copy(3);
        } else if self.starts_with("$(") {
            self.frames.push(Frame::Unquoted {
                parens: 0,
                substitution: true,
            });
            self.copy(2);
            self.word_start = true;
        } else {
            self.copy(1);
        }
    }

    fn set_frame(&mut self, frame: Frame) {
        if let Some(top) = self.frames.last_mut() {
            *top = frame;
        }
    }
}

/// Parses what follows `item` in `${item...}`: `.field` and `[index]` steps.
fn parse_item_path(mut rest: &str) -> Result<Vec<Segment>, &'static str> {
    let mut path = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() {
                return Err("a field name is empty");
            }
            if name.contains(|c: char| c.is_whitespace() || c == ']') {
                return Err("a field name contains a space or `]`");
            }
            path.push(Segment::Field(name.to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Err("a `[` has no closing `]`");
            };
            let index = after[..end]
                .trim()
                .parse::<usize>()
                .map_err(|_| "a list index must be a whole number, like `[0]`")?;
            path.push(Segment::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err("expected `.field` or `[index]` after the item");
        }
    }
    Ok(path)
}

/// A shell variable name: letters, digits and `_`, not starting with a digit.
pub(super) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MapCounts;
    use serde_json::json;

    fn env() -> BTreeMap<String, String> {
        BTreeMap::from([("OUT".to_string(), "out dir".to_string())])
    }

    fn ctx<'a>(item: &'a Value, env: &'a BTreeMap<String, String>) -> RenderContext<'a> {
        RenderContext {
            item: Some(item),
            item_key: Some("k1"),
            seq: 7,
            slot: 2,
            env,
            map: None,
        }
    }

    fn shell(source: &str, item: &Value) -> String {
        let env = env();
        Template::parse_shell(source, &env)
            .expect("template parses")
            .render_shell(&ctx(item, &env))
            .expect("template renders")
    }

    fn plain(source: &str, item: &Value) -> Result<String, RenderError> {
        let env = env();
        Template::parse_plain(source)
            .expect("template parses")
            .render_plain(&ctx(item, &env))
    }

    /// Runs `script` with `sh -c` in a fresh directory; returns stdout and whether the
    /// directory is still empty (nothing was created by an injected command).
    fn run_sh(script: &str) -> (Vec<u8>, bool) {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .output()
            .expect("sh runs");
        assert!(
            output.status.success(),
            "sh failed for {script:?}: {output:?}"
        );
        let empty = std::fs::read_dir(dir.path())
            .expect("read dir")
            .next()
            .is_none();
        (output.stdout, empty)
    }

    const NASTY: &[&str] = &[
        "$(touch x)",
        "`touch x`",
        "a; touch x",
        "a | touch x",
        "a && touch x &",
        "it's",
        "say \"hi\"",
        "'\"'\"",
        "* ? [a]",
        "~ ~root",
        "line1\nline2\n",
        "tab\there",
        "ünïcödé ✓ 日本",
        "",
        "\\",
        "\\'",
        "$HOME ${HOME} $$",
        "-n",
        "'; touch x; '",
        "\"; touch x; \"",
        "# not a comment",
        "!x",
    ];

    #[test]
    fn values_reach_the_shell_literally_in_every_quoting_context() {
        let sources = [
            "printf '%s' ${item}",
            "printf '%s' \"${item}\"",
            "printf '%s' 'pre${item}post'",
            "printf '%s' \"pre ${item} post\"",
            "printf '%s' \"$(printf '%s' ${item})\"",
            "printf '%s' \"$(printf '%s' \"${item}\")\"",
            "x=${item}; printf '%s' \"$x\"",
        ];
        for source in sources {
            for value in NASTY {
                let item = json!(value);
                let script = shell(source, &item);
                let (stdout, empty) = run_sh(&script);
                let mut expected = value.to_string();
                if source.contains("pre${item}post") {
                    expected = format!("pre{value}post");
                } else if source.contains("pre ${item} post") {
                    expected = format!("pre {value} post");
                }
                if source.contains("$(") {
                    // Command substitution drops trailing newlines.
                    expected = expected.trim_end_matches('\n').to_string();
                }
                assert_eq!(
                    String::from_utf8_lossy(&stdout),
                    expected,
                    "source {source:?}, value {value:?}, script {script:?}"
                );
                assert!(empty, "a file was created by {script:?}");
            }
        }
    }

    #[test]
    fn quoting_rules_are_exact() {
        assert_eq!(quote("it's", Quoting::Unquoted), r"'it'\''s'");
        assert_eq!(quote("", Quoting::Unquoted), "''");
        assert_eq!(quote("a\"$`\\b", Quoting::DoubleQuoted), "a\\\"\\$\\`\\\\b");
        assert_eq!(quote("it's", Quoting::SingleQuoted), r"it'\''s");
        assert_eq!(quote("it's", Quoting::Raw), "it's");
    }

    #[test]
    fn env_names_are_substituted_other_variables_left_to_the_shell() {
        let item = json!("x");
        assert_eq!(shell("cd ${OUT}", &item), "cd 'out dir'");
        assert_eq!(shell("echo ${HOME} ${x:-d}", &item), "echo ${HOME} ${x:-d}");
        assert_eq!(shell("echo $${item}", &item), "echo ${item}");
    }

    #[test]
    fn escaped_dollar_is_not_a_placeholder() {
        let item = json!("x");
        assert_eq!(shell(r"echo \${item}", &item), r"echo \${item}");
        assert_eq!(shell(r#"echo "\${item}""#, &item), r#"echo "\${item}""#);
    }

    #[test]
    fn shell_expansions_are_lexed_inside_not_skipped() {
        let item = json!("a b; touch x");
        // The `}` inside `"}"` must not hide the quote that follows it.
        let script = shell("printf '%s|' '${' \"}\" ${item}", &item);
        assert_eq!(script, "printf '%s|' '${' \"}\" 'a b; touch x'");
        let (stdout, empty) = run_sh(&script);
        assert_eq!(String::from_utf8_lossy(&stdout), "${|}|a b; touch x|");
        assert!(empty);
        // Inside a shell default value, our placeholder is still quoted.
        let script = shell("printf '%s' ${UNSET_VAR:-${item}}", &item);
        let (stdout, empty) = run_sh(&script);
        assert_eq!(String::from_utf8_lossy(&stdout), "a b; touch x");
        assert!(empty);
        // An unclosed `${` that is not ours is the shell's business.
        assert_eq!(
            shell("echo '${' ${item}", &item),
            "echo '${' 'a b; touch x'"
        );
    }

    #[test]
    fn comments_are_left_alone() {
        let item = json!("x");
        assert_eq!(
            shell("echo ${item} # uses ${item.nope}\necho ${item}", &item),
            "echo 'x' # uses ${item.nope}\necho 'x'"
        );
        // `#` inside a word is not a comment.
        assert_eq!(shell("echo a#${item}", &item), "echo a#'x'");
    }

    #[test]
    fn unsafe_contexts_are_refused() {
        let env = env();
        for source in [
            "echo `echo ${item}`",
            "echo \"`echo ${item}`\"",
            "echo $((${item} + 1))",
            "cat <<EOF\n${item}\nEOF",
            "echo $(case a in a) echo ${item};; esac)",
            "(( n = ${item} ))",
            "echo $'\\'' ${item}",
        ] {
            let error = Template::parse_shell(source, &env).unwrap_err();
            assert!(
                matches!(error, TemplateError::UnsafeContext { .. }),
                "{source}: {error}"
            );
        }
        // A case at the top level keeps `$(...)` nesting certain.
        assert!(Template::parse_shell("case a in a) echo ${item};; esac", &env).is_ok());
    }

    #[test]
    fn syntax_errors_name_the_offset() {
        let error = Template::parse_plain("a ${item.x").unwrap_err();
        assert_eq!(error, TemplateError::Unclosed { offset: 2 });
        let error = Template::parse_plain("${item..x}").unwrap_err();
        assert!(matches!(
            error,
            TemplateError::BadItemPath { offset: 0, .. }
        ));
        let error = Template::parse_plain("${item[x]}").unwrap_err();
        assert!(matches!(error, TemplateError::BadItemPath { .. }));
        let error = Template::parse_plain("${map.done}").unwrap_err();
        assert!(matches!(error, TemplateError::UnknownMapCount { .. }));
        let error = Template::parse_plain("${x:-y}").unwrap_err();
        assert!(matches!(error, TemplateError::UnknownPlaceholder { .. }));
        let error = Template::parse_shell("echo ${OUT", &env()).unwrap_err();
        assert_eq!(error, TemplateError::Unclosed { offset: 5 });
        let error = Template::parse_shell("echo ${item.x", &env()).unwrap_err();
        assert_eq!(error, TemplateError::Unclosed { offset: 5 });
        // Not ours: the shell will complain about it.
        assert!(Template::parse_shell("echo ${HOME", &env()).is_ok());
    }

    #[test]
    fn item_paths_render_scalars_as_text_and_structures_as_json() {
        let item = json!({"a": {"b": "deep"}, "list": [1, 2.5, true, null], "obj": {"k": [1]}});
        assert_eq!(plain("${item.a.b}", &item).unwrap(), "deep");
        assert_eq!(plain("${item.list[0]}", &item).unwrap(), "1");
        assert_eq!(plain("${item.list[1]}", &item).unwrap(), "2.5");
        assert_eq!(plain("${item.list[2]}", &item).unwrap(), "true");
        assert_eq!(plain("${item.list[3]}", &item).unwrap(), "null");
        assert_eq!(plain("${item.obj}", &item).unwrap(), r#"{"k":[1]}"#);
        assert_eq!(
            plain("${item.list}", &item).unwrap(),
            r#"[1,2.5,true,null]"#
        );
        assert_eq!(plain("${item_key}:${OUT}", &item).unwrap(), "k1:out dir");
        assert_eq!(plain("${item}", &json!("raw \"s\"")).unwrap(), "raw \"s\"");
    }

    #[test]
    fn missing_fields_are_errors_that_list_the_keys() {
        let item = json!({"path": "a.jpg", "size": 3});
        let error = plain("${item.pth}", &item).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`${item.pth}`: the item has no `item.pth`\n  hint: the item's top-level keys are: `path`, `size`"
        );
        let error = plain("${item.list[3]}", &json!({"list": [1]})).unwrap_err();
        assert!(
            matches!(error, RenderError::MissingField { ref missing, .. } if missing == "item.list[3]")
        );
        let error = plain("${item.x}", &json!("text")).unwrap_err();
        assert!(
            error.to_string().contains("the item is a string"),
            "{error}"
        );
    }

    #[test]
    fn map_counts_exist_only_when_given() {
        let env = env();
        let template =
            Template::parse_plain("${map.completed}/${map.total} ${map.failed} ${map.skipped}")
                .unwrap();
        let counts = MapCounts {
            total: 10,
            completed: 7,
            dead_lettered: 2,
            skipped: 1,
        };
        let with_counts = RenderContext {
            item: None,
            item_key: None,
            seq: 0,
            slot: 0,
            env: &env,
            map: Some(&counts),
        };
        assert_eq!(template.render_plain(&with_counts).unwrap(), "7/10 2 1");
        let without = RenderContext {
            map: None,
            ..with_counts
        };
        assert!(matches!(
            template.render_plain(&without),
            Err(RenderError::NoMapCounts { .. })
        ));
    }

    #[test]
    fn plain_env_falls_back_to_the_process_environment() {
        let item = json!(1);
        // PATH is set in any environment that can run these tests.
        assert!(!plain("${PATH}", &item).unwrap().is_empty());
        let error = plain("${MMM_SURELY_NOT_SET_ANYWHERE}", &item).unwrap_err();
        assert!(matches!(error, RenderError::UnknownVariable { .. }));
    }

    #[test]
    fn nul_bytes_are_refused() {
        let error = plain("${item}", &json!("a\u{0}b")).unwrap_err();
        assert!(matches!(error, RenderError::NulByte { .. }));
    }

    #[test]
    fn conditions() {
        let env = env();
        let item = json!({"flag": true, "off": "OFF", "n": 0, "kind": "photo", "e": ""});
        let check = |source: &str| {
            Template::parse_plain(source)
                .unwrap()
                .evaluate_condition(&ctx(&item, &env))
                .unwrap()
        };
        assert!(check("${item.flag}"));
        assert!(!check("${item.off}"));
        assert!(!check("${item.n}"));
        assert!(!check("${item.e}"));
        assert!(!check(" no "));
        assert!(!check("Null"));
        assert!(check("yes"));
        assert!(check("${item.kind} == photo"));
        assert!(!check("${item.kind} != photo"));
        assert!(check("${item.kind}==photo"));
        assert!(check("${item.kind} != video"));
        // An operator inside a value is data, not an operator.
        let tricky = json!({"a": "x == y"});
        let template = Template::parse_plain("${item.a}").unwrap();
        assert!(template.evaluate_condition(&ctx(&tricky, &env)).unwrap());
    }

    #[test]
    fn replacement_strings_follow_gnu_parallel() {
        let cases = [
            ("dir.x/file", Replacement::NoExtension, "dir.x/file"),
            ("file.tar.gz", Replacement::NoExtension, "file.tar"),
            ("a/b.jpg", Replacement::NoExtension, "a/b"),
            ("file.", Replacement::NoExtension, "file."),
            (".bashrc", Replacement::NoExtension, ""),
            ("a/b.c", Replacement::Basename, "b.c"),
            ("b.c", Replacement::Basename, "b.c"),
            ("a/b/", Replacement::Basename, ""),
            ("/a/b.c", Replacement::BasenameNoExtension, "b"),
            ("sub.dir/bar", Replacement::BasenameNoExtension, "bar"),
            ("a/b/c", Replacement::Dirname, "a/b"),
            ("a", Replacement::Dirname, "."),
            ("/a", Replacement::Dirname, "/"),
            ("/", Replacement::Dirname, "/"),
            ("a/b/", Replacement::Dirname, "a"),
            ("a//b", Replacement::Dirname, "a"),
            ("./a.jpg", Replacement::Dirname, "."),
            ("", Replacement::Dirname, "."),
        ];
        for (item, replacement, expected) in cases {
            assert_eq!(
                apply_replacement(replacement, item),
                expected,
                "{replacement:?} of {item:?}"
            );
        }
    }

    #[test]
    fn oneliner_shell_quotes_replacements_and_leaves_dollar_braces() {
        let env = BTreeMap::new();
        let template = Template::parse_oneliner_shell("echo {} \"{/}\" ${HOME} {#}/{%}").unwrap();
        let item = json!("d/it's");
        let rendered = template.render_shell(&ctx(&item, &env)).unwrap();
        assert_eq!(rendered, r#"echo 'd/it'\''s' "it's" ${HOME} '7'/'2'"#);
    }

    /// Payloads that create `pwned` only if the shell parses them as code (the `${IFS}`
    /// keeps word splitting of command output from turning them into a command).
    const PAYLOADS: &[&str] = &[
        "$(touch${IFS}pwned)",
        "`touch${IFS}pwned`",
        ";touch${IFS}pwned;",
        "';touch${IFS}pwned;'",
        "\";touch${IFS}pwned;\"",
        "\\';touch${IFS}pwned;#",
        "\ntouch${IFS}pwned\n",
        "});touch${IFS}pwned;({",
        "'\"$(touch${IFS}pwned)\"'",
    ];

    const FRAGMENTS: &[&str] = &[
        "echo ",
        "${item}",
        "${item}",
        "'",
        "\"",
        "$(",
        ")",
        "(",
        " ",
        ";",
        "\\",
        "#",
        "\n",
        "${",
        "}",
        "$",
        "`",
        "x",
        "=",
        "|",
        "&&",
        "${UNSET:-",
        "$((",
        "<<",
        "case ",
        " in ",
        "esac",
        "$'",
        "((",
        "))",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Whatever shell line a user writes, a substituted value never runs as code: the
        /// line is either refused at load time or the payload stays data.
        #[test]
        fn no_template_lets_a_value_run_as_code(
            pieces in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 1..12),
            payload in proptest::sample::select(PAYLOADS),
        ) {
            let source: String = pieces.concat();
            let env = BTreeMap::new();
            let Ok(template) = Template::parse_shell(&source, &env) else {
                return Ok(());
            };
            let item = json!(payload);
            let script = template.render_shell(&ctx(&item, &env)).expect("renders");
            let dir = tempfile::tempdir().expect("temp dir");
            // The script may well be invalid shell; only what it creates matters.
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .current_dir(dir.path())
                .stdin(std::process::Stdio::null())
                .output()
                .expect("sh runs");
            proptest::prop_assert!(
                !dir.path().join("pwned").exists(),
                "source {:?} rendered {:?}", source, script
            );
        }
    }
}
