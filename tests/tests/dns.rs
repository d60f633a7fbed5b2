//! DNS queries: a python3 child runs DNS listeners on loopback port 53 (UDP on 127.0.0.153 and
//! ::1, TCP on 127.0.0.153) and sends them queries the way resolvers do (a connected UDP
//! socket, an unconnected `sendto`, DNS over TCP), plus a long name and a packet that is not
//! DNS. Each must be reported once with its exact name, type, server and source port; the
//! malformed one with its reason and counted in `vigil_dns_malformed_total`. With
//! `dns = false`, nothing is reported.

use serde_json::Value;
use vigil::{config::Config, event::Dns};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    json::render,
    scrape::{metrics_until, value},
    select::{dns_of, find_group_exit},
    spawn::run_python_facts,
};

/// A query builder and loopback listeners; the child receives every packet it sent, so each
/// has left its socket before the child prints its facts.
const PRELUDE: &str = "import json, socket, struct\n\
def query(qid, name, qtype):\n\
\x20   q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)\n\
\x20   for label in name.split('.'):\n\
\x20       q += bytes([len(label)]) + label.encode()\n\
\x20   return q + b'\\x00' + struct.pack('>HH', qtype, 1)\n\
def udp_server(family, host):\n\
\x20   s = socket.socket(family, socket.SOCK_DGRAM)\n\
\x20   s.bind((host, 53))\n\
\x20   return s\n";

/// The child's DNS events, once its exit has been seen.
fn collect(agent: &mut Harness, pid: u32, since_ns: u64) -> Vec<Dns> {
    agent.collect_until("the child's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, pid, since_ns)
    });
    agent.collect_for(std::time::Duration::from_millis(100));
    dns_of(agent.events(), pid, since_ns)
}

/// The one event from source port `port` among `events`.
#[track_caller]
fn from_port<'a>(events: &'a [Dns], port: &Value) -> &'a Dns {
    let port = u16::try_from(port.as_u64().expect("a port")).expect("port fits");
    let found: Vec<&Dns> = events.iter().filter(|e| e.src.port() == port).collect();
    assert_eq!(
        found.len(),
        1,
        "one query from port {port} among {events:#?}"
    );
    found[0]
}

#[track_caller]
fn question(dns: &Dns) -> &vigil::network::DnsQuestion {
    dns.question.as_ref().expect("a decoded question")
}

