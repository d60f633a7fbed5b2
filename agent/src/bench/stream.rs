//! The generated event streams of `vigil bench churn`, as the kernel programs would record
//! them: short-lived processes only ([`Mix::Churn`]), or a service node's mix
//! ([`Mix::Service`]), in a few pod containers.

use std::sync::Arc;

use vigil_common::{
    network::{TCP_CLOSE, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_STATE_OWNER_KNOWN, TCP_SYN_SENT},
    syscall::SYSCALL_ARGS,
};

use crate::{
    decode::encode::{self, ExecSpec, Ids, SyscallSpec},
    enrich::{ContainerId, EnrichConfig, Enricher, LookupResult, Metadata, Pod, Runtime},
    pipeline::Pipeline,
    process::ProcessKey,
    source::Batch,
    syscall::{Arch, args},
};

/// The shell that starts every process of the stream.
const SHELL: ProcessKey = ProcessKey::new(100, 1_000);
/// Pod containers the processes run in (cgroup ids `CGROUP_BASE..CGROUP_BASE + CONTAINERS`).
const CONTAINERS: u32 = 64;
const CGROUP_BASE: u64 = 10_000;
/// One exec in this many runs from /tmp: the default pack's `exec-from-temp-dir` fires.
const FINDING_EVERY: u32 = 1_000;
/// Records per batch, about: as the ring-buffer reader hands them over.
const BATCH_RECORDS: u32 = 768;
/// Long-lived processes of the service mix: eight per container.
const SERVICES: u32 = 8 * CONTAINERS;
/// Records per unit of the service mix: 17 of the long-lived processes, then one
/// short-lived child's fork, exec and exit.
const SERVICE_UNIT: u32 = 20;

/// What the stream is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Short-lived processes only (fork, exec, exit): every event creates, replaces or
    /// retires a process and carries a new image. The worst case for the process cache
    /// and the JSON renderer.
    Churn,
    /// A service node: 512 long-lived processes in the pods read watched files
    /// (`/etc/passwd`, `/etc/group`), connect, accept, change TCP state and resolve names;
    /// 3 records in 20 are a short-lived child's fork, exec and exit.
    Service,
}

/// The cgroup paths of the containers, as the kernel reads them at exec.
pub struct Stream {
    mix: Mix,
    cgroups: Vec<Vec<u8>>,
}

/// The long-lived process number `n` of the service mix.
fn service(n: u32) -> ProcessKey {
    ProcessKey::new(200_000 + n, 2_000 + u64::from(n))
}

fn syscall_nr(name: &str) -> u32 {
    Arch::NATIVE
        .number(name)
        .expect("a syscall of this architecture")
}

/// A syscall record of `name` as the sensor writes it (its arguments' type word).
fn call(
    ids: Ids,
    name: &str,
    raw: [u64; SYSCALL_ARGS],
    ret: i64,
    strings: &[&[u8]],
    addr: &[u8],
) -> Vec<u8> {
    encode::syscall(&SyscallSpec {
        ids,
        nr: syscall_nr(name),
        args: raw,
        ret,
        exit_time_ns: ids.time_ns + 2_000,
        arg_types: args::type_word(args::spec(name)),
        strings,
        addr,
        ..SyscallSpec::default()
    })
}

