//! Syscall events: each class of the default security set, triggered by a python3 child
//! through `libc.syscall(nr, ...)` (numbers from Vigil's own table, so aarch64 runs the same
//! script), must be reported with its decoded arguments and return value; with the sensor
//! switched off, the same triggers report nothing.

use std::{path::Path, process::Command};

use vigil::{
    config::Config,
    event::Syscall,
    syscall::{Arch, ArgValue},
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    json::render,
    select::{find_group_exit, syscalls_of},
    spawn::{Spawned, TempDir, own_cgroup_id, python3, run_to_end},
};

/// Runs `body` in a python3 child with `libc` (ctypes, errno kept), `L` (c_long), `S`
/// (c_char_p) and `NR` (syscall numbers of this architecture) defined.
fn run_python(body: &str, names: &[&str]) -> Spawned {
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
        "import ctypes, os, sys\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.syscall.restype = ctypes.c_long\n\
         L = ctypes.c_long\n\
         S = ctypes.c_char_p\n\
         NR = {{{}}}\n\
         def sc(name, *args):\n    return libc.syscall(L(NR[name]), *args)\n\
         {body}\n",
        numbers.join(", ")
    );
    run_to_end(Command::new(python3()).args(["-c", &script]), EVENT_TIMEOUT)
}

/// Waits for the child's exit (its syscalls were all emitted before it), then returns its
/// syscall events.
fn collect(agent: &mut Harness, child: &Spawned) -> Vec<Syscall> {
    agent.collect_until("the child's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, child.pid, child.since_ns)
    });
    // Records of one CPU arrive in order, but the exit may have run on another CPU.
    agent.collect_for(std::time::Duration::from_millis(100));
    syscalls_of(agent.events(), child.pid, child.since_ns)
}

#[track_caller]
fn one<'a>(calls: &'a [Syscall], name: &str) -> &'a Syscall {
    let found: Vec<&Syscall> = calls.iter().filter(|c| c.name == Some(name)).collect();
    assert_eq!(found.len(), 1, "one {name} call among {calls:#?}");
    found[0]
}

fn named(value: &str) -> ArgValue {
    ArgValue::Named {
        raw: 0,
        names: value.to_owned(),
    }
}

/// The names of a [`ArgValue::Named`], for comparison without the raw value.
#[track_caller]
fn names_of(call: &Syscall, arg: &str) -> ArgValue {
    match call.arg(arg) {
        Some(ArgValue::Named { names, .. }) => named(names),
        other => panic!("{arg} of {call:?} is {other:?}"),
    }
}

fn string(value: &str) -> ArgValue {
    ArgValue::Str {
        bytes: value.as_bytes().to_vec(),
        truncated: false,
    }
}

#[test]
fn namespaces_and_memfd_are_decoded_with_their_results() {
    let Some(agent) = Harness::start(&Config::default()) else {
        return;
    };
    let hooks = agent.attached_hooks();
    for hook in ["tp_btf/sys_enter", "tp_btf/sys_exit"] {
        assert!(
            hooks.contains(&hook),
            "by default the syscall programs are BTF tracepoints: {hook} not in {hooks:?}"
        );
    }
    namespaces_and_memfd(agent);
}

/// The raw-tracepoint twins (`syscalls.hooks = "raw_tracepoint"`, and what `auto` falls back
/// to where the kernel refuses `tp_btf` or `bpf_get_current_task_btf`) decode the same calls.
#[test]
fn the_raw_tracepoint_twins_decode_the_same_syscalls() {
    let mut config = Config::default();
    config.syscalls.hooks = vigil::bpf::Hooks::RawTracepoint;
    let Some(agent) = Harness::start(&config) else {
        return;
    };
    let hooks = agent.attached_hooks();
    for hook in ["raw_tp/sys_enter", "raw_tp/sys_exit"] {
        assert!(hooks.contains(&hook), "{hook} not in {hooks:?}");
    }
    namespaces_and_memfd(agent);
}

