//! Domain events of every kind for the round-trip tests: the behaviour cases' events (built
//! as `vigil policy test` builds them), kernel records through the real decoder and process
//! cache, and Vigil's own records (loss, finding, enforcement).

use std::{collections::BTreeMap, sync::Arc};

use vigil_common::{
    cred::CredSnapshot,
    network::{DNS_OVER_TCP, TCP_STATE_OWNER_KNOWN},
    process::EXEC_EXE_UNLINKED,
    syscall::{SYSCALL_ARGS, SYSCALL_STRING_UNREADABLE},
};

use crate::{
    decode::{
        decode,
        encode::{self, ExecSpec, Ids, SyscallSpec},
    },
    enrich::{Container, ContainerId, Pod, Runtime},
    event::{Detail, Event, Loss},
    policy::{PolicySet, PolicyStage},
    process::{ProcessCache, ProcessCacheConfig, ProcessKey},
    response::{By, Enforcement},
    syscall::{Arch, args},
};

/// The node of every event not from a case.
pub(crate) const NODE: &str = "node-1";

const INIT: ProcessKey = ProcessKey::new(1, 10);
const NGINX: ProcessKey = ProcessKey::new(100, 1_000);
const SHELL: ProcessKey = ProcessKey::new(200, 2_000);
const TOOL: ProcessKey = ProcessKey::new(300, 3_000);

/// Every case file's events, with their nodes.
pub(crate) fn cases() -> Vec<(String, Event)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/tests");
    let files = crate::policy::cases::files(&[dir.into()]).expect("the case directory");
    assert!(!files.is_empty(), "case files under {dir}");
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable case file");
        let name = file.display().to_string();
        out.extend(crate::policy::cases::events(&text, &name).expect("valid cases"));
    }
    out
}

/// Kernel records decoded and resolved: a process tree init -> nginx -> sh -> tool (with
/// bytes that are not UTF-8), in a pod, doing one of everything.
pub(crate) fn decoded() -> Vec<Event> {
    let mut cache = ProcessCache::new(ProcessCacheConfig {
        ancestors: 3,
        ..ProcessCacheConfig::default()
    });
    let mut records = vec![
        exec(
            INIT,
            ProcessKey::new(0, 0),
            20,
            b"/sbin/init",
            &[b"/sbin/init"],
            0,
        ),
        exec(
            NGINX,
            INIT,
            1_100,
            b"/usr/sbin/nginx",
            &[b"nginx", b"-g", b"daemon off;"],
            0,
        ),
        encode::fork(ids(SHELL, 2_000), NGINX.tgid, NGINX.start_time_ns, false),
        exec(
            SHELL,
            NGINX,
            2_100,
            b"/bin/sh",
            &[b"sh", b"-c", b"caf\xe9 \\x41"],
            0,
        ),
        encode::fork(ids(TOOL, 3_000), SHELL.tgid, SHELL.start_time_ns, false),
        exec(
            TOOL,
            SHELL,
            3_100,
            b"/tmp/\xff/tool",
            &[b"tool", b"back\\slash", b""],
            0,
        ),
        encode::fork(
            Ids {
                pid: 301,
                ..ids(TOOL, 3_150)
            },
            TOOL.tgid,
            TOOL.start_time_ns,
            true,
        ),
    ];
    records.extend(syscalls());
    records.extend(network());
    records.extend(files());
    records.extend(dns());
    let at = |time_ns| ids(TOOL, time_ns);
    records.extend([
        encode::tcp_state(at(5_000), 2, 1, 2, TCP_STATE_OWNER_KNOWN),
        // A close on behalf of no task Vigil can name: the kernel writes pid and tgid 0.
        encode::tcp_state(
            Ids {
                time_ns: 5_001,
                ..Ids::default()
            },
            1,
            7,
            2,
            0,
        ),
        encode::cred_change(
            at(5_002),
            nr("setuid"),
            0,
            creds(1000, 0),
            creds(0, u64::MAX),
            0,
        ),
        exec(
            TOOL,
            SHELL,
            6_000,
            b"/memfd:x (deleted)",
            &[b"x"],
            EXEC_EXE_UNLINKED,
        ),
        encode::exit(at(7_000), 3 << 8, true),
        encode::exit(ids(SHELL, 7_001), 9 | 0x80, true),
    ]);
    let mut events: Vec<Event> = records
        .iter()
        .map(|record| cache.apply(decode(record).expect("a valid record")))
        .collect();
    for event in &mut events {
        workload(event);
    }
    events
}

fn exec(
    key: ProcessKey,
    parent: ProcessKey,
    time_ns: u64,
    binary: &[u8],
    args: &[&[u8]],
    flags: u32,
) -> Vec<u8> {
    let comm = binary.rsplit(|&b| b == b'/').next().unwrap_or_default();
    encode::exec(&ExecSpec {
        ids: ids(key, time_ns),
        ppid: parent.tgid,
        parent_start_time_ns: parent.start_time_ns,
        uid: if key == TOOL { 1000 } else { 0 },
        flags,
        comm,
        filename: binary,
        args,
        binary,
        cwd: b"/srv/\xfe",
        cgroup: b"/kubepods/besteffort/pod1234/0123456789ab",
    })
}

