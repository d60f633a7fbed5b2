//! Network events: a python3 child makes loopback TCP (v4, v6, v4-mapped), UDP and unix socket
//! calls and prints what it saw (ports, fds, results); each call must be reported once with
//! exactly those addresses, ports, fds and results. With `[network]` off, nothing is reported.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;
use vigil::{
    config::Config,
    event::{Detail, Network, NetworkOp},
    network::{Sockaddr, UnixAddr},
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    json::render,
    select::{find_group_exit, network_of, tcp_states_of},
    spawn::{TempDir, run_python_facts},
};

/// Runs `script` in python3: its pid, start bound and printed JSON facts.
fn run_python(script: &str) -> (u32, u64, Vec<Value>) {
    run_python_facts(script, &[])
}

/// The child's network events, once its exit has been seen.
fn collect(agent: &mut Harness, pid: u32, since_ns: u64) -> Vec<Network> {
    agent.collect_until("the child's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, pid, since_ns)
    });
    // Records of one CPU arrive in order, but the exit may have run on another CPU.
    agent.collect_for(std::time::Duration::from_millis(100));
    network_of(agent.events(), pid, since_ns)
}

/// The one event of `op` on socket `fd` among `events`.
#[track_caller]
fn one<'a>(events: &'a [Network], op: NetworkOp, fd: &Value) -> &'a Network {
    let fd = i32::try_from(fd.as_i64().expect("an fd")).expect("fd fits");
    let found: Vec<&Network> = events.iter().filter(|e| e.op == op && e.fd == fd).collect();
    assert_eq!(found.len(), 1, "one {op:?} on fd {fd} among {events:#?}");
    found[0]
}

fn inet(ip: &str, port: &Value) -> Sockaddr {
    let port = u16::try_from(port.as_u64().expect("a port")).expect("port fits");
    match ip.parse::<IpAddr>().expect("an ip") {
        IpAddr::V4(ip) => Sockaddr::Inet { ip, port },
        IpAddr::V6(ip) => Sockaddr::Inet6 { ip, port },
    }
}

#[track_caller]
fn addr(event: &Network) -> &Sockaddr {
    match &event.addr {
        Some(Ok(addr)) => addr,
        other => panic!("no address in {event:?}: {other:?}"),
    }
}

