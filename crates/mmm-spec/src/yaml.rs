//! A YAML document as a small tree of nodes that remember their line and column.
//!
//! We build the tree from the YAML parser's events ourselves, instead of deserializing
//! straight into structs, so that every later check (unknown key, wrong type, bad value)
//! can point at the exact key or value and word its own message and hint. Scalars keep
//! their text as written; the schema in `parse.rs` decides what text means a number.

use std::collections::HashMap;
use std::path::Path;

use serde_saphyr::granit_parser::{Event, Marker, Options, Parser, ScalarStyle, ScanError};

use super::error::{Location, SpecError};

/// At most this many nodes, counting every alias expansion: a job file is small, and the
/// limit stops "billion laughs" alias bombs from eating memory.
const NODE_LIMIT: usize = 100_000;

/// Job files are shallow; a low nesting limit also bounds our recursion depth.
const NESTING_LIMIT: usize = 64;

/// A 1-based line and column in the job file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Mark {
    fn from_marker(marker: &Marker) -> Mark {
        Mark {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }

    /// The mark as a [`Location`] in `path`.
    pub(super) fn at(self, path: &Path) -> Location {
        Location {
            path: path.to_path_buf(),
            line: self.line,
            column: self.column,
        }
    }
}

/// How a scalar was written; templates need it to map a character offset to a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// Without quotes.
    Plain,
    /// In `'...'` or `"..."`.
    Quoted,
    /// A `|` or `>` block.
    Block,
}

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    /// Where the node starts.
    pub(super) mark: Mark,
    pub(super) kind: Kind,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// Text as written (after YAML escapes), and how it was written.
    Scalar { text: String, style: Style },
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in file order; keys are unique.
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) key_mark: Mark,
    pub(super) value: Node,
}

impl Node {
    /// `~`, `null`, or nothing at all after `key:`.
    pub(super) fn is_null(&self) -> bool {
        match &self.kind {
            Kind::Scalar {
                text,
                style: Style::Plain,
            } => matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"),
            _ => false,
        }
    }

    /// A short description of the node's kind, for "found ..." in messages.
    pub(super) fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "nothing (null)",
            Kind::Scalar { .. } => "text",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// Parses `text` (the contents of `path`) into one document's root node, or `None` when the
/// file holds no document.
pub(super) fn parse(path: &Path, text: &str) -> Result<Option<Node>, SpecError> {
    let mut options = Options::default();
    options.flow_nesting_limit = NESTING_LIMIT;
    options.block_nesting_limit = NESTING_LIMIT;
    let parser = Parser::new_from_str_with_options(text, options);
    let mut builder = Builder {
        path,
        parser,
        anchors: HashMap::new(),
        nodes: 0,
        last_mark: Mark { line: 1, column: 1 },
    };
    builder.document()
}

struct Builder<'p, 'input> {
    path: &'p Path,
    parser: Parser<'input, serde_saphyr::granit_parser::StrInput<'input>>,
    /// Anchored nodes by anchor id, for resolving aliases.
    anchors: HashMap<usize, Node>,
    /// Nodes built so far, including alias copies.
    nodes: usize,
    /// Where the last event started, for the rare error without a position of its own.
    last_mark: Mark,
}

impl<'input> Builder<'_, 'input> {
    /// The next event that is not presentation detail, with its start mark. `None` at the
    /// end of input.
    fn next(&mut self) -> Result<Option<(Event<'input>, Mark)>, SpecError> {
        loop {
            match self.parser.next_event() {
                None => return Ok(None),
                Some(Err(error)) => return Err(self.syntax(error)),
                Some(Ok((Event::Comment(..) | Event::Anchor(..), _))) => continue,
                Some(Ok((event, span))) => {
                    self.last_mark = Mark::from_marker(&span.start);
                    return Ok(Some((event, self.last_mark)));
                }
            }
        }
    }

    fn syntax(&self, error: ScanError) -> SpecError {
        SpecError::Syntax {
            at: Mark::from_marker(error.marker()).at(self.path),
            source: Box::new(error),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, SpecError> {
        let mut root = None;
        while let Some((event, mark)) = self.next()? {
            // StreamStart, DocumentEnd and StreamEnd carry nothing for us.
            if let Event::DocumentStart(..) = event {
                if root.is_some() {
                    return Err(SpecError::MultipleDocuments {
                        at: mark.at(self.path),
                    });
                }
                root = Some(self.node()?);
            }
        }
        Ok(root)
    }

    /// Reads one node (scalar, list, mapping or alias).
    fn node(&mut self) -> Result<Node, SpecError> {
        let Some((event, mark)) = self.next()? else {
            return Err(self.unexpected_end());
        };
        self.node_from(event, mark)
    }

    fn node_from(&mut self, event: Event<'input>, mark: Mark) -> Result<Node, SpecError> {
        self.count(mark)?;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                let kind = Kind::Scalar {
                    text: text.into_owned(),
                    style,
                };
                (Node { mark, kind }, anchor)
            }
            Event::SequenceStart(_, anchor, _tag) => (self.sequence(mark)?, anchor),
            Event::MappingStart(_, anchor, _tag) => (self.mapping(mark)?, anchor),
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(self.unexpected_end());
                };
                self.count_tree(&target, mark)?;
                // The alias stands where it is used: point errors there.
                return Ok(Node { mark, ..target });
            }
            _ => return Err(self.unexpected_end()),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn sequence(&mut self, mark: Mark) -> Result<Node, SpecError> {
        let mut items = Vec::new();
        loop {
            let Some((event, item_mark)) = self.next()? else {
                return Err(self.unexpected_end());
            };
            if matches!(event, Event::SequenceEnd) {
                break;
            }
            items.push(self.node_from(event, item_mark)?);
        }
        Ok(Node {
            mark,
            kind: Kind::Seq(items),
        })
    }

