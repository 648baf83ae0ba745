//! A small YAML document tree that remembers where every node came from.
//!
//! Built from `saphyr-parser` events. Unlike a serde data model it keeps what the decoder
//! needs to report every problem at once: the line and column of each key and value,
//! duplicate keys (a mapping is a list of pairs, not a map), and whether a scalar was plain
//! or quoted (so `"true"` is text and `true` is a boolean, following YAML 1.2). Typing is
//! left to the decoder, which knows what each key expects: `off` is the string "off" where a
//! string is expected and an error where a boolean is.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

/// Deeper nesting than this is refused (nothing in the schema goes past 6).
const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to, aliases included (guards against "billion laughs").
const MAX_NODES: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    /// 1-based.
    pub(crate) line: usize,
    /// 1-based, in characters.
    pub(crate) column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Pairs in document order; duplicates are kept so the decoder can report them.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    pub(crate) text: String,
    /// Plain (unquoted, not a block scalar, no `!!str` tag): subject to YAML 1.2 core-schema
    /// typing, so `true`, `null` and `~` are not text.
    pub(crate) plain: bool,
}

impl Scalar {
    /// YAML 1.2 core schema null: empty, `~`, `null`, `Null`, `NULL` (plain only).
    pub(crate) fn is_null(&self) -> bool {
        self.plain && matches!(self.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }

    /// YAML 1.2 core schema boolean (plain only).
    pub(crate) fn as_bool(&self) -> Option<bool> {
        if !self.plain {
            return None;
        }
        match self.text.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }
}

impl Node {
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s) if s.is_null())
    }

    /// Words for "got ..." in error messages.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Seq(_) => "a list".to_string(),
            Kind::Map(_) => "a mapping".to_string(),
            Kind::Scalar(s) if s.is_null() => "nothing (null)".to_string(),
            Kind::Scalar(s) => match s.as_bool() {
                Some(b) => format!("the boolean {b}"),
                None => format!("\"{}\"", s.text.escape_debug()),
            },
        }
    }

    fn size(&self) -> usize {
        match &self.kind {
            Kind::Scalar(_) => 1,
            Kind::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Kind::Map(pairs) => {
                1 + pairs
                    .iter()
                    .map(|(k, v)| k.size() + v.size())
                    .sum::<usize>()
            }
        }
    }
}

/// A problem found while reading the YAML text itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxProblem {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

enum Frame {
    Seq {
        at: (usize, usize),
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        at: (usize, usize),
        anchor: usize,
        pairs: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    problems: Vec<SyntaxProblem>,
}

fn position(span: &Span) -> (usize, usize) {
    (span.start.line(), span.start.col() + 1)
}

/// Tags the decoder understands: the core-schema ones. `!!str` forces a scalar to be text.
fn check_tag(tag: Option<&Tag>, at: (usize, usize), problems: &mut Vec<SyntaxProblem>) -> bool {
    let Some(tag) = tag else { return false };
    if tag.is_yaml_core_schema() {
        match tag.suffix.as_str() {
            "str" => return true,
            "null" | "bool" | "int" | "float" | "seq" | "map" => return false,
            _ => {}
        }
    }
    problems.push(SyntaxProblem {
        line: at.0,
        column: at.1,
        message: format!("the tag {tag} is not supported here"),
    });
    false
}

impl Builder {
    fn fatal(&mut self, at: (usize, usize), message: String) -> Result<(), ()> {
        self.problems.push(SyntaxProblem {
            line: at.0,
            column: at.1,
            message,
        });
        Err(())
    }

