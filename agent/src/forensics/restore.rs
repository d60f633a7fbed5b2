//! API messages -> domain events: the inverse of `crate::api::convert`, so that events
//! recorded as `vigil.v1.Event` (capture files, `vigil events` output) can go through the
//! policy engine again and match exactly as they did live.
//!
//! Every field a rule reads is restored (see `crate::policy::field`); kernel text is
//! unescaped back to its bytes. What the message does not carry, and no rule reads, is left
//! neutral, as each function's doc says: walk truncation flags, exit times of syscalls,
//! TCP state numbers, a DNS message's opcode... Times: the message has wall-clock time only, so
//! a restored event's `time_ns` is Unix time; render it with [`clock`].
//!
//! Input is untrusted (a file anyone may have edited): a missing, malformed or unknown value
//! is a [`RestoreError`] naming the field, never a panic.

mod detail;
mod record;
mod text;

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    api::proto,
    clock::BootClock,
    enrich::{Container, ContainerId, Pod, Runtime},
    event::{Creds, Event, Task, WalkedPath},
    process::{ExecId, Image, Origin, Process, ProcessKey},
};

/// Why a message cannot be restored. `field` is its path in the message, as the JSON of
/// `vigil events --json` spells it (`process.args[2]`, `finding.trigger.network.address`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("`{field}` is missing")]
    Missing { field: String },
    #[error("`{field}` is {value:?}, not {expected}")]
    Invalid {
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error(
        "`{field}` is {value:?}, not escaped kernel text (`\\\\` and `\\xNN` are the only escapes)"
    )]
    Unescapable { field: String, value: String },
    #[error("`{field}` is {kind:?}, but the detail is of kind `{detail}`")]
    KindMismatch {
        field: String,
        kind: String,
        detail: &'static str,
    },
}

impl RestoreError {
    /// The path of the field at fault.
    pub fn field(&self) -> &str {
        match self {
            Self::Missing { field }
            | Self::Invalid { field, .. }
            | Self::Unescapable { field, .. }
            | Self::KindMismatch { field, .. } => field,
        }
    }

    /// The same error, for a field of the message found at `prefix`.
    fn within(mut self, prefix: &str) -> Self {
        let field = match &mut self {
            Self::Missing { field }
            | Self::Invalid { field, .. }
            | Self::Unescapable { field, .. }
            | Self::KindMismatch { field, .. } => field,
        };
        *field = if field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{field}")
        };
        self
    }
}

fn missing(field: &str) -> RestoreError {
    RestoreError::Missing {
        field: field.to_owned(),
    }
}

fn invalid(field: &str, value: impl ToString, expected: &'static str) -> RestoreError {
    RestoreError::Invalid {
        field: field.to_owned(),
        value: value.to_string(),
        expected,
    }
}

/// The clock that renders restored events at their recorded time (their `time_ns` is Unix
/// time): for `crate::api::convert::event` and the JSON renderer.
pub fn clock() -> BootClock {
    BootClock::with_offset(0)
}

/// The domain event `message` was made from. Rules also read the node: it is
/// `message.node`.
pub fn event(message: &proto::Event) -> Result<Event, RestoreError> {
    let time_ns = u64::try_from(message.time_unix_ns)
        .map_err(|_| invalid("time_unix_ns", message.time_unix_ns, "a time after 1970"))?;
    let restore = |p: &proto::Process, at: &str| process(p).map_err(|e| e.within(at));
    let mut process = message
        .process
        .as_ref()
        .map(|p| restore(p, "process"))
        .transpose()?;
    let mut parent = message
        .parent
        .as_ref()
        .map(|p| restore(p, "parent"))
        .transpose()?;
    let mut ancestors = Vec::with_capacity(message.ancestors.len());
    for (i, p) in message.ancestors.iter().enumerate() {
        ancestors.push(restore(p, &format!("ancestors[{i}]"))?);
    }
    link(
        process
            .iter_mut()
            .chain(parent.iter_mut())
            .chain(ancestors.iter_mut()),
    );
    let task = Task {
        pid: message.process.as_ref().map_or(0, |p| p.pid),
        key: process.as_ref().map_or(ProcessKey::new(0, 0), |p| p.key),
        cgroup_id: process.as_ref().map_or(0, |p| p.cgroup_id),
        time_ns,
    };
    let detail = detail::detail(message, &task, process.as_ref(), parent.as_ref())?;
    if detail.kind() != message.kind {
        return Err(RestoreError::KindMismatch {
            field: "kind".into(),
            kind: message.kind.clone(),
            detail: detail.kind(),
        });
    }
    let mut event = Event::new(
        time_ns,
        task.pid,
        process.map(Arc::new),
        parent.map(Arc::new),
        detail,
    );
    event.ancestors = ancestors.into_iter().map(Arc::new).collect();
    event.container = message
        .container
        .as_ref()
        .map(|c| container(c).map_err(|e| e.within("container")))
        .transpose()?
        .map(Arc::new);
    event.pod = message.pod.as_ref().map(|p| Arc::new(pod(p)));
    Ok(event)
}

