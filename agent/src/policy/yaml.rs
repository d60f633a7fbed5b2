//! A YAML document as a tree of nodes that know where they are, and the reader that turns
//! them into policy values while collecting [`CheckError`]s (so one run reports them all).

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use super::error::CheckError;

pub(crate) type Node = MarkedYamlOwned;

/// Parses `text` (one document; empty text is an empty mapping-less null).
pub(crate) fn parse(text: &str, file: &str) -> Result<Node, CheckError> {
    match Node::load_from_str(text) {
        Ok(docs) => Ok(docs
            .into_iter()
            .next()
            .unwrap_or_else(|| Node::from_bare_yaml(saphyr::Yaml::Value(saphyr::Scalar::Null)))),
        Err(error) => Err(CheckError {
            file: file.to_owned(),
            line: error.marker().line(),
            column: error.marker().col() + 1,
            field: "yaml".into(),
            message: error.info().to_owned(),
        }),
    }
}

/// Collects errors for one file.
pub(crate) struct Reader<'f> {
    pub file: &'f str,
    pub errors: Vec<CheckError>,
}

impl<'f> Reader<'f> {
    pub fn new(file: &'f str) -> Self {
        Self {
            file,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, node: &Node, field: &str, message: impl Into<String>) {
        self.errors.push(CheckError {
            file: self.file.to_owned(),
            line: node.span.start.line(),
            column: node.span.start.col() + 1,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// The entries of a mapping with string keys; an error (and `None`) otherwise.
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
    ) -> Option<Vec<(&'n Node, &'n str, &'n Node)>> {
        let YamlDataOwned::Mapping(map) = &untag(node).data else {
            self.error(
                node,
                field,
                format!("expected a mapping, found {}", describe(node)),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            match str_of(key) {
                Some(name) => entries.push((key, name, value)),
                None => self.error(key, field, "mapping keys must be strings"),
            }
        }
        Some(entries)
    }

    /// The entries of a mapping whose keys must be in `known`; an unknown key is an error.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
        known: &[&str],
    ) -> Option<Vec<(&'n Node, &'n str, &'n Node)>> {
        let entries = self.mapping(node, field)?;
        let mut kept = Vec::with_capacity(entries.len());
        for (key, name, value) in entries {
            if known.contains(&name) {
                kept.push((key, name, value));
            } else {
                self.error(
                    key,
                    &join(field, name),
                    format!(
                        "unknown field `{name}`, expected one of: {}",
                        known.join(", ")
                    ),
                );
            }
        }
        Some(kept)
    }

    pub fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match str_of(node) {
            Some(s) => Some(s.to_owned()),
            None => {
                self.error(
                    node,
                    field,
                    format!("expected a string, found {}", describe(node)),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match &untag(node).data {
            YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(*b),
            _ => {
                self.error(
                    node,
                    field,
                    format!("expected true or false, found {}", describe(node)),
                );
                None
            }
        }
    }

    pub fn integer(&mut self, node: &Node, field: &str) -> Option<i64> {
        match int_of(node) {
            Some(n) => Some(n),
            None => {
                self.error(
                    node,
                    field,
                    format!("expected an integer, found {}", describe(node)),
                );
                None
            }
        }
    }

    /// A list, or a single value standing for a list of one.
    pub fn one_or_many<'n>(&mut self, node: &'n Node) -> Vec<&'n Node> {
        match &untag(node).data {
            YamlDataOwned::Sequence(items) => items.iter().collect(),
            _ => vec![node],
        }
    }

    /// A list (a single value is an error).
    pub fn list<'n>(&mut self, node: &'n Node, field: &str) -> Option<Vec<&'n Node>> {
        match &untag(node).data {
            YamlDataOwned::Sequence(items) => Some(items.iter().collect()),
            _ => {
                self.error(
                    node,
                    field,
                    format!("expected a list, found {}", describe(node)),
                );
                None
            }
        }
    }

    pub fn strings(&mut self, node: &Node, field: &str) -> Vec<String> {
        let items = self.one_or_many(node);
        items
            .into_iter()
            .filter_map(|item| self.string(item, field))
            .collect()
    }
}

/// A tagged node's content (tags carry no meaning in policies).
pub(crate) fn untag(node: &Node) -> &Node {
    match &node.data {
        YamlDataOwned::Tagged(_, inner) => untag(inner),
        _ => node,
    }
}

pub(crate) fn str_of(node: &Node) -> Option<&str> {
    match &untag(node).data {
        YamlDataOwned::Value(ScalarOwned::String(s)) => Some(s),
        _ => None,
    }
}

pub(crate) fn int_of(node: &Node) -> Option<i64> {
    match &untag(node).data {
        YamlDataOwned::Value(ScalarOwned::Integer(n)) => Some(*n),
        _ => None,
    }
}

pub(crate) fn is_mapping(node: &Node) -> bool {
    matches!(&untag(node).data, YamlDataOwned::Mapping(_))
}

pub(crate) fn is_sequence(node: &Node) -> bool {
    matches!(&untag(node).data, YamlDataOwned::Sequence(_))
}

/// What a node is, for messages.
pub(crate) fn describe(node: &Node) -> String {
    match &untag(node).data {
        YamlDataOwned::Value(ScalarOwned::Null) => "nothing (null)".into(),
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => format!("`{b}`"),
        YamlDataOwned::Value(ScalarOwned::Integer(n)) => format!("`{n}`"),
        YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => format!("`{f}`"),
        YamlDataOwned::Value(ScalarOwned::String(s)) => format!("`{s}`"),
        YamlDataOwned::Sequence(_) => "a list".into(),
        YamlDataOwned::Mapping(_) => "a mapping".into(),
        _ => "an unsupported value".into(),
    }
}

/// `parent.child`, or `child` at the top.
pub(crate) fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}
