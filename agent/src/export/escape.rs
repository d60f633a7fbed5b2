//! Lossless text for kernel bytes (argv, paths, comm).
//!
//! The kernel hands us bytes, not UTF-8. In output, a backslash is written `\\` and a byte
//! that is not part of valid UTF-8 is written `\xNN`; everything else is kept as is. The
//! original bytes can always be recovered ([`unescape`]), and valid UTF-8 without
//! backslashes (nearly every argument) is passed through without copying.

use std::{borrow::Cow, fmt::Write as _};

/// The escaped text of `bytes`.
pub fn escape(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && !text.contains('\\')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// A unix socket address as text: its path, `@name` for an abstract name, "" when unnamed.
pub fn unix_addr(unix: &crate::network::UnixAddr) -> Cow<'_, str> {
    use crate::network::UnixAddr;
    match unix {
        UnixAddr::Path(path) => escape(path),
        UnixAddr::Abstract(name) => format!("@{}", escape(name)).into(),
        UnixAddr::Unnamed => "".into(),
    }
}

/// Recovers the bytes from [`escape`]d text; `None` if the text is not valid escaped output.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
            continue;
        }
        match tail {
            [b'\\', tail @ ..] => {
                out.push(b'\\');
                rest = tail;
            }
            [b'x', hi, lo, tail @ ..] => {
                let hex = std::str::from_utf8(&[*hi, *lo]).ok()?.to_owned();
                out.push(u8::from_str_radix(&hex, 16).ok()?);
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_utf8_is_borrowed() {
        assert!(matches!(
            escape("héllo wörld".as_bytes()),
            Cow::Borrowed("héllo wörld")
        ));
    }

    #[test]
    fn invalid_bytes_and_backslashes_are_escaped() {
        assert_eq!(escape(b"a\xffb\\c\xc3"), "a\\xffb\\\\c\\xc3");
    }

    #[test]
    fn round_trips_every_byte_sequence_tried() {
        let cases: [&[u8]; 7] = [
            b"",
            b"plain",
            b"\\x41 is not A",
            b"\xff\xfe",
            "ümlaut\\".as_bytes(),
            b"\xe2\x82",
            b"tab\tnew\nline\"quote",
        ];
        for case in cases {
            let text = escape(case);
            assert_eq!(unescape(&text).as_deref(), Some(case), "{text}");
        }
    }

    #[test]
    fn unescape_rejects_dangling_backslash() {
        assert_eq!(unescape("abc\\"), None);
        assert_eq!(unescape("\\xzz"), None);
    }
}