#[test]
fn tcp_v4_and_v6_bind_listen_connect_accept_have_exact_addresses() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let (pid, since_ns, facts) = run_python(
        "import json, socket\n\
         keep = []  # open until exit, so that no fd is reused\n\
         for fam, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):\n\
         \x20   srv = socket.socket(fam, socket.SOCK_STREAM)\n\
         \x20   srv.bind((host, 0))\n\
         \x20   srv.listen(7)\n\
         \x20   port = srv.getsockname()[1]\n\
         \x20   c = socket.socket(fam, socket.SOCK_STREAM)\n\
         \x20   c.connect((host, port))\n\
         \x20   conn, peer = srv.accept()\n\
         \x20   print(json.dumps({'host': host, 'port': port, 'client_port': c.getsockname()[1],\n\
         \x20       'srv': srv.fileno(), 'cli': c.fileno(), 'conn': conn.fileno()}), flush=True)\n\
         \x20   keep.append((srv, c, conn))\n",
    );
    let events = collect(&mut agent, pid, since_ns);
    assert_eq!(facts.len(), 2);
    for fact in &facts {
        let host = fact["host"].as_str().expect("host");
        let bind = one(&events, NetworkOp::Bind, &fact["srv"]);
        assert_eq!(addr(bind), &inet(host, &Value::from(0)), "bind to port 0");
        assert_eq!(bind.ret, 0);

        // The socket's own ends, read from the kernel at exit: the port bind picked, the
        // listener's port, the client's port, the accepted connection's local end.
        let at = |port: &Value| {
            let port = u16::try_from(port.as_u64().expect("a port")).expect("port fits");
            std::net::SocketAddr::new(host.parse().expect("an ip"), port)
        };
        let (server, client) = (at(&fact["port"]), at(&fact["client_port"]));
        let ends = |e: &Network| e.socket.unwrap_or_else(|| panic!("no socket ends: {e:?}"));
        assert_eq!(ends(bind).local, server, "the port the kernel picked");
        assert_eq!(ends(bind).protocol, libc::IPPROTO_TCP as u16);

        let listen = one(&events, NetworkOp::Listen, &fact["srv"]);
        assert_eq!((listen.backlog, listen.ret), (Some(7), 0));
        assert_eq!(ends(listen).local, server);

        let connect = one(&events, NetworkOp::Connect, &fact["cli"]);
        assert_eq!(addr(connect), &inet(host, &fact["port"]));
        assert_eq!(connect.ret, 0);
        assert_eq!(connect.task.pid, pid);
        assert_eq!(ends(connect).local, client);
        assert_eq!(ends(connect).remote, Some(server));

        let accept = one(&events, NetworkOp::Accept, &fact["srv"]);
        assert_eq!(Some(accept.ret), fact["conn"].as_i64(), "the new fd");
        assert_eq!(
            addr(accept),
            &inet(host, &fact["client_port"]),
            "the peer is the client's local address"
        );
        assert!(accept.exit_time_ns >= accept.task.time_ns);
        assert_eq!(ends(accept).local, server, "the accepted connection's end");
        assert_eq!(ends(accept).remote, Some(client));
    }

    // As `vigil run` writes it.
    let v6 = &facts[1];
    let connect = one(&events, NetworkOp::Connect, &v6["cli"]);
    let event = agent
        .events()
        .iter()
        .find(|e| matches!(&e.detail, Detail::Network(n) if n == connect))
        .expect("the v6 connect event");
    let json = render(event);
    assert_eq!(json["kind"], "connect");
    assert_eq!(json["network"]["family"], "inet6");
    assert_eq!(json["network"]["dst_ip"], "::1");
    assert_eq!(json["network"]["dst_port"], v6["port"]);
    assert_eq!(json["network"]["fd"], v6["cli"]);
    assert_eq!(json["network"]["result"], "ok");
    assert_eq!(json["process"]["pid"], pid);
}

#[test]
fn refused_udp_mapped_and_nonblocking_connects_have_their_results() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let (pid, since_ns, facts) = run_python(
        "import errno, json, socket\n\
         s = socket.socket(); s.bind(('127.0.0.1', 0)); closed = s.getsockname()[1]; s.close()\n\
         r = socket.socket()\n\
         refused = r.connect_ex(('127.0.0.1', closed))\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         u.connect(('127.0.0.1', 53))\n\
         srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)\n\
         port = srv.getsockname()[1]\n\
         m = socket.socket(socket.AF_INET6)\n\
         m.connect(('::ffff:127.0.0.1', port))\n\
         n = socket.socket(); n.setblocking(False)\n\
         nonblocking = n.connect_ex(('127.0.0.1', port))\n\
         print(json.dumps({'closed': closed, 'refused': refused, 'r': r.fileno(),\n\
         \x20   'u': u.fileno(), 'port': port, 'm': m.fileno(), 'n': n.fileno(),\n\
         \x20   'nonblocking': nonblocking}), flush=True)\n",
    );
    let events = collect(&mut agent, pid, since_ns);
    let fact = &facts[0];

    assert_eq!(fact["refused"], libc::ECONNREFUSED);
    let refused = one(&events, NetworkOp::Connect, &fact["r"]);
    assert_eq!(addr(refused), &inet("127.0.0.1", &fact["closed"]));
    assert_eq!(refused.errno(), Some(i64::from(libc::ECONNREFUSED)));
    let json = render(
        agent
            .events()
            .iter()
            .find(|e| matches!(&e.detail, Detail::Network(n) if n == refused))
            .expect("the refused connect event"),
    );
    assert_eq!(json["network"]["result"], "ECONNREFUSED");

    let udp = one(&events, NetworkOp::Connect, &fact["u"]);
    assert_eq!(addr(udp), &inet("127.0.0.1", &Value::from(53)));
    assert_eq!(udp.ret, 0);

    let mapped = one(&events, NetworkOp::Connect, &fact["m"]);
    assert_eq!(addr(mapped), &inet("::ffff:127.0.0.1", &fact["port"]));
    assert_eq!(addr(mapped).mapped_ipv4(), Some(Ipv4Addr::LOCALHOST));
    assert_eq!(mapped.ret, 0);

    let nonblocking = one(&events, NetworkOp::Connect, &fact["n"]);
    assert_eq!(
        nonblocking.errno(),
        fact["nonblocking"].as_i64().filter(|&e| e != 0)
    );
    if fact["nonblocking"] == libc::EINPROGRESS {
        let json = render(
            agent
                .events()
                .iter()
                .find(|e| matches!(&e.detail, Detail::Network(n) if n == nonblocking))
                .expect("the non-blocking connect event"),
        );
        assert_eq!(json["network"]["result"], "in_progress");
    }
}

