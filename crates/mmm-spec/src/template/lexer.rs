//! The shell lexer: splits a template's text into literal text and placeholders, and in a
//! shell line tracks where each placeholder sits (unquoted, inside `'...'`, inside `"..."`,
//! inside `$(...)`) so rendering can quote its value for exactly that position. Where it
//! cannot be sure of the position, it refuses the template instead of guessing.

use std::collections::BTreeMap;

use super::{MapCount, Part, Placeholder, Quoting, Replacement, Segment, Syntax};
use crate::Template;
use crate::error::TemplateError;

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
pub(super) struct Lexer<'e> {
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
    pub(super) fn new(
        source: &str,
        syntax: Syntax,
        env: Option<&'e BTreeMap<String, String>>,
    ) -> Self {
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

    pub(super) fn run(mut self) -> Result<Template, TemplateError> {
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
                })
                .or_else(|| self.positional_here())),
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

    /// A positional replacement string at the current position: `{N}`, `{N/}`, `{N//}`,
    /// `{N.}`, `{N/.}` with N from 1.
    fn positional_here(&self) -> Option<Found> {
        if self.peek(0) != Some('{') {
            return None;
        }
        let digits = self.chars[self.pos + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 6 {
            return None;
        }
        let number: String = self.chars[self.pos + 1..self.pos + 1 + digits]
            .iter()
            .collect();
        let index: usize = number.parse().ok().filter(|n| *n > 0)?;
        let after = self.pos + 1 + digits;
        let rest: String = self.chars[after..].iter().take(4).collect();
        let (replacement, len) = [
            ("//}", Replacement::Dirname),
            ("/.}", Replacement::BasenameNoExtension),
            ("/}", Replacement::Basename),
            (".}", Replacement::NoExtension),
            ("}", Replacement::Whole),
        ]
        .into_iter()
        .find(|(suffix, _)| rest.starts_with(suffix))
        .map(|(suffix, replacement)| (replacement, suffix.len()))?;
        Some(Found::Ours(
            Placeholder::Positional { index, replacement },
            1 + digits + len,
        ))
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
pub(crate) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
