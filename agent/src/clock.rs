//! Kernel timestamps are CLOCK_BOOTTIME nanoseconds; people read wall-clock time.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clocks exist on every supported kernel.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_BOOTTIME now, in ns: the clock of every kernel record.
pub fn boot_now_ns() -> u64 {
    now_ns(libc::CLOCK_BOOTTIME) as u64
}

/// Converts boot-time ns to wall-clock time. The offset is re-read by [`BootClock::refresh`]
/// so that a wall-clock step (NTP) is followed.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    offset_ns: i128,
}

impl Default for BootClock {
    fn default() -> Self {
        Self::now()
    }
}

impl BootClock {
    pub fn now() -> Self {
        Self {
            offset_ns: now_ns(libc::CLOCK_REALTIME) - now_ns(libc::CLOCK_BOOTTIME),
        }
    }

    /// A clock with a fixed offset, for tests.
    pub fn with_offset(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    pub fn refresh(&mut self) {
        *self = Self::now();
    }

    /// Unix time in ns of a boot-time instant.
    pub fn unix_ns(&self, boot_ns: u64) -> i128 {
        i128::from(boot_ns) + self.offset_ns
    }

    /// RFC 3339 (UTC, ns precision) of a boot-time instant.
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(self.unix_ns(boot_ns))
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_boot_time_with_offset() {
        let clock = BootClock::with_offset(1_700_000_000_000_000_000);
        assert_eq!(clock.rfc3339(1_500), "2023-11-14T22:13:20.0000015Z");
    }

    #[test]
    fn now_is_close_to_system_time() {
        let clock = BootClock::now();
        let unix = clock.unix_ns(boot_now_ns());
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after epoch")
            .as_nanos() as i128;
        assert!((unix - sys).abs() < 1_000_000_000, "{unix} vs {sys}");
    }
}
