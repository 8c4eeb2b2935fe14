//! Templates: parsing `${...}` placeholders (and the one-liner's `{}` replacement strings)
//! once at load time, and rendering them for one item.
//!
//! In a shell line every substituted value must reach the shell as literal data, whatever
//! it contains. So while parsing a shell line a small lexer tracks where each placeholder
//! sits (unquoted, inside `'...'`, inside `"..."`, inside `$(...)`), and rendering quotes
//! the value for exactly that position. Where the lexer cannot be sure of the position
//! (backticks, `$((...))`, here-documents, `case` inside `$(...)`), the template is refused
//! at load time instead of guessed at.
//!
//! The parsing lives in [`lexer`], the rendering for one item in [`render`]; this module
//! holds the parsed form and the entry points the rest of the crate calls.

mod lexer;
mod render;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use super::error::{RenderError, TemplateError};
use super::{CommandTemplate, RenderContext, RenderedCommand, Template};
use lexer::Lexer;
use render::{Comparison, Target, is_truthy, render_parts, split_comparison, spread_values};

pub(super) use lexer::is_variable_name;

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
    /// A positional replacement string of the one-liner (`{2}`, `{1/}`, ...): the `index`th
    /// value (1-based) of an item made of several, with `replacement` applied to it.
    Positional {
        /// 1-based.
        index: usize,
        /// `Whole`, `Basename`, `Dirname`, `NoExtension` or `BasenameNoExtension`.
        replacement: Replacement,
    },
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

impl RenderedCommand {
    /// The command as a shell line: a shell line as it is; an argument vector with each
    /// word quoted where the shell would otherwise read it differently.
    pub fn to_shell_line(&self) -> String {
        match self {
            RenderedCommand::Shell(line) => line.clone(),
            RenderedCommand::Argv(words) => words
                .iter()
                .map(|word| render::quote(word, Quoting::Unquoted))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

impl CommandTemplate {
    /// Renders the command for one item (or for a setup/reduce command).
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<RenderedCommand, RenderError> {
        match self {
            CommandTemplate::Shell(line) => Ok(RenderedCommand::Shell(line.render_shell(ctx)?)),
            CommandTemplate::Argv(words) => {
                let mut out = Vec::with_capacity(words.len());
                for word in words {
                    // A word that is only `{}` (or `{/}`, ...) of an item of several values
                    // is one argument per value, as the shell would split GNU parallel's.
                    if let [Part::Value { placeholder, .. }] = word.parts.as_slice()
                        && let Some(values) = spread_values(placeholder, ctx)
                    {
                        out.extend(values);
                        continue;
                    }
                    out.push(word.render_plain(ctx)?);
                }
                Ok(RenderedCommand::Argv(out))
            }
        }
    }
}
