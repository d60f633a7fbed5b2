//! [`Enforcer`]: the rules, kept in the pinned maps the enforcement programs read. Every
//! change is made to the rule record first, under its lock; the kernel entries are then
//! rebuilt from the whole record (a few hundred entries at most), so the maps never drift
//! from what `vigil enforcement list` shows.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf, lpm_trie::LpmTrie};
use serde::Serialize;
use vigil_common::{
    enforce::{
        EnforceControl, ExecRule, FileKey, NET_PORTS_MAX, NetKeyV4, NetKeyV6, NetPolicy, NetRule,
    },
    maps::{
        ENFORCE_CONTROL, ENFORCE_EVENTS, ENFORCE_STATS, EXEC_DENY, NET_DENY_V4, NET_DENY_V6,
        NET_POLICY, OPEN_DENY,
    },
};

use super::{
    CgroupRef, EnforceError, Guard, Layout, RateLimit, Rule, RuleKind,
    devno::file_key_of,
    freeze::{self, FreezeMode},
    install::{self, Duty, InstallReport},
    process,
    rules::{self, Locked, RuleSet},
};
use crate::cgroup::CgroupFs;

mod actions;
mod sync;
pub use actions::KernelAction;
pub use sync::parse_cidr;

/// Who asks for operator commands; any other origin is automated and rate-limited.
pub const ORIGIN_CLI: &str = "cli";

struct Maps {
    exec: HashMap<MapData, FileKey, ExecRule>,
    /// Absent under pins made by an agent older than the open deny map.
    open: Option<HashMap<MapData, FileKey, ExecRule>>,
    policy: HashMap<MapData, u64, NetPolicy>,
    v4: LpmTrie<MapData, NetKeyV4, NetRule>,
    v6: LpmTrie<MapData, NetKeyV6, NetRule>,
    control: Array<MapData, EnforceControl>,
    stats: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
}

fn open_map(layout: &Layout, name: &'static str) -> Result<Map, EnforceError> {
    let path = layout.map(name);
    let data = MapData::from_pin(&path).map_err(|source| EnforceError::OpenMap {
        path: path.clone(),
        source,
    })?;
    Map::from_map_data(data).map_err(|source| EnforceError::OpenMap { path, source })
}

macro_rules! typed {
    ($layout:expr, $name:expr) => {
        open_map($layout, $name)?
            .try_into()
            .map_err(|source| EnforceError::Map {
                name: $name,
                source,
            })?
    };
}

impl Maps {
    fn open(layout: &Layout) -> Result<Self, EnforceError> {
        Ok(Self {
            exec: typed!(layout, EXEC_DENY),
            open: open_map(layout, OPEN_DENY)
                .ok()
                .and_then(|m| HashMap::try_from(m).ok()),
            policy: typed!(layout, NET_POLICY),
            v4: typed!(layout, NET_DENY_V4),
            v6: typed!(layout, NET_DENY_V6),
            control: typed!(layout, ENFORCE_CONTROL),
            stats: typed!(layout, ENFORCE_STATS),
            events: open_map(layout, ENFORCE_EVENTS)
                .ok()
                .and_then(|m| RingBuf::try_from(m).ok()),
        })
    }
}

/// A rule as `vigil enforcement list` shows it: the record and what the kernel counted.
#[derive(Clone, Debug, Serialize)]
pub struct RuleView {
    #[serde(flatten)]
    pub rule: Rule,
    /// Kernel hits of the entry this rule is part of (shared by rules on one entry).
    pub hits: Option<u64>,
}

/// The rules and the actions. Cheap to hold; the agent keeps one for its lifetime, the CLI
/// one per command.
pub struct Enforcer {
    layout: Layout,
    cgroups: CgroupFs,
    guard: Guard,
    limit: RateLimit,
    maps: Maps,
}

impl Enforcer {
    /// Attaches and pins the enforcement programs where needed (the BPF-LSM variants where
    /// the kernel runs them), then opens the pinned maps.
    pub fn install(layout: Layout, guard: Guard) -> Result<(Self, InstallReport), EnforceError> {
        Self::install_choosing(layout, guard, true)
    }

    /// As [`Enforcer::install`], with the fallbacks even where BPF-LSM works (kill-on-exec,
    /// cgroup connect deny, no open deny): what a kernel without BPF-LSM gets.
    pub fn install_fallbacks(
        layout: Layout,
        guard: Guard,
    ) -> Result<(Self, InstallReport), EnforceError> {
        Self::install_choosing(layout, guard, false)
    }

