//! Rebuilding the kernel entries of the enforcement maps from the whole rule record: exec
//! deny keys, per-cgroup network policies and their CIDR tables, and the control counts.

use std::{collections::BTreeMap, net::IpAddr};

use aya::maps::{HashMap, MapData, MapError, lpm_trie::Key};
use vigil_common::{
    enforce::{
        EXEC_RULE_DIR, EXEC_RULE_FILE, EXEC_SCOPES_MAX, EnforceControl, ExecRule, FileKey,
        NET_CIDRS, NET_ISOLATE, NET_PORTS_MAX, NetKeyV4, NetKeyV6, NetPolicy, NetRule,
    },
    maps::{ENFORCE_CONTROL, EXEC_DENY, NET_DENY_V4, NET_DENY_V6, NET_POLICY, OPEN_DENY},
};

use super::Enforcer;
use crate::enforce::{EnforceError, RuleKind, rules::RuleSet};

impl Enforcer {
    /// Rewrites the kernel maps to match `set`.
    pub(super) fn sync(&mut self, set: &RuleSet) -> Result<(), EnforceError> {
        let desired = Desired::of(set)?;
        let map_err = |name| move |source| EnforceError::Map { name, source };
        sync_files(&mut self.maps.exec, &desired.exec).map_err(map_err(EXEC_DENY))?;
        if let Some(open) = self.maps.open.as_mut() {
            sync_files(open, &desired.open).map_err(map_err(OPEN_DENY))?;
        } else if !desired.open.is_empty() {
            return Err(EnforceError::Refused {
                reason: format!(
                    "the pinned {OPEN_DENY} map is missing: run `vigil enforcement clear` once to re-pin the maps"
                ),
            });
        }
        // Network tries first, then the policies that point at them.
        let stale: Vec<Key<NetKeyV4>> = self
            .maps
            .v4
            .keys()
            .filter_map(Result::ok)
            .filter(|k| {
                !desired
                    .v4
                    .contains_key(&(k.prefix_len(), k.data().cgroup_id, k.data().addr))
            })
            .collect();
        for key in stale {
            let _ = self.maps.v4.remove(&key);
        }
        for (&(prefix, cgroup_id, addr), rule) in &desired.v4 {
            let key = Key::new(
                prefix,
                NetKeyV4 {
                    cgroup_id,
                    addr,
                    _pad: [0; 4],
                },
            );
            self.maps
                .v4
                .insert(&key, rule, 0)
                .map_err(map_err(NET_DENY_V4))?;
        }
        let stale: Vec<Key<NetKeyV6>> = self
            .maps
            .v6
            .keys()
            .filter_map(Result::ok)
            .filter(|k| {
                !desired
                    .v6
                    .contains_key(&(k.prefix_len(), k.data().cgroup_id, k.data().addr))
            })
            .collect();
        for key in stale {
            let _ = self.maps.v6.remove(&key);
        }
        for (&(prefix, cgroup_id, addr), rule) in &desired.v6 {
            let key = Key::new(prefix, NetKeyV6 { cgroup_id, addr });
            self.maps
                .v6
                .insert(&key, rule, 0)
                .map_err(map_err(NET_DENY_V6))?;
        }
        let stale: Vec<u64> = self
            .maps
            .policy
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !desired.policy.contains_key(k))
            .collect();
        for key in stale {
            let _ = self.maps.policy.remove(&key);
        }
        for (&cgroup, policy) in &desired.policy {
            let mut policy = *policy;
            policy.hits = self
                .maps
                .policy
                .get(&cgroup, 0)
                .map(|p| p.hits)
                .unwrap_or(0);
            self.maps
                .policy
                .insert(cgroup, policy, 0)
                .map_err(map_err(NET_POLICY))?;
        }
        let control = EnforceControl {
            exec_rules: desired.exec.len() as u32,
            exec_dir_rules: desired
                .exec
                .values()
                .filter(|r| r.flags & EXEC_RULE_DIR != 0)
                .count() as u32,
            net_policies: desired.policy.len() as u32,
            open_rules: desired.open.len() as u32,
        };
        self.maps
            .control
            .set(0, control, 0)
            .map_err(map_err(ENFORCE_CONTROL))
    }
}

