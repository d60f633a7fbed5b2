//! Text of the message back to typed values: kernel bytes, socket addresses, the names the
//! domain holds as `&'static str`, and the error values `convert` writes with `{:?}`.

use std::net::SocketAddr;

use super::{RestoreError, invalid, missing};
use crate::{
    export::escape::unescape,
    network::{DnsMalformed, Sockaddr, SockaddrError, UnixAddr},
    syscall::Arch,
};

/// Kernel bytes from their escaped text (`crate::export::escape`).
pub(super) fn bytes(text: &str, field: &str) -> Result<Vec<u8>, RestoreError> {
    unescape(text).ok_or_else(|| RestoreError::Unescapable {
        field: field.to_owned(),
        value: text.to_owned(),
    })
}

/// `ip:port` or `[ip6]:port`.
pub(super) fn socket_addr(text: &str, field: &str) -> Result<SocketAddr, RestoreError> {
    if text.is_empty() {
        return Err(missing(field));
    }
    text.parse().map_err(|_| {
        invalid(
            field,
            text,
            "an address with a port (`ip:port`, `[ip6]:port`)",
        )
    })
}

/// A network event's address argument from `address_type` and `address`.
pub(super) fn sockaddr(
    kind: &str,
    address: &str,
) -> Result<Option<Result<Sockaddr, SockaddrError>>, RestoreError> {
    let bad = |expected| invalid("address", address, expected);
    let inet = |address: &str| address.parse::<SocketAddr>().ok();
    Ok(Some(Ok(match kind {
        "" if address.is_empty() => return Ok(None),
        // A unix path may look like anything: without the type the text is ambiguous.
        "" => return Err(missing("address_type")),
        "inet" => match inet(address) {
            Some(SocketAddr::V4(a)) => Sockaddr::Inet {
                ip: *a.ip(),
                port: a.port(),
            },
            _ => return Err(bad("an IPv4 address and port")),
        },
        "inet6" => match inet(address) {
            Some(SocketAddr::V6(a)) => Sockaddr::Inet6 {
                ip: *a.ip(),
                port: a.port(),
            },
            _ => return Err(bad("an IPv6 address and port (`[ip6]:port`)")),
        },
        "unix_path" => Sockaddr::Unix(UnixAddr::Path(bytes(address, "address")?)),
        "unix_abstract" => match address.strip_prefix('@') {
            Some(name) => Sockaddr::Unix(UnixAddr::Abstract(bytes(name, "address")?)),
            None => return Err(bad("an abstract unix name (`@name`)")),
        },
        "unix_unnamed" if address.is_empty() => Sockaddr::Unix(UnixAddr::Unnamed),
        "unix_unnamed" => return Err(bad("empty (an unnamed unix socket)")),
        "other" => match address.strip_prefix("af_").map(str::parse) {
            Some(Ok(family)) => Sockaddr::Other { family },
            _ => return Err(bad("an address family (`af_<n>`)")),
        },
        "unreadable" => {
            return match address
                .strip_prefix("unreadable: ")
                .and_then(sockaddr_error)
            {
                Some(error) => Ok(Some(Err(error))),
                None => Err(bad("an unreadable address as Vigil writes it")),
            };
        }
        other => {
            return Err(invalid(
                "address_type",
                other,
                "inet, inet6, unix_path, unix_abstract, unix_unnamed, other or unreadable",
            ));
        }
    })))
}

/// The number after `name: ` in a `{:?}` rendering.
fn debug_number<T: std::str::FromStr>(debug: &str, name: &str) -> Option<T> {
    let (_, rest) = debug.split_once(&format!("{name}: "))?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A [`SockaddrError`] from its `{:?}` rendering.
fn sockaddr_error(debug: &str) -> Option<SockaddrError> {
    if debug.starts_with("NoFamily {") {
        return Some(SockaddrError::NoFamily {
            len: debug_number(debug, "len")?,
        });
    }
    if !debug.starts_with("Truncated {") {
        return None;
    }
    // The closing quote keeps `inet` from matching `inet6`.
    let family = ["inet", "inet6"]
        .into_iter()
        .find(|f| debug.contains(&format!("family: \"{f}\"")))?;
    Some(SockaddrError::Truncated {
        family,
        len: debug_number(debug, "len")?,
        need: debug_number(debug, "need")?,
    })
}

/// A [`DnsMalformed`] from its `{:?}` rendering. A reason with characters that `{:?}`
/// escapes keeps the escapes (no rule reads the reason).
pub(super) fn dns_malformed(debug: &str) -> Result<DnsMalformed, RestoreError> {
    let reason = |variant: &str| {
        debug
            .strip_prefix(variant)?
            .strip_prefix(" { reason: \"")?
            .strip_suffix("\" }")
            .map(str::to_owned)
    };
    let restored = if debug == "NoQuestion" {
        Some(DnsMalformed::NoQuestion)
    } else if debug.starts_with("TcpLength {") {
        debug_number(debug, "len").map(|len| DnsMalformed::TcpLength { len })
    } else if let Some(reason) = reason("Header") {
        Some(DnsMalformed::Header { reason })
    } else {
        reason("Question").map(|reason| DnsMalformed::Question { reason })
    };
    restored.ok_or_else(|| {
        invalid(
            "malformed",
            debug,
            "a malformed-DNS reason as Vigil writes it",
        )
    })
}

/// The name of a syscall Vigil knows, as the domain holds it. Both tables are searched: the
/// recording node may have had another architecture than this one.
pub(super) fn syscall_name(name: &str, field: &str) -> Result<&'static str, RestoreError> {
    [Arch::NATIVE, Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .find_map(|arch| arch.name(arch.number(name)?))
        .ok_or_else(|| invalid(field, name, "a syscall Vigil knows"))
}

/// `value` as the `&'static str` of `table` that equals it.
pub(super) fn one_of(
    value: &str,
    table: impl IntoIterator<Item = &'static str>,
    field: &str,
    expected: &'static str,
) -> Result<&'static str, RestoreError> {
    table
        .into_iter()
        .find(|name| *name == value)
        .ok_or_else(|| invalid(field, value, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_values_read_back_from_their_debug_text() {
        for error in [
            SockaddrError::NoFamily { len: 1 },
            SockaddrError::Truncated {
                family: "inet",
                len: 4,
                need: 8,
            },
            SockaddrError::Truncated {
                family: "inet6",
                len: 9,
                need: 24,
            },
        ] {
            assert_eq!(sockaddr_error(&format!("{error:?}")), Some(error));
        }
        for error in [
            DnsMalformed::NoQuestion,
            DnsMalformed::TcpLength { len: 1 },
            DnsMalformed::Header {
                reason: "unexpected end of input reached".into(),
            },
            DnsMalformed::Question {
                reason: "label bytes exceed 63: 64".into(),
            },
        ] {
            assert_eq!(dns_malformed(&format!("{error:?}")), Ok(error));
        }
        assert!(dns_malformed("Other").is_err());
        assert_eq!(sockaddr_error("Truncated { family: \"unix\" }"), None);
    }

    #[test]
    fn syscall_names_of_either_architecture() {
        assert_eq!(syscall_name("openat", "f"), Ok("openat"));
        // x86_64 only: a capture from there read on an arm64 machine, and the other way.
        assert_eq!(syscall_name("open", "f"), Ok("open"));
        assert_eq!(
            syscall_name("no_such_call", "syscall.name").map_err(|e| e.field().to_owned()),
            Err("syscall.name".to_owned())
        );
    }
}