    fn install_choosing(
        layout: Layout,
        guard: Guard,
        prefer_lsm: bool,
    ) -> Result<(Self, InstallReport), EnforceError> {
        let cgroups = CgroupFs::discover();
        let report = install::ensure_installed(&layout, cgroups.v2_root.as_deref(), prefer_lsm)?;
        let maps = Maps::open(&layout)?;
        Ok((
            Self {
                layout,
                cgroups,
                guard,
                limit: RateLimit::default(),
                maps,
            },
            report,
        ))
    }

    /// Opens the pinned maps when enforcement is installed; `None` otherwise.
    pub fn open_existing(layout: Layout, guard: Guard) -> Result<Option<Self>, EnforceError> {
        if !layout.map(EXEC_DENY).exists() {
            return Ok(None);
        }
        let maps = Maps::open(&layout)?;
        Ok(Some(Self {
            layout,
            cgroups: CgroupFs::discover(),
            guard,
            limit: RateLimit::default(),
            maps,
        }))
    }

    /// The rate limit of automated (non-CLI) actions.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.limit = limit;
        self
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn admit(&mut self, origin: &str, what: &'static str) -> Result<(), EnforceError> {
        if origin == ORIGIN_CLI || self.limit.try_acquire() {
            Ok(())
        } else {
            tracing::warn!(
                origin,
                what,
                "Containment action refused by the rate limit."
            );
            Err(EnforceError::RateLimited { what })
        }
    }

    /// The cgroup v2 at `path` (below the v2 root, as in `/proc/PID/cgroup`; an absolute
    /// path under the v2 mount is accepted too).
    pub fn cgroup(&self, path: &str) -> Result<CgroupRef, EnforceError> {
        let root = self
            .cgroups
            .v2_root
            .as_ref()
            .ok_or(EnforceError::NoCgroup2)?;
        let rel = Path::new(path)
            .strip_prefix(root)
            .map(|p| format!("/{}", p.display()))
            .unwrap_or_else(|_| format!("/{}", path.trim_start_matches('/')));
        let dir = root.join(rel.trim_start_matches('/'));
        let meta = std::fs::metadata(&dir).map_err(|_| EnforceError::NoSuchCgroup {
            path: path.to_owned(),
        })?;
        if !meta.is_dir() {
            return Err(EnforceError::NoSuchCgroup {
                path: path.to_owned(),
            });
        }
        let rel = if rel.len() > 1 {
            rel.trim_end_matches('/').to_owned()
        } else {
            rel
        };
        Ok(CgroupRef {
            path: rel,
            id: meta.ino(),
        })
    }

