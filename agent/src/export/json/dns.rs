//! `network: {family, protocol, src_*, dst_*}` and `dns: {name, type, ...}` of a DNS query.
//! The server is `dst_*`. A payload that is not a DNS message keeps its addresses and says
//! why in `dns.malformed`. [`DnsJson::write`] writes the members by hand; the serde derive
//! is the schema it is tested against.

use serde::Serialize;

use super::{network::NetworkJson, write::Object};
use crate::event::Dns;

#[derive(Serialize)]
pub(super) struct DnsJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    qtype: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    type_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opcode: Option<&'a str>,
    /// The QR bit was set (an answer sent to port 53).
    #[serde(skip_serializing_if = "super::is_false")]
    response: bool,
    /// Questions in the message when more than one (only the first is decoded).
    #[serde(skip_serializing_if = "Option::is_none")]
    questions: Option<u16>,
    /// Bytes of DNS payload in the packet.
    length: u32,
    /// The payload was longer than the kernel's copy (512 bytes).
    #[serde(skip_serializing_if = "super::is_false")]
    truncated: bool,
    /// Why the payload could not be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    malformed: Option<String>,
}

impl<'a> DnsJson<'a> {
    pub(super) fn new(dns: &'a Dns) -> Self {
        let mut json = Self {
            name: None,
            qtype: None,
            type_code: None,
            class: None,
            id: None,
            opcode: None,
            response: false,
            questions: None,
            length: dns.wire_len,
            truncated: dns.payload_truncated,
            malformed: None,
        };
        match &dns.question {
            Ok(q) => {
                json.name = Some(&q.name);
                json.qtype = Some(&q.qtype);
                json.type_code = Some(q.qtype_code);
                json.class = Some(&q.qclass);
                json.id = Some(q.id);
                json.opcode = Some(&q.opcode);
                json.response = q.response;
                json.questions = (q.questions > 1).then_some(q.questions);
            }
            Err(reason) => json.malformed = Some(reason.to_string()),
        }
        json
    }
}

impl DnsJson<'_> {
    /// The members as the serde derive writes them (same order, same ones left out).
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        let mut o = Object::open(out);
        o.some_str("name", self.name);
        o.some_str("type", self.qtype);
        o.some_uint("type_code", self.type_code);
        o.some_str("class", self.class);
        o.some_uint("id", self.id);
        o.some_str("opcode", self.opcode);
        o.flag("response", self.response);
        o.some_uint("questions", self.questions);
        o.uint("length", self.length);
        o.flag("truncated", self.truncated);
        o.some_str("malformed", self.malformed.as_deref());
        o.close();
    }
}

impl NetworkJson<'static> {
    /// The packet's addresses; `result` is `"sent"`.
    pub(super) fn dns(dns: &Dns) -> Self {
        Self::addresses(
            if dns.tcp { "tcp" } else { "udp" },
            dns.src,
            dns.dst,
            "sent",
        )
    }
}
