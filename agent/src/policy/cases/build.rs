//! Events of behaviour cases, built from their YAML description: the process, its parent and
//! ancestors, container and pod, and the kind's detail (exec, network, file, syscall, dns).

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    enrich::{Container, ContainerId, Pod, Runtime},
    event::{
        Creds, Detail, Event, Exec, File, FileOp, Network, NetworkOp, Syscall, Task, TcpState,
        WalkedPath,
    },
    network::{Sockaddr, UnixAddr},
    policy::yaml::{self, Node, Reader},
    process::{ExecId, Image, Origin, Process, ProcessKey},
    syscall::ArgValue,
};

const EVENT_FIELDS: &[&str] = &[
    "kind",
    "process",
    "parent",
    "ancestors",
    "container",
    "pod",
    "exec",
    "network",
    "file",
    "syscall",
    "dns",
];
const PROCESS_FIELDS: &[&str] = &[
    "binary", "args", "cwd", "comm", "uid", "gid", "euid", "egid", "loginuid", "pid", "ppid",
    "cgroup",
];

/// A tiny view of a mapping's entries by key.
struct Map<'n>(Vec<(&'n Node, &'n str, &'n Node)>);

impl<'n> Map<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.0
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(_, _, v)| *v)
    }
}

pub(super) fn build_event(reader: &mut Reader<'_>, node: &Node, at: &str) -> Option<Event> {
    let m = Map(reader.fields(node, at, EVENT_FIELDS)?);
    let errors = reader.errors.len();
    let Some(kind) = m
        .get("kind")
        .and_then(|k| reader.string(k, &yaml::join(at, "kind")))
    else {
        reader.error(node, &yaml::join(at, "kind"), "an event needs a `kind`");
        return None;
    };
    let process = build_process(reader, m.get("process"), 1000, &yaml::join(at, "process"));
    let parent = m
        .get("parent")
        .map(|n| build_process(reader, Some(n), 999, &yaml::join(at, "parent")));
    let mut ancestors = Vec::new();
    if let Some(list) = m
        .get("ancestors")
        .and_then(|n| reader.list(n, &yaml::join(at, "ancestors")))
    {
        for (i, item) in list.into_iter().enumerate() {
            ancestors.push(Arc::new(build_process(
                reader,
                Some(item),
                998 - i as u32,
                &format!("{at}.ancestors[{i}]"),
            )));
        }
    }
    let task = Task {
        pid: process.key.tgid,
        key: process.key,
        cgroup_id: process.cgroup_id,
        time_ns: 10,
    };
    let sub = |name: &str| m.get(name).map(|n| (n, yaml::join(at, name)));
    let detail = match kind.as_str() {
        "exec" => {
            let (mut inode, mut deleted) = (0, false);
            let mut filename = process.binary.path.clone();
            if let Some((n, path)) = sub("exec") {
                let e = Map(reader.fields(n, &path, &["filename", "inode", "deleted"])?);
                inode = e
                    .get("inode")
                    .and_then(|v| reader.integer(v, &path))
                    .unwrap_or(0) as u64;
                deleted = e
                    .get("deleted")
                    .and_then(|v| reader.boolean(v, &path))
                    .unwrap_or(false);
                if let Some(f) = e.get("filename").and_then(|v| reader.string(v, &path)) {
                    filename = f.into_bytes();
                }
            }
            Detail::Exec(Exec {
                task: task.clone(),
                parent: parent.as_ref().map_or(ProcessKey::new(1, 1), |p| p.key),
                creds: process.creds,
                filename,
                filename_truncated: false,
                args_unreadable: false,
                image: process.image.clone(),
                cgroup_truncated: false,
                exe_inode: inode,
                exe_unlinked: deleted,
                exe_dev: 0,
            })
        }
        "connect" | "accept" | "bind" | "listen" | "close" => {
            network(reader, sub("network"), &kind, &task)?
        }
        "file" => file(reader, sub("file"), &task, node, at)?,
        "syscall" => syscall(reader, sub("syscall"), &task, node, at)?,
        "dns" => dns(reader, sub("dns"), &task, node, at)?,
        other => {
            reader.error(node, &yaml::join(at, "kind"), format!("cases can build exec, connect, accept, bind, listen, close, file, syscall and dns events, not `{other}`"));
            return None;
        }
    };
    let container = sub("container").and_then(|(n, path)| {
        let c = Map(reader.fields(
            n,
            &path,
            &["id", "name", "image", "image_digest", "runtime"],
        )?);
        let s = |reader: &mut Reader<'_>, k: &str| c.get(k).and_then(|v| reader.string(v, &path));
        Some(Arc::new(Container {
            id: ContainerId(s(reader, "id").unwrap_or_else(|| "0123456789ab".into())),
            runtime: match s(reader, "runtime").as_deref() {
                Some("docker") => Runtime::Docker,
                Some("cri-o") => Runtime::CriO,
                Some("podman") => Runtime::Podman,
                _ => Runtime::Containerd,
            },
            name: s(reader, "name"),
            image: s(reader, "image"),
            image_digest: s(reader, "image_digest"),
        }))
    });
    let pod = sub("pod").and_then(|(n, path)| {
        let p = Map(reader.fields(n, &path, &["name", "namespace", "uid", "labels"])?);
        let s = |reader: &mut Reader<'_>, k: &str| p.get(k).and_then(|v| reader.string(v, &path));
        let mut labels = BTreeMap::new();
        if let Some(l) = p.get("labels").and_then(|v| reader.mapping(v, &path)) {
            for (_, key, value) in l {
                if let Some(value) = reader.string(value, &path) {
                    labels.insert(key.to_owned(), value);
                }
            }
        }
        Some(Arc::new(Pod {
            name: s(reader, "name"),
            namespace: s(reader, "namespace"),
            uid: s(reader, "uid"),
            labels,
        }))
    });
    if reader.errors.len() != errors {
        return None;
    }
    let mut event = Event::new(
        10,
        task.pid,
        Some(Arc::new(process)),
        parent.map(Arc::new),
        detail,
    );
    event.ancestors = ancestors;
    event.container = container;
    event.pod = pod;
    Some(event)
}