    /// The cgroup of a container, by (a prefix of at least 12 characters of) its id, found
    /// by walking the cgroup v2 tree and reading container ids from paths as the enricher
    /// does (docker, containerd, cri-o, podman, kubepods shapes).
    pub fn container_cgroup(&self, id: &str) -> Result<CgroupRef, EnforceError> {
        let root = self
            .cgroups
            .v2_root
            .as_ref()
            .ok_or(EnforceError::NoCgroup2)?;
        if id.len() < 12 {
            return Err(EnforceError::NoSuchContainer { id: id.to_owned() });
        }
        let mut found: Vec<String> = Vec::new();
        let mut stack: Vec<(PathBuf, usize)> = vec![(root.clone(), 0)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let path = entry.path();
                let rel = format!("/{}", path.strip_prefix(root).unwrap_or(&path).display());
                let here = crate::enrich::cgroup_path::parse(rel.as_bytes())
                    .is_some_and(|c| c.id.as_str().starts_with(id));
                let parent_matches = found.iter().any(|f| rel.starts_with(&format!("{f}/")));
                if here && !parent_matches {
                    found.push(rel);
                } else if depth < 10 {
                    stack.push((path, depth + 1));
                }
            }
        }
        match found.len() {
            0 => Err(EnforceError::NoSuchContainer { id: id.to_owned() }),
            1 => self.cgroup(&found[0]),
            count => Err(EnforceError::AmbiguousContainer {
                id: id.to_owned(),
                count,
            }),
        }
    }

    /// Kill-on-exec of `path` (a file; with `dir`, every executable below that directory on
    /// its filesystem), node-wide or in `cgroup` and below. The rule names the inode the
    /// path has now: a file replaced later is a new inode and is not matched.
    pub fn deny_exec(
        &mut self,
        origin: &str,
        path: &Path,
        dir: bool,
        cgroup: Option<&str>,
    ) -> Result<u32, EnforceError> {
        self.admit(origin, "deny_exec")?;
        let (key, path, cgroup) = self.file_target(path, dir, cgroup)?;
        self.guard.check_exec(key)?;
        self.change(|set| {
            Ok(set.add(
                origin,
                RuleKind::DenyExec {
                    path,
                    dir,
                    dev: key.dev,
                    ino: key.ino,
                    cgroup,
                },
            ))
        })
    }

    /// Open deny of `path` (a file; with `dir`, every file below that directory on its
    /// filesystem), node-wide or in `cgroup` and below: the open fails with EPERM. Needs
    /// BPF-LSM (`file_open`); refused with the reason where the kernel does not run it.
    pub fn deny_open(
        &mut self,
        origin: &str,
        path: &Path,
        dir: bool,
        cgroup: Option<&str>,
    ) -> Result<u32, EnforceError> {
        if !install::duty_installed(&self.layout, Duty::Open) || self.maps.open.is_none() {
            let why = install::bpf_lsm_active().err().unwrap_or_else(|| {
                "the kernel refused the BPF-LSM file_open program (see `vigil probe`)".into()
            });
            return Err(EnforceError::Refused {
                reason: format!("denying opens needs BPF-LSM: {why}"),
            });
        }
        self.admit(origin, "deny_open")?;
        let (key, path, cgroup) = self.file_target(path, dir, cgroup)?;
        if dir {
            // A directory rule on a filesystem's root would refuse every open on it.
            let parent_dev = path
                .parent()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.dev());
            let dev = std::fs::metadata(&path).map(|m| m.dev()).ok();
            if path.parent().is_none() || parent_dev != dev {
                return Err(EnforceError::Refused {
                    reason: format!(
                        "{} is the root of a filesystem: denying every open below it would stop the node",
                        path.display()
                    ),
                });
            }
        }
        self.change(|set| {
            Ok(set.add(
                origin,
                RuleKind::DenyOpen {
                    path,
                    dir,
                    dev: key.dev,
                    ino: key.ino,
                    cgroup,
                },
            ))
        })
    }

    /// The kernel identity, canonical path and cgroup scope of a deny-exec or deny-open
    /// target; refuses a file/directory mismatch and guarded cgroups.
    fn file_target(
        &self,
        path: &Path,
        dir: bool,
        cgroup: Option<&str>,
    ) -> Result<(FileKey, PathBuf, Option<CgroupRef>), EnforceError> {
        let key = file_key_of(path).map_err(EnforceError::io("reading", path))?;
        let is_dir = std::fs::metadata(path)
            .map(|m| m.is_dir())
            .map_err(EnforceError::io("reading", path))?;
        if is_dir != dir {
            return Err(EnforceError::Refused {
                reason: format!(
                    "{} is {}a directory (use --dir for directories)",
                    path.display(),
                    if is_dir { "" } else { "not " }
                ),
            });
        }
        let cgroup = match cgroup {
            Some(c) => {
                let c = self.cgroup(c)?;
                self.guard.check_cgroup(&c.path)?;
                Some(c)
            }
            None => None,
        };
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok((key, path, cgroup))
    }

    /// Connect/sendmsg deny of `cgroup` (and below) to `cidr` (`10.0.0.0/8`, `::1/128`, or
    /// one address), on `ports` (empty: every port).
    pub fn deny_connect(
        &mut self,
        origin: &str,
        cgroup: &str,
        cidr: &str,
        ports: &[u16],
    ) -> Result<u32, EnforceError> {
        self.admit(origin, "deny_connect")?;
        let cgroup = self.cgroup(cgroup)?;
        self.guard.check_cgroup(&cgroup.path)?;
        let (addr, prefix) = parse_cidr(cidr)?;
        if ports.len() > NET_PORTS_MAX {
            return Err(EnforceError::TooMany {
                what: "ports",
                max: NET_PORTS_MAX,
            });
        }
        self.change(|set| {
            Ok(set.add(
                origin,
                RuleKind::DenyConnect {
                    cgroup,
                    cidr: format!("{addr}/{prefix}"),
                    ports: ports.to_vec(),
                },
            ))
        })
    }

    /// Network isolation of `cgroup` and below: every connect and sendmsg gets EPERM.
    pub fn isolate(&mut self, origin: &str, cgroup: &str) -> Result<u32, EnforceError> {
        self.admit(origin, "isolate")?;
        let cgroup = self.cgroup(cgroup)?;
        self.isolate_ref(origin, cgroup)
    }

    /// As [`Self::isolate`], for a resolved cgroup (e.g. from [`Self::container_cgroup`]).
    pub fn isolate_ref(&mut self, origin: &str, cgroup: CgroupRef) -> Result<u32, EnforceError> {
        self.guard.check_cgroup(&cgroup.path)?;
        self.change(|set| Ok(set.add(origin, RuleKind::Isolate { cgroup })))
    }

    /// Freezes a cgroup (v2 or v1 freezer; see `freeze::resolve` for the path forms).
    pub fn freeze(&mut self, origin: &str, cgroup: &Path) -> Result<u32, EnforceError> {
        self.admit(origin, "freeze")?;
        let (dir, mode) = freeze::resolve(cgroup)?;
        if mode == FreezeMode::V2 {
            let root = self
                .cgroups
                .v2_root
                .as_ref()
                .ok_or(EnforceError::NoCgroup2)?;
            let rel = format!("/{}", dir.strip_prefix(root).unwrap_or(&dir).display());
            self.guard.check_cgroup(&rel)?;
        } else {
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("/");
            if own
                .lines()
                .any(|l| l.contains("freezer") && l.ends_with(name))
            {
                return Err(EnforceError::Refused {
                    reason: "the agent is in that freezer cgroup".into(),
                });
            }
        }
        let (dir, mode) = freeze::freeze(&dir)?;
        self.change(|set| {
            Ok(set.add(
                origin,
                RuleKind::Freeze {
                    cgroup: dir,
                    mode: mode.name().into(),
                },
            ))
        })
    }

    /// Thaws a cgroup and drops the freeze rules that name it; returns their ids.
    pub fn thaw(&mut self, cgroup: &Path) -> Result<Vec<u32>, EnforceError> {
        let (dir, _) = freeze::thaw(cgroup)?;
        self.change(|set| {
            let names =
                |r: &Rule| matches!(&r.kind, RuleKind::Freeze { cgroup, .. } if *cgroup == dir);
            let ids = set
                .rules
                .iter()
                .filter(|r| names(r))
                .map(|r| r.id)
                .collect();
            set.rules.retain(|r| !names(r));
            Ok(ids)
        })
    }

    /// Kills a process (or its tree), recorded as a rule for the record. `start_time_ns`
    /// (the `ProcessKey`'s) guards against a reused pid.
    pub fn kill(
        &mut self,
        origin: &str,
        pid: i32,
        start_time_ns: Option<u64>,
        tree: bool,
    ) -> Result<(u32, usize), EnforceError> {
        self.admit(origin, if tree { "kill_tree" } else { "kill" })?;
        let killed = if tree {
            process::kill_tree(&self.guard, pid, start_time_ns)?
        } else {
            process::kill_process(&self.guard, pid, start_time_ns)?;
            1
        };
        let id = self.change(|set| Ok(set.add(origin, RuleKind::Kill { pid, tree, killed })))?;
        Ok((id, killed))
    }

    /// Removes a rule (a frozen cgroup is thawed).
    pub fn release(&mut self, id: u32) -> Result<Rule, EnforceError> {
        self.change(|set| {
            let rule = set.remove(id).ok_or(EnforceError::NoSuchRule { id })?;
            if let RuleKind::Freeze { cgroup, .. } = &rule.kind {
                freeze::thaw(cgroup)?;
            }
            Ok(rule)
        })
    }

    /// Every rule, with the kernel's hit counts.
    pub fn list(&self) -> Result<Vec<RuleView>, EnforceError> {
        let set = rules::read(&self.layout.state_file())?;
        Ok(set
            .rules
            .into_iter()
            .map(|rule| {
                let hits = match &rule.kind {
                    RuleKind::DenyExec { dev, ino, .. } => self
                        .maps
                        .exec
                        .get(
                            &FileKey {
                                dev: *dev,
                                _pad: 0,
                                ino: *ino,
                            },
                            0,
                        )
                        .ok()
                        .map(|r| r.hits),
                    RuleKind::DenyOpen { dev, ino, .. } => self.maps.open.as_ref().and_then(|m| {
                        m.get(
                            &FileKey {
                                dev: *dev,
                                _pad: 0,
                                ino: *ino,
                            },
                            0,
                        )
                        .ok()
                        .map(|r| r.hits)
                    }),
                    RuleKind::DenyConnect { cgroup, .. } | RuleKind::Isolate { cgroup } => {
                        self.maps.policy.get(&cgroup.id, 0).ok().map(|p| p.hits)
                    }
                    RuleKind::Freeze { .. } | RuleKind::Kill { .. } => None,
                };
                RuleView { rule, hits }
            })
            .collect())
    }

    /// Applies `edit` to the locked record, saves it and rebuilds the kernel entries.
    fn change<T>(
        &mut self,
        edit: impl FnOnce(&mut RuleSet) -> Result<T, EnforceError>,
    ) -> Result<T, EnforceError> {
        let mut locked = Locked::open(&self.layout)?;
        let mut set = locked.set.clone();
        let out = edit(&mut set)?;
        self.sync(&set)?;
        locked.set = set;
        locked.save()?;
        Ok(out)
    }
}