    fn count(&mut self, n: usize, at: (usize, usize)) -> Result<(), ()> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return self.fatal(
                at,
                format!("the document expands to more than {MAX_NODES} nodes (aliases included)"),
            );
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, at: (usize, usize)) -> Result<(), ()> {
        if self.stack.len() >= MAX_DEPTH {
            return self.fatal(at, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        self.count(1, at)?;
        self.stack.push(frame);
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn finish(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { pairs, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => pairs.push((k, node)),
            },
        }
    }

    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), ()> {
        let at = position(&span);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                if self.root.is_some() {
                    return self.fatal(at, "only one YAML document is allowed".to_string());
                }
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return self.fatal(at, "alias to an unknown anchor".to_string());
                };
                self.count(node.size(), at)?;
                self.finish(node);
            }
            Event::Scalar(text, style, anchor, tag) => {
                let forced_text = check_tag(tag.as_deref(), at, &mut self.problems);
                let plain = style == ScalarStyle::Plain && !forced_text;
                self.count(1, at)?;
                let node = Node {
                    kind: Kind::Scalar(Scalar {
                        text: text.into_owned(),
                        plain,
                    }),
                    line: at.0,
                    column: at.1,
                };
                self.remember(anchor, &node);
                self.finish(node);
            }
            Event::SequenceStart(anchor, tag) => {
                check_tag(tag.as_deref(), at, &mut self.problems);
                self.open(
                    Frame::Seq {
                        at,
                        anchor,
                        items: Vec::new(),
                    },
                    at,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                check_tag(tag.as_deref(), at, &mut self.problems);
                self.open(
                    Frame::Map {
                        at,
                        anchor,
                        pairs: Vec::new(),
                        key: None,
                    },
                    at,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { at, anchor, items }) => (
                        Node {
                            kind: Kind::Seq(items),
                            line: at.0,
                            column: at.1,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        at, anchor, pairs, ..
                    }) => (
                        Node {
                            kind: Kind::Map(pairs),
                            line: at.0,
                            column: at.1,
                        },
                        anchor,
                    ),
                    None => return self.fatal(at, "unbalanced YAML structure".to_string()),
                };
                self.remember(anchor, &node);
                self.finish(node);
            }
        }
        Ok(())
    }
}

/// Parses one YAML document. `Ok(None)` for an empty document (nothing but comments).
/// Problems that stop parsing (syntax errors) come back alone; unsupported tags are collected
/// and the tree is still returned so the decoder can report more.
pub(crate) fn parse(text: &str) -> (Option<Node>, Vec<SyntaxProblem>) {
    let mut builder = Builder {
        stack: Vec::new(),
        root: None,
        anchors: HashMap::new(),
        nodes: 0,
        problems: Vec::new(),
    };
    for item in Parser::new_from_str(text) {
        match item {
            Ok((event, span)) => {
                if builder.on_event(event, span).is_err() {
                    return (None, builder.problems);
                }
            }
            Err(error) => {
                let mark = error.marker();
                builder.problems.push(SyntaxProblem {
                    line: mark.line(),
                    column: mark.col() + 1,
                    message: format!("YAML syntax error: {}", error.info()),
                });
                return (None, builder.problems);
            }
        }
    }
    (builder.root, builder.problems)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scalar(node: &Node) -> &Scalar {
        match &node.kind {
            Kind::Scalar(s) => s,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn keeps_positions_duplicates_and_styles() {
        let (root, problems) = parse("a: 1\nb:\n  c: 'x'\na: off\n");
        assert!(problems.is_empty());
        let root = root.unwrap();
        let Kind::Map(pairs) = &root.kind else {
            panic!()
        };
        assert_eq!(pairs.len(), 3);
        assert_eq!((pairs[2].0.line, pairs[2].0.column), (4, 1));
        assert_eq!((pairs[2].1.line, pairs[2].1.column), (4, 4));
        assert!(scalar(&pairs[2].1).plain);
        assert_eq!(scalar(&pairs[2].1).as_bool(), None);
        let Kind::Map(inner) = &pairs[1].1.kind else {
            panic!()
        };
        assert!(!scalar(&inner[0].1).plain);
        assert_eq!((inner[0].1.line, inner[0].1.column), (3, 6));
    }

    #[test]
    fn str_tag_makes_text() {
        let (root, problems) = parse("a: !!str true\n");
        assert!(problems.is_empty());
        let Kind::Map(pairs) = &root.unwrap().kind else {
            panic!()
        };
        assert!(!scalar(&pairs[0].1).plain);
    }

    #[test]
    fn unknown_tag_is_a_problem() {
        let (_, problems) = parse("a: !custom x\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 1);
    }

    #[test]
    fn aliases_expand() {
        let (root, problems) = parse("a: &x [1, 2]\nb: *x\n");
        assert!(problems.is_empty());
        let Kind::Map(pairs) = &root.unwrap().kind else {
            panic!()
        };
        assert_eq!(pairs[0].1.kind, pairs[1].1.kind);
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let (root, problems) = parse(&text);
        assert!(root.is_none());
        assert!(problems[0].message.contains("expands"), "{problems:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(100_000);
        let (root, problems) = parse(&text);
        assert!(root.is_none());
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn second_document_is_refused() {
        let (_, problems) = parse("a: 1\n---\nb: 2\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 2);
    }

    #[test]
    fn syntax_error_has_a_line() {
        let (root, problems) = parse("a: 1\nb: [1, 2\nc: 3\n");
        assert!(root.is_none());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].line >= 2, "{problems:?}");
    }

    #[test]
    fn empty_document() {
        assert_eq!(parse(""), (None, vec![]));
        assert_eq!(parse("# only a comment\n"), (None, vec![]));
    }
}
