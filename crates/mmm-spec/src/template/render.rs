//! Rendering a parsed template for one item: resolving each placeholder to its value
//! (item paths, the item key, map counts, `env:` names, GNU parallel's replacement
//! strings), quoting the value for its position in a shell line, and deciding `when:`
//! conditions.

use serde_json::Value;

use super::{MapCount, Part, Placeholder, Quoting, Replacement, Segment};
use crate::RenderContext;
use crate::error::RenderError;

/// Whether a rendered condition counts as true.
pub(super) fn is_truthy(text: &str) -> bool {
    let text = text.trim().to_lowercase();
    !matches!(text.as_str(), "" | "false" | "0" | "no" | "off" | "null")
}

/// The operator of a `when:` comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    Equal,
    NotEqual,
}

/// Splits the parts at the first `==` or `!=` written in the template's literal text.
pub(super) fn split_comparison(parts: &[Part]) -> Option<(Vec<Part>, Comparison, Vec<Part>)> {
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
pub(super) enum Target {
    /// Values as they are; `${NAME}` falls back to the process environment.
    Plain,
    /// Values quoted for their position; `${NAME}` not in `env:` is left to the shell.
    Shell,
}

pub(super) fn render_parts(
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
                quoting: Quoting::Unquoted,
                text,
            } if target == Target::Shell
                && let Some(values) = spread_values(placeholder, ctx) =>
            {
                // As GNU parallel: `{}` of an item of several values is each value quoted
                // on its own, so the shell sees one word per value.
                let mut quoted = Vec::with_capacity(values.len());
                for value in values {
                    if value.contains('\0') {
                        return Err(RenderError::NulByte {
                            placeholder: text.clone(),
                        });
                    }
                    quoted.push(quote(&value, Quoting::Unquoted));
                }
                out.push_str(&quoted.join(" "));
            }
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
                _ => match ctx.item.ok_or_else(no_item)? {
                    Value::Array(values) => values
                        .iter()
                        .map(|v| apply_replacement(*replacement, &value_text(v)))
                        .collect::<Vec<_>>()
                        .join(" "),
                    item => apply_replacement(*replacement, &value_text(item)),
                },
            };
            Ok(Some(value))
        }
        Placeholder::Positional { index, replacement } => {
            let item = ctx.item.ok_or_else(no_item)?;
            let value = match item {
                Value::Array(values) => values.get(index - 1).map(value_text),
                other => (*index == 1).then(|| value_text(other)),
            };
            // As GNU parallel: a value the item does not have (the last item of `-N 3`
            // may have fewer) is empty.
            Ok(Some(
                value
                    .map(|v| apply_replacement(*replacement, &v))
                    .unwrap_or_default(),
            ))
        }
    }
}

/// The values an item-wide replacement string (`{}`, `{/}`, ...) spreads over when the
/// item is made of several values (several sources, `--colsep`, `-N`): one word each.
pub(super) fn spread_values(
    placeholder: &Placeholder,
    ctx: &RenderContext<'_>,
) -> Option<Vec<String>> {
    let Placeholder::Replacement(replacement) = placeholder else {
        return None;
    };
    if matches!(replacement, Replacement::Seq | Replacement::Slot) {
        return None;
    }
    match ctx.item? {
        Value::Array(values) => Some(
            values
                .iter()
                .map(|v| apply_replacement(*replacement, &value_text(v)))
                .collect(),
        ),
        _ => None,
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
pub(super) fn apply_replacement(replacement: Replacement, item: &str) -> String {
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
        // Plain words stay as they are, as GNU parallel shows them (`echo a.txt`).
        Quoting::Unquoted if is_plain_word(value) => value.to_string(),
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

/// True for a non-empty word of characters that mean nothing to the shell anywhere in a
/// word (the set GNU parallel leaves unquoted).
fn is_plain_word(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.' | '/'))
}