fn build_process(
    reader: &mut Reader<'_>,
    node: Option<&Node>,
    default_pid: u32,
    at: &str,
) -> Process {
    let m = node
        .and_then(|n| reader.fields(n, at, PROCESS_FIELDS))
        .map(Map);
    let get = |k: &str| m.as_ref().and_then(|m| m.get(k));
    let string = |reader: &mut Reader<'_>, k: &str, default: &str| {
        get(k)
            .and_then(|v| reader.string(v, at))
            .unwrap_or_else(|| default.to_owned())
    };
    let int = |reader: &mut Reader<'_>, k: &str, default: i64| {
        get(k)
            .and_then(|v| reader.integer(v, at))
            .unwrap_or(default) as u32
    };
    let binary = string(reader, "binary", "/usr/bin/true");
    let args = match get("args") {
        Some(v) => reader.strings(v, at),
        None => vec![binary.rsplit('/').next().unwrap_or_default().to_owned()],
    };
    let comm = string(
        reader,
        "comm",
        binary.rsplit('/').next().unwrap_or_default(),
    );
    let pid = int(reader, "pid", default_pid.into());
    let uid = int(reader, "uid", 0);
    let gid = int(reader, "gid", 0);
    let creds = Creds {
        uid,
        gid,
        euid: int(reader, "euid", uid.into()),
        egid: int(reader, "egid", gid.into()),
        loginuid: get("loginuid")
            .and_then(|v| reader.integer(v, at))
            .map(|n| n as u32),
    };
    let key = ProcessKey::new(pid, 1);
    Process {
        key,
        exec_id: ExecId::new(key, 2),
        ppid: int(reader, "ppid", 1),
        parent: None,
        parent_exec_id: None,
        image: Arc::new(Image {
            binary: WalkedPath {
                path: binary.into_bytes(),
                truncated: false,
            },
            args: args.into_iter().map(String::into_bytes).collect(),
            args_truncated: false,
            cwd: WalkedPath {
                path: string(reader, "cwd", "/").into_bytes(),
                truncated: false,
            },
            comm: comm.into_bytes(),
            cgroup_path: string(reader, "cgroup", "").into_bytes(),
            json: Default::default(),
        }),
        creds,
        cgroup_id: 1,
        origin: Origin::Exec,
        parent_json: Default::default(),
    }
}

