//! What a rule does when it matches (`action`), whether it does it (`mode`), how bad it is
//! (`severity`), and which actions the kernel side can enforce for which matches.

use super::{
    condition::Top,
    field::{Field, ProcessField},
    kind::KindSet,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Report only (`none` or `report`).
    None,
    /// Kernel: kill a matching exec before it runs (exec by binary path/prefix or inode).
    KillOnExec,
    /// Kernel: refuse a matching connect (by CIDR and port).
    DenyConnect,
    /// Kernel (BPF-LSM `file_open`): refuse the open of a matching file (by path or
    /// directory prefix).
    DenyOpen,
    /// SIGKILL the process.
    Kill,
    /// SIGKILL the process and its descendants.
    KillTree,
    /// Freeze the container (cgroup freezer).
    Freeze,
    /// Cut the container's network.
    Isolate,
    /// Dump the flight recorder around the event.
    Capture,
}

impl Action {
    pub const ALL: &[Self] = &[
        Self::None,
        Self::KillOnExec,
        Self::DenyConnect,
        Self::DenyOpen,
        Self::Kill,
        Self::KillTree,
        Self::Freeze,
        Self::Isolate,
        Self::Capture,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::KillOnExec => "kill_on_exec",
            Self::DenyConnect => "deny_connect",
            Self::DenyOpen => "deny_open",
            Self::Kill => "kill",
            Self::KillTree => "kill_tree",
            Self::Freeze => "freeze",
            Self::Isolate => "isolate",
            Self::Capture => "capture",
        }
    }

    /// The name a monitor-mode finding reports: what enforce mode would have done.
    pub const fn would_name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::KillOnExec => "would_kill_on_exec",
            Self::DenyConnect => "would_deny_connect",
            Self::DenyOpen => "would_deny_open",
            Self::Kill => "would_kill",
            Self::KillTree => "would_kill_tree",
            Self::Freeze => "would_freeze",
            Self::Isolate => "would_isolate",
            Self::Capture => "would_capture",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        if name == "report" {
            return Some(Self::None);
        }
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Decided in the kernel, synchronously (the programs read deny maps).
    pub const fn is_kernel(self) -> bool {
        matches!(self, Self::KillOnExec | Self::DenyConnect | Self::DenyOpen)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Report what the action would do (`would_*`), do nothing.
    #[default]
    Monitor,
    Enforce,
}

impl Mode {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Monitor => "monitor",
            Self::Enforce => "enforce",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "monitor" => Some(Self::Monitor),
            "enforce" => Some(Self::Enforce),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: &[Self] = &[
        Self::Info,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.name() == name)
    }
}

/// What a rule looks like to the action check.
pub struct Shape<'a> {
    pub kinds: Option<KindSet>,
    pub tops: &'a [Top],
    pub has_exceptions: bool,
    /// Scope entries the rule uses (`nodes`, `namespaces`, `pods`, `images`, `cgroups`).
    pub scope: &'a [&'a str],
}

