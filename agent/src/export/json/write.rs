//! JSON of the hot path, written straight into the output buffer: no intermediate `String`s
//! and one pass over each string. Every byte is what serde_json writes for the same values
//! (its compact format and its escapes), so the two can share a line.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 1 for a byte that JSON or [`crate::export::escape::escape`] changes (all but printable
/// ASCII other than `"` and `\`), without branches.
fn special(b: u8) -> u8 {
    u8::from(b < 0x20) | u8::from(b > 0x7e) | u8::from(b == b'"') | u8::from(b == b'\\')
}

/// Whether no byte of `bytes` is [`special`]: a test over 32 bytes at a time without an
/// early exit or a branch inside, which the compiler turns into vector compares.
fn all_plain(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        if chunk.iter().fold(0, |bad, &b| bad | special(b)) != 0 {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .fold(0, |bad, &b| bad | special(b))
        == 0
}

/// Appends valid UTF-8 `text` JSON-escaped (no quotes). With `lossless`, a backslash is the
/// two of the lossless text before JSON escapes each.
fn escape_into(out: &mut Vec<u8>, text: &[u8], lossless: bool) {
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        // JSON escapes only these (0x7f and non-ASCII characters pass as they are).
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&text[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' if lossless => out.extend_from_slice(b"\\\\\\\\"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            // The other control characters (0x7f is no control character to JSON).
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
    }
    out.extend_from_slice(&text[start..]);
}

/// `text` as a JSON string.
pub fn str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    if all_plain(text.as_bytes()) {
        out.extend_from_slice(text.as_bytes());
    } else {
        escape_into(out, text.as_bytes(), false);
    }
    out.push(b'"');
}

/// Kernel bytes as a JSON string of their lossless text ([`crate::export::escape::escape`]), without
/// building that text first.
pub fn bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    if all_plain(bytes) {
        out.extend_from_slice(bytes);
    } else {
        for chunk in bytes.utf8_chunks() {
            escape_into(out, chunk.valid().as_bytes(), true);
            for &b in chunk.invalid() {
                // `\xNN` of `escape`, its backslash escaped for JSON.
                out.extend_from_slice(&[
                    b'\\',
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            }
        }
    }
    out.push(b'"');
}

/// Kernel byte strings as a JSON array.
pub fn byte_list(out: &mut Vec<u8>, list: &[Vec<u8>]) {
    out.push(b'[');
    for (i, item) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        bytes(out, item);
    }
    out.push(b']');
}

/// An IP address as a JSON string: the text of its `Display` (nothing in it needs escaping).
pub fn ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    out.push(b'"');
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                uint(out, octet);
            }
        }
        // Zero runs and embedded IPv4 forms: the standard library's rules, through `fmt`.
        std::net::IpAddr::V6(v6) => {
            let _ = std::io::Write::write_fmt(out, format_args!("{v6}"));
        }
    }
    out.push(b'"');
}

