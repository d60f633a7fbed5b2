//! Operators: what one value of a field is tested against, compiled once from YAML.
//!
//! An operand is a scalar (`equals`), a list (`in`) or a mapping of operators that must all
//! hold for the same value: `equals`, `in`, `prefix`, `suffix`, `contains`, `glob`, `regex`,
//! `cidr`, `gt`, `gte`, `lt`, `lte`, `not` (and `exists`, handled by the condition).

use std::net::IpAddr;

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use ipnet::IpNet;
use regex::bytes::{RegexSet, RegexSetBuilder};

use super::{
    field::{Type, Value},
    yaml::{self, Node, Reader},
};
use crate::syscall::ArgValue;

/// Operator names, for messages and docs.
pub const OPERATORS: &[&str] = &[
    "equals", "in", "prefix", "suffix", "contains", "glob", "regex", "cidr", "gt", "gte", "lt",
    "lte", "not", "exists",
];

/// Compiled regexes are capped (per set) so that a policy cannot make the agent slow or big.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One compiled test on one value.
#[derive(Debug)]
pub enum Op {
    /// Equal to one of (bytes).
    StrIn(Box<[Box<[u8]>]>),
    Prefix(Box<[Box<[u8]>]>),
    Suffix(Box<[Box<[u8]>]>),
    Contains(Box<[Box<[u8]>]>),
    Glob(GlobSet),
    Regex(RegexSet),
    IntIn(Box<[i128]>),
    Gt(i128),
    Gte(i128),
    Lt(i128),
    Lte(i128),
    IpIn(Box<[IpAddr]>),
    Cidr(Box<[IpNet]>),
    Bool(bool),
    /// Any of these `(mask, value)` pairs: `flags & mask == value`.
    Flags(Box<[(u64, u64)]>),
    Not(Box<Op>),
    All(Box<[Op]>),
    /// A syscall argument compared with a list mixing numbers and strings.
    AnyOf(Box<[Op]>),
}

