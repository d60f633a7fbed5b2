//! Kernel timestamps are CLOCK_BOOTTIME nanoseconds; people read wall-clock time.

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

    /// RFC 3339 (UTC, ns precision) of a boot-time instant; "" outside years 0-9999.
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        let mut out = Vec::with_capacity(RFC3339_MAX);
        write_rfc3339(self.unix_ns(boot_ns), &mut out);
        // Only ASCII digits and separators were written.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Longest RFC 3339 text written here: `9999-12-31T23:59:59.999999999Z`.
const RFC3339_MAX: usize = 30;

/// `unix_ns` as seconds and nanoseconds; `None` outside what i64 seconds hold (far beyond the
/// years RFC 3339 can write).
fn split_ns(unix_ns: i128) -> Option<(i64, u32)> {
    // 128-bit division is a library call: i64 nanoseconds are the common case.
    match i64::try_from(unix_ns) {
        Ok(ns) => Some((
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000) as u32,
        )),
        Err(_) => i64::try_from(unix_ns.div_euclid(1_000_000_000))
            .ok()
            .map(|secs| (secs, unix_ns.rem_euclid(1_000_000_000) as u32)),
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second; `None` outside the years 0-9999.
fn second_text(secs: i64) -> Option<[u8; 19]> {
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days)?;
    let mut text = [0u8; 19];
    put_pair(&mut text[0..2], year / 100);
    put_pair(&mut text[2..4], year % 100);
    text[4] = b'-';
    put_pair(&mut text[5..7], month);
    text[7] = b'-';
    put_pair(&mut text[8..10], day);
    text[10] = b'T';
    put_pair(&mut text[11..13], in_day / 3600);
    text[13] = b':';
    put_pair(&mut text[14..16], in_day / 60 % 60);
    text[16] = b':';
    put_pair(&mut text[17..19], in_day % 60);
    Some(text)
}

/// RFC 3339 in UTC, as the `time` crate's `Rfc3339` writes it: the fraction with its
/// trailing zeros cut (none at all for a whole second), then `Z`.
fn put_rfc3339(second: &[u8; 19], nanos: u32, out: &mut Vec<u8>) {
    let mut text = [0u8; RFC3339_MAX];
    text[..19].copy_from_slice(second);
    let mut len = 19;
    if nanos != 0 {
        text[19] = b'.';
        // Nine digits: four pairs and the last.
        put_pair(&mut text[20..22], nanos / 10_000_000);
        put_pair(&mut text[22..24], nanos / 100_000 % 100);
        put_pair(&mut text[24..26], nanos / 1_000 % 100);
        put_pair(&mut text[26..28], nanos / 10 % 100);
        text[28] = b'0' + (nanos % 10) as u8;
        len = 29;
        while text[len - 1] == b'0' {
            len -= 1;
        }
    }
    text[len] = b'Z';
    out.extend_from_slice(&text[..=len]);
}

/// `unix_ns` as RFC 3339 ([`put_rfc3339`]); nothing outside the years 0-9999, which RFC 3339
/// cannot write.
fn write_rfc3339(unix_ns: i128, out: &mut Vec<u8>) {
    if let Some((secs, nanos)) = split_ns(unix_ns)
        && let Some(second) = second_text(secs)
    {
        put_rfc3339(&second, nanos, out);
    }
}

/// Appends RFC 3339 times as [`BootClock::rfc3339`] writes them, keeping the text of the
/// seconds written last: an event's times (its own, its process's and its parent's start)
/// mostly fall in a few seconds, and the calendar arithmetic is most of the cost.
#[derive(Clone, Debug)]
pub struct Rfc3339Writer {
    /// (Unix second, its text) in the slot of the second modulo [`Self::SLOTS`]; the second
    /// `i64::MIN` (outside the years RFC 3339 writes) marks an empty slot.
    seconds: [(i64, [u8; 19]); Self::SLOTS],
}

impl Default for Rfc3339Writer {
    fn default() -> Self {
        Self {
            seconds: [(i64::MIN, [0; 19]); Self::SLOTS],
        }
    }
}

impl Rfc3339Writer {
    const SLOTS: usize = 4;