fn network(
    reader: &mut Reader<'_>,
    node: Option<(&Node, String)>,
    kind: &str,
    task: &Task,
) -> Option<Detail> {
    let (m, at) = match node {
        Some((n, at)) => (
            Map(reader.fields(
                n,
                &at,
                &[
                    "dst_ip", "dst_port", "src_ip", "src_port", "path", "protocol", "ret",
                ],
            )?),
            at,
        ),
        None => (Map(Vec::new()), String::new()),
    };
    let string = |reader: &mut Reader<'_>, k: &str| m.get(k).and_then(|v| reader.string(v, &at));
    let port = |reader: &mut Reader<'_>, k: &str| {
        m.get(k).and_then(|v| reader.integer(v, &at)).unwrap_or(0) as u16
    };
    let ip = |reader: &mut Reader<'_>, k: &str| -> Option<std::net::IpAddr> {
        let text = string(reader, k)?;
        match text.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                reader.error(m.get(k)?, &at, format!("`{text}` is not an IP address"));
                None
            }
        }
    };
    let op = match kind {
        "connect" => NetworkOp::Connect,
        "accept" => NetworkOp::Accept,
        "bind" => NetworkOp::Bind,
        "listen" => NetworkOp::Listen,
        _ => NetworkOp::Close,
    };
    let (ip_key, port_key) = if op == NetworkOp::Bind {
        ("src_ip", "src_port")
    } else {
        ("dst_ip", "dst_port")
    };
    let remote = ip(reader, ip_key).map(|ip| std::net::SocketAddr::new(ip, port(reader, port_key)));
    let tcp_state = op == NetworkOp::Close || string(reader, "protocol").as_deref() == Some("tcp");
    if tcp_state {
        let local = std::net::SocketAddr::new(
            ip(reader, "src_ip").unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
            port(reader, "src_port"),
        );
        return Some(Detail::TcpState(TcpState {
            task: task.clone(),
            owner_known: true,
            op,
            src: local,
            dst: remote.unwrap_or(local),
            old_state: 2,
            new_state: 1,
        }));
    }
    let addr = match (remote, string(reader, "path")) {
        (Some(std::net::SocketAddr::V4(a)), _) => Some(Ok(Sockaddr::Inet {
            ip: *a.ip(),
            port: a.port(),
        })),
        (Some(std::net::SocketAddr::V6(a)), _) => Some(Ok(Sockaddr::Inet6 {
            ip: *a.ip(),
            port: a.port(),
        })),
        (None, Some(path)) => Some(Ok(Sockaddr::Unix(match path.strip_prefix('@') {
            Some(name) => UnixAddr::Abstract(name.as_bytes().to_vec()),
            None => UnixAddr::Path(path.into_bytes()),
        }))),
        (None, None) => None,
    };
    Some(Detail::Network(Network {
        task: task.clone(),
        op,
        fd: 3,
        addr,
        socket: None,
        backlog: None,
        ret: m
            .get("ret")
            .and_then(|v| reader.integer(v, &at))
            .unwrap_or(0),
        exit_time_ns: task.time_ns + 1,
    }))
}

fn file(
    reader: &mut Reader<'_>,
    node: Option<(&Node, String)>,
    task: &Task,
    parent: &Node,
    at: &str,
) -> Option<Detail> {
    let Some((n, at)) = node else {
        reader.error(parent, at, "a file event needs `file: {op, path}`");
        return None;
    };
    let m = Map(reader.fields(
        n,
        &at,
        &["op", "path", "new_path", "flags", "mode", "syscall", "ret"],
    )?);
    let op_name = m
        .get("op")
        .and_then(|v| reader.string(v, &at))
        .unwrap_or_else(|| "open".into());
    let op = match op_name.as_str() {
        "open" => FileOp::Open,
        "create" => FileOp::Create,
        "rename" => FileOp::Rename,
        "unlink" => FileOp::Unlink,
        "chmod" => FileOp::Chmod,
        "chown" => FileOp::Chown,
        "truncate" => FileOp::Truncate,
        other => {
            reader.error(m.get("op")?, &at, format!("unknown file op `{other}`"));
            return None;
        }
    };
    let syscall: &'static str = match op {
        FileOp::Open => "openat",
        FileOp::Create => "creat",
        FileOp::Rename => "renameat2",
        FileOp::Unlink => "unlinkat",
        FileOp::Chmod => "fchmodat",
        FileOp::Chown => "fchownat",
        FileOp::Truncate => "truncate",
    };
    let mut flags = None;
    if let Some(v) = m.get("flags") {
        let mut bits = 0u64;
        for name in reader.strings(v, &at) {
            match crate::policy::operator::open_flag(&name) {
                Some((_, value)) => bits |= value,
                None => reader.error(v, &at, format!("`{name}` is not an open flag")),
            }
        }
        flags = Some(bits);
    } else if op == FileOp::Open {
        flags = Some(0);
    }
    Some(Detail::File(File {
        task: task.clone(),
        op,
        syscall,
        path: m
            .get("path")
            .and_then(|v| reader.string(v, &at))
            .unwrap_or_default()
            .into_bytes(),
        path_truncated: false,
        new_path: m
            .get("new_path")
            .and_then(|v| reader.string(v, &at))
            .map(String::into_bytes),
        path_resolved: true,
        flags,
        mode: m
            .get("mode")
            .and_then(|v| reader.integer(v, &at))
            .map(|n| n as u32),
        uid: None,
        gid: None,
        ret: m
            .get("ret")
            .and_then(|v| reader.integer(v, &at))
            .unwrap_or(3),
        exit_time_ns: task.time_ns + 1,
    }))
}