impl Op {
    pub fn test(&self, value: Value<'_>) -> bool {
        match self {
            Self::StrIn(list) => str_of(value).is_some_and(|s| list.iter().any(|v| **v == *s)),
            Self::Prefix(list) => {
                str_of(value).is_some_and(|s| list.iter().any(|v| s.starts_with(v)))
            }
            Self::Suffix(list) => {
                str_of(value).is_some_and(|s| list.iter().any(|v| s.ends_with(v)))
            }
            Self::Contains(list) => {
                str_of(value).is_some_and(|s| list.iter().any(|v| contains(s, v)))
            }
            Self::Glob(set) => str_of(value).is_some_and(|s| {
                let path = std::path::Path::new(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(s),
                );
                set.is_match_candidate(&Candidate::new(path))
            }),
            Self::Regex(set) => str_of(value).is_some_and(|s| set.is_match(s)),
            Self::IntIn(list) => int_of(value).is_some_and(|n| list.contains(&n)),
            Self::Gt(x) => int_of(value).is_some_and(|n| n > *x),
            Self::Gte(x) => int_of(value).is_some_and(|n| n >= *x),
            Self::Lt(x) => int_of(value).is_some_and(|n| n < *x),
            Self::Lte(x) => int_of(value).is_some_and(|n| n <= *x),
            Self::IpIn(list) => ip_of(value)
                .is_some_and(|ip| list.iter().any(|v| *v == ip || Some(*v) == mapped(ip))),
            Self::Cidr(nets) => ip_of(value).is_some_and(|ip| {
                let v4 = mapped(ip);
                nets.iter()
                    .any(|net| net.contains(&ip) || v4.is_some_and(|v4| net.contains(&v4)))
            }),
            Self::Bool(b) => matches!(value, Value::Bool(v) if v == *b),
            Self::Flags(pairs) => matches!(value, Value::Flags(f)
                if pairs.iter().any(|(mask, want)| f & mask == *want)),
            Self::Not(op) => !op.test(value),
            Self::All(ops) => ops.iter().all(|op| op.test(value)),
            Self::AnyOf(ops) => ops.iter().any(|op| op.test(value)),
        }
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 address, so that `10.0.0.0/8` also covers
/// `::ffff:10.1.2.3` (a dual-stack socket connecting to an IPv4 peer).
fn mapped(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn str_of(value: Value<'_>) -> Option<&[u8]> {
    match value {
        Value::Str(s) => Some(s),
        Value::Arg(ArgValue::Str { bytes, .. }) => Some(bytes),
        Value::Arg(ArgValue::Named { names, .. }) => Some(names.as_bytes()),
        _ => None,
    }
}

fn int_of(value: Value<'_>) -> Option<i128> {
    match value {
        Value::Int(n) => Some(n),
        Value::Arg(ArgValue::Int(n)) => Some((*n).into()),
        Value::Arg(ArgValue::Uint(n) | ArgValue::Hex(n) | ArgValue::Named { raw: n, .. }) => {
            Some((*n).into())
        }
        _ => None,
    }
}

fn ip_of(value: Value<'_>) -> Option<IpAddr> {
    match value {
        Value::Ip(ip) => Some(ip),
        _ => None,
    }
}

/// What an operand compiles to: a test per value, or a test of presence.
pub enum Operand {
    Test(Op),
    Exists(bool),
}

/// Compiles the operand `node` for a field of type `ty`; errors go to `reader` (at `at`).
pub(crate) fn compile(reader: &mut Reader<'_>, node: &Node, ty: Type, at: &str) -> Option<Operand> {
    if yaml::is_mapping(node) {
        let entries = reader.fields(node, at, OPERATORS)?;
        if entries.is_empty() {
            reader.error(node, at, "an operator mapping needs at least one operator");
            return None;
        }
        if let Some((key, _, value)) = entries.iter().find(|(_, n, _)| *n == "exists") {
            if entries.len() > 1 {
                reader.error(key, at, "`exists` cannot be combined with other operators");
                return None;
            }
            return reader
                .boolean(value, &yaml::join(at, "exists"))
                .map(Operand::Exists);
        }
        let mut ops = Vec::with_capacity(entries.len());
        let mut ok = true;
        for (_, name, value) in entries {
            let path = yaml::join(at, name);
            match operator(reader, name, value, ty, &path) {
                Some(op) => ops.push(op),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        Some(Operand::Test(if ops.len() == 1 {
            ops.remove(0)
        } else {
            Op::All(ops.into())
        }))
    } else if yaml::is_sequence(node) {
        operator(reader, "in", node, ty, at).map(Operand::Test)
    } else {
        operator(reader, "equals", node, ty, at).map(Operand::Test)
    }
}

fn operator(reader: &mut Reader<'_>, name: &str, node: &Node, ty: Type, at: &str) -> Option<Op> {
    let wrong_type = |reader: &mut Reader<'_>| {
        reader.error(
            node,
            at,
            format!("operator `{name}` does not apply to {}", ty.name()),
        );
        None
    };
    match name {
        "not" => match compile(reader, node, ty, at)? {
            Operand::Test(op) => Some(Op::Not(Box::new(op))),
            Operand::Exists(_) => {
                reader.error(
                    node,
                    at,
                    "use `exists: false` rather than `not: {exists: true}`",
                );
                None
            }
        },
        "equals" | "in" => {
            let items = if name == "in" {
                reader.list(node, at)?
            } else if yaml::is_sequence(node) || yaml::is_mapping(node) {
                reader.error(node, at, "`equals` takes one value (use `in` for a list)");
                return None;
            } else {
                vec![node]
            };
            equals(reader, &items, ty, at)
        }
        "prefix" | "suffix" | "contains" | "glob" | "regex" => {
            if !matches!(ty, Type::Str | Type::Arg) {
                return wrong_type(reader);
            }
            let items = reader.one_or_many(node);
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                values.push((item, reader.string(item, at)?));
            }
            match name {
                "glob" => glob(reader, &values, at).map(Op::Glob),
                "regex" => regex(reader, &values, at).map(Op::Regex),
                _ => {
                    let bytes = values
                        .into_iter()
                        .map(|(_, v)| v.into_bytes().into_boxed_slice())
                        .collect();
                    Some(match name {
                        "prefix" => Op::Prefix(bytes),
                        "suffix" => Op::Suffix(bytes),
                        _ => Op::Contains(bytes),
                    })
                }
            }
        }
        "cidr" => {
            if ty != Type::Ip {
                return wrong_type(reader);
            }
            let mut nets = Vec::new();
            for item in reader.one_or_many(node) {
                let text = reader.string(item, at)?;
                match parse_net(&text) {
                    Some(net) => nets.push(net),
                    None => {
                        reader.error(
                            item,
                            at,
                            format!("`{text}` is not a CIDR (such as 10.0.0.0/8 or fd00::/8)"),
                        );
                        return None;
                    }
                }
            }
            Some(Op::Cidr(nets.into()))
        }
        "gt" | "gte" | "lt" | "lte" => {
            if !matches!(ty, Type::Int | Type::Arg) {
                return wrong_type(reader);
            }
            let n = i128::from(reader.integer(node, at)?);
            Some(match name {
                "gt" => Op::Gt(n),
                "gte" => Op::Gte(n),
                "lt" => Op::Lt(n),
                _ => Op::Lte(n),
            })
        }
        _ => unreachable!("operator names are checked by the caller"),
    }
}

/// A bare address is a host network (`/32`, `/128`).
fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

fn equals(reader: &mut Reader<'_>, items: &[&Node], ty: Type, at: &str) -> Option<Op> {
    match ty {
        Type::Str => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                list.push(reader.string(item, at)?.into_bytes().into_boxed_slice());
            }
            Some(Op::StrIn(list.into()))
        }
        Type::Int => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                list.push(i128::from(reader.integer(item, at)?));
            }
            Some(Op::IntIn(list.into()))
        }
        Type::Ip => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                let text = reader.string(item, at)?;
                match text.parse::<IpAddr>() {
                    Ok(ip) => list.push(ip),
                    Err(_) => {
                        reader.error(
                            item,
                            at,
                            format!("`{text}` is not an IP address (use `cidr` for networks)"),
                        );
                        return None;
                    }
                }
            }
            Some(Op::IpIn(list.into()))
        }
        Type::Bool => {
            if items.len() != 1 {
                reader.error(
                    items.first().copied()?,
                    at,
                    "a boolean field takes one value",
                );
                return None;
            }
            reader.boolean(items[0], at).map(Op::Bool)
        }
        Type::Flags => {
            let mut pairs = Vec::with_capacity(items.len());
            for item in items {
                let name = reader.string(item, at)?;
                match open_flag(&name) {
                    Some(pair) => pairs.push(pair),
                    None => {
                        reader.error(item, at, format!("`{name}` is not an open flag (O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC...)"));
                        return None;
                    }
                }
            }
            Some(Op::Flags(pairs.into()))
        }
        Type::Arg => {
            let (mut strings, mut ints) = (Vec::new(), Vec::new());
            for item in items {
                if let Some(n) = yaml::int_of(item) {
                    ints.push(i128::from(n));
                } else {
                    strings.push(reader.string(item, at)?.into_bytes().into_boxed_slice());
                }
            }
            Some(match (strings.is_empty(), ints.is_empty()) {
                (_, true) => Op::StrIn(strings.into()),
                (true, false) => Op::IntIn(ints.into()),
                (false, false) => Op::AnyOf(Box::new([
                    Op::StrIn(strings.into()),
                    Op::IntIn(ints.into()),
                ])),
            })
        }
    }
}