    /// Appends the RFC 3339 text of boot-time `boot_ns` on `clock` to `out` ("" outside the
    /// years 0-9999).
    pub fn write(&mut self, clock: &BootClock, boot_ns: u64, out: &mut Vec<u8>) {
        let Some((secs, nanos)) = split_ns(clock.unix_ns(boot_ns)) else {
            return;
        };
        let slot = &mut self.seconds[secs.rem_euclid(Self::SLOTS as i64) as usize];
        if slot.0 != secs {
            let Some(text) = second_text(secs) else {
                return;
            };
            *slot = (secs, text);
        }
        put_rfc3339(&slot.1, nanos, out);
    }
}

/// `n` (below 100) as two digits: one copy from a table instead of a division per digit,
/// since times are written several times per event.
fn put_pair(slot: &mut [u8], n: u32) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let i = 2 * n as usize;
    slot.copy_from_slice(&PAIRS[i..i + 2]);
}

/// Year, month and day of a day count since 1970-01-01 (proleptic Gregorian calendar), for
/// the years 0-9999 only.
fn civil_from_days(days: i64) -> Option<(u32, u32, u32)> {
    // Howard Hinnant's `civil_from_days`, on eras of 400 years from 0000-03-01.
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (0..10_000)
        .contains(&year)
        .then_some((year as u32, month as u32, day as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_boot_time_with_offset() {
        let clock = BootClock::with_offset(1_700_000_000_000_000_000);
        assert_eq!(clock.rfc3339(1_500), "2023-11-14T22:13:20.0000015Z");
    }

    /// What the `time` crate writes, as the JSON output always did.
    fn reference(unix_ns: i128) -> String {
        use time::{OffsetDateTime, format_description::well_known::Rfc3339};
        OffsetDateTime::from_unix_timestamp_nanos(unix_ns)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }

    #[test]
    fn rfc3339_is_the_time_crate_s() {
        const DAY: i128 = 86_400_000_000_000;
        let edges = [
            0,
            1,
            -1,
            999_999_999,
            1_000_000_000,
            1_700_000_000_123_456_700,
            1_700_000_000_100_000_000,
            951_782_400 * 1_000_000_000,     // 2000-02-29
            -62_167_219_200 * 1_000_000_000, // 0000-01-01
            -62_167_219_200 * 1_000_000_000 - 1,
            253_402_300_799_999_999_999, // 9999-12-31T23:59:59.999999999
            253_402_300_800_000_000_000,
            i128::from(i64::MAX) * 1_000,
            i128::from(i64::MIN) * 1_000,
        ];
        let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
        let random = (0..20_000).map(|_| {
            // xorshift: times all over the years 0-9999 and their fractions.
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            let days = (n % 3_652_425) as i128 - 719_528;
            let precision = 10i128.pow((n >> 40) as u32 % 10);
            days * DAY + (i128::from(n >> 20) % DAY) / precision * precision
        });
        for unix_ns in edges.into_iter().chain(random) {
            let clock = BootClock::with_offset(unix_ns);
            assert_eq!(clock.rfc3339(0), reference(unix_ns), "{unix_ns}");
        }
    }

    #[test]
    fn the_writer_s_kept_seconds_write_what_the_clock_writes() {
        let clock = BootClock::with_offset(1_700_000_000_000_000_000);
        let mut writer = Rfc3339Writer::default();
        let mut n: u64 = 0x2545_f491_4f6c_dd1d;
        // Runs in the same seconds, seconds that share a slot, and a few far apart (a
        // parent started days before), in random order.
        for _ in 0..50_000 {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            let boot_ns = match n % 4 {
                0 => n % 3_000_000_000,
                1 => (n >> 8) % 8 * 4_000_000_000 + n % 1_000,
                2 => (n >> 16) % 1_000_000_000_000_000,
                _ => (n >> 24) % 1_000 * 1_000_000_000,
            };
            let mut cached = Vec::new();
            writer.write(&clock, boot_ns, &mut cached);
            assert_eq!(cached, clock.rfc3339(boot_ns).into_bytes(), "{boot_ns}");
        }
        // Out of range: nothing, and nothing kept for it.
        let far = BootClock::with_offset(i128::from(i64::MAX) * 1_000);
        let mut out = Vec::new();
        writer.write(&far, 0, &mut out);
        assert!(out.is_empty());
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