/// Makes a file deny map (exec or open) hold exactly `desired`, keeping each entry's hits.
fn sync_files(
    map: &mut HashMap<MapData, FileKey, ExecRule>,
    desired: &BTreeMap<(u32, u64), ExecRule>,
) -> Result<(), MapError> {
    let stale: Vec<FileKey> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !desired.contains_key(&(k.dev, k.ino)))
        .collect();
    for key in stale {
        let _ = map.remove(&key);
    }
    for (&(dev, ino), rule) in desired {
        let key = FileKey { dev, _pad: 0, ino };
        let mut rule = *rule;
        rule.hits = map.get(&key, 0).map(|r| r.hits).unwrap_or(0);
        map.insert(key, rule, 0)?;
    }
    Ok(())
}

/// A deny-exec or deny-open rule's target, as the file maps key it.
struct FileTarget<'a> {
    dir: bool,
    dev: u32,
    ino: u64,
    cgroup: &'a Option<crate::enforce::CgroupRef>,
}

/// The kernel entries a rule set asks for.
#[derive(Default)]
struct Desired {
    exec: BTreeMap<(u32, u64), ExecRule>,
    open: BTreeMap<(u32, u64), ExecRule>,
    policy: BTreeMap<u64, NetPolicy>,
    v4: BTreeMap<(u32, u64, [u8; 4]), NetRule>,
    v6: BTreeMap<(u32, u64, [u8; 16]), NetRule>,
}

