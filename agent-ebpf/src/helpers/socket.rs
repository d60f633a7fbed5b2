//! A socket's own addresses, from a file descriptor of the current task: fd -> `struct file`
//! -> `struct socket` (`private_data`) -> `struct sock`, whose `sock_common` holds both ends.
//!
//! The walk from the task to its descriptor table is read the `K` way; from the table's
//! array on it is probe reads whatever `K` is: the array is a `struct file **`, which the
//! verifier types as a plain number, so nothing past it is a BTF-typed pointer.

use vigil_common::{offsets::OFFSET_MISSING, syscall::SocketInfo};

use super::kread::{Kernel, read_at, read_ptr};
use crate::maps::offset;

/// Bytes of `struct sock` read in one call for its `sock_common` members.
const WINDOW: usize = 96;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// The addresses of the socket at `fd` of the current task; `None` when `fd` is not open (or
/// is no socket, whose file would carry no `struct socket`).
#[inline(always)]
pub fn socket_info<K: Kernel>(fd: i64) -> Option<SocketInfo> {
    if fd < 0 {
        return None;
    }
    let task = K::current_task();
    let files = K::ptr(task, offset!(task_files));
    let fdt = K::ptr(files, offset!(files_fdt));
    let max = K::at::<u32>(fdt, offset!(fdtable_max_fds));
    if fd as u64 >= u64::from(max) {
        return None;
    }
    let array = K::ptr(fdt, offset!(fdtable_fd));
    let file = read_ptr(array, (fd as u32) * 8);
    let socket = read_ptr(file, offset!(file_private_data));
    let sk = read_ptr(socket, offset!(socket_sk));
    if sk.is_null() {
        return None;
    }
    // `sock_common`'s members in one call where they share a window (they do on x86_64 and
    // arm64: 88 bytes from `skc_daddr`); one call each otherwise.
    let lo = offset!(sock_daddr);
    let words: [u64; WINDOW / 8] = read_at(sk, lo);
    // SAFETY: integers to bytes of the same size; every bit pattern is valid.
    let window: [u8; WINDOW] = unsafe { core::mem::transmute(words) };
    // Where a member lies in the window, with room for the largest (an IPv6 address).
    let field = |offset: u32| -> Option<usize> {
        let at = offset.wrapping_sub(lo) as usize;
        (offset != OFFSET_MISSING && offset >= lo && at <= WINDOW - 16).then_some(at)
    };
    let u16_at = |offset: u32| match field(offset) {
        Some(at) => u16::from_ne_bytes([window[at], window[at + 1]]),
        None => read_at::<u16>(sk, offset),
    };
    let bytes_at = |offset: u32, out: &mut [u8]| match field(offset) {
        Some(at) => out.copy_from_slice(&window[at..at + out.len()]),
        None => match out.len() {
            4 => out.copy_from_slice(&read_at::<[u8; 4]>(sk, offset)),
            _ => out.copy_from_slice(&read_at::<[u8; 16]>(sk, offset)),
        },
    };
    let family = u16_at(offset!(sock_family));
    let mut info = SocketInfo {
        family,
        protocol: 0,
        local_port: u16_at(offset!(sock_num)),
        remote_port: u16::from_be(u16_at(offset!(sock_dport))),
        local: [0; 16],
        remote: [0; 16],
    };
    match family {
        AF_INET => {
            bytes_at(offset!(sock_rcv_saddr), &mut info.local[..4]);
            bytes_at(offset!(sock_daddr), &mut info.remote[..4]);
        }
        AF_INET6 => {
            bytes_at(offset!(sock_v6_rcv_saddr), &mut info.local);
            bytes_at(offset!(sock_v6_daddr), &mut info.remote);
        }
        _ => {
            // Unix and others: no ports (and `sk_protocol` means nothing there).
            info.local_port = 0;
            info.remote_port = 0;
            return Some(info);
        }
    }
    // Outside `sock_common`: its own call.
    info.protocol = read_at::<u16>(sk, offset!(sock_protocol));
    Some(info)
}