fn syscall(
    reader: &mut Reader<'_>,
    node: Option<(&Node, String)>,
    task: &Task,
    parent: &Node,
    at: &str,
) -> Option<Detail> {
    let Some((n, at)) = node else {
        reader.error(parent, at, "a syscall event needs `syscall: {name}`");
        return None;
    };
    let m = Map(reader.fields(n, &at, &["name", "args", "ret"])?);
    let name_node = m.get("name")?;
    let name = reader.string(name_node, &at)?;
    let arch = crate::syscall::Arch::NATIVE;
    let Some((nr, static_name)) = arch.number(&name).and_then(|nr| Some((nr, arch.name(nr)?)))
    else {
        reader.error(name_node, &at, format!("unknown syscall `{name}`"));
        return None;
    };
    let spec = crate::syscall::args::spec(static_name);
    let mut args = Vec::new();
    if let Some(a) = m.get("args").and_then(|v| reader.mapping(v, &at)) {
        for (key, arg, value) in a {
            let Some(&(static_arg, _)) = spec.iter().find(|(n, _)| *n == arg) else {
                let names: Vec<_> = spec.iter().map(|(n, _)| *n).collect();
                reader.error(
                    key,
                    &at,
                    format!(
                        "`{static_name}` has no argument `{arg}` ({})",
                        names.join(", ")
                    ),
                );
                continue;
            };
            let v = match yaml::int_of(value) {
                Some(n) => ArgValue::Int(n),
                None => ArgValue::Str {
                    bytes: reader.string(value, &at).unwrap_or_default().into_bytes(),
                    truncated: false,
                },
            };
            args.push((static_arg, v));
        }
    }
    Some(Detail::Syscall(Syscall {
        task: task.clone(),
        nr,
        name: Some(static_name),
        args,
        ret: m
            .get("ret")
            .and_then(|v| reader.integer(v, &at))
            .unwrap_or(0),
        exit_time_ns: task.time_ns + 1,
        strings_dropped: false,
    }))
}

/// A DNS query event, built by encoding a real query and decoding it as the sensor does.
fn dns(
    reader: &mut Reader<'_>,
    node: Option<(&Node, String)>,
    task: &Task,
    parent: &Node,
    at: &str,
) -> Option<Detail> {
    let Some((n, at)) = node else {
        reader.error(parent, at, "a dns event needs `dns: {name}`");
        return None;
    };
    let m = Map(reader.fields(n, &at, &["name", "type", "server"])?);
    let name = reader.string(m.get("name")?, &at)?;
    let qtype: u16 = match m.get("type").and_then(|v| reader.string(v, &at)).as_deref() {
        None | Some("A") => 1,
        Some("AAAA") => 28,
        Some("TXT") => 16,
        Some("MX") => 15,
        Some("CNAME") => 5,
        Some(other) => {
            reader.error(
                m.get("type")?,
                &at,
                format!("cases know A, AAAA, TXT, MX and CNAME, not `{other}`"),
            );
            return None;
        }
    };
    let mut payload = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        payload.push(label.len() as u8);
        payload.extend_from_slice(label.as_bytes());
    }
    payload.push(0);
    payload.extend_from_slice(&qtype.to_be_bytes());
    payload.extend_from_slice(&1u16.to_be_bytes());
    let server: std::net::IpAddr = m
        .get("server")
        .and_then(|v| reader.string(v, &at))
        .and_then(|s| s.parse().ok())
        .unwrap_or(std::net::Ipv4Addr::new(10, 96, 0, 10).into());
    Some(Detail::Dns(crate::event::Dns {
        task: task.clone(),
        tcp: false,
        src: std::net::SocketAddr::new(std::net::Ipv4Addr::new(10, 0, 0, 2).into(), 40000),
        dst: std::net::SocketAddr::new(server, 53),
        wire_len: payload.len() as u32,
        payload_truncated: false,
        question: crate::network::parse_dns(&payload, false),
    }))
}
