//! Credential changes: a python3 child changes its uids or capabilities with raw syscalls
//! (numbers from Vigil's own table) and prints what `/proc/self/status` says before and after
//! each call; each change must be reported once as a `cred_change` with exactly those values,
//! whether or not the syscall sensor selects the syscall. A call that changes nothing (a
//! failed setuid, a prctl that is not about credentials) and a switched-off sensor report no
//! change.

use serde_json::Value;
use vigil::{
    config::Config,
    event::{CredChange, Detail, TaskCreds},
    syscall::Arch,
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    json::render,
    select::{cred_changes_of, find_group_exit, syscalls_of},
    spawn::run_python_facts,
};

const CAP_NET_RAW: u32 = 13;

/// Runs `body` in python3 with `sc(name, *args)` (a raw syscall by Vigil's number for this
/// architecture), `L`/`S` (c_long, c_char_p), `status()` (uids, gids and capability sets from
/// /proc/self/status) and `fact(**kw)` (prints one JSON line). Returns its pid, start bound and
/// facts.
fn run_python(body: &str, names: &[&str]) -> (u32, u64, Vec<Value>) {
    let numbers: Vec<String> = names
        .iter()
        .map(|name| {
            let nr = Arch::NATIVE
                .number(name)
                .unwrap_or_else(|| panic!("{name} has a number"));
            format!("{name:?}: {nr}")
        })
        .collect();
    let script = format!(
        "import ctypes, json\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.syscall.restype = ctypes.c_long\n\
         L = ctypes.c_long\n\
         S = ctypes.c_char_p\n\
         NR = {{{}}}\n\
         def sc(name, *args):\n    return libc.syscall(L(NR[name]), *args)\n\
         def status():\n    \
             f = {{}}\n    \
             for line in open('/proc/self/status'):\n        \
                 k, _, v = line.partition(':')\n        \
                 if k in ('Uid', 'Gid'):\n            f[k] = [int(x) for x in v.split()]\n        \
                 elif k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'):\n            f[k] = int(v, 16)\n    \
             return f\n\
         def fact(**kw):\n    print(json.dumps(kw), flush=True)\n\
         {body}\n",
        numbers.join(", ")
    );
    run_python_facts(&script, &[])
}

/// Waits for the child's exit, then returns its credential changes.
fn collect(agent: &mut Harness, pid: u32, since_ns: u64) -> Vec<CredChange> {
    agent.collect_until("the child's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, pid, since_ns)
    });
    // Records of one CPU arrive in order, but the exit may have run on another CPU.
    agent.collect_for(std::time::Duration::from_millis(100));
    cred_changes_of(agent.events(), pid, since_ns)
}

/// The credentials `/proc/self/status` showed (`fact["status"]`); securebits are not in it
/// (0 for these children, which never set them).
#[track_caller]
fn creds_of(fact: &Value) -> TaskCreds {
    let status = &fact["status"];
    let ids = |key: &str, i: usize| -> u32 {
        let id = status[key][i]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}[{i}] in {fact}"));
        u32::try_from(id).expect("an id")
    };
    let caps = |key: &str| {
        status[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {fact}"))
    };
    TaskCreds {
        uid: ids("Uid", 0),
        euid: ids("Uid", 1),
        suid: ids("Uid", 2),
        fsuid: ids("Uid", 3),
        gid: ids("Gid", 0),
        egid: ids("Gid", 1),
        sgid: ids("Gid", 2),
        fsgid: ids("Gid", 3),
        securebits: 0,
        cap_inheritable: caps("CapInh"),
        cap_permitted: caps("CapPrm"),
        cap_effective: caps("CapEff"),
        cap_bset: caps("CapBnd"),
        cap_ambient: Some(caps("CapAmb")),
    }
}