impl Desired {
    fn of(set: &RuleSet) -> Result<Self, EnforceError> {
        let mut d = Self {
            exec: file_entries(set, false)?,
            open: file_entries(set, true)?,
            ..Self::default()
        };
        for rule in &set.rules {
            match &rule.kind {
                RuleKind::Isolate { cgroup } => {
                    let p = d.policy.entry(cgroup.id).or_default();
                    p.flags |= NET_ISOLATE;
                    p.rule_id = rule.id;
                }
                RuleKind::DenyConnect {
                    cgroup,
                    cidr,
                    ports,
                } => {
                    let p = d.policy.entry(cgroup.id).or_default();
                    p.flags |= NET_CIDRS;
                    let (addr, prefix) = parse_cidr(cidr)?;
                    let merged = |r: &mut NetRule| -> Result<(), EnforceError> {
                        r.rule_id = rule.id;
                        merge_ports(r, ports)
                    };
                    match addr {
                        IpAddr::V4(a) => {
                            let e =
                                d.v4.entry((64 + u32::from(prefix), cgroup.id, a.octets()))
                                    .or_insert_with(|| NetRule {
                                        nports: u32::MAX,
                                        ..NetRule::default()
                                    });
                            merged(e)?;
                        }
                        IpAddr::V6(a) => {
                            let e =
                                d.v6.entry((64 + u32::from(prefix), cgroup.id, a.octets()))
                                    .or_insert_with(|| NetRule {
                                        nports: u32::MAX,
                                        ..NetRule::default()
                                    });
                            merged(e)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(d)
    }
}

/// The file map entries of the deny-open rules (`open`) or deny-exec rules: rules on one
/// inode merge their scopes; any node-wide rule makes the entry node-wide.
fn file_entries(set: &RuleSet, open: bool) -> Result<BTreeMap<(u32, u64), ExecRule>, EnforceError> {
    let mut out: BTreeMap<(u32, u64), ExecRule> = BTreeMap::new();
    let mut node_wide: Vec<(u32, u64)> = Vec::new();
    for rule in &set.rules {
        let target = match &rule.kind {
            RuleKind::DenyExec {
                dir,
                dev,
                ino,
                cgroup,
                ..
            } if !open => FileTarget {
                dir: *dir,
                dev: *dev,
                ino: *ino,
                cgroup,
            },
            RuleKind::DenyOpen {
                dir,
                dev,
                ino,
                cgroup,
                ..
            } if open => FileTarget {
                dir: *dir,
                dev: *dev,
                ino: *ino,
                cgroup,
            },
            _ => continue,
        };
        let at = (target.dev, target.ino);
        let entry = out.entry(at).or_default();
        entry.rule_id = rule.id;
        entry.flags |= if target.dir {
            EXEC_RULE_DIR
        } else {
            EXEC_RULE_FILE
        };
        match target.cgroup {
            None => node_wide.push(at),
            Some(c) => {
                let n = entry.nscopes as usize;
                if !entry.scopes[..n].contains(&c.id) {
                    if n == EXEC_SCOPES_MAX {
                        return Err(EnforceError::TooMany {
                            what: "cgroup scopes of one file",
                            max: EXEC_SCOPES_MAX,
                        });
                    }
                    entry.scopes[n] = c.id;
                    entry.nscopes += 1;
                }
            }
        }
    }
    for at in node_wide {
        if let Some(entry) = out.get_mut(&at) {
            entry.nscopes = 0;
            entry.scopes = [0; EXEC_SCOPES_MAX];
        }
    }
    Ok(out)
}

/// Merges `ports` into a CIDR entry; `nports == u32::MAX` marks an entry not yet set. Any
/// rule with every port makes the entry every port (`nports == 0`).
fn merge_ports(rule: &mut NetRule, ports: &[u16]) -> Result<(), EnforceError> {
    if ports.is_empty() || rule.nports == 0 {
        rule.nports = 0;
        rule.ports = [0; NET_PORTS_MAX];
        return Ok(());
    }
    if rule.nports == u32::MAX {
        rule.nports = 0;
    }
    for &port in ports {
        let n = rule.nports as usize;
        if rule.ports[..n].contains(&port) {
            continue;
        }
        if n == NET_PORTS_MAX {
            return Err(EnforceError::TooMany {
                what: "ports of one CIDR",
                max: NET_PORTS_MAX,
            });
        }
        rule.ports[n] = port;
        rule.nports += 1;
    }
    Ok(())
}

/// `a.b.c.d/n`, `x::y/n`, or a bare address (a host prefix). Host bits are cleared.
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), EnforceError> {
    let net = text
        .parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| EnforceError::Cidr {
            text: text.to_owned(),
        })?
        .trunc();
    Ok((net.addr(), net.prefix_len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::CgroupRef;

    fn cg(id: u64) -> CgroupRef {
        CgroupRef {
            path: format!("/t{id}"),
            id,
        }
    }

    #[test]
    fn cidrs_parse_and_lose_their_host_bits() {
        assert_eq!(
            parse_cidr("10.1.2.3/8").expect("v4"),
            ("10.0.0.0".parse().expect("ip"), 8)
        );
        assert_eq!(
            parse_cidr("127.0.0.1").expect("host"),
            ("127.0.0.1".parse().expect("ip"), 32)
        );
        assert_eq!(
            parse_cidr("fd00::1/16").expect("v6"),
            ("fd00::".parse().expect("ip"), 16)
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("nonsense").is_err());
    }

    #[test]
    fn rules_merge_into_kernel_entries() {
        let mut set = RuleSet::default();
        let exec = |cgroup| RuleKind::DenyExec {
            path: "/x".into(),
            dir: false,
            dev: 1,
            ino: 2,
            cgroup,
        };
        set.add("cli", exec(Some(cg(5))));
        set.add("cli", exec(Some(cg(6))));
        let d = Desired::of(&set).expect("merges");
        assert_eq!(d.exec[&(1, 2)].nscopes, 2);
        set.add("cli", exec(None));
        let d = Desired::of(&set).expect("merges");
        assert_eq!(d.exec[&(1, 2)].nscopes, 0, "a node-wide rule wins");
        assert!(d.open.is_empty(), "exec rules are not open rules");

        set.add(
            "cli",
            RuleKind::DenyOpen {
                path: "/etc/secret".into(),
                dir: true,
                dev: 1,
                ino: 2,
                cgroup: Some(cg(7)),
            },
        );
        let d = Desired::of(&set).expect("merges");
        let open = d.open[&(1, 2)];
        assert_eq!(
            (open.flags, open.nscopes, open.scopes[0]),
            (EXEC_RULE_DIR, 1, 7),
            "an open rule on the same inode is its own entry, with its own scope"
        );
        assert_eq!(d.exec[&(1, 2)].flags, EXEC_RULE_FILE);

        let connect = |ports: &[u16]| RuleKind::DenyConnect {
            cgroup: cg(9),
            cidr: "127.0.0.0/8".into(),
            ports: ports.to_vec(),
        };
        set.add("cli", connect(&[80]));
        set.add("cli", connect(&[443, 80]));
        let d = Desired::of(&set).expect("merges");
        let rule = d.v4[&(72, 9, [127, 0, 0, 0])];
        assert_eq!((rule.nports, &rule.ports[..2]), (2, &[80, 443][..]));
        assert_eq!(d.policy[&9].flags, NET_CIDRS);
        set.add("cli", connect(&[]));
        set.add("cli", RuleKind::Isolate { cgroup: cg(9) });
        let d = Desired::of(&set).expect("merges");
        assert_eq!(d.v4[&(72, 9, [127, 0, 0, 0])].nports, 0);
        assert_eq!(d.policy[&9].flags, NET_CIDRS | NET_ISOLATE);
    }
}
