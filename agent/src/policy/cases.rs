//! Behaviour cases: YAML files of input events and the findings each must produce (or none),
//! run by `vigil policy test` and by `cargo test` (for the default pack).
//!
//! ```yaml
//! policies: [default]          # "default" (the embedded pack) and/or paths relative to this file
//! cases:
//!   - name: shell in a container
//!     event:
//!       kind: exec
//!       process: {binary: /bin/bash, args: [bash]}
//!       container: {id: abc, image: nginx:1.27}
//!     expect: [shell-in-container]        # or: [{rule: shell-in-container, action: none}]
//! ```

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    engine::PolicySet,
    error::{CheckError, CheckErrors, PolicyError},
    load,
    stage::PolicyStage,
    yaml::{self, Node, Reader},
};
use crate::event::{Detail, Event};

mod build;
use build::build_event;

/// The result of running case files.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    /// One line per failed case: `file:line:column: case `name`: expected ..., got ...`.
    pub failures: Vec<String>,
    /// Rules that at least one case expected, by name.
    pub covered: Vec<String>,
}

/// Runs the case file `path`.
pub fn run_file(path: &Path) -> Result<Report, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })?;
    run_text(
        &text,
        &path.display().to_string(),
        path.parent().unwrap_or(Path::new(".")),
    )
}

/// Runs cases from `text` (named `file`; policy paths are relative to `base`).
pub fn run_text(text: &str, file: &str, base: &Path) -> Result<Report, PolicyError> {
    let root = yaml::parse(text, file).map_err(|e| CheckErrors(vec![e]))?;
    let mut reader = Reader::new(file);
    let entries = reader
        .fields(&root, "", &["policies", "cases"])
        .unwrap_or_default();
    let get = |name: &str| {
        entries
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(_, _, v)| *v)
    };
    let mut sources = Vec::new();
    match get("policies") {
        None => sources = load::default_sources(),
        Some(node) => {
            let mut paths = Vec::new();
            for name in reader.strings(node, "policies") {
                if name == "default" {
                    sources.extend(load::default_sources());
                } else {
                    paths.push(base.join(name));
                }
            }
            sources.extend(load::read(&load::files(&paths)?)?);
        }
    }
    let set = Arc::new(load::compile(&sources)?);
    let mut report = Report::default();
    for case in parse_cases(&mut reader, &root, get("cases"))? {
        for (rule, _) in &case.expect {
            if !set.rules().iter().any(|r| r.info.name == *rule) {
                return Err(CheckErrors(vec![CheckError {
                    file: file.to_owned(),
                    line: case.line,
                    column: case.column,
                    field: format!("{}.expect", case.at),
                    message: format!("no rule named `{rule}` in the policies under test"),
                }])
                .into());
            }
            report.covered.push(rule.clone());
        }
        let got = run_case(&set, &case);
        let mut want = case.expect.clone();
        want.sort();
        let mut compared = got.clone();
        // An expectation without an action matches any action.
        for (i, (rule, action)) in compared.iter_mut().enumerate() {
            let _ = i;
            if want.iter().any(|(r, a)| r == rule && a.is_none()) {
                *action = None;
            }
        }
        compared.sort();
        if compared == want {
            report.passed += 1;
        } else {
            report.failures.push(format!(
                "{file}:{}:{}: case `{}`: expected {}, got {}",
                case.line,
                case.column,
                case.name,
                show(&want),
                show(&got)
            ));
        }
    }
    Ok(report)
}

/// The event of every case in `text` (named `file`) with the node it names, built as the
/// runner builds them: a corpus of domain events for other stages' tests and tools.
pub fn events(text: &str, file: &str) -> Result<Vec<(String, Event)>, PolicyError> {
    let root = yaml::parse(text, file).map_err(|e| CheckErrors(vec![e]))?;
    let mut reader = Reader::new(file);
    let entries = reader
        .fields(&root, "", &["policies", "cases"])
        .unwrap_or_default();
    let cases = entries
        .iter()
        .find(|(_, n, _)| *n == "cases")
        .map(|(_, _, v)| *v);
    Ok(parse_cases(&mut reader, &root, cases)?
        .into_iter()
        .map(|case| (case.node, case.event))
        .collect())
}

