//! Filling [`KernelOffsets`] from the running kernel's BTF.

use vigil_common::offsets::{KernelOffsets, OFFSET_MISSING};

use super::btf::{Btf, BtfError};

#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error("kernel BTF has no `{strukt}.{member}`, which Vigil needs for `{field}`")]
    Required {
        field: &'static str,
        strukt: &'static str,
        member: &'static str,
        #[source]
        source: Box<BtfError>,
    },
}

/// Resolves every offset the programs read. A missing optional member is marked
/// [`OFFSET_MISSING`] (the programs then skip it); a missing required one is an error.
pub fn resolve_offsets(btf: &Btf) -> Result<KernelOffsets, OffsetsError> {
    let mut offsets = KernelOffsets::MISSING;
    for field in KernelOffsets::FIELDS {
        let value = match resolve_member(btf, field.strukt, field.member) {
            Ok(value) => value,
            Err(source) if field.required => {
                return Err(OffsetsError::Required {
                    field: field.name,
                    strukt: field.strukt,
                    member: field.member,
                    source: Box::new(source),
                });
            }
            Err(_) => OFFSET_MISSING,
        };
        offsets.set(field.name, value);
    }
    Ok(offsets)
}

/// Resolves `member`, trying each `|`-separated alternative (members renamed across kernel
/// versions, or named differently per architecture); the error is the first alternative's.
/// An alternative may end in `+N`: N bytes past the member (an element of an array member).
fn resolve_member(btf: &Btf, strukt: &str, member: &str) -> Result<u32, BtfError> {
    let mut first_error = None;
    for alternative in member.split('|') {
        let (name, extra) = split_extra(alternative);
        match btf.member_offset(strukt, name) {
            Ok(offset) => return Ok(offset.saturating_add(extra)),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or(BtfError::MemberNotFound {
        strukt: strukt.to_owned(),
        member: member.to_owned(),
        segment: member.to_owned(),
    }))
}

/// `"regs+8"` -> `("regs", 8)`; no (valid) suffix -> `(member, 0)`.
fn split_extra(member: &str) -> (&str, u32) {
    member
        .split_once('+')
        .and_then(|(name, n)| Some((name, n.parse().ok()?)))
        .unwrap_or((member, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_the_table_is_settable() {
        let mut offsets = KernelOffsets::MISSING;
        for (i, field) in KernelOffsets::FIELDS.iter().enumerate() {
            assert!(offsets.set(field.name, i as u32), "{}", field.name);
        }
        assert!(!offsets.set("no_such_field", 1));
        assert_eq!(offsets.task_pid, 0);
    }

    #[test]
    fn member_may_carry_a_byte_offset() {
        assert_eq!(split_extra("regs+40"), ("regs", 40));
        assert_eq!(split_extra("di"), ("di", 0));
        assert_eq!(split_extra("x+y"), ("x+y", 0));
    }

    #[test]
    fn resolves_on_this_kernel() {
        let path = std::path::Path::new(super::super::VMLINUX_BTF_PATH);
        if !path.exists() {
            eprintln!("skipped: {} is absent on this machine", path.display());
            return;
        }
        let btf = Btf::from_file(path).expect("vmlinux BTF parses");
        let offsets = resolve_offsets(&btf).expect("every required offset resolves");
        assert!(offsets.task_pid < offsets.task_tgid);
        assert_ne!(offsets.dentry_name, OFFSET_MISSING);
        // The capability sets are read as 8 bytes each: consecutive `kernel_cap_t`s.
        assert_eq!(offsets.cred_cap_permitted, offsets.cred_cap_inheritable + 8);
        assert_eq!(offsets.cred_cap_bset, offsets.cred_cap_effective + 8);
        if cfg!(target_arch = "x86_64") {
            // pt_regs: di, si, dx, cx, ax... are not in argument order, r10 is.
            assert_eq!(offsets.regs_arg0, 14 * 8, "pt_regs.di");
            assert_eq!(offsets.regs_arg1, 13 * 8, "pt_regs.si");
            assert_eq!(offsets.regs_arg3, 7 * 8, "pt_regs.r10");
            assert_eq!(offsets.regs_syscall_nr, 15 * 8, "pt_regs.orig_ax");
        }
        for field in KernelOffsets::FIELDS.iter().filter(|f| f.required) {
            let mut probe = offsets;
            assert!(probe.set(field.name, OFFSET_MISSING));
            assert_ne!(probe, offsets, "{} was left missing", field.name);
        }
    }
}
