//! A policy file: `rules:`, each rule read, checked and compiled (see docs/policy.md).

use std::sync::Arc;

use super::{
    action::{self, Action, Mode, Severity},
    condition::{self, Cond},
    field::{Field, ProcessField},
    kind::{self, KindSet},
    operator::Op,
    yaml::{self, Node, Reader},
};

/// What a finding says about the rule that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    pub name: String,
    pub description: String,
    pub severity: Severity,
    /// MITRE ATT&CK technique ids (`T1059.004`).
    pub tags: Vec<String>,
    /// The file the rule came from (`policies/default/container.yaml` for the default pack).
    pub source: String,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub info: Arc<RuleInfo>,
    /// The kinds it applies to (every kind when the match names none).
    pub kinds: KindSet,
    pub matcher: Option<Cond>,
    /// The finding is suppressed when any of these holds.
    pub exceptions: Vec<Cond>,
    /// Where the rule applies (ANDed with the match).
    pub scope: Option<Cond>,
    pub action: Action,
    pub mode: Mode,
    /// Where the rule starts in its file (1-based line, column).
    pub line: usize,
    pub column: usize,
}

impl Rule {
    /// Whether the rule fires on `event` (whose kind is already known to be in `kinds`).
    pub fn fires(&self, event: &crate::event::Event, node: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.eval(event, node))
            && self.matcher.as_ref().is_none_or(|m| m.eval(event, node))
            && !self.exceptions.iter().any(|e| e.eval(event, node))
    }
}

const RULE_FIELDS: &[&str] = &[
    "name",
    "description",
    "severity",
    "tags",
    "match",
    "exceptions",
    "scope",
    "action",
    "mode",
    "enabled",
];
const SCOPE_FIELDS: &[&str] = &["nodes", "namespaces", "pods", "images", "cgroups"];

/// Reads the rules of one policy file. Disabled rules are checked but left out.
pub fn parse_file(text: &str, file: &str) -> Result<Vec<Rule>, Vec<super::CheckError>> {
    let root = yaml::parse(text, file).map_err(|e| vec![e])?;
    let mut reader = Reader::new(file);
    let mut rules = Vec::new();
    if let Some(entries) = reader.fields(&root, "", &["rules"]) {
        match entries.first() {
            None => reader.error(&root, "rules", "a policy file needs `rules:`"),
            Some((_, _, list)) => {
                if let Some(items) = reader.list(list, "rules") {
                    for (i, item) in items.into_iter().enumerate() {
                        if let Some(rule) = parse_rule(&mut reader, item, &format!("rules[{i}]")) {
                            rules.push(rule);
                        }
                    }
                }
            }
        }
    }
    if reader.errors.is_empty() {
        Ok(rules.into_iter().flatten().collect())
    } else {
        Err(reader.errors)
    }
}

/// `Some(None)`: a valid, disabled rule.
fn parse_rule(reader: &mut Reader<'_>, node: &Node, at: &str) -> Option<Option<Rule>> {
    let entries = reader.fields(node, at, RULE_FIELDS)?;
    let get = |name: &str| {
        entries
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(k, _, v)| (*k, *v))
    };
    let errors_before = reader.errors.len();
    let name = match get("name") {
        Some((_, v)) => reader
            .string(v, &yaml::join(at, "name"))
            .unwrap_or_default(),
        None => {
            reader.error(node, &yaml::join(at, "name"), "a rule needs a `name`");
            String::new()
        }
    };
    if !name.is_empty()
        && !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        let (_, v) = get("name")?;
        reader.error(
            v,
            &yaml::join(at, "name"),
            "a rule name is letters, digits, `-`, `_` and `.`",
        );
    }
    let at = if name.is_empty() {
        at.to_owned()
    } else {
        format!("{at}({name})")
    };
    let at = at.as_str();
    let description = get("description")
        .and_then(|(_, v)| reader.string(v, &yaml::join(at, "description")))
        .unwrap_or_default();
    let severity = match get("severity") {
        None => Severity::default(),
        Some((_, v)) => {
            let field = yaml::join(at, "severity");
            let text = reader.string(v, &field).unwrap_or_default();
            Severity::parse(&text).unwrap_or_else(|| {
                reader.error(
                    v,
                    &field,
                    format!("unknown severity `{text}`: info, low, medium, high or critical"),
                );
                Severity::default()
            })
        }
    };
    let mut tags = Vec::new();
    if let Some((_, v)) = get("tags") {
        let field = yaml::join(at, "tags");
        for item in reader.one_or_many(v) {
            let Some(tag) = reader.string(item, &field) else {
                continue;
            };
            if !is_technique_id(&tag) {
                reader.error(
                    item,
                    &field,
                    format!("`{tag}` is not a MITRE ATT&CK technique id (T1059 or T1059.004)"),
                );
            }
            tags.push(tag);
        }
    }
    let enabled = get("enabled")
        .and_then(|(_, v)| reader.boolean(v, &yaml::join(at, "enabled")))
        .unwrap_or(true);
    let mode = match get("mode") {
        None => Mode::default(),
        Some((_, v)) => {
            let field = yaml::join(at, "mode");
            let text = reader.string(v, &field).unwrap_or_default();
            Mode::parse(&text).unwrap_or_else(|| {
                reader.error(
                    v,
                    &field,
                    format!("unknown mode `{text}`: monitor or enforce"),
                );
                Mode::default()
            })
        }
    };
    let action_node = get("action");
    let action = match action_node {
        None => Action::None,
        Some((_, v)) => {
            let field = yaml::join(at, "action");
            let text = reader.string(v, &field).unwrap_or_default();
            Action::parse(&text).unwrap_or_else(|| {
                let names: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
                reader.error(
                    v,
                    &field,
                    format!("unknown action `{text}`: {} (or report)", names.join(", ")),
                );
                Action::None
            })
        }
    };

    // match: `kind` (one or a list) indexes the rule; the other entries are conditions.
    let mut kinds = None;
    let mut tops = Vec::new();
    let mut matcher = None;
    match get("match") {
        None => reader.error(node, &yaml::join(at, "match"), "a rule needs a `match`"),
        Some((_, m)) => {
            let field = yaml::join(at, "match");
            if let Some(entries) = reader.mapping(m, &field) {
                let mut rest = Vec::with_capacity(entries.len());
                for (key, name, value) in entries {
                    if name == "kind" {
                        kinds = Some(parse_kinds(reader, value, &yaml::join(&field, "kind")));
                    } else {
                        rest.push((key, name, value));
                    }
                }
                if let Some(conds) = condition::parse_entries(
                    reader,
                    &rest,
                    &field,
                    kinds.unwrap_or(KindSet::ALL),
                    &mut tops,
                ) {
                    matcher = (!conds.is_empty()).then(|| Cond::all(conds));
                }
            }
        }
    }
    let rule_kinds = kinds.unwrap_or(KindSet::ALL);
    let mut exceptions = Vec::new();
    if let Some((_, v)) = get("exceptions") {
        let field = yaml::join(at, "exceptions");
        if let Some(items) = reader.list(v, &field) {
            for (i, item) in items.into_iter().enumerate() {
                if let Some(c) =
                    condition::mapping(reader, item, &format!("{field}[{i}]"), rule_kinds)
                {
                    exceptions.push(c);
                }
            }
        }
    }
    let mut scope_keys = Vec::new();
    let scope = get("scope")
        .and_then(|(_, v)| parse_scope(reader, v, &yaml::join(at, "scope"), &mut scope_keys));

    if reader.errors.len() == errors_before {
        let shape = action::Shape {
            kinds,
            tops: &tops,
            has_exceptions: !exceptions.is_empty(),
            scope: &scope_keys,
        };
        if let Some((field, message)) = action::check(action, &shape) {
            let target = locate(&entries, &field).unwrap_or(node);
            reader.error(target, &yaml::join(at, &field), message);
        }
    }
    if reader.errors.len() != errors_before {
        return None;
    }
    Some(enabled.then(|| Rule {
        info: Arc::new(RuleInfo {
            name,
            description,
            severity,
            tags,
            source: reader.file.to_owned(),
        }),
        kinds: rule_kinds,
        matcher,
        exceptions,
        scope,
        action,
        mode,
        line: node.span.start.line(),
        column: node.span.start.col() + 1,
    }))
}

