//! The generated event stream of `vigil bench churn`: short-lived processes (fork, exec, exit)
//! in a few pod containers, as the kernel programs would record them.

use std::sync::Arc;

use crate::{
    decode::encode::{self, ExecSpec, Ids},
    enrich::{ContainerId, EnrichConfig, Enricher, LookupResult, Metadata, Pod, Runtime},
    pipeline::Pipeline,
    process::ProcessKey,
    source::Batch,
};

/// The shell that starts every process of the stream.
const SHELL: ProcessKey = ProcessKey::new(100, 1_000);
/// Pod containers the processes run in (cgroup ids `CGROUP_BASE..CGROUP_BASE + CONTAINERS`).
const CONTAINERS: u32 = 64;
const CGROUP_BASE: u64 = 10_000;
/// One exec in this many runs from /tmp: the default pack's `exec-from-temp-dir` fires.
const FINDING_EVERY: u32 = 1_000;
/// Lifecycles per batch (three records each), as the ring-buffer reader hands them over.
pub const BATCH_LIFECYCLES: u32 = 256;

/// The cgroup paths of the containers, as the kernel reads them at exec.
pub struct Stream {
    cgroups: Vec<Vec<u8>>,
}

fn container_id(n: u32) -> String {
    format!("{n:08x}{}", "c".repeat(56))
}

fn pod_uid(n: u32) -> String {
    format!("8c0d9a52-1f3e-4b7a-9c61-{n:012x}")
}

impl Stream {
    pub fn new() -> Self {
        Self {
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

    /// An exec of the shell itself (so that every process has a known parent).
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
    }

    /// fork + exec + exit records of process number `i` (pids wrap as on a busy node).
    pub fn lifecycle(&self, i: u32, batch: &mut Batch) {
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

    /// Lifecycles `from..to` in one batch (cleared first).
    pub fn batch(&self, from: u32, to: u32, batch: &mut Batch) {
        batch.clear();
        for i in from..to {
            self.lifecycle(i, batch);
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
