//! Byte offsets of kernel struct members the programs read.
//!
//! Rust eBPF has no CO-RE relocations, so userspace resolves these from the running kernel's
//! BTF (`/sys/kernel/btf/vmlinux`) at load time and hands them to the programs as a read-only
//! global. Nothing here is hard-coded per kernel.

/// Marks a member this kernel does not have (e.g. `task_struct.loginuid` without CONFIG_AUDIT).
pub const OFFSET_MISSING: u32 = u32::MAX;

/// Declares [`KernelOffsets`] and the table of BTF member paths that fills it, from one list,
/// so that a field and its BTF path can never disagree.
macro_rules! kernel_offsets {
    ($($(#[$doc:meta])* $field:ident: $strukt:literal . $member:literal, required: $req:literal;)*) => {
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct KernelOffsets {
            $($(#[$doc])* pub $field: u32,)*
        }

        impl KernelOffsets {
            /// Every field with its struct, member path (dots walk into nested members) and
            /// whether the programs cannot work without it.
            pub const FIELDS: &'static [OffsetField] = &[
                $(OffsetField { name: stringify!($field), strukt: $strukt, member: $member, required: $req },)*
            ];

            /// All offsets marked missing; userspace fills them before load.
            pub const MISSING: Self = Self { $($field: OFFSET_MISSING,)* };

            /// Sets the field named `name`; returns false if there is no such field.
            pub fn set(&mut self, name: &str, value: u32) -> bool {
                match name {
                    $(stringify!($field) => { self.$field = value; true })*
                    _ => false,
                }
            }
        }
    };
}

/// One entry of [`KernelOffsets::FIELDS`].
#[derive(Clone, Copy, Debug)]
pub struct OffsetField {
    pub name: &'static str,
    pub strukt: &'static str,
    pub member: &'static str,
    pub required: bool,
}

kernel_offsets! {
    task_pid: "task_struct"."pid", required: true;
    task_tgid: "task_struct"."tgid", required: true;
    task_real_parent: "task_struct"."real_parent", required: true;
    task_group_leader: "task_struct"."group_leader", required: true;
    task_start_boottime: "task_struct"."start_boottime", required: true;
    task_real_cred: "task_struct"."real_cred", required: true;
    task_cred: "task_struct"."cred", required: true;
    task_mm: "task_struct"."mm", required: true;
    task_fs: "task_struct"."fs", required: true;
    task_signal: "task_struct"."signal", required: true;
    task_exit_code: "task_struct"."exit_code", required: true;
    /// Absent without CONFIG_AUDIT.
    task_loginuid: "task_struct"."loginuid", required: false;
    signal_live: "signal_struct"."live", required: true;
    /// Threads not yet released; one means no other thread can be exiting alongside.
    signal_nr_threads: "signal_struct"."nr_threads", required: false;
    /// With `SIGNAL_GROUP_EXIT` in `flags`, the group's status is `group_exit_code`, whichever
    /// thread exits last.
    signal_flags: "signal_struct"."flags", required: false;
    signal_group_exit_code: "signal_struct"."group_exit_code", required: false;
    cred_uid: "cred"."uid", required: true;
    cred_gid: "cred"."gid", required: true;
    cred_euid: "cred"."euid", required: true;
    cred_egid: "cred"."egid", required: true;
    cred_suid: "cred"."suid", required: true;
    cred_sgid: "cred"."sgid", required: true;
    cred_fsuid: "cred"."fsuid", required: true;
    cred_fsgid: "cred"."fsgid", required: true;
    cred_securebits: "cred"."securebits", required: true;
    /// A `kernel_cap_t`: `{ u64 val; }` since Linux 6.3, `{ u32 cap[2]; }` before; both are
    /// 8 bytes at this offset, read as one little-endian `u64`.
    cred_cap_inheritable: "cred"."cap_inheritable", required: true;
    cred_cap_permitted: "cred"."cap_permitted", required: true;
    cred_cap_effective: "cred"."cap_effective", required: true;
    cred_cap_bset: "cred"."cap_bset", required: true;
    /// Since Linux 4.3.
    cred_cap_ambient: "cred"."cap_ambient", required: false;
    mm_arg_start: "mm_struct"."arg_start", required: true;
    mm_arg_end: "mm_struct"."arg_end", required: true;
    fs_pwd: "fs_struct"."pwd", required: true;
    path_mnt: "path"."mnt", required: true;
    path_dentry: "path"."dentry", required: true;
    dentry_parent: "dentry"."d_parent", required: true;
    dentry_name: "dentry"."d_name.name", required: true;
    vfsmount_root: "vfsmount"."mnt_root", required: true;
    mount_mnt: "mount"."mnt", required: true;
    mount_parent: "mount"."mnt_parent", required: true;
    mount_mountpoint: "mount"."mnt_mountpoint", required: true;
    file_path: "file"."f_path", required: true;
    file_inode: "file"."f_inode", required: true;
    inode_ino: "inode"."i_ino", required: true;
    inode_sb: "inode"."i_sb", required: true;
    /// `i_nlink` sits in an anonymous union with `__i_nlink`.
    inode_nlink: "inode"."i_nlink|__i_nlink", required: true;
    sb_dev: "super_block"."s_dev", required: true;
    bprm_file: "linux_binprm"."file", required: true;
    task_cgroups: "task_struct"."cgroups", required: true;
    css_set_dfl_cgrp: "css_set"."dfl_cgrp", required: true;
    cgroup_kn: "cgroup"."kn", required: true;
    kernfs_name: "kernfs_node"."name", required: true;
    /// Renamed `__parent` in Linux 6.15; alternatives are separated by `|`.
    kernfs_parent: "kernfs_node"."parent|__parent", required: true;
    /// The cgroup id is its directory's kernfs node id (`u64` since Linux 5.5).
    kernfs_id: "kernfs_node"."id", required: false;
    bprm_filename: "linux_binprm"."filename", required: true;
    /// Syscall arguments in `pt_regs`: x86_64 names first, then aarch64 (`regs[i]`; `+N`
    /// adds N bytes to a member's offset).
    regs_arg0: "pt_regs"."di|regs", required: true;
    regs_arg1: "pt_regs"."si|regs+8", required: true;
    regs_arg2: "pt_regs"."dx|regs+16", required: true;
    regs_arg3: "pt_regs"."r10|regs+24", required: true;
    regs_arg4: "pt_regs"."r8|regs+32", required: true;
    regs_arg5: "pt_regs"."r9|regs+40", required: true;
    /// The syscall number at exit (x86_64 `orig_ax`, aarch64 `syscallno`); read as 32 bits
    /// (little-endian), the width of `syscallno`.
    regs_syscall_nr: "pt_regs"."orig_ax|syscallno", required: true;
    /// A network syscall's socket: fd -> file -> socket -> sock (see `SocketInfo`).
    task_files: "task_struct"."files", required: true;
    files_fdt: "files_struct"."fdt", required: true;
    fdtable_max_fds: "fdtable"."max_fds", required: true;
    fdtable_fd: "fdtable"."fd", required: true;
    file_private_data: "file"."private_data", required: true;
    socket_sk: "socket"."sk", required: true;
    /// `struct sock` starts with its `sock_common`; these are members of anonymous unions.
    sock_family: "sock_common"."skc_family", required: true;
    sock_num: "sock_common"."skc_num", required: true;
    sock_dport: "sock_common"."skc_dport", required: true;
    sock_rcv_saddr: "sock_common"."skc_rcv_saddr", required: true;
    sock_daddr: "sock_common"."skc_daddr", required: true;
    /// Absent without CONFIG_IPV6.
    sock_v6_rcv_saddr: "sock_common"."skc_v6_rcv_saddr", required: false;
    sock_v6_daddr: "sock_common"."skc_v6_daddr", required: false;
    sock_protocol: "sock"."sk_protocol", required: false;
    /// Kill-on-exec's directory rules walk the executable's parents by inode.
    dentry_inode: "dentry"."d_inode", required: true;
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` struct of `u32`s, no padding, valid for any bit pattern.
unsafe impl aya::Pod for KernelOffsets {}
