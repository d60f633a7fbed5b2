//! A long-lived process tree of two: a shell and the program it runs in the background, the
//! child killed if the test ends first.

use std::{path::Path, process::Command, time::Duration};

use crate::{
    daemon::wait_until,
    spawn::{Spawned, bytes, canonical_bytes, spawn},
};

/// `shell -c '"$0" 300 & wait' program`, once the child runs `program`.
pub struct ShellAndChild {
    pub shell: Spawned,
    pub child: u32,
    /// The child has been killed and its exit awaited by the test.
    child_gone: bool,
}

impl ShellAndChild {
    #[track_caller]
    pub fn start(shell: &Path, program: &Path, timeout: Duration) -> Self {
        let shell = spawn(
            Command::new(shell)
                .arg("-c")
                .arg("\"$0\" 300 & wait")
                .arg(program),
        );
        let program = canonical_bytes(program);
        let mut child = 0;
        wait_until(timeout, "the shell's child", || {
            child = children(shell.pid).first().copied().unwrap_or(0);
            std::fs::read_link(format!("/proc/{child}/exe")).is_ok_and(|exe| bytes(&exe) == program)
        });
        Self {
            shell,
            child,
            child_gone: false,
        }
    }

    /// SIGKILL to the child; the shell then ends too (its `wait` returns).
    pub fn kill_child(&mut self) {
        // SAFETY: kill(2) on a pid that is this test's own grandchild, alive: its parent
        // (the shell) has not reaped it, since `child_gone` is false.
        let rc = unsafe { libc::kill(self.child as i32, libc::SIGKILL) };
        assert_eq!(
            rc,
            0,
            "kill({}): {}",
            self.child,
            std::io::Error::last_os_error()
        );
        self.child_gone = true;
    }
}

impl Drop for ShellAndChild {
    fn drop(&mut self) {
        if !self.child_gone {
            // SAFETY: as in `kill_child`; the shell is still alive (dropped after this), so
            // the child is unreaped and its pid still names it.
            unsafe { libc::kill(self.child as i32, libc::SIGKILL) };
        }
    }
}

/// The children of `pid`, from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