#[test]
fn unix_sockets_report_paths_and_abstract_names() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let dir = TempDir::new("vigil-net");
    let path = dir.path().join("s.sock");
    let path = path.to_str().expect("utf-8 temp path");
    let (pid, since_ns, facts) = run_python(&format!(
        "import json, os, socket\n\
         name = 'vigil-test-%d' % os.getpid()\n\
         out, keep = {{'name': name}}, []\n\
         for key, where in (('p', {path:?}), ('a', '\\0' + name)):\n\
         \x20   srv = socket.socket(socket.AF_UNIX); srv.bind(where); srv.listen(1)\n\
         \x20   c = socket.socket(socket.AF_UNIX); c.connect(where)\n\
         \x20   conn, _ = srv.accept()\n\
         \x20   out[key + '_srv'] = srv.fileno(); out[key + '_cli'] = c.fileno()\n\
         \x20   keep.append((srv, c, conn))\n\
         print(json.dumps(out), flush=True)\n"
    ));
    let events = collect(&mut agent, pid, since_ns);
    let fact = &facts[0];
    let name = fact["name"].as_str().expect("name");

    let by_path = Sockaddr::Unix(UnixAddr::Path(path.as_bytes().to_vec()));
    assert_eq!(
        addr(one(&events, NetworkOp::Bind, &fact["p_srv"])),
        &by_path
    );
    assert_eq!(
        addr(one(&events, NetworkOp::Connect, &fact["p_cli"])),
        &by_path
    );
    let accept = one(&events, NetworkOp::Accept, &fact["p_srv"]);
    assert_eq!(
        addr(accept),
        &Sockaddr::Unix(UnixAddr::Unnamed),
        "unbound client"
    );

    let by_name = Sockaddr::Unix(UnixAddr::Abstract(name.as_bytes().to_vec()));
    let connect = one(&events, NetworkOp::Connect, &fact["a_cli"]);
    assert_eq!(addr(connect), &by_name);
    assert_eq!(connect.ret, 0);
    let json = render(
        agent
            .events()
            .iter()
            .find(|e| matches!(&e.detail, Detail::Network(n) if n == connect))
            .expect("the abstract connect event"),
    );
    assert_eq!(json["network"]["family"], "unix");
    assert_eq!(json["network"]["path"], format!("@{name}"));
}

#[test]
fn network_off_reports_nothing() {
    let mut config = Config::default();
    config.network.enabled = false;
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let (pid, since_ns, _) = run_python(
        "import socket\n\
         s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n\
         c = socket.socket(); c.connect(s.getsockname())\n",
    );
    let events = collect(&mut agent, pid, since_ns);
    assert_eq!(events, [], "no network events with [network] off");
}