/// unshare, a failing setns and memfd_create from a python3 child: arguments, results, the
/// task's identity, and the JSON.
fn namespaces_and_memfd(mut agent: Harness) {
    let child = run_python(
        "assert sc('unshare', L(0x04000000)) == 0\n\
         assert sc('setns', L(987654), L(0)) == -1\n\
         fd = sc('memfd_create', S(b'vigil-test'), L(1))\n\
         assert fd >= 3",
        &["unshare", "setns", "memfd_create"],
    );
    let calls = collect(&mut agent, &child);

    let unshare = one(&calls, "unshare");
    assert_eq!(names_of(unshare, "flags"), named("CLONE_NEWUTS"));
    assert_eq!(unshare.ret, 0);
    assert_eq!(unshare.nr, Arch::NATIVE.number("unshare").expect("nr"));
    assert_eq!(unshare.task.pid, child.pid);
    assert_eq!(unshare.task.key.tgid, child.pid);
    let start = unshare.task.key.start_time_ns;
    assert!(
        start >= child.since_ns && start <= unshare.task.time_ns,
        "start {start} not between spawn {} and the call {}",
        child.since_ns,
        unshare.task.time_ns
    );
    if let Some(cgroup_id) = own_cgroup_id() {
        assert_eq!(
            unshare.task.cgroup_id, cgroup_id,
            "the child runs in our cgroup"
        );
    }

    let setns = one(&calls, "setns");
    assert_eq!(setns.arg("fd"), Some(&ArgValue::Int(987654)));
    assert_eq!(names_of(setns, "nstype"), named("0"));
    assert_eq!(setns.ret, -i64::from(libc::EBADF));

    let memfd = one(&calls, "memfd_create");
    assert_eq!(memfd.arg("name"), Some(&string("vigil-test")));
    assert_eq!(names_of(memfd, "flags"), named("MFD_CLOEXEC"));
    assert!(memfd.ret >= 3, "an fd: {}", memfd.ret);
    assert!(memfd.exit_time_ns >= memfd.task.time_ns);

    // As `vigil run` writes it.
    let event = agent
        .events()
        .iter()
        .find(|e| matches!(&e.detail, vigil::event::Detail::Syscall(s) if s == setns))
        .expect("the setns event");
    let json = render(event);
    assert_eq!(json["kind"], "syscall");
    let sc = &json["syscall"];
    assert_eq!(sc["name"], "setns");
    assert_eq!(sc["args"]["fd"], 987654);
    assert_eq!(sc["args"]["nstype"], "0");
    assert_eq!(sc["ret"], -i64::from(libc::EBADF));
    assert_eq!(sc["errno"], "EBADF");
    assert_eq!(json["process"]["pid"], child.pid);
}

#[test]
fn credentials_ptrace_and_personality_are_decoded() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let uid = own_uid();
    let child = run_python(
        &format!(
            "assert sc('setuid', L({uid})) == 0\n\
             assert sc('ptrace', L(0), L(0), L(0), L(0)) == 0\n\
             assert sc('personality', ctypes.c_ulong(0xffffffff)) >= 0"
        ),
        &["setuid", "ptrace", "personality"],
    );
    let calls = collect(&mut agent, &child);

    let setuid = one(&calls, "setuid");
    assert_eq!(setuid.arg("uid"), Some(&ArgValue::Int(i64::from(uid))));
    assert_eq!(setuid.ret, 0);

    let ptrace = one(&calls, "ptrace");
    assert_eq!(names_of(ptrace, "request"), named("PTRACE_TRACEME"));
    assert_eq!(ptrace.arg("pid"), Some(&ArgValue::Int(0)));
    assert_eq!(ptrace.ret, 0);

    let personality = one(&calls, "personality");
    assert_eq!(
        personality.arg("persona"),
        Some(&ArgValue::Hex(0xffff_ffff))
    );
    assert!(
        personality.ret >= 0,
        "the current persona: {}",
        personality.ret
    );
}

/// The uid the test runs as (root in CI): `setuid` to it succeeds.
fn own_uid() -> u32 {
    vigil_tests::spawn::own_creds().uid
}

#[test]
fn mount_umount_and_chroot_report_their_paths() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let dir = TempDir::new("syscall-mount");
    let target = dir.path().to_str().expect("utf-8 temp dir");
    // In a private mount namespace, so nothing propagates to the host even if the test dies.
    let child = run_python(
        &format!(
            "assert sc('unshare', L(0x20000)) == 0\n\
             assert sc('mount', S(b'none'), S(b'/'), None, L(0x4000 | 0x40000), None) == 0\n\
             assert sc('mount', S(b'vigil'), S({target:?}.encode()), S(b'tmpfs'), L(0x2), None) == 0\n\
             assert sc('umount2', S({target:?}.encode()), L(2)) == 0\n\
             assert sc('chroot', S({target:?}.encode())) == 0"
        ),
        &["unshare", "mount", "umount2", "chroot"],
    );
    let calls = collect(&mut agent, &child);

    let mounts: Vec<&Syscall> = calls.iter().filter(|c| c.name == Some("mount")).collect();
    assert_eq!(mounts.len(), 2, "{calls:#?}");
    let private = mounts[0];
    assert_eq!(private.arg("source"), Some(&string("none")));
    assert!(
        matches!(private.arg("fstype"), Some(ArgValue::Unread(0))),
        "a NULL string is an unread address: {private:?}"
    );
    assert_eq!(names_of(private, "flags"), named("MS_REC|MS_PRIVATE"));
    let tmpfs = mounts[1];
    assert_eq!(tmpfs.arg("source"), Some(&string("vigil")));
    assert_eq!(tmpfs.arg("target"), Some(&string(target)));
    assert_eq!(tmpfs.arg("fstype"), Some(&string("tmpfs")));
    assert_eq!(names_of(tmpfs, "flags"), named("MS_NOSUID"));
    assert_eq!(tmpfs.ret, 0);

    let umount = one(&calls, "umount2");
    assert_eq!(umount.arg("target"), Some(&string(target)));
    assert_eq!(names_of(umount, "flags"), named("MNT_DETACH"));
    assert_eq!(umount.ret, 0);

    let chroot = one(&calls, "chroot");
    assert_eq!(chroot.arg("path"), Some(&string(target)));
    assert_eq!(chroot.ret, 0);
    assert!(Path::new(target).exists());
}