/// The cases under `cases:`; any problem so far (in `reader` too) is the error.
fn parse_cases(
    reader: &mut Reader<'_>,
    root: &Node,
    cases: Option<&Node>,
) -> Result<Vec<Case>, PolicyError> {
    let Some(cases) = cases else {
        reader.error(root, "cases", "a case file needs `cases:`");
        return Err(CheckErrors(std::mem::take(&mut reader.errors)).into());
    };
    let items = reader.list(cases, "cases").unwrap_or_default();
    let mut parsed = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if let Some(case) = parse_case(reader, item, &format!("cases[{i}]")) {
            parsed.push(case);
        }
    }
    if !reader.errors.is_empty() {
        return Err(CheckErrors(std::mem::take(&mut reader.errors)).into());
    }
    Ok(parsed)
}

fn show(findings: &[(String, Option<String>)]) -> String {
    if findings.is_empty() {
        return "no finding".into();
    }
    let items: Vec<_> = findings
        .iter()
        .map(|(rule, action)| match action {
            Some(a) => format!("{rule} ({a})"),
            None => rule.clone(),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// The findings of the case's event: `(rule, action as reported)`.
fn run_case(set: &Arc<PolicySet>, case: &Case) -> Vec<(String, Option<String>)> {
    let mut stage = PolicyStage::new(set.clone(), case.node.clone());
    let mut out = vec![case.event.clone()];
    stage.process(&mut out, 0);
    out.iter()
        .filter_map(|e| match &e.detail {
            Detail::Finding(f) => Some((f.rule.name.clone(), Some(f.outcome.action.to_owned()))),
            _ => None,
        })
        .collect()
}

struct Case {
    name: String,
    at: String,
    line: usize,
    column: usize,
    node: String,
    event: Event,
    expect: Vec<(String, Option<String>)>,
}

fn parse_case(reader: &mut Reader<'_>, node: &Node, at: &str) -> Option<Case> {
    let entries = reader.fields(node, at, &["name", "node", "event", "expect"])?;
    let get = |name: &str| {
        entries
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(_, _, v)| *v)
    };
    let name = get("name")
        .and_then(|v| reader.string(v, &yaml::join(at, "name")))
        .unwrap_or_else(|| at.to_owned());
    let node_name = get("node")
        .and_then(|v| reader.string(v, &yaml::join(at, "node")))
        .unwrap_or_else(|| "node-1".into());
    let Some(event_node) = get("event") else {
        reader.error(node, &yaml::join(at, "event"), "a case needs an `event`");
        return None;
    };
    let event = build_event(reader, event_node, &yaml::join(at, "event"))?;
    let Some(expect_node) = get("expect") else {
        reader.error(
            node,
            &yaml::join(at, "expect"),
            "a case needs `expect` (a list of rule names; [] for none)",
        );
        return None;
    };
    let field = yaml::join(at, "expect");
    let mut expect = Vec::new();
    for item in reader.list(expect_node, &field)? {
        if yaml::is_mapping(item) {
            let e = reader.fields(item, &field, &["rule", "action"])?;
            let rule = e
                .iter()
                .find(|(_, n, _)| *n == "rule")
                .and_then(|(_, _, v)| reader.string(v, &field));
            let action = e
                .iter()
                .find(|(_, n, _)| *n == "action")
                .and_then(|(_, _, v)| reader.string(v, &field));
            match rule {
                Some(rule) => expect.push((rule, action)),
                None => reader.error(item, &field, "an expectation needs `rule`"),
            }
        } else if let Some(rule) = reader.string(item, &field) {
            expect.push((rule, None));
        }
    }
    Some(Case {
        name,
        at: at.to_owned(),
        line: node.span.start.line(),
        column: node.span.start.col() + 1,
        node: node_name,
        event,
        expect,
    })
}

/// Every case file of `paths` (directories: their `*.yaml`/`*.yml`).
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyError> {
    load::files(paths)
}