#[test]
fn tcp_close_and_connect_outcomes_come_from_state_changes_with_their_owner() {
    use vigil::event::TcpState;
    use vigil_common::network::{TCP_CLOSE, TCP_ESTABLISHED, TCP_SYN_SENT};

    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let (pid, since_ns, facts) = run_python(
        "import json, select, socket, time\n\
         srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(8)\n\
         port = srv.getsockname()[1]\n\
         c = socket.socket(); c.connect(('127.0.0.1', port))\n\
         conn, _ = srv.accept()\n\
         n = socket.socket(); n.bind(('127.0.0.1', 0)); n.setblocking(False)\n\
         n.connect_ex(('127.0.0.1', port)); select.select([], [n], [], 5)\n\
         s = socket.socket(); s.bind(('127.0.0.1', 0)); closed = s.getsockname()[1]; s.close()\n\
         f = socket.socket(); f.bind(('127.0.0.1', 0)); f.setblocking(False)\n\
         f.connect_ex(('127.0.0.1', closed)); select.select([], [f], [], 5)\n\
         out = {'port': port, 'closed': closed, 'c': c.getsockname()[1],\n\
         \x20   'n': n.getsockname()[1], 'f': f.getsockname()[1],\n\
         \x20   'f_error': f.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)}\n\
         c.close(); conn.close(); time.sleep(0.3)\n\
         print(json.dumps(out), flush=True)\n",
    );
    agent.collect_until("the child's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, pid, since_ns)
    });
    agent.collect_for(std::time::Duration::from_millis(200));
    let changes = tcp_states_of(agent.events(), pid, since_ns);
    let fact = &facts[0];
    let port_of = |key: &str| fact[key].as_u64().expect("a port");
    let find = |src: &str, dst: &str, old: Option<u32>, new: u32| -> &TcpState {
        let found: Vec<&TcpState> = changes
            .iter()
            .filter(|t| {
                u64::from(t.src.port()) == port_of(src)
                    && u64::from(t.dst.port()) == port_of(dst)
                    && old.is_none_or(|old| t.old_state == old)
                    && t.new_state == new
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one {src}->{dst} to {new} among {changes:#?}"
        );
        found[0]
    };
    assert_eq!(fact["f_error"], libc::ECONNREFUSED);

    let outcome = find("n", "port", Some(TCP_SYN_SENT), TCP_ESTABLISHED);
    assert_eq!(outcome.op, NetworkOp::Connect);
    assert!(outcome.owner_known);
    assert_eq!(outcome.task.key.tgid, pid);
    assert_eq!(outcome.dst.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));

    let refused = find("f", "closed", Some(TCP_SYN_SENT), TCP_CLOSE);
    assert_eq!(refused.op, NetworkOp::Connect);
    let json = render(
        agent
            .events()
            .iter()
            .find(|e| matches!(&e.detail, Detail::TcpState(t) if t == refused))
            .expect("the refused outcome"),
    );
    assert_eq!(json["kind"], "connect");
    assert_eq!(json["network"]["result"], "failed");
    assert_eq!(json["network"]["tcp_state"]["old"], "SYN_SENT");
    assert_eq!(json["process"]["pid"], pid);

    // The blocking connect's outcome is its syscall's result: no second `connect` line.
    assert!(
        !changes
            .iter()
            .any(|t| t.op == NetworkOp::Connect && u64::from(t.src.port()) == port_of("c")),
        "{changes:#?}"
    );

    let close = find("c", "port", None, TCP_CLOSE);
    assert_eq!(close.op, NetworkOp::Close);
    assert_ne!(close.old_state, TCP_SYN_SENT);
    let json = render(
        agent
            .events()
            .iter()
            .find(|e| matches!(&e.detail, Detail::TcpState(t) if t == close))
            .expect("the close"),
    );
    assert_eq!(json["kind"], "close");
    assert_eq!(json["network"]["protocol"], "tcp");
    assert_eq!(json["network"]["src_ip"], "127.0.0.1");
    assert_eq!(json["network"]["dst_port"], fact["port"]);
    assert_eq!(json["process"]["pid"], pid);
}

