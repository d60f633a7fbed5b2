//! `vigil inspect --tree`: recorded events (the API's messages) as a process tree, each
//! process with its command line and what it did on the network and to files, as a readable
//! report or JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::proto::{self, event::Detail};

/// One process of the tree, keyed by its tgid and start time.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Node {
    pub pid: u32,
    pub ppid: u32,
    pub start_time_ns: u64,
    pub binary: String,
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container: String,
    /// What it did, in order: `connect 10.0.0.1:443 ok`, `open /etc/passwd`, `finding ...`.
    pub activity: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
    pub children: Vec<Node>,
}

/// Which part of the tree to show.
#[derive(Clone, Debug, Default)]
pub enum Root {
    #[default]
    All,
    Pid(u32),
    Container(String),
}

/// The process trees of `events`, roots first by start time.
pub fn tree(events: &[proto::Event], root: &Root) -> Vec<Node> {
    let mut nodes: BTreeMap<(u32, u64), Node> = BTreeMap::new();
    for event in events {
        let Some(p) = &event.process else { continue };
        let node = nodes.entry((p.tgid, p.start_time_ns)).or_default();
        node.pid = p.tgid;
        node.ppid = p.ppid;
        node.start_time_ns = p.start_time_ns;
        // The latest exec names the process.
        if !p.binary.is_empty() {
            node.binary.clone_from(&p.binary);
            node.args.clone_from(&p.args);
        }
        if let Some(c) = &event.container {
            node.container.clone_from(&c.id);
        }
        if let Some(line) = activity(event) {
            node.activity.push(line);
        }
        if let Some(Detail::Exit(exit)) = &event.detail {
            node.exit = Some(match (exit.exit_code, exit.signal) {
                (_, Some(signal)) => format!("signal {signal}"),
                (Some(code), None) => format!("code {code}"),
                (None, None) => "exited".into(),
            });
        }
    }
    // Children under the newest process of their ppid that started before them.
    let keys: Vec<(u32, u64)> = nodes.keys().copied().collect();
    let mut parent_of: BTreeMap<(u32, u64), (u32, u64)> = BTreeMap::new();
    for &(pid, start) in &keys {
        let ppid = nodes[&(pid, start)].ppid;
        if let Some(&parent) = keys
            .iter()
            .filter(|(p, s)| *p == ppid && *s <= start && (*p, *s) != (pid, start))
            .max_by_key(|(_, s)| *s)
        {
            parent_of.insert((pid, start), parent);
        }
    }
    // Attach deepest first: children sorted by start time, built bottom-up.
    let mut order = keys.clone();
    order.sort_by_key(|k| std::cmp::Reverse(depth(k, &parent_of)));
    for key in order {
        if let Some(parent) = parent_of.get(&key).copied()
            && let Some(child) = nodes.remove(&key)
            && let Some(parent) = nodes.get_mut(&parent)
        {
            parent.children.push(child);
            parent.children.sort_by_key(|c| c.start_time_ns);
        }
    }
    let mut roots: Vec<Node> = nodes.into_values().collect();
    roots.sort_by_key(|n| n.start_time_ns);
    match root {
        Root::All => roots,
        Root::Pid(pid) => roots
            .iter()
            .filter_map(|r| find(r, &|n| n.pid == *pid))
            .collect(),
        Root::Container(id) => {
            let mut out = Vec::new();
            for r in &roots {
                collect_topmost(r, &|n| n.container.starts_with(id.as_str()), &mut out);
            }
            out
        }
    }
}

fn depth(key: &(u32, u64), parent_of: &BTreeMap<(u32, u64), (u32, u64)>) -> usize {
    let mut depth = 0;
    let mut at = *key;
    while let Some(parent) = parent_of.get(&at) {
        depth += 1;
        at = *parent;
        if depth > 4096 {
            break;
        }
    }
    depth
}

fn find(node: &Node, pick: &dyn Fn(&Node) -> bool) -> Option<Node> {
    if pick(node) {
        return Some(node.clone());
    }
    node.children.iter().find_map(|c| find(c, pick))
}

fn collect_topmost(node: &Node, pick: &dyn Fn(&Node) -> bool, out: &mut Vec<Node>) {
    if pick(node) {
        out.push(node.clone());
    } else {
        for child in &node.children {
            collect_topmost(child, pick, out);
        }
    }
}

