//! The object for kernels without task local storage (before 5.11), loaded here through
//! `VIGIL_EBPF_OBJECT=compat`: the syscall programs attach as raw tracepoints and keep their
//! records in the hash map, and a syscall, a watched open and a loopback connect and accept
//! are reported exactly as with task storage. Its own test binary: the choice of object is
//! made once per process.

use std::net::Ipv4Addr;

use vigil::{
    config::Config,
    event::{FileOp, NetworkOp},
    files::FilesConfig,
    network::Sockaddr,
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    select::{files_of, find_group_exit, network_of, syscalls_of},
    spawn::{TempDir, own_cgroup_id, run_python_facts},
};

const SCRIPT: &str = "import ctypes, json, os, socket, sys\n\
libc = ctypes.CDLL(None, use_errno=True)\n\
assert libc.unshare(0x04000000) == 0\n\
fd = os.open(sys.argv[1] + '/secret', os.O_WRONLY | os.O_CREAT, 0o600)\n\
os.close(fd)\n\
srv = socket.socket()\n\
srv.bind(('127.0.0.1', 0))\n\
srv.listen(1)\n\
port = srv.getsockname()[1]\n\
c = socket.socket()\n\
c.connect(('127.0.0.1', port))\n\
conn, peer = srv.accept()\n\
print(json.dumps({'fd': fd, 'port': port, 'cfd': c.fileno(), 'sfd': srv.fileno(), 'local_port': c.getsockname()[1], 'afd': conn.fileno()}), flush=True)\n";

#[test]
fn without_task_storage_the_raw_twins_and_the_hash_stash_report_the_same() {
    // SAFETY: set before the agent starts, in this binary's only test, so no other thread
    // reads the environment at the same time.
    unsafe { std::env::set_var(vigil::bpf::OBJECT_ENV, "compat") };
    let watched = TempDir::new("compat-watched");
    let dir = watched.path().to_str().expect("utf-8 temp dir").to_owned();
    let config = Config {
        files: FilesConfig {
            enabled: true,
            watch: vec![dir.clone()],
            match_relative: false,
        },
        ..Config::default()
    };
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let hooks = agent.attached_hooks();
    for hook in ["raw_tp/sys_enter", "raw_tp/sys_exit"] {
        assert!(hooks.contains(&hook), "{hook} not in {hooks:?}");
    }
    let fallbacks = agent.fallbacks();
    assert!(
        fallbacks.iter().any(|f| f.starts_with("VIGIL_TASK_STASH")),
        "the compat object is said: {fallbacks:?}"
    );

    let (pid, since_ns, facts) = run_python_facts(SCRIPT, &[&dir]);
    let facts = &facts[0];
    agent.collect_until("the child's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, pid, since_ns)
    });
    agent.collect_for(std::time::Duration::from_millis(100));
    let fact = |name: &str| facts[name].as_i64().expect("a number");

    let calls = syscalls_of(agent.events(), pid, since_ns);
    let unshare: Vec<_> = calls.iter().filter(|c| c.name == Some("unshare")).collect();
    assert_eq!(unshare.len(), 1, "one unshare among {calls:#?}");
    assert_eq!(unshare[0].ret, 0);
    assert_eq!(unshare[0].task.pid, pid);
    assert_eq!(unshare[0].task.key.tgid, pid);
    if let Some(cgroup_id) = own_cgroup_id() {
        assert_eq!(unshare[0].task.cgroup_id, cgroup_id);
    }

    let files = files_of(agent.events(), pid, since_ns);
    let path = format!("{dir}/secret");
    let opens: Vec<_> = files.iter().filter(|f| f.path == path.as_bytes()).collect();
    assert_eq!(opens.len(), 1, "one open of {path} among {files:#?}");
    assert_eq!(opens[0].op, FileOp::Open);
    assert_eq!(opens[0].ret, fact("fd"));
    assert_eq!(opens[0].mode, Some(0o600));

    let net = network_of(agent.events(), pid, since_ns);
    let port = u16::try_from(fact("port")).expect("a port");
    let connects: Vec<_> = net
        .iter()
        .filter(|n| n.op == NetworkOp::Connect && n.fd == fact("cfd") as i32)
        .collect();
    assert_eq!(connects.len(), 1, "one connect among {net:#?}");
    assert_eq!(connects[0].ret, 0);
    assert_eq!(
        connects[0].addr,
        Some(Ok(Sockaddr::Inet {
            ip: Ipv4Addr::LOCALHOST,
            port
        }))
    );
    let ends = connects[0].socket.as_ref().expect("the socket's ends");
    let local_port = u16::try_from(fact("local_port")).expect("a port");
    assert_eq!(
        ends.local,
        std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, local_port))
    );
    let accepts: Vec<_> = net
        .iter()
        .filter(|n| n.op == NetworkOp::Accept && n.fd == fact("sfd") as i32)
        .collect();
    assert_eq!(accepts.len(), 1, "one accept among {net:#?}");
    assert_eq!(accepts[0].ret, fact("afd"));
    assert_eq!(agent.lost(), 0, "nothing lost");
}