/// The node an action error points at: the named rule entry or top condition.
fn locate<'n>(entries: &[(&'n Node, &'n str, &'n Node)], field: &str) -> Option<&'n Node> {
    let head = field.split('.').next().unwrap_or(field);
    let rest = field.split_once('.').map(|(_, r)| r);
    let (key, _, value) = entries.iter().find(|(_, n, _)| *n == head)?;
    if let Some(rest) = rest
        && let Some(inner) = value.data.as_mapping()
    {
        if let Some(k) = inner.keys().find(|k| yaml::str_of(k) == Some(rest)) {
            return Some(k);
        }
    }
    Some(if head == "action" { value } else { key })
}

fn parse_kinds(reader: &mut Reader<'_>, node: &Node, at: &str) -> KindSet {
    let mut set = KindSet::NONE;
    for item in reader.one_or_many(node) {
        let Some(name) = reader.string(item, at) else {
            continue;
        };
        match kind::index(&name) {
            Some(i) => set.0 |= 1 << i,
            None => reader.error(
                item,
                at,
                format!("unknown kind `{name}`: {}", kind::KINDS.join(", ")),
            ),
        }
    }
    set
}

/// `scope`: each list present must match (globs): `nodes` the node name, `namespaces` and
/// `pods` the pod's, `images` the container's image, `cgroups` the process's cgroup path.
fn parse_scope(
    reader: &mut Reader<'_>,
    node: &Node,
    at: &str,
    keys: &mut Vec<&'static str>,
) -> Option<Cond> {
    let entries = reader.fields(node, at, SCOPE_FIELDS)?;
    let mut conds = Vec::new();
    for (_, name, value) in entries {
        let field = match name {
            "nodes" => Field::Node,
            "namespaces" => Field::PodNamespace,
            "pods" => Field::PodName,
            "images" => Field::ContainerImage,
            _ => Field::Process(ProcessField::Cgroup),
        };
        keys.push(SCOPE_FIELDS.iter().copied().find(|k| *k == name)?);
        let path = yaml::join(at, name);
        let patterns: Vec<_> = reader
            .one_or_many(value)
            .into_iter()
            .filter_map(|n| reader.string(n, &path).map(|s| (n, s)))
            .collect();
        let mut builder = globset::GlobSetBuilder::new();
        for (n, pattern) in &patterns {
            match globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
            {
                Ok(glob) => {
                    builder.add(glob);
                }
                Err(error) => {
                    reader.error(n, &path, format!("bad glob `{pattern}`: {}", error.kind()))
                }
            }
        }
        if let Ok(set) = builder.build() {
            conds.push(Cond::Test {
                field,
                op: Op::Glob(set),
            });
        }
    }
    (!conds.is_empty()).then(|| Cond::all(conds))
}

/// `T` and four digits, optionally `.` and three digits.
fn is_technique_id(tag: &str) -> bool {
    let b = tag.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..]),
        _ => false,
    }
}