/// Whether this test runs as root with `CAP_NET_RAW` and `CAP_SETPCAP` (its children inherit
/// them), which the triggers need; prints why not.
fn root_with_caps() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let setpcap = 8;
    // SAFETY: getuid cannot fail and has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    if root && effective & (1 << CAP_NET_RAW) != 0 && effective & (1 << setpcap) != 0 {
        return true;
    }
    vigil_tests::skip("the triggers need root with CAP_NET_RAW and CAP_SETPCAP");
    false
}

const SETRESUID: &str = "fact(status=status())\n\
                         fact(ret=sc('setresuid', L(1000), L(1000), L(1000)), status=status())";

#[test]
fn setresuid_as_root_reports_both_sides_exactly() {
    if !root_with_caps() {
        return;
    }
    // With the syscall sensor selecting setresuid (the default) and without it.
    for toml in ["", "[syscalls]\nenabled = false\n"] {
        let config = Config::parse(toml, "test").expect("valid config");
        let Some(mut agent) = Harness::start(&config) else {
            return;
        };
        let (pid, since_ns, facts) = run_python(SETRESUID, &["setresuid"]);
        assert_eq!(facts[1]["ret"], 0, "{facts:?}");
        let changes = collect(&mut agent, pid, since_ns);
        assert_eq!(changes.len(), 1, "{toml:?}: {changes:#?}");
        let change = &changes[0];
        assert_eq!(change.syscall, Some("setresuid"));
        assert_eq!(change.nr, Arch::NATIVE.number("setresuid").expect("nr"));
        assert_eq!(change.ret, 0);
        assert_eq!(change.task.pid, pid);
        assert!(change.exit_time_ns >= change.task.time_ns);
        let before = creds_of(&facts[0]);
        let after = creds_of(&facts[1]);
        assert_eq!(
            (before.uid, before.euid, before.suid, before.fsuid),
            (0, 0, 0, 0)
        );
        assert_eq!(
            (after.uid, after.euid, after.suid, after.fsuid),
            (1000, 1000, 1000, 1000)
        );
        assert_eq!(change.before, before);
        assert_eq!(change.after, after);
        // Without keepcaps, leaving uid 0 clears the permitted and effective sets.
        assert_eq!(
            change.changed(),
            [
                "uid",
                "euid",
                "suid",
                "fsuid",
                "cap_permitted",
                "cap_effective"
            ]
        );

        let syscalls = syscalls_of(agent.events(), pid, since_ns);
        let selected = toml.is_empty();
        assert_eq!(
            syscalls.iter().any(|s| s.name == Some("setresuid")),
            selected,
            "{toml:?}: a syscall event only when the syscall sensor selects it: {syscalls:#?}"
        );

        if selected {
            // As `vigil run` writes it.
            let event = agent
                .events()
                .iter()
                .find(|e| matches!(&e.detail, Detail::CredChange(c) if c == change))
                .expect("the cred_change event");
            let json = render(event);
            eprintln!("{json}");
            assert_eq!(json["kind"], "cred_change");
            assert_eq!(json["process"]["pid"], pid);
            assert_eq!(json["process"]["uid"], 1000, "the process after the change");
            let cred = &json["cred"];
            assert_eq!(cred["syscall"], "setresuid");
            assert_eq!(cred["ret"], 0);
            assert_eq!(cred["before"]["uid"], 0);
            assert_eq!(cred["after"]["uid"], 1000);
            assert_eq!(cred["after"]["euid"], 1000);
            assert_eq!(
                cred["changed"],
                serde_json::json!([
                    "uid",
                    "euid",
                    "suid",
                    "fsuid",
                    "cap_permitted",
                    "cap_effective"
                ])
            );
            assert!(
                cred["before"]["cap_effective"]["names"]
                    .as_array()
                    .expect("names")
                    .contains(&Value::from("CAP_SETUID"))
            );
            assert_eq!(
                cred["after"]["cap_effective"],
                serde_json::json!({"mask": "0x0", "names": []})
            );
        }
    }
}