#[test]
fn failed_module_and_bpf_loads_report_errno() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let child = run_python(
        "buf = ctypes.create_string_buffer(b'not an ELF module', 32)\n\
         assert sc('init_module', buf, L(32), S(b'vigil=1')) == -1\n\
         attr = ctypes.create_string_buffer(16)\n\
         assert sc('bpf', L(5), attr, L(16)) == -1",
        &["init_module", "bpf"],
    );
    let calls = collect(&mut agent, &child);

    let init = one(&calls, "init_module");
    assert_eq!(init.arg("len"), Some(&ArgValue::Uint(32)));
    assert_eq!(init.arg("param_values"), Some(&string("vigil=1")));
    assert!(init.errno().is_some(), "init_module fails: {init:?}");

    let bpf = one(&calls, "bpf");
    assert_eq!(names_of(bpf, "cmd"), named("BPF_PROG_LOAD"));
    assert_eq!(bpf.arg("size"), Some(&ArgValue::Uint(16)));
    assert!(
        bpf.errno().is_some(),
        "an empty program is refused: {bpf:?}"
    );
}

#[test]
fn switched_off_reports_no_syscalls() {
    for toml in ["[syscalls]\nenabled = false\n", "[syscalls]\nnames = []\n"] {
        let config = Config::parse(toml, "test").expect("valid config");
        let Some(mut agent) = Harness::start(&config) else {
            return;
        };
        let child = run_python(
            "assert sc('unshare', L(0x04000000)) == 0\n\
             assert sc('memfd_create', S(b'vigil-test'), L(1)) >= 3",
            &["unshare", "memfd_create"],
        );
        let calls = collect(&mut agent, &child);
        assert!(calls.is_empty(), "{toml}: {calls:#?}");
    }
}

#[test]
fn long_string_is_cut_and_flagged() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    // Longer than both the kernel's limit for a memfd name (249) and Vigil's copy (255).
    let child = run_python(
        "assert sc('memfd_create', S(b'v' * 300), L(0)) == -1",
        &["memfd_create"],
    );
    let calls = collect(&mut agent, &child);
    let memfd = one(&calls, "memfd_create");
    assert_eq!(
        memfd.arg("name"),
        Some(&ArgValue::Str {
            bytes: vec![b'v'; vigil_common::syscall::SYSCALL_STRING_MAX - 1],
            truncated: true
        })
    );
    assert_eq!(memfd.ret, -i64::from(libc::EINVAL));
    let event = agent
        .events()
        .iter()
        .find(|e| matches!(&e.detail, vigil::event::Detail::Syscall(s) if s == memfd))
        .expect("the memfd_create event");
    assert_eq!(
        render(event)["syscall"]["truncated"],
        serde_json::json!(["name"])
    );
}

/// A cgroup v2 directory made for one test, removed when dropped.
struct TestCgroup {
    dir: std::path::PathBuf,
    /// Its path relative to the cgroup2 mount, as the config names it.
    relative: String,
}

impl TestCgroup {
    fn new() -> Option<Self> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let root = vigil::cgroup::cgroup2_mount(&mountinfo)?;
        let relative = format!("/vigil-test-syscalls-{}", std::process::id());
        let dir = root.join(relative.trim_start_matches('/'));
        std::fs::create_dir(&dir).ok()?;
        Some(Self { dir, relative })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn cgroup_filter_keeps_only_the_listed_cgroups() {
    let Some(cgroup) = TestCgroup::new() else {
        vigil_tests::skip("cannot create a cgroup v2 directory here");
        return;
    };
    let config = Config::parse(
        &format!("[syscalls]\ncgroups = [{:?}]\n", cgroup.relative),
        "test",
    )
    .expect("valid config");
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let procs = cgroup.dir.join("cgroup.procs");
    let inside = run_python(
        &format!(
            "open({:?}, 'w').write(str(os.getpid()))\n\
             assert sc('unshare', L(0x04000000)) == 0",
            procs.to_str().expect("utf-8 path")
        ),
        &["unshare"],
    );
    let outside = run_python("assert sc('unshare', L(0x04000000)) == 0", &["unshare"]);
    let inside_calls = collect(&mut agent, &inside);
    let outside_calls = collect(&mut agent, &outside);
    let unshare = one(&inside_calls, "unshare");
    assert_eq!(unshare.ret, 0);
    assert!(
        outside_calls.is_empty(),
        "a process outside the cgroup is not captured: {outside_calls:#?}"
    );
}