/// The group leader of `key` at `time_ns`, in the cgroup of the pod (a task's cgroup is
/// carried as its process's).
fn ids(key: ProcessKey, time_ns: u64) -> Ids {
    Ids {
        cgroup_id: 7,
        ..Ids::leader(key, time_ns)
    }
}

fn nr(name: &str) -> u32 {
    Arch::NATIVE
        .number(name)
        .expect("a syscall of this architecture")
}

fn creds(uid: u32, caps: u64) -> CredSnapshot {
    CredSnapshot {
        uid,
        euid: uid,
        suid: uid,
        fsuid: uid,
        cap_effective: caps,
        cap_permitted: caps,
        ..CredSnapshot::default()
    }
}

/// A syscall record of `name` by the tool, at `time_ns`.
fn call(name: &str, time_ns: u64, raw: [u64; SYSCALL_ARGS], strings: &[&[u8]]) -> Vec<u8> {
    encode::syscall(&SyscallSpec {
        ids: ids(TOOL, time_ns),
        nr: nr(name),
        args: raw,
        ret: 3,
        exit_time_ns: time_ns + 10,
        arg_types: args::type_word(args::spec(name)),
        strings,
        ..SyscallSpec::default()
    })
}

/// Arguments of every kind: int, uint, hex, str, named, unread; and a call Vigil has no
/// name for (raw arguments).
fn syscalls() -> Vec<Vec<u8>> {
    let unknown = (0..vigil_common::syscall::SYSCALL_NR_MAX)
        .find(|&nr| Arch::NATIVE.name(nr).is_none())
        .expect("a number without a name");
    // The string could not be read: the flag and an empty copy.
    let unread = encode::syscall(&SyscallSpec {
        ids: ids(TOOL, 4_005),
        nr: nr("chroot"),
        args: [0x7000, 0, 0, 0, 0, 0],
        arg_types: args::type_word(args::spec("chroot")),
        flags: SYSCALL_STRING_UNREADABLE,
        strings: &[b""],
        ..SyscallSpec::default()
    });
    vec![
        call(
            "memfd_create",
            4_000,
            [0x7000, 1, 0, 0, 0, 0],
            &[b"pay\xffload"],
        ),
        call(
            "mount",
            4_001,
            [1, 2, 3, 0xc0ed_0000 | 1 | 1 << 12, 0x9000, 0],
            &[b"/dev/sda1", b"/mnt/\\host", b"ext4"],
        ),
        call("ptrace", 4_002, [16, 4242, 0, 0, 0, 0], &[]),
        call(
            "init_module",
            4_003,
            [0x5000, 65_536, 0x6000, 0, 0, 0],
            &[b"x=1"],
        ),
        call("setuid", 4_004, [u64::from(u32::MAX), 0, 0, 0, 0, 0], &[]),
        unread,
        encode::syscall(&SyscallSpec {
            ids: ids(TOOL, 4_006),
            nr: unknown,
            args: [1, 2, 3, 4, 5, 6],
            ret: -38,
            ..SyscallSpec::default()
        }),
    ]
}

fn sockaddr(family: u16, port: u16, addr: &[u8]) -> Vec<u8> {
    let mut out = family.to_ne_bytes().to_vec();
    if family == 2 || family == 10 {
        out.extend_from_slice(&port.to_be_bytes());
        if family == 10 {
            out.extend_from_slice(&[0; 4]);
        }
    }
    out.extend_from_slice(addr);
    out
}

/// connect, bind, accept and listen with every shape of address.
fn network() -> Vec<Vec<u8>> {
    let net = |name: &str, time_ns, addr: &[u8]| {
        encode::syscall(&SyscallSpec {
            ids: ids(TOOL, time_ns),
            nr: nr(name),
            args: [3, 0x8000, addr.len() as u64, 0, 0, 0],
            ret: 0,
            exit_time_ns: time_ns + 10,
            arg_types: args::type_word(args::spec(name)),
            addr,
            ..SyscallSpec::default()
        })
    };
    let v6: [u8; 16] = "fd00::7"
        .parse::<std::net::Ipv6Addr>()
        .expect("v6")
        .octets();
    let mapped = "::ffff:10.1.2.3"
        .parse::<std::net::Ipv6Addr>()
        .expect("v6")
        .octets();
    vec![
        net("connect", 4_100, &sockaddr(2, 3333, &[10, 1, 2, 3])),
        net("connect", 4_101, &sockaddr(10, 443, &v6)),
        net("connect", 4_102, &sockaddr(10, 14444, &mapped)),
        net("bind", 4_103, &sockaddr(2, 8080, &[127, 0, 0, 1])),
        net("connect", 4_104, &sockaddr(1, 0, b"/run/docker.sock\0")),
        net("connect", 4_105, &sockaddr(1, 0, b"\0abstract\xff")),
        net("bind", 4_106, &sockaddr(1, 0, b"")),
        net("connect", 4_107, &sockaddr(16, 0, &[0; 10])),
        net("connect", 4_108, &sockaddr(2, 0, &[])),
        net("connect", 4_109, &[1]),
        net("accept", 4_110, &[]),
        encode::syscall(&SyscallSpec {
            ids: ids(TOOL, 4_111),
            nr: nr("listen"),
            args: [3, 128, 0, 0, 0, 0],
            arg_types: args::type_word(args::spec("listen")),
            ..SyscallSpec::default()
        }),
    ]
}

