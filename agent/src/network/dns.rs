//! The question of a captured DNS query: the kernel copies the payload of packets sent to port
//! 53 (see `agent-ebpf/src/programs/dns.rs`); this decodes its header and first question with
//! `hickory-proto`. A payload that is not a DNS message is reported as malformed (and
//! counted), never a reason to drop the event or to fail.

use hickory_proto::{
    op::{Header, MessageType, Query},
    rr::RecordType,
    serialize::binary::{BinDecodable, BinDecoder},
};

/// What a DNS payload says, as far as Vigil reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsQuestion {
    /// The message id (pairs a query with its answer).
    pub id: u16,
    /// The QR bit is set: the message is an answer (unusual towards port 53).
    pub response: bool,
    /// `QUERY`, `NOTIFY`, `UPDATE`...
    pub opcode: String,
    /// The first question's name, in presentation format with a trailing dot: bytes that are
    /// not ASCII letters, digits or hyphens are escaped as `\DDD` (decimal), so an encoded
    /// payload hidden in a name stays visible byte for byte.
    pub name: String,
    /// The question's type by name (`A`, `AAAA`, `TXT`...), or `TYPE<n>` (RFC 3597).
    pub qtype: String,
    pub qtype_code: u16,
    /// The question's class (`IN` almost always).
    pub qclass: String,
    /// Questions the header announces (1 in practice; only the first is decoded).
    pub questions: u16,
}

/// Why a payload is not a DNS message Vigil can read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsMalformed {
    #[error("DNS over TCP: the payload is {len} bytes, too short for the message length")]
    TcpLength { len: usize },
    #[error("DNS header: {reason}")]
    Header { reason: String },
    #[error("the message has no question")]
    NoQuestion,
    #[error("DNS question: {reason}")]
    Question { reason: String },
}

/// Decodes the header and first question of `payload`. Over TCP the message starts after its
/// two-byte length; a payload cut by the kernel's copy limit still decodes when the question
/// fits, which it always does in the first 512 bytes.
pub fn parse(payload: &[u8], tcp: bool) -> Result<DnsQuestion, DnsMalformed> {
    let message = if tcp {
        payload
            .get(2..)
            .ok_or(DnsMalformed::TcpLength { len: payload.len() })?
    } else {
        payload
    };
    let mut decoder = BinDecoder::new(message);
    let header = Header::read(&mut decoder).map_err(|e| DnsMalformed::Header {
        reason: e.to_string(),
    })?;
    if header.counts.queries == 0 {
        return Err(DnsMalformed::NoQuestion);
    }
    let query = Query::read(&mut decoder).map_err(|e| DnsMalformed::Question {
        reason: e.to_string(),
    })?;
    let qtype = query.query_type();
    let qtype_name = match qtype {
        // RFC 3597's presentation of a type without a mnemonic.
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    };
    Ok(DnsQuestion {
        id: header.metadata.id,
        response: header.metadata.message_type == MessageType::Response,
        opcode: header.metadata.op_code.to_string(),
        name: query.name().to_ascii(),
        qtype: qtype_name,
        qtype_code: u16::from(qtype),
        qclass: query.query_class().to_string(),
        questions: header.counts.queries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query message: header with `questions` questions, then one question for `labels`.
    pub(crate) fn query(id: u16, labels: &[&[u8]], qtype: u16, questions: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x01, 0x00]); // RD
        m.extend_from_slice(&questions.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        for label in labels {
            m.push(label.len() as u8);
            m.extend_from_slice(label);
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn decodes_the_first_question() {
        let q = parse(&query(0x1234, &[b"www", b"example", b"com"], 28, 1), false)
            .expect("a valid query");
        assert_eq!(
            q,
            DnsQuestion {
                id: 0x1234,
                response: false,
                opcode: "QUERY".into(),
                name: "www.example.com.".into(),
                qtype: "AAAA".into(),
                qtype_code: 28,
                qclass: "IN".into(),
                questions: 1,
            }
        );
    }

    #[test]
    fn over_tcp_skips_the_length() {
        let message = query(7, &[b"vigil", b"test"], 16, 1);
        let mut framed = (message.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&message);
        let q = parse(&framed, true).expect("a framed query");
        assert_eq!((q.name.as_str(), q.qtype.as_str()), ("vigil.test.", "TXT"));
        assert_eq!(parse(&[0], true), Err(DnsMalformed::TcpLength { len: 1 }));
    }

    #[test]
    fn long_names_and_odd_bytes_survive() {
        let label = [b'a'; 63];
        let labels: Vec<&[u8]> = vec![&label, &label, &label, b"example"];
        let q = parse(&query(1, &labels, 1, 1), false).expect("a 200-byte name");
        assert_eq!(q.name.len(), 3 * 64 + "example.".len());
        let q = parse(&query(1, &[b"x y\x01", b"com"], 1, 1), false).expect("odd bytes");
        assert_eq!(q.name, "x\\040y\\001.com.");
    }

    #[test]
    fn unknown_types_keep_their_number() {
        let q = parse(&query(1, &[b"a"], 65000, 1), false).expect("query");
        assert_eq!((q.qtype.as_str(), q.qtype_code), ("TYPE65000", 65000));
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        assert!(matches!(
            parse(b"\x12\x34\x01", false),
            Err(DnsMalformed::Header { .. })
        ));
        assert_eq!(
            parse(&query(1, &[b"a"], 1, 0)[..12], false),
            Err(DnsMalformed::NoQuestion)
        );
        // A label longer than the rest of the message; a compression pointer loop.
        let mut cut = query(1, &[b"abcdef"], 1, 1);
        cut.truncate(15);
        assert!(matches!(
            parse(&cut, false),
            Err(DnsMalformed::Question { .. })
        ));
        let mut looped = query(1, &[], 1, 1)[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(
            parse(&looped, false),
            Err(DnsMalformed::Question { .. })
        ));
        // Every prefix of a valid query, and random-ish bytes: an answer or an error.
        let valid = query(9, &[b"www", b"example", b"org"], 1, 1);
        for end in 0..valid.len() {
            let _ = parse(&valid[..end], false);
        }
        let mut noise = 0x9e37_79b9_u32;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..40)
                .map(|_| {
                    noise ^= noise << 13;
                    noise ^= noise >> 17;
                    noise ^= noise << 5;
                    noise as u8
                })
                .collect();
            let _ = parse(&bytes, false);
        }
    }
}