/// Why `action` cannot be carried out for a rule of this shape; `None` when it can. The
/// message names the field to change (`match`, `exceptions`, `scope.*`, or a condition).
pub fn check(action: Action, shape: &Shape<'_>) -> Option<(String, String)> {
    let err = |field: &str, message: String| Some((field.to_owned(), message));
    match action {
        Action::KillOnExec => kernel_check(
            action,
            shape,
            "exec",
            &[
                (Field::Process(ProcessField::Binary), &["equals", "prefix"]),
                (Field::ExecInode, &["equals"]),
            ],
            "process.binary (equals, in, prefix) or exec.inode (equals, in)",
        ),
        Action::DenyConnect => kernel_check(
            action,
            shape,
            "connect",
            &[
                (Field::NetworkDstIp, &["equals", "cidr"]),
                (Field::NetworkDstPort, &["equals", "range"]),
            ],
            "network.dst_ip (equals, in, cidr) or network.dst_port (equals, in, gt/gte/lt/lte)",
        ),
        Action::DenyOpen => kernel_check(
            action,
            shape,
            "file",
            &[(Field::FilePath, &["equals", "prefix"])],
            "file.path (equals, in, prefix)",
        ),
        Action::Kill | Action::KillTree => {
            if shape
                .kinds
                .is_none_or(|k| k.intersects(KindSet::of(&["loss"])))
            {
                return err(
                    "match.kind",
                    format!(
                        "`{}` needs a process: name the kinds (loss events have none)",
                        action.name()
                    ),
                );
            }
            None
        }
        Action::Freeze | Action::Isolate => {
            let container_condition = shape.tops.iter().any(|t| {
                !t.negative
                    && t.field.as_ref().is_some_and(|f| {
                        matches!(
                            f,
                            Field::ContainerId
                                | Field::ContainerName
                                | Field::ContainerImage
                                | Field::ContainerImageDigest
                                | Field::ContainerRuntime
                                | Field::PodName
                                | Field::PodNamespace
                                | Field::PodUid
                                | Field::PodLabel(_)
                        )
                    })
            });
            let container_scope = shape
                .scope
                .iter()
                .any(|s| matches!(*s, "namespaces" | "pods" | "images"));
            if container_condition || container_scope {
                None
            } else {
                err(
                    "action",
                    format!(
                        "`{}` acts on a container: the match must require one (such as `container.id: {{exists: true}}`) or the scope must name namespaces, pods or images",
                        action.name()
                    ),
                )
            }
        }
        Action::None | Action::Capture => None,
    }
}

/// Kernel actions: the kernel can only test what its deny maps hold, so the rule must be
/// one kind, a plain AND of the allowed fields, without exceptions or workload scope.
fn kernel_check(
    action: Action,
    shape: &Shape<'_>,
    kind: &str,
    allowed: &[(Field, &[&str])],
    wanted: &str,
) -> Option<(String, String)> {
    let name = action.name();
    if !shape.kinds.is_some_and(|k| k.is_only(kind)) {
        return Some((
            "match.kind".into(),
            format!(
                "`{name}` is enforced in the kernel on {kind} only: the match needs `kind: {kind}` alone"
            ),
        ));
    }
    if shape.has_exceptions {
        return Some((
            "exceptions".into(),
            format!(
                "`{name}` is enforced in the kernel, which cannot evaluate exceptions: narrow the match instead"
            ),
        ));
    }
    if let Some(s) = shape
        .scope
        .iter()
        .find(|s| matches!(**s, "namespaces" | "pods" | "images"))
    {
        return Some((
            format!("scope.{s}"),
            format!(
                "`{name}` is enforced in the kernel, which knows cgroups, not {s}: scope it by `cgroups` or `container.id`"
            ),
        ));
    }
    // Also allowed: which container or cgroup (the kernel keys on cgroup ids).
    let scoping: &[(Field, &[&str])] = &[
        (Field::ContainerId, &["equals", "exists"]),
        (Field::Process(ProcessField::Cgroup), &["equals", "prefix"]),
        (Field::Kind, &["equals"]),
    ];
    let mut has_target = false;
    for top in shape.tops {
        let at = format!("match.{}", top.key);
        // The kernel hook is the connect syscall: saying so is always enforceable.
        if action == Action::DenyConnect
            && top.field == Some(Field::NetworkProtocol)
            && top.negative
            && top.ops == ["exists"]
        {
            continue;
        }
        let Some(field) = &top.field else {
            return Some((
                at,
                format!(
                    "`{name}` is enforced in the kernel: use a plain list of conditions, not `{}`",
                    top.key
                ),
            ));
        };
        let rule = allowed.iter().chain(scoping).find(|(f, _)| f == field);
        let fits =
            rule.is_some_and(|(_, ops)| !top.negative && top.ops.iter().all(|op| ops.contains(op)));
        if !fits {
            return Some((
                at,
                format!(
                    "`{name}` is enforced in the kernel, which cannot test `{}` with {}: it matches {wanted}, optionally with container.id or process.cgroup",
                    top.key,
                    top.ops.join(", ")
                ),
            ));
        }
        has_target |= allowed.iter().any(|(f, _)| f == field);
    }
    if !has_target {
        return Some((
            "match".into(),
            format!("`{name}` needs a match on {wanted}"),
        ));
    }
    None
}
