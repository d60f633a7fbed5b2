//! Conditions: fields tested by operators, combined with `all`, `any` and `not`.
//!
//! A condition mapping holds when every entry holds. An entry is `FIELD: OPERAND` (see
//! [`operator`](super::operator)), `all: [mappings]`, `any: [mappings]` or `not: mapping`
//! (`not: [mappings]` is "none of them"). A field with several values (`process.args`,
//! `ancestors.*`) holds when at least one value satisfies the operand; an absent field
//! satisfies nothing but `exists: false`.

use super::{
    field::{FIELD_NAMES, Field},
    kind::KindSet,
    operator::{self, Op, Operand},
    yaml::{self, Node, Reader},
};
use crate::event::Event;

#[derive(Debug)]
pub enum Cond {
    Test { field: Field, op: Op },
    Exists { field: Field, want: bool },
    All(Box<[Cond]>),
    Any(Box<[Cond]>),
    Not(Box<Cond>),
}

impl Cond {
    pub fn eval(&self, event: &Event, node: &str) -> bool {
        match self {
            Self::Test { field, op } => field.any(event, node, |v| op.test(v)),
            Self::Exists { field, want } => field.any(event, node, |_| true) == *want,
            Self::All(all) => all.iter().all(|c| c.eval(event, node)),
            Self::Any(any) => any.iter().any(|c| c.eval(event, node)),
            Self::Not(c) => !c.eval(event, node),
        }
    }

    /// All of `conds` (no wrapper for one).
    pub fn all(mut conds: Vec<Cond>) -> Self {
        if conds.len() == 1 {
            conds.remove(0)
        } else {
            Self::All(conds.into())
        }
    }
}

/// A condition at the top of a `match` (ANDed with the others), as action checks see it.
#[derive(Debug)]
pub struct Top {
    pub field: Option<Field>,
    /// The entry's key (`process.binary`, `any`...), for messages.
    pub key: String,
    /// Operators it uses (`equals`, `prefix`, `exists`...); empty for `all`/`any`/`not`.
    pub ops: Vec<&'static str>,
    /// `exists: false`, or a test under `not`: the field is required absent or unequal.
    pub negative: bool,
    pub line: usize,
    pub column: usize,
}

/// Parses the entries of one condition mapping (already read), for events of `kinds`.
pub(crate) fn parse_entries(
    reader: &mut Reader<'_>,
    entries: &[(&Node, &str, &Node)],
    at: &str,
    kinds: KindSet,
    tops: &mut Vec<Top>,
) -> Option<Vec<Cond>> {
    let mut conds = Vec::with_capacity(entries.len());
    let mut ok = true;
    for &(key, name, value) in entries {
        let path = yaml::join(at, name);
        let mut top = Top {
            field: None,
            key: name.to_owned(),
            ops: Vec::new(),
            negative: false,
            line: key.span.start.line(),
            column: key.span.start.col() + 1,
        };
        let cond = match name {
            "all" | "any" => list_of_mappings(reader, value, &path, kinds).map(|list| {
                if name == "all" {
                    Cond::All(list.into())
                } else {
                    Cond::Any(list.into())
                }
            }),
            "not" => {
                if yaml::is_sequence(value) {
                    list_of_mappings(reader, value, &path, kinds)
                        .map(|list| Cond::Not(Box::new(Cond::Any(list.into()))))
                } else {
                    mapping(reader, value, &path, kinds).map(|c| Cond::Not(Box::new(c)))
                }
            }
            _ => field_condition(reader, key, name, value, &path, kinds, &mut top),
        };
        match cond {
            Some(cond) => {
                conds.push(cond);
                tops.push(top);
            }
            None => ok = false,
        }
    }
    ok.then_some(conds)
}

/// A condition mapping (entries ANDed).
pub(crate) fn mapping(
    reader: &mut Reader<'_>,
    node: &Node,
    at: &str,
    kinds: KindSet,
) -> Option<Cond> {
    let entries = reader.mapping(node, at)?;
    if entries.is_empty() {
        reader.error(node, at, "an empty condition mapping");
        return None;
    }
    parse_entries(reader, &entries, at, kinds, &mut Vec::new()).map(Cond::all)
}

fn list_of_mappings(
    reader: &mut Reader<'_>,
    node: &Node,
    at: &str,
    kinds: KindSet,
) -> Option<Vec<Cond>> {
    let items = reader.list(node, at)?;
    if items.is_empty() {
        reader.error(node, at, "an empty list of conditions");
        return None;
    }
    let mut conds = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.into_iter().enumerate() {
        match mapping(reader, item, &format!("{at}[{i}]"), kinds) {
            Some(c) => conds.push(c),
            None => ok = false,
        }
    }
    ok.then_some(conds)
}

fn field_condition(
    reader: &mut Reader<'_>,
    key: &Node,
    name: &str,
    value: &Node,
    path: &str,
    kinds: KindSet,
    top: &mut Top,
) -> Option<Cond> {
    let Some(field) = Field::parse(name) else {
        reader.error(
            key,
            path,
            format!(
                "unknown field `{name}`; fields are {}",
                FIELD_NAMES.join(", ")
            ),
        );
        return None;
    };
    if !field.kinds().intersects(kinds) {
        let kinds: Vec<_> = kinds.names().collect();
        let has: Vec<_> = field.kinds().names().collect();
        reader.error(
            key,
            path,
            format!(
                "field `{name}` is never present in events of kind {}; it is in {}",
                kinds.join(", "),
                has.join(", ")
            ),
        );
        return None;
    }
    let cond = match operator::compile(reader, value, field.value_type(), path)? {
        Operand::Test(op) => {
            op_names(&op, &mut top.ops);
            top.negative = matches!(op, Op::Not(_));
            Cond::Test {
                field: field.clone(),
                op,
            }
        }
        Operand::Exists(want) => {
            top.ops.push("exists");
            top.negative = !want;
            Cond::Exists {
                field: field.clone(),
                want,
            }
        }
    };
    top.field = Some(field);
    Some(cond)
}

fn op_names(op: &Op, out: &mut Vec<&'static str>) {
    out.push(match op {
        Op::StrIn(_) | Op::IntIn(_) | Op::IpIn(_) | Op::Bool(_) | Op::Flags(_) => "equals",
        Op::Prefix(_) => "prefix",
        Op::Suffix(_) => "suffix",
        Op::Contains(_) => "contains",
        Op::Glob(_) => "glob",
        Op::Regex(_) => "regex",
        Op::Gt(_) | Op::Gte(_) | Op::Lt(_) | Op::Lte(_) => "range",
        Op::Cidr(_) => "cidr",
        Op::Not(_) => "not",
        Op::All(ops) | Op::AnyOf(ops) => {
            ops.iter().for_each(|op| op_names(op, out));
            return;
        }
    });
}
