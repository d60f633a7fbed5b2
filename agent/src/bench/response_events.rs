//! The exporter of `vigil bench response`: for each child of the bench (known by the copy of
//! `sleep` it executed), the kernel times of its exec and exit, its finding and enforcement
//! event, and when each reached the exporter (CLOCK_BOOTTIME, the kernel's clock). Every
//! event is rendered as JSON on the way, so the whole pipeline's cost is paid.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use crate::{
    clock::{BootClock, boot_now_ns},
    event::{Detail, Event},
    export::{Exporter, json::JsonRenderer},
    policy::Status,
};

/// Which copy of `sleep` a child ran, and so which rule met it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Killed by the responder thread (rule action `kill`).
    Killed,
    /// Killed by the kernel at exec (rule action `kill_on_exec`).
    Denied,
    /// No rule: the baseline.
    Allowed,
}

/// A finding as the exporter saw it.
#[derive(Clone, Debug)]
pub struct FindingSeen {
    pub status: Status,
    pub latency_ns: u64,
    pub error: Option<String>,
    pub exported_ns: u64,
}

/// What reached the exporter about one child.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub exec_ns: Option<u64>,
    pub exec_exported_ns: Option<u64>,
    pub exit_ns: Option<u64>,
    pub finding: Option<FindingSeen>,
    /// The enforcement event's time (the kernel's record for a kernel action) and when it
    /// was exported.
    pub enforcement: Option<(u64, u64)>,
}

/// By (tgid, role): pids are reused, but not by two children of one role, which run one
/// at a time.
pub type SeenMap = BTreeMap<(u32, Role), Seen>;

pub struct Collector {
    /// Each copy's canonical path.
    pub copies: Vec<(PathBuf, Role)>,
    /// Each rule's name.
    pub rules: Vec<(String, Role)>,
    pub seen: Arc<Mutex<SeenMap>>,
    /// The role of each live child, for its exit.
    live: BTreeMap<u32, Role>,
    renderer: JsonRenderer,
    buf: Vec<u8>,
}

impl Collector {
    pub fn new(
        copies: Vec<(PathBuf, Role)>,
        rules: Vec<(String, Role)>,
        seen: Arc<Mutex<SeenMap>>,
    ) -> Self {
        Self {
            copies,
            rules,
            seen,
            live: BTreeMap::new(),
            renderer: JsonRenderer::new("bench".into(), BootClock::now()),
            buf: Vec::with_capacity(1 << 20),
        }
    }

    fn role_of_binary(&self, path: &[u8]) -> Option<Role> {
        use std::os::unix::ffi::OsStrExt;
        self.copies
            .iter()
            .find(|(p, _)| p.as_os_str().as_bytes() == path)
            .map(|(_, role)| *role)
    }

    fn role_of_rule(&self, name: Option<&str>) -> Option<Role> {
        let name = name?;
        self.rules
            .iter()
            .find(|(rule, _)| rule == name)
            .map(|(_, role)| *role)
    }
}

impl Exporter for Collector {
    fn export(&mut self, events: &[Event]) -> std::io::Result<()> {
        let now = boot_now_ns();
        self.buf.clear();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for event in events {
            self.renderer.render(event, &mut self.buf);
            match &event.detail {
                Detail::Exec(exec) => {
                    if let Some(role) = self.role_of_binary(&exec.image.binary.path) {
                        let tgid = exec.task.key.tgid;
                        self.live.insert(tgid, role);
                        seen.insert(
                            (tgid, role),
                            Seen {
                                exec_ns: Some(event.time_ns),
                                exec_exported_ns: Some(now),
                                ..Seen::default()
                            },
                        );
                    }
                }
                Detail::Exit(exit) if exit.group_dead => {
                    let tgid = exit.task.key.tgid;
                    if let Some(role) = self.live.remove(&tgid) {
                        seen.entry((tgid, role)).or_default().exit_ns = Some(event.time_ns);
                    }
                }
                Detail::Finding(f) => {
                    if let (Some(role), Some(process)) = (
                        self.role_of_rule(Some(f.rule.name.as_str())),
                        &event.process,
                    ) {
                        seen.entry((process.key.tgid, role)).or_default().finding =
                            Some(FindingSeen {
                                status: f.outcome.status,
                                latency_ns: f.outcome.latency_ns,
                                error: f.outcome.error.clone(),
                                exported_ns: now,
                            });
                    }
                }
                Detail::Enforcement(e) => {
                    if let Some(role) = self.role_of_rule(e.rule.as_deref()) {
                        seen.entry((e.tgid, role)).or_default().enforcement =
                            Some((event.time_ns, now));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
