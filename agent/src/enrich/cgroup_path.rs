//! Which container a cgroup belongs to, from its path alone: pure parsing, no I/O.
//!
//! Runtimes name the cgroup of a container after its id, in a shape that depends on the
//! runtime and on the cgroup driver (cgroupfs or systemd). Nesting happens (a kind node is a
//! docker container holding kubepods; systemd inside a container adds its own slices), so the
//! path is read from its deepest component upwards and the first container found wins: that
//! is the innermost container, the one whose processes the kernel saw.

use std::fmt;

/// A container id as the runtime spells it (64 hex digits for every runtime but plain `ctr`,
/// which takes any name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(pub String);

impl ContainerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The container runtime, as far as the cgroup path tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
    /// A bare id under a kubelet pod cgroup with the cgroupfs driver: containerd and
    /// cri-dockerd name it the same way. The CRI socket's own name settles it.
    Cri,
}

impl Runtime {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Docker => "docker",
            Self::Podman => "podman",
            Self::Cri => "cri",
        }
    }
}

/// A container found in a cgroup path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub id: ContainerId,
    pub runtime: Runtime,
    /// The kubelet's pod uid, when the path is under a pod cgroup.
    pub pod_uid: Option<String>,
    /// Created through the CRI (by a kubelet or a CRI client): the CRI socket knows it.
    pub cri: bool,
}

/// The container of a cgroup v2 (or v1) path such as `/kubepods/besteffort/pod<uid>/<id>`;
/// `None` for a path of no container (a systemd service, the root) or an unknown shape.
pub fn parse(path: &[u8]) -> Option<ContainerRef> {
    let components: Vec<&str> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    (0..components.len())
        .rev()
        .find_map(|i| container_at(&components, i))
}

/// The container of a `/proc/PID/cgroup` text: the cgroup v2 line (`0::`) first, then the
/// v1 hierarchies (on hybrid nodes a runtime may only set up the v1 ones).
pub fn parse_proc_cgroup(text: &str) -> Option<ContainerRef> {
    let paths = text.lines().filter_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (id, _controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        Some((id == "0", path))
    });
    let (v2, v1): (Vec<_>, Vec<_>) = paths.partition(|(is_v2, _)| *is_v2);
    v2.into_iter()
        .chain(v1)
        .find_map(|(_, path)| parse(path.as_bytes()))
}

/// The container that component `i` names, given its ancestors `components[..i]`.
fn container_at(components: &[&str], i: usize) -> Option<ContainerRef> {
    let name = components[i];
    let parent = i.checked_sub(1).map(|p| components[p]);
    let make = |id: &str, runtime: Runtime, cri: bool| ContainerRef {
        id: ContainerId(id.to_owned()),
        runtime,
        pod_uid: pod_uid(&components[..i]),
        cri,
    };
    // systemd driver: `<prefix>-<id>.scope`.
    if let Some(unit) = name.strip_suffix(".scope") {
        let (runtime, cri, id) = [
            ("cri-containerd-", Runtime::Containerd, true),
            ("crio-", Runtime::CriO, true),
            ("docker-", Runtime::Docker, false),
            ("libpod-", Runtime::Podman, false),
        ]
        .into_iter()
        .find_map(|(prefix, runtime, cri)| Some((runtime, cri, unit.strip_prefix(prefix)?)))?;
        return is_hex_id(id).then(|| make(id, runtime, cri));
    }
    // cgroupfs driver, prefixed: CRI-O (`crio-<id>`) and podman (`libpod-<id>`). Their
    // monitors (`crio-conmon-<id>`, `libpod-conmon-<id>`) are not hex and are not containers.
    if let Some(id) = name.strip_prefix("crio-").filter(|id| is_hex_id(id)) {
        return Some(make(id, Runtime::CriO, true));
    }
    if let Some(id) = name.strip_prefix("libpod-").filter(|id| is_hex_id(id)) {
        return Some(make(id, Runtime::Podman, false));
    }
    // cgroupfs driver, bare ids: the parent tells whose.
    match parent {
        Some(p) if is_hex_id(name) && cgroupfs_pod_uid(p).is_some() => {
            Some(make(name, Runtime::Cri, true))
        }
        Some("docker") if is_hex_id(name) => Some(make(name, Runtime::Docker, false)),
        // Plain `ctr run` in containerd's `default` namespace: any valid containerd id.
        Some("default") if i == 1 && is_containerd_id(name) => {
            Some(make(name, Runtime::Containerd, false))
        }
        _ => None,
    }
}

/// The pod uid of the nearest pod cgroup among `ancestors`.
fn pod_uid(ancestors: &[&str]) -> Option<String> {
    ancestors
        .iter()
        .rev()
        .find_map(|c| cgroupfs_pod_uid(c).or_else(|| systemd_pod_uid(c)))
}

/// `pod<uid>` (cgroupfs driver).
fn cgroupfs_pod_uid(component: &str) -> Option<String> {
    component
        .strip_prefix("pod")
        .filter(|uid| is_pod_uid(uid, '-'))
        .map(str::to_owned)
}

/// `kubepods-<qos>-pod<uid>.slice` or `kubepods-pod<uid>.slice` (systemd driver), where
/// systemd's unit names have `_` for the uid's `-`.
fn systemd_pod_uid(component: &str) -> Option<String> {
    let slice = component
        .strip_prefix("kubepods-")?
        .strip_suffix(".slice")?;
    let uid = slice.rsplit_once("pod").map(|(qos, uid)| {
        let qos_ok = matches!(qos, "" | "besteffort-" | "burstable-" | "guaranteed-");
        qos_ok.then_some(uid)
    })??;
    is_pod_uid(uid, '_').then(|| uid.replace('_', "-"))
}

/// A UUID (36 characters with separators) or a static pod's 32-digit hash.
fn is_pod_uid(uid: &str, separator: char) -> bool {
    (32..=36).contains(&uid.len())
        && uid.chars().all(|c| c.is_ascii_hexdigit() || c == separator)
        && uid.chars().any(|c| c.is_ascii_hexdigit())
}

/// 64 lowercase hex digits: what containerd, CRI-O, docker and podman generate.
fn is_hex_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// containerd's identifier rule: alphanumerics with `.`, `_` and `-` between, at most 76.
fn is_containerd_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=76).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
#[path = "cgroup_path_tests.rs"]
mod tests;