/// A DNS query message for `name` (type A), as a resolver sends it.
fn dns_query(id: u16, name: &[&[u8]]) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    // Recursion desired; one question.
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name {
        m.push(label.len() as u8);
        m.extend_from_slice(label);
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

fn container_id(n: u32) -> String {
    format!("{n:08x}{}", "c".repeat(56))
}

fn pod_uid(n: u32) -> String {
    format!("8c0d9a52-1f3e-4b7a-9c61-{n:012x}")
}

impl Stream {
    pub fn new(mix: Mix) -> Self {
        Self {
            mix,
            cgroups: (0..CONTAINERS)
                .map(|n| {
                    format!(
                        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
                        pod_uid(n).replace('-', "_"),
                        container_id(n)
                    )
                    .into_bytes()
                })
                .collect(),
        }
    }

    /// Units per batch: a lifecycle of the churn, [`SERVICE_UNIT`] records of the service
    /// mix.
    pub fn batch_units(&self) -> u32 {
        match self.mix {
            Mix::Churn => BATCH_RECORDS / 3,
            Mix::Service => BATCH_RECORDS / SERVICE_UNIT,
        }
    }

    /// The time (boot ns) of unit `i`, as the agent's tick would see it after the unit.
    pub fn time_of(&self, i: u32) -> u64 {
        match self.mix {
            Mix::Churn => 10_000 + u64::from(i) * 1_000,
            Mix::Service => 10_000_000 + u64::from(i) * 20_000,
        }
    }

    /// Records in `units` units.
    pub fn records(&self, units: u32) -> u64 {
        u64::from(units)
            * match self.mix {
                Mix::Churn => 3,
                Mix::Service => u64::from(SERVICE_UNIT),
            }
    }

    /// What went before the stream (not timed): an exec of the shell itself, so that every
    /// process has a known parent, and the long-lived processes of the service mix.
    pub fn shell(&self, batch: &mut Batch) {
        batch.push(&encode::exec(&ExecSpec {
            ids: Ids::leader(SHELL, SHELL.start_time_ns),
            ppid: 1,
            parent_start_time_ns: 1,
            comm: b"bash",
            filename: b"/bin/bash",
            args: &[b"/bin/bash", b"/usr/local/bin/entrypoint.sh"],
            binary: b"/usr/bin/bash",
            cwd: b"/var/lib/app",
            cgroup: &self.cgroups[0],
            ..ExecSpec::default()
        }));
        if self.mix == Mix::Service {
            for n in 0..SERVICES {
                let key = service(n);
                batch.push(&encode::exec(&ExecSpec {
                    ids: self.ids(key, key.start_time_ns + 100, n % CONTAINERS),
                    ppid: SHELL.tgid,
                    parent_start_time_ns: SHELL.start_time_ns,
                    comm: b"gunicorn",
                    filename: b"/usr/local/bin/gunicorn",
                    args: &[
                        b"/usr/local/bin/python3.12",
                        b"/usr/local/bin/gunicorn",
                        b"shop.wsgi:application",
                        b"--bind",
                        b"0.0.0.0:8080",
                        b"--workers",
                        b"4",
                    ],
                    binary: b"/usr/local/bin/python3.12",
                    cwd: b"/srv/shop",
                    cgroup: &self.cgroups[(n % CONTAINERS) as usize],
                    ..ExecSpec::default()
                }));
            }
        }
    }

    /// Header ids of `key`'s leader at `time_ns` in container number `container`.
    fn ids(&self, key: ProcessKey, time_ns: u64, container: u32) -> Ids {
        Ids {
            cgroup_id: CGROUP_BASE + u64::from(container),
            ..Ids::leader(key, time_ns)
        }
    }

    /// Unit `i` of the stream.
    fn unit(&self, i: u32, batch: &mut Batch) {
        match self.mix {
            Mix::Churn => self.lifecycle(i, batch),
            Mix::Service => self.service_unit(i, batch),
        }
    }

    /// 17 records of long-lived process `i % SERVICES`, then a short-lived child of it.
    fn service_unit(&self, i: u32, batch: &mut Batch) {
        // Watched by default, opened by user and group lookups.
        const PASSWD: &[u8] = b"/etc/passwd";
        const GROUP: &[u8] = b"/etc/group";
        // O_RDONLY | O_CLOEXEC, at AT_FDCWD.
        const OPEN: [u64; SYSCALL_ARGS] =
            [(u32::MAX - 99) as u64, 0x7f00_1000, 0o2_000_000, 0, 0, 0];
        let n = i % SERVICES;
        let container = n % CONTAINERS;
        let key = service(n);
        let t = 10_000_000 + u64::from(i) * 20_000;
        let ids = |k: u64| self.ids(key, t + k * 1_000, container);
        for (k, path) in [PASSWD, GROUP, PASSWD, GROUP, PASSWD]
            .into_iter()
            .enumerate()
        {
            batch.push(&call(ids(k as u64), "openat", OPEN, 7, &[path], &[]));
        }
        let db = sockaddr_in([10, 96, (n % 256) as u8, 10], 5432);
        for k in 5..9 {
            let raw = [8, 0x7f00_2000, db.len() as u64, 0, 0, 0];
            batch.push(&call(ids(k), "connect", raw, -115, &[], &db));
        }
        for (k, (old, new)) in [
            (TCP_CLOSE, TCP_SYN_SENT),
            (TCP_SYN_SENT, TCP_ESTABLISHED),
            (TCP_ESTABLISHED, TCP_FIN_WAIT1),
            (TCP_FIN_WAIT1, TCP_CLOSE),
        ]
        .into_iter()
        .enumerate()
        {
            let flags = TCP_STATE_OWNER_KNOWN;
            batch.push(&encode::tcp_state(ids(9 + k as u64), old, new, 2, flags));
        }
        let query = dns_query(i as u16, &[b"db", b"shop", b"svc", b"cluster", b"local"]);
        for k in 13..15 {
            let sport = 30_000 + (i % 30_000) as u16;
            batch.push(&encode::dns(ids(k), [10, 96, 0, 10], sport, &query, 0));
        }
        for k in 15..17 {
            let raw = [5, 0x7f00_3000, 0x7f00_3100, 0, 0, 0];
            batch.push(&call(ids(k), "accept4", raw, 9, &[], &[]));
        }
        let child = ProcessKey::new(1_000_000 + i % 3_000_000, t + 17_000);
        let child_ids = |time_ns| self.ids(child, time_ns, container);
        batch.push(&encode::fork(
            child_ids(child.start_time_ns),
            key.tgid,
            key.start_time_ns,
            false,
        ));
        batch.push(&encode::exec(&ExecSpec {
            ids: child_ids(t + 18_000),
            ppid: key.tgid,
            parent_start_time_ns: key.start_time_ns,
            comm: b"healthcheck",
            filename: b"/srv/shop/bin/healthcheck",
            args: &[b"/srv/shop/bin/healthcheck", b"--timeout", b"2s"],
            binary: b"/srv/shop/bin/healthcheck",
            cwd: b"/srv/shop",
            cgroup: &self.cgroups[container as usize],
            ..ExecSpec::default()
        }));
        batch.push(&encode::exit(child_ids(t + 19_000), 0, true));
    }

    /// fork + exec + exit records of process number `i` (pids wrap as on a busy node).
    fn lifecycle(&self, i: u32, batch: &mut Batch) {
        let key = ProcessKey::new(1_000 + i % 4_000_000, 10_000 + u64::from(i) * 1_000);
        let t = key.start_time_ns;
        let container = i % CONTAINERS;
        let ids = |time_ns| Ids {
            cgroup_id: CGROUP_BASE + u64::from(container),
            ..Ids::leader(key, time_ns)
        };
        batch.push(&encode::fork(
            ids(t),
            SHELL.tgid,
            SHELL.start_time_ns,
            false,
        ));
        let binary: &[u8] = if i % FINDING_EVERY == FINDING_EVERY - 1 {
            b"/tmp/true"
        } else {
            b"/usr/bin/true"
        };
        batch.push(&encode::exec(&ExecSpec {
            ids: ids(t + 100),
            ppid: SHELL.tgid,
            parent_start_time_ns: SHELL.start_time_ns,
            comm: b"true",
            filename: binary,
            args: &[binary, b"--some-flag", b"an-argument"],
            binary,
            cwd: b"/var/lib/app",
            cgroup: &self.cgroups[container as usize],
            ..ExecSpec::default()
        }));
        batch.push(&encode::exit(ids(t + 500), 0, true));
    }

    /// Units `from..to` in one batch (cleared first).
    pub fn batch(&self, from: u32, to: u32, batch: &mut Batch) {
        batch.clear();
        for i in from..to {
            self.unit(i, batch);
        }
    }

    /// An enricher that knows every container of the stream and its pod, as after their
    /// CRI lookups: every event's lookup hits its cache.
    pub fn enricher(&self) -> Enricher {
        let config = EnrichConfig {
            cache_max_entries: 1_024,
            ..EnrichConfig::default()
        };
        let (requests, mut asked) = tokio::sync::mpsc::channel(CONTAINERS as usize);
        let mut enricher = Enricher::new(&config, Some(requests), None);
        let mut pipeline = Pipeline::new(Default::default(), Arc::default());
        let mut out = Vec::new();
        for n in 0..CONTAINERS {
            let mut batch = Batch::default();
            batch.push(&encode::exec(&ExecSpec {
                ids: Ids {
                    cgroup_id: CGROUP_BASE + u64::from(n),
                    ..Ids::leader(ProcessKey::new(50 + n, 500), 500)
                },
                ppid: 1,
                parent_start_time_ns: 1,
                filename: b"/pause",
                args: &[b"/pause"],
                binary: b"/pause",
                cwd: b"/",
                cgroup: &self.cgroups[n as usize],
                ..ExecSpec::default()
            }));
            pipeline.process_batch(&batch, &mut out);
            for event in out.drain(..) {
                enricher.push(event, 0, &mut Vec::new());
            }
        }
        while let Ok(id) = asked.try_recv() {
            let result = LookupResult {
                outcome: crate::enrich::lookup::Outcome::Found(metadata(&id)),
                id,
            };
            enricher.on_result(result, 0, &mut out);
        }
        enricher
    }
}

/// A `sockaddr_in` as connect(2) passes it.
fn sockaddr_in(ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut out = 2u16.to_ne_bytes().to_vec();
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&ip);
    out.extend_from_slice(&[0; 8]);
    out
}

/// What a CRI socket says of a container of the stream.
fn metadata(id: &ContainerId) -> Metadata {
    let n = &id.as_str()[..8];
    Metadata {
        runtime: Some(Runtime::Containerd),
        name: Some("app".into()),
        image: Some("registry.example.com/shop/app:1.4.2".into()),
        image_digest: Some(format!("sha256:{}", "d".repeat(64))),
        pod: Some(Pod {
            name: Some(format!("app-{n}")),
            namespace: Some("shop".into()),
            uid: None,
            labels: [
                ("app".to_owned(), "shop".to_owned()),
                ("tier".to_owned(), "backend".to_owned()),
            ]
            .into(),
        }),
    }
}
