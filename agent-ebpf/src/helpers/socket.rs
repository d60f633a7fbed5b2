//! A socket's own addresses, from a file descriptor of the current task: fd -> `struct file`
//! -> `struct socket` (`private_data`) -> `struct sock`, whose `sock_common` holds both ends.

use aya_ebpf::helpers::bpf_get_current_task;
use vigil_common::syscall::SocketInfo;

use super::kread::{read_at, read_ptr};
use crate::maps::offset;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// The addresses of the socket at `fd` of the current task; `None` when `fd` is not open (or
/// is no socket, whose file would carry no `struct socket`).
#[inline(always)]
pub fn socket_info(fd: i64) -> Option<SocketInfo> {
    if fd < 0 {
        return None;
    }
    // SAFETY: helper without arguments; the task is only read through probe reads.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let files = read_ptr(task, offset!(task_files));
    let fdt = read_ptr(files, offset!(files_fdt));
    let max = read_at::<u32>(fdt, offset!(fdtable_max_fds));
    if fd as u64 >= u64::from(max) {
        return None;
    }
    let array = read_ptr(fdt, offset!(fdtable_fd));
    let file = read_ptr(array, (fd as u32) * 8);
    let socket = read_ptr(file, offset!(file_private_data));
    let sk = read_ptr(socket, offset!(socket_sk));
    if sk.is_null() {
        return None;
    }
    let family = read_at::<u16>(sk, offset!(sock_family));
    let mut info = SocketInfo {
        family,
        protocol: read_at::<u16>(sk, offset!(sock_protocol)),
        local_port: read_at::<u16>(sk, offset!(sock_num)),
        remote_port: u16::from_be(read_at::<u16>(sk, offset!(sock_dport))),
        local: [0; 16],
        remote: [0; 16],
    };
    match family {
        AF_INET => {
            info.local[..4].copy_from_slice(&read_at::<[u8; 4]>(sk, offset!(sock_rcv_saddr)));
            info.remote[..4].copy_from_slice(&read_at::<[u8; 4]>(sk, offset!(sock_daddr)));
        }
        AF_INET6 => {
            info.local = read_at(sk, offset!(sock_v6_rcv_saddr));
            info.remote = read_at(sk, offset!(sock_v6_daddr));
        }
        _ => {
            // Unix and others: no ports (and `sk_protocol` means nothing there).
            info.protocol = 0;
            info.local_port = 0;
            info.remote_port = 0;
        }
    }
    Some(info)
}