#[test]
fn capset_and_bounding_set_drops_report_the_dropped_capability() {
    if !root_with_caps() {
        return;
    }
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let (pid, since_ns, facts) = run_python(
        &format!(
            "class Hdr(ctypes.Structure):\n    \
                 _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]\n\
             class Data(ctypes.Structure):\n    \
                 _fields_ = [('effective', ctypes.c_uint32), ('permitted', ctypes.c_uint32), \
                             ('inheritable', ctypes.c_uint32)]\n\
             hdr = Hdr(0x20080522, 0)\n\
             data = (Data * 2)()\n\
             assert sc('capget', ctypes.byref(hdr), data) == 0\n\
             fact(status=status())\n\
             data[0].effective &= ~(1 << {CAP_NET_RAW})\n\
             data[0].permitted &= ~(1 << {CAP_NET_RAW})\n\
             fact(ret=sc('capset', ctypes.byref(hdr), data), status=status())\n\
             fact(ret=sc('prctl', L(24), L({CAP_NET_RAW}), L(0), L(0), L(0)), status=status())\n\
             fact(ret=sc('prctl', L(15), S(b'vigil-cred'), L(0), L(0), L(0)), status=status())"
        ),
        &["capget", "capset", "prctl"],
    );
    for fact in &facts[1..] {
        assert_eq!(fact["ret"], 0, "{facts:?}");
    }
    let changes = collect(&mut agent, pid, since_ns);
    assert_eq!(
        changes.len(),
        2,
        "PR_SET_NAME changes no credential: {changes:#?}"
    );

    let net_raw = 1u64 << CAP_NET_RAW;
    let capset = &changes[0];
    assert_eq!(capset.syscall, Some("capset"));
    assert_eq!(capset.ret, 0);
    assert_eq!(capset.before, creds_of(&facts[0]));
    assert_eq!(capset.after, creds_of(&facts[1]));
    assert_ne!(capset.before.cap_effective & net_raw, 0);
    assert_eq!(capset.after.cap_effective & net_raw, 0);
    assert_eq!(
        capset.after.cap_effective,
        capset.before.cap_effective & !net_raw
    );
    assert_eq!(capset.changed(), ["cap_permitted", "cap_effective"]);

    let prctl = &changes[1];
    assert_eq!(prctl.syscall, Some("prctl"));
    assert_eq!(prctl.before, creds_of(&facts[1]));
    assert_eq!(prctl.after, creds_of(&facts[2]));
    assert_ne!(prctl.before.cap_bset & net_raw, 0);
    assert_eq!(prctl.after.cap_bset, prctl.before.cap_bset & !net_raw);
    assert_eq!(prctl.changed(), ["cap_bset"]);

    let event = agent
        .events()
        .iter()
        .find(|e| matches!(&e.detail, Detail::CredChange(c) if c == capset))
        .expect("the capset event");
    let json = render(event);
    let names = |side: &str| json["cred"][side]["cap_effective"]["names"].clone();
    assert!(
        names("before")
            .as_array()
            .expect("names")
            .contains(&Value::from("CAP_NET_RAW"))
    );
    assert!(
        !names("after")
            .as_array()
            .expect("names")
            .contains(&Value::from("CAP_NET_RAW"))
    );
}

#[test]
fn failed_setuid_reports_no_change() {
    if !root_with_caps() {
        return;
    }
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let (pid, since_ns, facts) = run_python(
        "assert sc('setresuid', L(1000), L(1000), L(1000)) == 0\n\
         fact(ret=sc('setuid', L(0)), errno=ctypes.get_errno())",
        &["setresuid", "setuid"],
    );
    assert_eq!(facts[0]["ret"], -1);
    assert_eq!(facts[0]["errno"], libc::EPERM);
    let changes = collect(&mut agent, pid, since_ns);
    // Only the drop to 1000; the refused setuid(0) as uid 1000 changed nothing.
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0].syscall, Some("setresuid"));
    // The syscall sensor (default set) reports the failure itself.
    let syscalls = syscalls_of(agent.events(), pid, since_ns);
    let setuid: Vec<_> = syscalls
        .iter()
        .filter(|s| s.name == Some("setuid"))
        .collect();
    assert_eq!(setuid.len(), 1, "{syscalls:#?}");
    assert_eq!(setuid[0].ret, -i64::from(libc::EPERM));
}