/// One line of what `event` did, for the event kinds a report shows.
fn activity(event: &proto::Event) -> Option<String> {
    match event.detail.as_ref()? {
        Detail::Network(n) => {
            let peer = [&n.address, &n.remote]
                .into_iter()
                .find(|a| !a.is_empty())
                .cloned()
                .unwrap_or_default();
            let result = if n.ret < 0 {
                format!(" (errno {})", -n.ret)
            } else {
                String::new()
            };
            Some(
                format!("{} {peer}{result}", event.kind)
                    .trim_end()
                    .to_owned(),
            )
        }
        Detail::File(f) if f.new_path.is_empty() => Some(format!("{} {}", f.op, f.path)),
        Detail::File(f) => Some(format!("{} {} -> {}", f.op, f.path, f.new_path)),
        Detail::Dns(d) => Some(format!("dns {} {}", d.name, d.qtype)),
        Detail::Syscall(s) => Some(format!("syscall {} = {}", s.name, s.ret)),
        Detail::CredChange(c) => Some(format!("cred_change {} = {}", c.syscall, c.ret)),
        Detail::Finding(f) => Some(format!(
            "finding {} ({}): {}",
            f.rule, f.severity, f.description
        )),
        Detail::Enforcement(e) => Some(format!(
            "enforcement {} {} {}",
            e.action, e.target, e.outcome
        )),
        Detail::Exec(_) | Detail::Exit(_) | Detail::Fork(_) | Detail::Loss(_) => None,
    }
}

/// The readable report of `roots`.
pub fn render(roots: &[Node]) -> String {
    let mut out = String::new();
    for root in roots {
        render_node(root, 0, &mut out);
    }
    out
}

fn render_node(node: &Node, depth: usize, out: &mut String) {
    use std::fmt::Write as _;
    let indent = "  ".repeat(depth);
    let args = if node.args.is_empty() {
        String::new()
    } else {
        format!(" [{}]", node.args.join(" "))
    };
    let container = if node.container.is_empty() {
        String::new()
    } else {
        format!(
            " container={}",
            &node.container[..node.container.len().min(12)]
        )
    };
    let exit = node
        .exit
        .as_ref()
        .map(|e| format!(" exit={e}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{indent}{} {}{args}{container}{exit}",
        node.pid, node.binary
    );
    for line in &node.activity {
        let _ = writeln!(out, "{indent}  · {line}");
    }
    for child in &node.children {
        render_node(child, depth + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        kind: &str,
        tgid: u32,
        ppid: u32,
        start: u64,
        binary: &str,
        detail: Option<Detail>,
    ) -> proto::Event {
        proto::Event {
            kind: kind.into(),
            process: Some(proto::Process {
                pid: tgid,
                tgid,
                ppid,
                start_time_ns: start,
                binary: binary.into(),
                args: vec![
                    binary.rsplit('/').next().unwrap_or_default().into(),
                    "-x".into(),
                ],
                ..Default::default()
            }),
            detail,
            ..Default::default()
        }
    }

    fn chain() -> Vec<proto::Event> {
        vec![
            event(
                "exec",
                10,
                1,
                100,
                "/bin/sh",
                Some(Detail::Exec(Default::default())),
            ),
            event(
                "exec",
                11,
                10,
                200,
                "/usr/bin/curl",
                Some(Detail::Exec(Default::default())),
            ),
            event(
                "connect",
                11,
                10,
                200,
                "/usr/bin/curl",
                Some(Detail::Network(proto::Network {
                    op: "connect".into(),
                    address: "10.0.0.9:443".into(),
                    ..Default::default()
                })),
            ),
            event(
                "exec",
                12,
                10,
                300,
                "/bin/cat",
                Some(Detail::Exec(Default::default())),
            ),
            event(
                "file",
                12,
                10,
                300,
                "/bin/cat",
                Some(Detail::File(proto::File {
                    op: "open".into(),
                    path: "/etc/shadow".into(),
                    ..Default::default()
                })),
            ),
            event(
                "exec",
                13,
                11,
                400,
                "/bin/true",
                Some(Detail::Exec(Default::default())),
            ),
            event(
                "exec",
                20,
                1,
                150,
                "/usr/sbin/cron",
                Some(Detail::Exec(Default::default())),
            ),
            event(
                "exit",
                13,
                11,
                400,
                "/bin/true",
                Some(Detail::Exit(proto::Exit {
                    exit_code: Some(0),
                    ..Default::default()
                })),
            ),
        ]
    }

    #[test]
    fn a_known_chain_prints_as_the_expected_tree() {
        let text = render(&tree(&chain(), &Root::All));
        assert_eq!(
            text,
            "10 /bin/sh [sh -x]\n\
             \x20 11 /usr/bin/curl [curl -x]\n\
             \x20   · connect 10.0.0.9:443\n\
             \x20   13 /bin/true [true -x] exit=code 0\n\
             \x20 12 /bin/cat [cat -x]\n\
             \x20   · open /etc/shadow\n\
             20 /usr/sbin/cron [cron -x]\n"
        );
    }

    #[test]
    fn a_pid_selects_its_subtree() {
        let roots = tree(&chain(), &Root::Pid(11));
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].pid, 11);
        assert_eq!(roots[0].children[0].pid, 13);
        let json = serde_json::to_value(&roots).expect("json");
        assert_eq!(json[0]["activity"][0], "connect 10.0.0.9:443");
    }
}