/// Three threads whose ids share their in-connect slots (`pid % IN_CONNECT_SLOTS`, and the slot
/// half the array away) are inside blocking connects at once: the accept queue of a
/// `listen(0)` socket is full, so their SYNs are dropped until the test accepts. The first holds
/// the first slot, the second takes the other, the third takes the first over. Each connect is
/// reported once with its result; the outcome of the first, whose slot was taken, is reported
/// on its own (not lost), and the other two, still in their slots, are dropped as the syscall's
/// result says the same.
#[test]
fn threads_sharing_an_in_connect_slot_keep_their_connect_outcomes() {
    use vigil::event::TcpState;
    use vigil_common::{
        maps::IN_CONNECT_SLOTS,
        network::{TCP_ESTABLISHED, TCP_SYN_SENT},
    };

    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let slots = IN_CONNECT_SLOTS.to_string();
    let (pid, since_ns, facts) = run_python_facts(
        "import json, socket, sys, threading, time\n\
         SLOTS = int(sys.argv[1])\n\
         srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(0)\n\
         port = srv.getsockname()[1]\n\
         go = [threading.Event() for _ in range(3)]\n\
         tids, ports, socks = [None] * 3, [None] * 3, []\n\
         def park(i):\n\
         \x20   go[i].wait()\n\
         \x20   s = socket.socket(); socks.append(s)\n\
         \x20   s.connect(('127.0.0.1', port))\n\
         \x20   ports[i] = s.getsockname()[1]\n\
         def candidate(i, slot, box, decided):\n\
         \x20   tid = threading.get_native_id(); box.append(tid); decided.set()\n\
         \x20   if slot is None or tid % SLOTS == slot:\n\
         \x20       tids[i] = tid; park(i)\n\
         threads, slot, spawned = [], None, 0\n\
         while len(threads) < 3 and spawned < 40000:\n\
         \x20   box, decided = [], threading.Event()\n\
         \x20   th = threading.Thread(target=candidate, args=(len(threads), slot, box, decided))\n\
         \x20   th.start(); spawned += 1; decided.wait()\n\
         \x20   if slot is None or box[0] % SLOTS == slot:\n\
         \x20       threads.append(th); slot = box[0] % SLOTS\n\
         \x20   else:\n\
         \x20       th.join()\n\
         filler = socket.socket(); filler.connect(('127.0.0.1', port))\n\
         for i in range(len(threads)):\n\
         \x20   go[i].set(); time.sleep(0.15)\n\
         time.sleep(0.2)\n\
         conns = [srv.accept()[0] for _ in range(len(threads) + 1)]\n\
         for th in threads: th.join()\n\
         print(json.dumps({'slot': slot, 'tids': tids, 'ports': ports, 'spawned': spawned}), flush=True)\n",
        &[&slots],
    );
    let fact = &facts[0];
    // A null among the ids: the child did not find three threads sharing a slot.
    let tids: Vec<u32> = numbers(fact, "tids");
    let ports: Vec<u16> = numbers(fact, "ports");
    for tid in &tids {
        assert_eq!(tid % IN_CONNECT_SLOTS, tids[0] % IN_CONNECT_SLOTS, "{fact}");
    }
    let events = collect(&mut agent, pid, since_ns);
    for (tid, port) in tids.iter().zip(&ports) {
        let connects: Vec<&Network> = events
            .iter()
            .filter(|e| e.op == NetworkOp::Connect && e.task.pid == *tid)
            .collect();
        assert_eq!(
            connects.len(),
            1,
            "one connect of thread {tid}: {events:#?}"
        );
        assert_eq!(connects[0].ret, 0);
        let socket = connects[0].socket.as_ref().expect("the socket's ends");
        assert_eq!(socket.local.port(), *port);
    }
    let outcomes: Vec<TcpState> = tcp_states_of(agent.events(), pid, since_ns)
        .into_iter()
        .filter(|t| t.op == NetworkOp::Connect)
        .collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:#?}");
    let outcome = &outcomes[0];
    assert_eq!(outcome.task.pid, tids[0]);
    assert!(outcome.owner_known);
    assert_eq!(outcome.src.port(), ports[0]);
    assert_eq!(
        (outcome.old_state, outcome.new_state),
        (TCP_SYN_SENT, TCP_ESTABLISHED)
    );
}

/// The numbers of the array `fact[key]`.
#[track_caller]
fn numbers<T: TryFrom<u64>>(fact: &Value, key: &str) -> Vec<T> {
    fact[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {fact}"))
        .iter()
        .map(|n| {
            n.as_u64()
                .and_then(|n| T::try_from(n).ok())
                .unwrap_or_else(|| panic!("{key} of {fact}"))
        })
        .collect()
}