#[test]
fn udp_queries_have_exact_names_types_and_servers() {
    let mut config = Config::default();
    config.telemetry.metrics_address = "127.0.0.1:0".into();
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let long = format!(
        "{}.{}.{}.vigil.test",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63)
    );
    let script = format!(
        "{PRELUDE}\
         srv = udp_server(socket.AF_INET, '127.0.0.153')\n\
         c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         c.connect(('127.0.0.153', 53))\n\
         c.send(query(0x1234, 'www.example.com', 1))\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         u.sendto(query(0x4321, '{long}', 16), ('127.0.0.153', 53))\n\
         bad = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         bad.sendto(b'\\x00\\x01not dns', ('127.0.0.153', 53))\n\
         for _ in range(3):\n\
         \x20   srv.recvfrom(4096)\n\
         srv6 = udp_server(socket.AF_INET6, '::1')\n\
         c6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         c6.sendto(query(7, 'v6.example.org', 28), ('::1', 53))\n\
         srv6.recvfrom(4096)\n\
         print(json.dumps({{'connected': c.getsockname()[1], 'unconnected': u.getsockname()[1],\n\
         \x20   'bad': bad.getsockname()[1], 'v6': c6.getsockname()[1]}}), flush=True)\n"
    );
    let (pid, since_ns, facts) = run_python_facts(&script, &[]);
    let events = collect(&mut agent, pid, since_ns);
    let fact = &facts[0];
    assert_eq!(events.len(), 4, "four queries: {events:#?}");

    let connected = from_port(&events, &fact["connected"]);
    let q = question(connected);
    assert_eq!(
        (q.name.as_str(), q.qtype.as_str(), q.qtype_code, q.id),
        ("www.example.com.", "A", 1, 0x1234)
    );
    assert_eq!(connected.dst, "127.0.0.153:53".parse().expect("addr"));
    assert_eq!(connected.src.ip().to_string(), "127.0.0.1");
    assert!(!connected.tcp);
    assert_eq!(connected.task.pid, pid);

    let unconnected = from_port(&events, &fact["unconnected"]);
    let q = question(unconnected);
    assert_eq!(q.name, format!("{long}."), "the 200-byte name, whole");
    assert_eq!((q.qtype.as_str(), q.id), ("TXT", 0x4321));
    assert!(!unconnected.payload_truncated);

    let bad = from_port(&events, &fact["bad"]);
    assert!(bad.question.is_err(), "not DNS: {bad:?}");
    assert_eq!(bad.wire_len, 9);

    let v6 = from_port(&events, &fact["v6"]);
    assert_eq!(v6.dst, "[::1]:53".parse().expect("addr"));
    assert_eq!(question(v6).qtype, "AAAA");

    // As `vigil run` writes them.
    let json_of = |dns: &Dns| {
        let event = agent
            .events()
            .iter()
            .find(|e| matches!(&e.detail, vigil::event::Detail::Dns(d) if d == dns))
            .expect("the event");
        render(event)
    };
    let json = json_of(connected);
    assert_eq!(json["kind"], "dns");
    assert_eq!(json["dns"]["name"], "www.example.com.");
    assert_eq!(json["dns"]["type"], "A");
    assert_eq!(json["network"]["protocol"], "udp");
    assert_eq!(json["network"]["dst_ip"], "127.0.0.153");
    assert_eq!(json["network"]["dst_port"], 53);
    assert_eq!(json["network"]["src_port"], fact["connected"]);
    assert_eq!(json["process"]["pid"], pid);
    let json = json_of(bad);
    assert!(
        json["dns"]["malformed"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    assert!(json["dns"].get("name").is_none());

    // Counted too (the machine is shared: other malformed packets may add to it).
    let addr = agent.metrics_addr().expect("metrics are on");
    metrics_until(addr, EVENT_TIMEOUT, |body| {
        value(body, "vigil_dns_malformed_total").is_some_and(|n| n >= 1)
    });
}

#[test]
fn dns_over_tcp_is_decoded_after_the_length() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let script = format!(
        "{PRELUDE}\
         srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         srv.bind(('127.0.0.153', 53))\n\
         srv.listen(1)\n\
         c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         c.connect(('127.0.0.153', 53))\n\
         conn, _ = srv.accept()\n\
         q = query(99, 'tcp.example.net', 255)\n\
         c.sendall(struct.pack('>H', len(q)) + q)\n\
         got = b''\n\
         while len(got) < len(q) + 2:\n\
         \x20   got += conn.recv(4096)\n\
         print(json.dumps({{'port': c.getsockname()[1]}}), flush=True)\n"
    );
    let (pid, since_ns, facts) = run_python_facts(&script, &[]);
    let events = collect(&mut agent, pid, since_ns);
    // Only the segment with data: the handshake and acks carry no payload.
    assert_eq!(events.len(), 1, "{events:#?}");
    let tcp = from_port(&events, &facts[0]["port"]);
    assert!(tcp.tcp);
    let q = question(tcp);
    assert_eq!(
        (q.name.as_str(), q.qtype.as_str(), q.id),
        ("tcp.example.net.", "ANY", 99)
    );
    assert_eq!(tcp.dst, "127.0.0.153:53".parse().expect("addr"));
}

#[test]
fn dns_off_reports_nothing() {
    let mut config = Config::default();
    config.network.dns = false;
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let script = format!(
        "{PRELUDE}\
         srv = udp_server(socket.AF_INET, '127.0.0.153')\n\
         c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         c.sendto(query(1, 'off.example.com', 1), ('127.0.0.153', 53))\n\
         srv.recvfrom(4096)\n"
    );
    let (pid, since_ns, _) = run_python_facts(&script, &[]);
    let events = collect(&mut agent, pid, since_ns);
    assert!(events.is_empty(), "{events:#?}");
}
