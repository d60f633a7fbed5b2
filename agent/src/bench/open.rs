//! `vigil bench open`: open + close of one file under a watched prefix (a temporary folder,
//! added after the default `[files] watch` prefixes, so the kernel compares the path with every
//! one of them before it matches), with no tracer, with Vigil's file sensor
//! and with libbpf-tools `opensnoop -p WORKER` and a bpftrace `printf` on `sys_enter_openat`
//! with a `/pid == WORKER/` filter (both filtered in the kernel to the storm's process, which
//! keeps their output to the storm's opens).

use std::os::unix::ffi::OsStrExt;

use anyhow::Context as _;

use super::{
    peer,
    storm::{PeerSpec, Spec, Target},
    worker::Kind,
};
use crate::{
    config::Config,
    event::{Detail, Event},
};

/// Vigil's events of the storm: 0 the worker's file events on the storm's file.
pub(super) fn classify(target: &Target, event: &Event) -> Option<usize> {
    match (&event.detail, &target.file) {
        (Detail::File(f), Some(file))
            if f.task.key.tgid == target.pid && f.path == file.as_os_str().as_bytes() =>
        {
            Some(0)
        }
        _ => None,
    }
}

fn file_of(target: &Target) -> &std::path::Path {
    target.file.as_deref().unwrap_or(std::path::Path::new(""))
}

pub async fn run(count: u32, runs: u32) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-bench-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut config = Config::default();
    config.files.watch.push(format!("{}/", dir.display()));
    let result = super::storm::run(Spec {
        kind: Kind::Open,
        iteration: "open O_RDONLY + close of a file in a watched folder",
        count,
        runs,
        file: Some(dir.join("target")),
        config,
        classes: &[("file events (openat)", 1)],
        classify,
        peers: vec![
            PeerSpec {
                tool: peer::OPENSNOOP,
                name: "opensnoop",
                args: |t| vec!["-p".into(), t.pid.to_string()],
                classify: |t| Box::new(peer::opensnoop_open_of(file_of(t))),
                classes: &[("opens", 1)],
            },
            PeerSpec {
                tool: peer::BPFTRACE,
                name: "bpftrace",
                args: |t| peer::bpftrace_open(t.pid),
                // `PID PATH`: the path is last, as in opensnoop's lines.
                classify: |t| Box::new(peer::opensnoop_open_of(file_of(t))),
                classes: &[("opens", 1)],
            },
        ],
        perf_events: "syscalls:sys_enter_openat",
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