/// Sets each process's `parent` to the next one up when it is its real parent (by tgid):
/// the message names parents by pid only.
fn link<'p>(chain: impl Iterator<Item = &'p mut Process>) {
    let mut chain: Vec<&mut Process> = chain.collect();
    for i in 1..chain.len() {
        let above = chain[i].key;
        let below = &mut chain[i - 1];
        if below.ppid == above.tgid {
            below.parent = Some(above);
        }
    }
}

/// A process; not carried: whether its binary and cwd walks were truncated (false).
fn process(p: &proto::Process) -> Result<Process, RestoreError> {
    let exec_id = |text: &str, field: &str| {
        ExecId::parse(text)
            .ok_or_else(|| invalid(field, text, "an exec id (`tgid-start-exec` in hex)"))
    };
    if p.exec_id.is_empty() {
        return Err(missing("exec_id"));
    }
    let mut args = Vec::with_capacity(p.args.len());
    for (i, arg) in p.args.iter().enumerate() {
        args.push(text::bytes(arg, &format!("args[{i}]"))?);
    }
    let walked = |text: &str, field: &str| {
        text::bytes(text, field).map(|path| WalkedPath {
            path,
            truncated: false,
        })
    };
    Ok(Process {
        key: ProcessKey::new(p.tgid, p.start_time_ns),
        exec_id: exec_id(&p.exec_id, "exec_id")?,
        ppid: p.ppid,
        parent: None,
        parent_exec_id: match p.parent_exec_id.as_str() {
            "" => None,
            id => Some(exec_id(id, "parent_exec_id")?),
        },
        image: Arc::new(Image {
            binary: walked(&p.binary, "binary")?,
            args,
            args_truncated: p.args_truncated,
            cwd: walked(&p.cwd, "cwd")?,
            comm: text::bytes(&p.comm, "comm")?,
            cgroup_path: text::bytes(&p.cgroup, "cgroup")?,
            json: Default::default(),
        }),
        creds: Creds {
            uid: p.uid,
            gid: p.gid,
            euid: p.euid,
            egid: p.egid,
            loginuid: p.loginuid,
        },
        cgroup_id: p.cgroup_id,
        origin: match p.origin.as_str() {
            "exec" => Origin::Exec,
            "fork" => Origin::Fork,
            "snapshot" => Origin::Snapshot,
            "unknown" => Origin::Unknown,
            other => return Err(invalid("origin", other, "exec, fork, snapshot or unknown")),
        },
        parent_json: Default::default(),
    })
}

const RUNTIMES: [Runtime; 5] = [
    Runtime::Containerd,
    Runtime::CriO,
    Runtime::Docker,
    Runtime::Podman,
    Runtime::Cri,
];

fn container(c: &proto::Container) -> Result<Container, RestoreError> {
    if c.id.is_empty() {
        return Err(missing("id"));
    }
    let runtime = RUNTIMES
        .into_iter()
        .find(|r| r.as_str() == c.runtime)
        .ok_or_else(|| {
            invalid(
                "runtime",
                &c.runtime,
                "a runtime Vigil knows (containerd, cri-o, docker, podman, cri)",
            )
        })?;
    Ok(Container {
        id: ContainerId(c.id.clone()),
        runtime,
        name: non_empty(&c.name),
        image: non_empty(&c.image),
        image_digest: non_empty(&c.image_digest),
    })
}

/// The message writes an unknown value as "": it is `None` again (the enricher never keeps
/// an empty name, so nothing real is lost).
fn pod(p: &proto::Pod) -> Pod {
    Pod {
        name: non_empty(&p.name),
        namespace: non_empty(&p.namespace),
        uid: non_empty(&p.uid),
        labels: p
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod bad_input_tests;
#[cfg(test)]
pub(crate) mod corpus;
#[cfg(test)]
mod tests;
