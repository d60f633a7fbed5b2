//! The hand-written file, network and DNS members against their serde structs, the schema.

use super::*;

/// The hand-written file, network and DNS members are what their serde structs write, for
/// every shape the restore corpus and the policy cases hold, and TCP state changes of both
/// families.
#[test]
fn hand_written_details_are_the_serde_schema_s() {
    use crate::forensics::restore::corpus;

    fn same(what: &str, hand: impl FnOnce(&mut Vec<u8>), serde: &impl Serialize) {
        let mut out = Vec::new();
        hand(&mut out);
        let reference = serde_json::to_vec(serde).expect("serializes");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&reference),
            "{what}"
        );
    }

    let tcp_states = (0..14).flat_map(|state| {
        [2u16, 10].map(|family| {
            let record = encode::tcp_state(sample_ids(), 7, state, family, state % 2);
            let KernelEvent::TcpState(change) = decode(&record).expect("decodes") else {
                panic!("tcp state");
            };
            Event::new(0, 42, None, None, Detail::TcpState(change))
        })
    });
    let events = corpus::decoded()
        .into_iter()
        .chain(corpus::cases().into_iter().map(|(_, event)| event))
        .chain(tcp_states);
    let (mut files, mut networks, mut dns_events) = (0, 0, 0);
    for event in events {
        let detail = match &event.detail {
            Detail::Finding(finding) => &finding.trigger,
            detail => detail,
        };
        let what = format!("{detail:?}");
        match detail {
            Detail::File(file) => {
                let json = FileJson::new(file);
                same(&what, |out| json.write(out), &json);
                files += 1;
            }
            Detail::Network(network) => {
                let json = NetworkJson::new(network);
                same(&what, |out| json.write(out), &json);
                networks += 1;
            }
            Detail::TcpState(change) => {
                let json = NetworkJson::tcp_state(change);
                same(&what, |out| json.write(out), &json);
                networks += 1;
            }
            Detail::Dns(dns) => {
                let json = NetworkJson::dns(dns);
                same(&what, |out| json.write(out), &json);
                let json = DnsJson::new(dns);
                same(&what, |out| json.write(out), &json);
                dns_events += 1;
            }
            _ => {}
        }
    }
    // The corpus holds every shape: fail loudly if it ever stops doing so.
    assert!(
        files >= 5 && networks >= 40 && dns_events >= 4,
        "files {files}, network {networks}, dns {dns_events}"
    );
}
