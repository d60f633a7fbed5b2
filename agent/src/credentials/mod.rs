//! The credential sensor's userspace half. The setuid family, capset and the prctl options
//! that change credentials ride on the syscall sensor's hooks: their arg-type word carries
//! [`ARG_TYPES_CRED`], so the kernel stashes the thread's `struct cred` at enter and emits a
//! [`CredChange`] at exit when it differs. With [`ARG_TYPES_NO_RECORD`] as well (the syscall
//! sensor did not select the syscall) there is no syscall record, only the change.

mod caps;

use serde::Deserialize;
use vigil_common::syscall::{ARG_TYPES_CRED, ARG_TYPES_CRED_PRCTL, ARG_TYPES_NO_RECORD};

pub use self::caps::{cap_name, cap_names};
use crate::{
    event::{CredChange, TaskCreds},
    syscall::{Arch, KernelFilter},
};

/// The syscalls watched for credential changes. `prctl` only for `PR_SET_KEEPCAPS`,
/// `PR_CAPBSET_DROP`, `PR_SET_SECUREBITS` and `PR_CAP_AMBIENT` (the kernel checks the option
/// before reading anything).
pub const SYSCALLS: &[&str] = &[
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "capset",
    "prctl",
];

/// `[credentials]`: credential-change events.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialsConfig {
    /// Watch the credential syscalls.
    pub enabled: bool,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl CredentialsConfig {
    /// The syscalls this asks the kernel to watch (empty when disabled), flagged so that they
    /// produce no syscall record unless merged with a filter that selects them
    /// ([`KernelFilter::merge`]).
    pub fn filter(&self, arch: Arch) -> KernelFilter {
        let mut filter = KernelFilter::default();
        if !self.enabled {
            return filter;
        }
        for &name in SYSCALLS {
            let Some(nr) = arch.number(name) else {
                // Both tables have all of them (a unit test says so).
                tracing::error!(syscall = name, "A credential syscall has no number here.");
                continue;
            };
            let prctl = if name == "prctl" {
                ARG_TYPES_CRED_PRCTL
            } else {
                0
            };
            filter.add(nr, ARG_TYPES_CRED | ARG_TYPES_NO_RECORD | prctl);
        }
        filter
    }
}

/// Reads one field of [`TaskCreds`] (`None`: not on this kernel).
type Field = fn(&TaskCreds) -> Option<u64>;

/// The fields of [`TaskCreds`] by name, in the order `changed` lists them.
const FIELDS: [(&str, Field); 14] = [
    ("uid", |c| Some(c.uid.into())),
    ("gid", |c| Some(c.gid.into())),
    ("euid", |c| Some(c.euid.into())),
    ("egid", |c| Some(c.egid.into())),
    ("suid", |c| Some(c.suid.into())),
    ("sgid", |c| Some(c.sgid.into())),
    ("fsuid", |c| Some(c.fsuid.into())),
    ("fsgid", |c| Some(c.fsgid.into())),
    ("securebits", |c| Some(c.securebits.into())),
    ("cap_inheritable", |c| Some(c.cap_inheritable)),
    ("cap_permitted", |c| Some(c.cap_permitted)),
    ("cap_effective", |c| Some(c.cap_effective)),
    ("cap_bset", |c| Some(c.cap_bset)),
    ("cap_ambient", |c| c.cap_ambient),
];

impl CredChange {
    /// Names of the fields that differ between `before` and `after`.
    pub fn changed(&self) -> Vec<&'static str> {
        FIELDS
            .iter()
            .filter(|(_, get)| get(&self.before) != get(&self.after))
            .map(|(name, _)| *name)
            .collect()
    }

    /// The errno of a failed call (a credential syscall rarely fails after changing anything).
    pub fn errno(&self) -> Option<i64> {
        (-4095..0).contains(&self.ret).then_some(-self.ret)
    }
}

#[cfg(test)]
mod tests {
    use vigil_common::syscall::SYSCALL_NR_MAX;

    use super::*;

    #[test]
    fn every_credential_syscall_exists_on_both_architectures() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let filter = CredentialsConfig::default().filter(arch);
            assert_eq!(filter.arg_types.len(), SYSCALLS.len(), "{arch:?}");
            assert!(
                filter
                    .arg_types
                    .iter()
                    .all(|&(nr, word)| nr < SYSCALL_NR_MAX
                        && word & ARG_TYPES_CRED != 0
                        && word & ARG_TYPES_NO_RECORD != 0)
            );
            let prctl = arch.number("prctl").expect("prctl");
            assert!(
                filter
                    .arg_types
                    .iter()
                    .all(|&(nr, word)| (nr == prctl) == (word & ARG_TYPES_CRED_PRCTL != 0))
            );
        }
        assert!(
            CredentialsConfig { enabled: false }
                .filter(Arch::NATIVE)
                .is_empty()
        );
    }

    #[test]
    fn merged_with_the_syscall_sensor_a_selected_syscall_keeps_its_record() {
        let arch = Arch::X86_64;
        let setuid = arch.number("setuid").expect("setuid");
        let capset = arch.number("capset").expect("capset");
        let mut filter = KernelFilter::new(arch, ["setuid", "ptrace"]).expect("known");
        let spec_word = filter.arg_types[0].1;
        filter.merge(&CredentialsConfig::default().filter(arch));
        let word = |nr| {
            filter
                .arg_types
                .iter()
                .find(|&&(n, _)| n == nr)
                .map(|&(_, w)| w)
        };
        // Selected by both: the syscall sensor's word plus the credential bit.
        assert_eq!(word(setuid), Some(spec_word | ARG_TYPES_CRED));
        // Only watched for credentials: no record.
        assert_eq!(word(capset), Some(ARG_TYPES_CRED | ARG_TYPES_NO_RECORD));
        assert_eq!(
            filter.arg_types.len(),
            SYSCALLS.len() + 1,
            "ptrace and the credential syscalls, each once"
        );
        // The other order gives the same words.
        let mut other = CredentialsConfig::default().filter(arch);
        other.merge(&KernelFilter::new(arch, ["setuid", "ptrace"]).expect("known"));
        let mut a = filter.arg_types.clone();
        let mut b = other.arg_types.clone();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        assert_eq!(filter.bitmap, other.bitmap);
    }

    #[test]
    fn changed_lists_the_fields_that_differ_in_order() {
        let before = TaskCreds {
            cap_permitted: 0x1ff_ffff_ffff,
            cap_effective: 0x1ff_ffff_ffff,
            cap_ambient: Some(0),
            ..TaskCreds::default()
        };
        let after = TaskCreds {
            uid: 1000,
            euid: 1000,
            suid: 1000,
            fsuid: 1000,
            cap_ambient: Some(0),
            ..TaskCreds::default()
        };
        let change = CredChange {
            task: crate::event::Task {
                pid: 1,
                key: crate::process::ProcessKey::new(1, 1),
                cgroup_id: 0,
                time_ns: 0,
            },
            nr: 117,
            syscall: Some("setresuid"),
            ret: 0,
            exit_time_ns: 0,
            before,
            after,
        };
        assert_eq!(
            change.changed(),
            [
                "uid",
                "euid",
                "suid",
                "fsuid",
                "cap_permitted",
                "cap_effective"
            ]
        );
        assert_eq!(change.errno(), None);
    }
}
