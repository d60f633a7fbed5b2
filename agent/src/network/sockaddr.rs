//! `struct sockaddr` bytes, as the kernel copied them from user memory, -> a typed address.
//! The bytes come from the traced process and may be anything: every length is checked and a
//! bad address is a [`SockaddrError`], never a panic.

use std::net::{Ipv4Addr, Ipv6Addr};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `sizeof(sockaddr_in)` without its padding: family, port, address.
const SOCKADDR_IN_LEN: usize = 8;
/// `sizeof(sockaddr_in6)` up to and including the address (the scope id is optional here).
const SOCKADDR_IN6_LEN: usize = 24;
/// `offsetof(sockaddr_un, sun_path)`.
const SUN_PATH_OFFSET: usize = 2;

/// A decoded socket address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sockaddr {
    Inet {
        ip: Ipv4Addr,
        port: u16,
    },
    Inet6 {
        ip: Ipv6Addr,
        port: u16,
    },
    /// A unix socket: a filesystem path, an abstract name, or unnamed (no path at all).
    Unix(UnixAddr),
    /// A family Vigil does not decode (netlink, packet, vsock...).
    Other {
        family: u16,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnixAddr {
    Path(Vec<u8>),
    /// The name after the leading NUL (may itself contain NULs).
    Abstract(Vec<u8>),
    Unnamed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SockaddrError {
    #[error("socket address of {len} bytes has no family")]
    NoFamily { len: usize },
    #[error("{family} socket address of {len} bytes is shorter than {need} bytes")]
    Truncated {
        family: &'static str,
        len: usize,
        need: usize,
    },
}

impl Sockaddr {
    /// Decodes `bytes` (the `addrlen` bytes the caller or the kernel gave, as copied).
    pub fn parse(bytes: &[u8]) -> Result<Self, SockaddrError> {
        let Some(family) = bytes.get(..2) else {
            return Err(SockaddrError::NoFamily { len: bytes.len() });
        };
        // sa_family is in host order.
        let family = u16::from_ne_bytes([family[0], family[1]]);
        let need = |family, need| {
            if bytes.len() < need {
                Err(SockaddrError::Truncated {
                    family,
                    len: bytes.len(),
                    need,
                })
            } else {
                Ok(())
            }
        };
        // Ports are in network order.
        let port = || u16::from_be_bytes([bytes[2], bytes[3]]);
        match family {
            AF_INET => {
                need("inet", SOCKADDR_IN_LEN)?;
                let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
                Ok(Self::Inet { ip, port: port() })
            }
            AF_INET6 => {
                need("inet6", SOCKADDR_IN6_LEN)?;
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&bytes[8..24]);
                Ok(Self::Inet6 {
                    ip: Ipv6Addr::from(octets),
                    port: port(),
                })
            }
            AF_UNIX => {
                let path = &bytes[SUN_PATH_OFFSET..];
                Ok(Self::Unix(match path.split_first() {
                    None => UnixAddr::Unnamed,
                    Some((0, name)) => UnixAddr::Abstract(name.to_vec()),
                    Some(_) => {
                        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                        UnixAddr::Path(path[..end].to_vec())
                    }
                }))
            }
            family => Ok(Self::Other { family }),
        }
    }

    /// `"inet"`, `"inet6"`, `"unix"`, or `"af_<n>"`.
    pub fn family_name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Inet { .. } => "inet".into(),
            Self::Inet6 { .. } => "inet6".into(),
            Self::Unix(_) => "unix".into(),
            Self::Other { family } => format!("af_{family}").into(),
        }
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
    pub fn mapped_ipv4(&self) -> Option<Ipv4Addr> {
        match self {
            Self::Inet6 { ip, .. } => ip.to_ipv4_mapped(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = AF_INET.to_ne_bytes().to_vec();
        b.extend_from_slice(&port.to_be_bytes());
        b.extend_from_slice(&ip);
        b.extend_from_slice(&[0; 8]);
        b
    }

    fn inet6(ip: Ipv6Addr, port: u16) -> Vec<u8> {
        let mut b = AF_INET6.to_ne_bytes().to_vec();
        b.extend_from_slice(&port.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&ip.octets());
        b.extend_from_slice(&[0; 4]);
        b
    }

    fn unix(path: &[u8]) -> Vec<u8> {
        let mut b = AF_UNIX.to_ne_bytes().to_vec();
        b.extend_from_slice(path);
        b
    }

    #[test]
    fn inet_and_inet6_decode_address_and_port() {
        assert_eq!(
            Sockaddr::parse(&inet([127, 0, 0, 1], 8080)),
            Ok(Sockaddr::Inet {
                ip: Ipv4Addr::LOCALHOST,
                port: 8080
            })
        );
        let v6 = Sockaddr::parse(&inet6(Ipv6Addr::LOCALHOST, 443)).expect("v6");
        assert_eq!(
            v6,
            Sockaddr::Inet6 {
                ip: Ipv6Addr::LOCALHOST,
                port: 443
            }
        );
        assert_eq!(v6.family_name(), "inet6");
        assert_eq!(v6.mapped_ipv4(), None);
    }

    #[test]
    fn mapped_ipv4_is_kept_as_v6_and_exposed() {
        let ip: Ipv6Addr = "::ffff:127.0.0.1".parse().expect("ip");
        let addr = Sockaddr::parse(&inet6(ip, 53)).expect("mapped");
        assert_eq!(addr.mapped_ipv4(), Some(Ipv4Addr::LOCALHOST));
        let Sockaddr::Inet6 { ip, .. } = addr else {
            panic!("inet6");
        };
        assert_eq!(ip.to_string(), "::ffff:127.0.0.1");
    }

    #[test]
    fn unix_paths_abstract_names_and_unnamed() {
        assert_eq!(
            Sockaddr::parse(&unix(b"/run/x.sock\0\0\0")),
            Ok(Sockaddr::Unix(UnixAddr::Path(b"/run/x.sock".to_vec())))
        );
        assert_eq!(
            Sockaddr::parse(&unix(b"\0vigil\0x")),
            Ok(Sockaddr::Unix(UnixAddr::Abstract(b"vigil\0x".to_vec())))
        );
        assert_eq!(
            Sockaddr::parse(&unix(b"")),
            Ok(Sockaddr::Unix(UnixAddr::Unnamed))
        );
        // No NUL within the copy: the whole rest is the path.
        assert_eq!(
            Sockaddr::parse(&unix(b"/tmp/a")),
            Ok(Sockaddr::Unix(UnixAddr::Path(b"/tmp/a".to_vec())))
        );
    }

    #[test]
    fn truncated_or_garbage_is_an_error_or_other_never_a_panic() {
        assert_eq!(
            Sockaddr::parse(&[]),
            Err(SockaddrError::NoFamily { len: 0 })
        );
        assert_eq!(
            Sockaddr::parse(&[2]),
            Err(SockaddrError::NoFamily { len: 1 })
        );
        assert_eq!(
            Sockaddr::parse(&inet([1, 2, 3, 4], 1)[..7]),
            Err(SockaddrError::Truncated {
                family: "inet",
                len: 7,
                need: 8
            })
        );
        let err = Sockaddr::parse(&inet6(Ipv6Addr::LOCALHOST, 1)[..20]).expect_err("short");
        assert_eq!(
            err.to_string(),
            "inet6 socket address of 20 bytes is shorter than 24 bytes"
        );
        assert_eq!(
            Sockaddr::parse(&[16, 0, 1, 2, 3]),
            Ok(Sockaddr::Other { family: 16 })
        );
        // Every prefix of every kind of input, and some noise: no panic.
        let inputs = [
            inet([10, 0, 0, 1], 80),
            inet6(Ipv6Addr::LOCALHOST, 80),
            unix(b"\0abs"),
            (0..=255u8).collect(),
        ];
        for input in &inputs {
            for end in 0..=input.len() {
                let _ = Sockaddr::parse(&input[..end]);
            }
        }
    }
}