    fn mapping(&mut self, mark: Mark) -> Result<Node, SpecError> {
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            let Some((event, key_mark)) = self.next()? else {
                return Err(self.unexpected_end());
            };
            let key = match event {
                Event::MappingEnd => break,
                Event::Scalar(text, ..) => text.into_owned(),
                Event::Alias(id) => match self.anchors.get(&id) {
                    Some(Node {
                        kind: Kind::Scalar { text, .. },
                        ..
                    }) => text.clone(),
                    _ => {
                        return Err(SpecError::ComplexKey {
                            at: key_mark.at(self.path),
                        });
                    }
                },
                _ => {
                    return Err(SpecError::ComplexKey {
                        at: key_mark.at(self.path),
                    });
                }
            };
            if let Some(first) = entries.iter().find(|entry| entry.key == key) {
                return Err(SpecError::DuplicateKey {
                    at: key_mark.at(self.path),
                    key,
                    first_line: first.key_mark.line,
                });
            }
            let value = self.node()?;
            entries.push(Entry {
                key,
                key_mark,
                value,
            });
        }
        Ok(Node {
            mark,
            kind: Kind::Map(entries),
        })
    }

    fn count(&mut self, mark: Mark) -> Result<(), SpecError> {
        self.nodes += 1;
        if self.nodes > NODE_LIMIT {
            return Err(SpecError::TooLarge {
                at: mark.at(self.path),
                limit: NODE_LIMIT,
            });
        }
        Ok(())
    }

    fn count_tree(&mut self, node: &Node, mark: Mark) -> Result<(), SpecError> {
        self.count(mark)?;
        match &node.kind {
            Kind::Scalar { .. } => Ok(()),
            Kind::Seq(items) => items
                .iter()
                .try_for_each(|item| self.count_tree(item, mark)),
            Kind::Map(entries) => entries
                .iter()
                .try_for_each(|entry| self.count_tree(&entry.value, mark)),
        }
    }

    /// The parser ended a document in the middle of a node; it reports its own syntax
    /// errors first, so this is a safety net rather than a common message.
    fn unexpected_end(&self) -> SpecError {
        let mark = self.last_mark;
        let marker = Marker::new(0, mark.line, mark.column.saturating_sub(1));
        SpecError::Syntax {
            at: mark.at(self.path),
            source: Box::new(ScanError::new(marker, "unexpected end of the document")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(Path::new("job.yaml"), text)
            .expect("valid YAML")
            .expect("one document")
    }

    #[test]
    fn marks_point_at_keys_and_values() {
        let node = root("name: x\nmap:\n  retries: 2\n");
        let Kind::Map(entries) = &node.kind else {
            panic!("not a map")
        };
        assert_eq!(entries[1].key, "map");
        assert_eq!(entries[1].key_mark, Mark { line: 2, column: 1 });
        let Kind::Map(inner) = &entries[1].value.kind else {
            panic!("not a map")
        };
        assert_eq!(inner[0].key_mark, Mark { line: 3, column: 3 });
        assert_eq!(
            inner[0].value.mark,
            Mark {
                line: 3,
                column: 12
            }
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let error = parse(Path::new("job.yaml"), "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(
            error.to_string().lines().next(),
            Some("job.yaml:3:1: duplicate key `a` (first given on line 1)")
        );
    }

    #[test]
    fn aliases_are_expanded() {
        let node = root("a: &x [1, 2]\nb: *x\n");
        let Kind::Map(entries) = &node.kind else {
            panic!("not a map")
        };
        assert!(matches!(&entries[1].value.kind, Kind::Seq(items) if items.len() == 2));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let error = parse(Path::new("job.yaml"), &text).unwrap_err();
        assert!(matches!(error, SpecError::TooLarge { .. }), "{error}");
    }

    #[test]
    fn empty_input_has_no_document() {
        assert_eq!(parse(Path::new("job.yaml"), "").expect("valid"), None);
        assert_eq!(
            parse(Path::new("job.yaml"), "# only a comment\n").expect("valid"),
            None
        );
    }

    #[test]
    fn second_document_is_refused() {
        let error = parse(Path::new("job.yaml"), "a: 1\n---\nb: 2\n").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("job.yaml:2:1: a second YAML document"),
            "{error}"
        );
    }
}