/// An integer, signed or not.
pub fn uint(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

pub fn bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// The members of one object: `"key":` with the comma before all but the first.
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    pub fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    /// Members to be spliced into an object opened elsewhere ([`Object::splice`]): no brace.
    pub fn members(out: &'a mut Vec<u8>) -> Self {
        Self { out, first: true }
    }

    /// Appends members written by [`Object::members`] (nothing when empty).
    pub fn splice(&mut self, members: &[u8]) {
        if members.is_empty() {
            return;
        }
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(members);
    }

    /// Starts member `key` (plain ASCII: the names below); its value is written next.
    #[inline]
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        debug_assert!(all_plain(key.as_bytes()), "{key}");
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    #[inline]
    pub fn str(&mut self, key: &str, value: &str) {
        str(self.key(key), value);
    }

    /// `key: value`, left out when `None`.
    pub fn some_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    #[inline]
    pub fn bytes(&mut self, key: &str, value: &[u8]) {
        bytes(self.key(key), value);
    }

    #[inline]
    pub fn uint(&mut self, key: &str, value: impl itoa::Integer) {
        uint(self.key(key), value);
    }

    /// `key: value`, left out when `None`.
    #[inline]
    pub fn some_uint(&mut self, key: &str, value: Option<impl itoa::Integer>) {
        if let Some(value) = value {
            self.uint(key, value);
        }
    }

    /// `key: true`, only when true (the fields that are left out when false).
    #[inline]
    pub fn flag(&mut self, key: &str, value: bool) {
        if value {
            bool(self.key(key), true);
        }
    }

    pub fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::escape;

    fn via_serde(bytes_in: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&escape::escape(bytes_in)).expect("serializes")
    }

    fn written(bytes_in: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        bytes(&mut out, bytes_in);
        out
    }

    fn check(input: &[u8]) {
        let out = written(input);
        assert_eq!(
            out,
            via_serde(input),
            "{input:?}: {}",
            String::from_utf8_lossy(&out)
        );
        // And back: JSON text -> escaped text -> the original bytes.
        let text: String = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(escape::unescape(&text).as_deref(), Some(input));
    }

    #[test]
    fn ip_addresses_are_their_display_text() {
        let mut n: u64 = 0x853c_49e6_748f_ea9b;
        let mut addresses: Vec<std::net::IpAddr> = [
            "0.0.0.0",
            "255.255.255.255",
            "10.96.0.10",
            "::",
            "::1",
            "::ffff:10.1.2.3",
            "::10.1.2.3",
            "fd00::7",
            "fe80::1:0:0:1",
            "2001:db8:0:0:1:0:0:1",
            "1:2:3:4:5:6:7:8",
        ]
        .iter()
        .map(|text| text.parse().expect("an address"))
        .collect();
        for _ in 0..10_000 {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            // Random groups, some of them zero, to exercise the zero-run rules.
            let groups = std::array::from_fn(|i| {
                if n >> (i + 40) & 1 == 0 {
                    0
                } else {
                    (n >> (i * 5)) as u16
                }
            });
            addresses.push(std::net::Ipv6Addr::from(groups).into());
            addresses.push(std::net::Ipv4Addr::from(n as u32).into());
        }
        for address in addresses {
            let mut out = Vec::new();
            ip(&mut out, address);
            assert_eq!(
                out,
                serde_json::to_vec(&address).expect("serializes"),
                "{address}"
            );
        }
    }

    #[test]
    fn special_bytes_are_those_escaped() {
        for b in 0..=255u8 {
            let plain = (b.is_ascii_graphic() && b != b'"' && b != b'\\') || b == b' ';
            assert_eq!(special(b) == 0, plain, "{b}");
        }
    }

    #[test]
    fn every_single_byte_and_pair_is_serde_s_escape() {
        for a in 0..=255u8 {
            check(&[a]);
            for b in 0..=255u8 {
                check(&[a, b]);
            }
        }
    }

    #[test]
    fn tricky_strings_are_serde_s_escape() {
        let long = "x".repeat(100);
        let cases: &[&[u8]] = &[
            b"",
            b"/usr/bin/true",
            long.as_bytes(),
            b"\x1b[31mred\x1b[0m",
            b"\x1b]0;title\x07",
            "ümlaut \\ \"q\" ✓ 😀".as_bytes(),
            b"\xed\xa0\x80 surrogate",
            b"\xc3",
            b"\xf0\x9f\x98",
            b"0123456789abcde\"0123456789abcdef\\0123456789abcdef\x7f\x00",
            b"tab\tnew\nline\rform\x0cback\x08",
        ];
        for case in cases {
            check(case);
        }
    }

    #[test]
    fn random_byte_strings_are_serde_s_escape() {
        let mut n: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            n
        };
        for _ in 0..20_000 {
            let len = (next() % 70) as usize;
            // Mostly printable, with every kind of byte now and then.
            let input: Vec<u8> = (0..len)
                .map(|_| match next() % 8 {
                    0 => (next() % 256) as u8,
                    1 => b"\\\"\x00\x1f\x7f\xc3\xa9\xff"[(next() % 8) as usize],
                    _ => b' ' + (next() % 95) as u8,
                })
                .collect();
            check(&input);
        }
    }

    #[test]
    fn str_is_serde_s() {
        for text in ["", "plain", "q\"b\\c\u{1}\u{7f}é\n", &"y".repeat(40)] {
            let mut out = Vec::new();
            str(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).expect("serializes"));
        }
    }

    #[test]
    fn objects_are_serde_s_compact_form() {
        let mut out = Vec::new();
        let mut object = Object::open(&mut out);
        object.uint("a", 1u32);
        object.flag("no", false);
        object.flag("yes", true);
        object.str("s", "x");
        object.bytes("b", b"\xff");
        byte_list(object.key("l"), &[b"p".to_vec(), Vec::new()]);
        object.close();
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            r#"{"a":1,"yes":true,"s":"x","b":"\\xff","l":["p",""]}"#
        );
    }
}
