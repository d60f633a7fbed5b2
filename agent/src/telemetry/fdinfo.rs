//! `/proc/self/fdinfo/<fd>`: what the kernel tells about a BPF map or program fd (a map's
//! `max_entries`, a program's `run_time_ns` and `run_cnt`) without a `bpf()` call per field.

use std::os::fd::{AsRawFd, BorrowedFd};

/// The fdinfo text of `fd`.
pub fn read(fd: BorrowedFd<'_>) -> std::io::Result<String> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
}

/// The number after `key:` in fdinfo `text`.
pub fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numeric_fields() {
        let prog = "pos:\t0\nflags:\t02000002\nprog_type:\t17\nprog_id:\t812\nrun_time_ns:\t1500\nrun_cnt:\t3\n";
        assert_eq!(field(prog, "run_time_ns"), Some(1500));
        assert_eq!(field(prog, "run_cnt"), Some(3));
        assert_eq!(field(prog, "run"), None);
        let map = "map_type:\t27\nkey_size:\t0\nmax_entries:\t8388608\n";
        assert_eq!(field(map, "max_entries"), Some(8_388_608));
    }
}