fn files() -> Vec<Vec<u8>> {
    let o_creat_wronly = 0o100 | 1;
    vec![
        call(
            "openat",
            4_200,
            [
                u64::from(u32::MAX - 99),
                0x1000,
                o_creat_wronly,
                0o644,
                0,
                0,
            ],
            &[b"/etc/shadow"],
        ),
        call(
            "renameat2",
            4_201,
            [0, 0x1000, 0, 0x2000, 0, 0],
            &[b"/tmp/a", b"/usr/bin/\xffa"],
        ),
        call(
            "fchmodat",
            4_202,
            [0, 0x1000, 0o4755, 0, 0, 0],
            &[b"/usr/local/bin/x"],
        ),
        call(
            "unlinkat",
            4_203,
            [0, 0x1000, 0, 0, 0, 0],
            &[b"/var/log/wtmp"],
        ),
        call(
            "fchownat",
            4_204,
            [0, 0x1000, 0, 0, 0, 0],
            &[b"/etc/sudoers"],
        ),
    ]
}

fn dns() -> Vec<Vec<u8>> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["xmr", "pool", "example"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 16, 0, 1]);
    let at = |time_ns| ids(TOOL, time_ns);
    vec![
        encode::dns(at(4_300), [10, 96, 0, 10], 40000, &query, 0),
        encode::dns(at(4_301), [10, 96, 0, 10], 40001, &[0x12], 0),
        encode::dns(at(4_302), [10, 96, 0, 10], 40002, &[0], DNS_OVER_TCP),
        encode::dns(at(4_303), [10, 96, 0, 10], 40003, &query[..12], 0),
    ]
}

/// The enricher's part: the tool and its shell run in a pod; nginx in a container of
/// another runtime with nothing but an id.
fn workload(event: &mut Event) {
    let Some(process) = &event.process else {
        return;
    };
    if process.key == NGINX {
        event.container = Some(Arc::new(Container {
            id: ContainerId("fedcba987654".into()),
            runtime: Runtime::Docker,
            name: None,
            image: None,
            image_digest: None,
        }));
    }
    if process.key != TOOL && process.key != SHELL {
        return;
    }
    event.container = Some(Arc::new(Container {
        id: ContainerId("0123456789ab".into()),
        runtime: Runtime::Containerd,
        name: Some("app".into()),
        image: Some("registry.example/app:1.2".into()),
        image_digest: Some(format!("sha256:{}", "a".repeat(64))),
    }));
    event.pod = Some(Arc::new(Pod {
        name: Some("app-0".into()),
        namespace: Some("shop".into()),
        uid: Some("1234".into()),
        labels: BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "front".to_owned()),
        ]),
    }));
}

/// A loss, an enforcement record, and the findings `set` gives on `events`.
pub(crate) fn records(set: &Arc<PolicySet>, events: &[(String, Event)]) -> Vec<Event> {
    let mut out = vec![
        Event::new(
            9_000,
            0,
            None,
            None,
            Detail::Loss(Loss {
                counts: vec![
                    ("ringbuf_full_exec", 3),
                    ("queue_full_fork", 1),
                    ("api_client_lagged", 2),
                ],
            }),
        ),
        Event::new(
            9_001,
            300,
            None,
            None,
            Detail::Enforcement(Box::new(Enforcement {
                action: "connect_denied",
                by: By::Kernel,
                rule: Some("connect-to-mining-pool-port".into()),
                rule_id: None,
                target: "connection:300:10.1.2.3:3333".into(),
                tgid: 300,
                pid: 300,
                comm: String::new(),
                cgroup_id: 0,
                binary: None,
                destination: Some("10.1.2.3:3333".parse().expect("an address")),
                outcome: "ok",
                error: None,
                latency_ns: 0,
                operator: None,
            })),
        ),
    ];
    for (node, event) in events {
        let mut stage = PolicyStage::new(set.clone(), node.clone());
        let mut batch = vec![event.clone()];
        stage.process(&mut batch, 0);
        out.extend(batch.drain(1..));
    }
    out
}