/// `(mask, value)` of open flag `name`: the access mode is two bits, the rest one bit each.
pub(crate) fn open_flag(name: &str) -> Option<(u64, u64)> {
    match name {
        "O_RDONLY" => return Some((3, 0)),
        "O_WRONLY" => return Some((3, 1)),
        "O_RDWR" => return Some((3, 2)),
        _ => {}
    }
    (2..32)
        .map(|bit| 1u64 << bit)
        .find(|&bit| {
            crate::files::open_flag_names(bit)
                .get(1)
                .is_some_and(|n| n == name)
        })
        .map(|bit| (bit, bit))
}

fn glob(reader: &mut Reader<'_>, patterns: &[(&Node, String)], at: &str) -> Option<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for (node, pattern) in patterns {
        // `*` stays within one path component (`**` crosses them), as in a shell.
        match GlobBuilder::new(pattern).literal_separator(true).build() {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(error) => {
                reader.error(node, at, format!("bad glob `{pattern}`: {}", error.kind()));
                return None;
            }
        }
    }
    match builder.build() {
        Ok(set) => Some(set),
        Err(error) => {
            reader.error(patterns[0].0, at, format!("bad glob: {error}"));
            None
        }
    }
}

fn regex(reader: &mut Reader<'_>, patterns: &[(&Node, String)], at: &str) -> Option<RegexSet> {
    // Each pattern alone first, so that an error points at the one at fault.
    for (node, pattern) in patterns {
        if let Err(error) = RegexSetBuilder::new([pattern])
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            reader.error(
                node,
                at,
                format!("bad regex `{pattern}`: {}", one_line(&error.to_string())),
            );
            return None;
        }
    }
    match RegexSetBuilder::new(patterns.iter().map(|(_, p)| p))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        Ok(set) => Some(set),
        Err(error) => {
            reader.error(
                patterns[0].0,
                at,
                format!("bad regex: {}", one_line(&error.to_string())),
            );
            None
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