#[test]
fn switched_off_reports_no_change() {
    if !root_with_caps() {
        return;
    }
    let config = Config::parse("[credentials]\nenabled = false\n", "test").expect("valid config");
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let (pid, since_ns, facts) = run_python(SETRESUID, &["setresuid"]);
    assert_eq!(facts[1]["ret"], 0);
    let changes = collect(&mut agent, pid, since_ns);
    assert!(changes.is_empty(), "{changes:#?}");
    // The syscall sensor still sees the call: only the credential sensor is off.
    let syscalls = syscalls_of(agent.events(), pid, since_ns);
    assert!(
        syscalls.iter().any(|s| s.name == Some("setresuid")),
        "{syscalls:#?}"
    );
}

/// Not a test: the kernel cost of the credential sensor. Run with
/// `kernel.bpf_stats_enabled=1` and `--ignored --nocapture`; prints Δrun_time of
/// `syscall_enter` + `syscall_exit` per call over loops of raw syscalls by a child (the agent's
/// own syscalls are not captured): getpid (not selected, the floor every syscall pays), a
/// setresuid that changes nothing (the kernel keeps the cred: only the pointer is compared), a
/// capset to the same sets (a new cred with equal values: both snapshots are read and compared)
/// and an euid flip between 0 and 1000 (a change: one event per call).
#[test]
#[ignore = "a measurement, not a test"]
fn cred_cost() {
    if !root_with_caps() {
        return;
    }
    // Alone (the syscall sensor not selecting these syscalls), then with the default config,
    // where the syscall sensor also records every setuid-family and capset call.
    for toml in ["[syscalls]\nenabled = false\n", ""] {
        println!("config {toml:?}");
        cred_cost_with(&Config::parse(toml, "test").expect("valid config"));
    }
}

fn cred_cost_with(config: &Config) {
    let Some(mut agent) = Harness::start(config) else {
        return;
    };
    let count = 100_000;
    let half = count / 2;
    let phases = [
        (
            "getpid",
            format!("for _ in range({count}):\n    sc('getpid')"),
        ),
        (
            "no-op setresuid",
            format!("for _ in range({count}):\n    sc('setresuid', L(-1), L(-1), L(-1))"),
        ),
        (
            "same capset",
            format!(
                "class Hdr(ctypes.Structure):\n    \
                     _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]\n\
                 hdr = Hdr(0x20080522, 0)\n\
                 data = (ctypes.c_uint32 * 6)()\n\
                 assert sc('capget', ctypes.byref(hdr), data) == 0\n\
                 for _ in range({count}):\n    sc('capset', ctypes.byref(hdr), data)"
            ),
        ),
        (
            "euid flip",
            format!(
                "for _ in range({half}):\n    \
                     sc('setresuid', L(-1), L(1000), L(-1))\n    \
                     sc('setresuid', L(-1), L(0), L(-1))"
            ),
        ),
    ];
    for (label, body) in phases {
        let before = agent.program_stats();
        let (pid, since_ns, _) = run_python(&body, &["getpid", "setresuid", "capget", "capset"]);
        let after = agent.program_stats();
        let mut per_call = 0.0;
        for ((name, t1, _), (_, t0, _)) in after.iter().zip(&before) {
            if name.starts_with("syscall_") {
                per_call += t1.saturating_sub(*t0).as_nanos() as f64 / f64::from(count);
            }
        }
        let changes = collect(&mut agent, pid, since_ns).len();
        println!(
            "{label:<16} enter+exit Δrun_time per call (all runs in the window / {count}): {per_call:.0} ns; {changes} cred_change events"
        );
    }
}
