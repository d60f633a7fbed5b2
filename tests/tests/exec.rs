//! Exec events: a known binary, run with known arguments from a known directory, must be
//! reported byte for byte, with its credentials and parent, and rendered to JSON losslessly.

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::json;
use vigil::{
    config::Config,
    event::Event,
    export::escape::unescape,
    process::{ExecId, Origin},
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness, gate,
    json::{TEST_NODE, is_recent, parse_time, render},
    select::{exec, exit, find_exec, find_group_exit, is_of},
    spawn::{
        TempDir, argv, bytes, canonical_bytes, inode, install_executable, kernel_dev, ns_to_ticks,
        own_cgroup_id, own_creds, proc_start_ticks, python3, run_to_end, spawn,
    },
};

const TARGET_NAME: &str = "vigil-exec-target";

#[test]
fn exec_reports_exact_binary_args_cwd_creds_and_parent() {
    let Some(agent) = Harness::start(&Config::default()) else {
        return;
    };
    assert!(
        agent
            .attached_hooks()
            .contains(&"tp_btf/sched_process_exec"),
        "by default the process programs are BTF tracepoints: {:?}",
        agent.attached_hooks()
    );
    exact_exec(agent);
}

/// The raw-tracepoint twins (`process.hooks = "raw_tracepoint"`, and what `auto` falls back
/// to where the kernel refuses `tp_btf`) report the same exec, field for field.
#[test]
fn the_raw_tracepoint_twins_report_the_same_exec() {
    let mut config = Config::default();
    config.process.hooks = vigil::bpf::Hooks::RawTracepoint;
    let Some(agent) = Harness::start(&config) else {
        return;
    };
    let hooks = agent.attached_hooks();
    for hook in [
        "raw_tp/sched_process_exec",
        "raw_tp/sched_process_fork",
        "raw_tp/sched_process_exit",
    ] {
        assert!(hooks.contains(&hook), "{hook} not in {hooks:?}");
    }
    exact_exec(agent);
}

/// Runs a copy of `/bin/true` with awkward arguments from a temporary folder and checks its
/// exec event field by field, and its JSON.
fn exact_exec(mut agent: Harness) {
    let dir = TempDir::new("exec");
    let installed = install_executable(Path::new("/bin/true"), dir.path(), TARGET_NAME);
    // A non-canonical spelling: the filename passed to execve and the binary differ.
    let program: PathBuf = dir.path().join(".").join(TARGET_NAME);
    let args: Vec<OsString> = vec![
        "two words".into(),
        r#""double" and 'single' quotes"#.into(),
        OsStr::from_bytes(b"caf\xe9").into(),
        "".into(),
        r"back\slash".into(),
        "ünïcode ✓".into(),
    ];
    let child = run_to_end(
        Command::new(&program).args(&args).current_dir(dir.path()),
        EVENT_TIMEOUT,
    );

    let event = agent.collect_until("the exec event of the child", EVENT_TIMEOUT, |events| {
        find_exec(events, child.pid, child.since_ns)
    });
    let detail = exec(&event).expect("an exec event");
    let process = event
        .process
        .as_deref()
        .expect("an exec event has its process");
    let key = detail.task.key;

    // The task and its identity.
    assert_eq!(event.pid, child.pid);
    assert_eq!(detail.task.pid, child.pid);
    assert_eq!(key.tgid, child.pid);
    assert!(
        key.start_time_ns >= child.since_ns && key.start_time_ns <= event.time_ns,
        "start {} not between spawn {} and exec {}",
        key.start_time_ns,
        child.since_ns,
        event.time_ns
    );
    assert_eq!(event.time_ns, detail.task.time_ns);
    if let Some(cgroup_id) = own_cgroup_id() {
        assert_eq!(
            detail.task.cgroup_id, cgroup_id,
            "the child runs in our cgroup"
        );
    }

    // What was executed, from where, with what.
    assert_eq!(
        detail.filename,
        bytes(&program),
        "filename as passed to execve"
    );
    assert!(!detail.filename_truncated);
    assert_eq!(detail.image.binary.path, canonical_bytes(&installed));
    assert!(!detail.image.binary.truncated);
    assert_eq!(detail.exe_inode, inode(&installed));
    assert_eq!(detail.exe_dev, kernel_dev(&installed));
    assert_eq!(detail.image.args, argv(&program, &args));
    assert!(!detail.image.args_truncated);
    assert!(!detail.args_unreadable);
    assert_eq!(detail.image.cwd.path, bytes(dir.path()));
    assert!(!detail.image.cwd.truncated);
    assert_eq!(
        detail.image.comm,
        &TARGET_NAME.as_bytes()[..15],
        "comm is the name, cut to 15"
    );
    assert_eq!(detail.creds, own_creds());

    // The parent is this test process.
    let own_pid = std::process::id();
    assert_eq!(detail.parent.tgid, own_pid);
    assert_eq!(
        ns_to_ticks(detail.parent.start_time_ns),
        proc_start_ticks(own_pid),
        "the parent's start time is this process's, as /proc/self/stat has it"
    );

    // The process as the cache resolved it.
    assert_eq!(process.key, key);
    assert_eq!(process.exec_id, ExecId::new(key, event.time_ns));
    assert_eq!(
        process.exec_id.as_str(),
        format!(
            "{:x}-{:x}-{:x}",
            child.pid, key.start_time_ns, event.time_ns
        )
    );
    assert_eq!(process.origin, Origin::Exec);
    assert_eq!(process.ppid, own_pid);
    assert_eq!(process.parent, Some(detail.parent));
    assert_eq!(process.binary, detail.image.binary);
    assert_eq!(process.args, detail.image.args);
    assert!(!process.args_truncated);
    assert_eq!(process.cwd, detail.image.cwd);
    assert_eq!(process.creds, detail.creds);
    assert_eq!(process.comm, detail.image.comm);
    assert_eq!(process.cgroup_id, detail.task.cgroup_id);
    // This process started before the agent: known from the /proc snapshot (see
    // snapshot.rs), under the exact key that the kernel records carry.
    let parent = event.parent.as_deref().expect("the parent is resolved");
    assert_eq!(parent.key, detail.parent);
    assert_eq!(parent.origin, Origin::Snapshot);
    assert_eq!(process.parent_exec_id.as_ref(), Some(&parent.exec_id));

    // The JSON line: lossless strings, wall-clock time.
    let json = render(&event);
    assert_eq!(json["kind"], "exec");
    assert_eq!(json["node"], TEST_NODE);
    let at = parse_time(&json["time"]);
    assert!(is_recent(at, 30), "time {at} is not now");
    let p = &json["process"];
    assert_eq!(p["pid"], child.pid);
    assert_eq!(p["tgid"], child.pid);
    assert_eq!(p["ppid"], own_pid);
    assert_eq!(p["uid"], process.creds.uid);
    assert_eq!(p["euid"], process.creds.euid);
    assert_eq!(p["binary"], installed.to_str().expect("utf-8 temp path"));
    assert_eq!(p["cwd"], dir.path().to_str().expect("utf-8 temp path"));
    assert_eq!(p["comm"], "vigil-exec-targ");
    assert_eq!(p["exec_id"], process.exec_id.as_str());
    assert_eq!(p["parent_exec_id"], parent.exec_id.as_str());
    assert_eq!(p["start_time_ns"], key.start_time_ns);
    assert_eq!(p["origin"], "exec");
    assert!(parse_time(&p["start_time"]) <= at);
    assert_eq!(
        p["args"],
        json!([
            program.to_str().expect("utf-8 temp path"),
            "two words",
            r#""double" and 'single' quotes"#,
            r"caf\xe9",
            "",
            r"back\\slash",
            "ünïcode ✓",
        ])
    );
    assert_eq!(p.get("args_truncated"), None, "absent when false");
    let rendered: Vec<Vec<u8>> = p["args"]
        .as_array()
        .expect("args is an array")
        .iter()
        .map(|a| unescape(a.as_str().expect("a string")).expect("valid escaped text"))
        .collect();
    assert_eq!(
        rendered, detail.image.args,
        "the escaped args give back the exact bytes"
    );
    assert_eq!(json["exec"]["filename"], program.to_str().expect("utf-8"));
    assert_eq!(json["exec"]["inode"], detail.exe_inode);
    assert_eq!(json["parent"]["pid"], own_pid);
    assert_eq!(json["parent"]["exec_id"], parent.exec_id.as_str());

    agent.stop();
}

#[test]
fn paths_are_walked_across_mount_points() {
    // /dev/shm is a tmpfs mounted on /dev, itself a mount: two crossings to reach the root.
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        gate::announce_skip("no /dev/shm to run from another mount");
        return;
    }
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let dir = TempDir::new_in(shm, "exec-mount");
    let installed = install_executable(Path::new("/bin/true"), dir.path(), TARGET_NAME);
    let child = run_to_end(
        Command::new(&installed).current_dir(dir.path()),
        EVENT_TIMEOUT,
    );

    let event = agent.collect_until("the exec event of the child", EVENT_TIMEOUT, |events| {
        find_exec(events, child.pid, child.since_ns)
    });
    let detail = exec(&event).expect("an exec event");
    assert_eq!(detail.image.binary.path, bytes(&installed));
    assert!(!detail.image.binary.truncated);
    assert_eq!(detail.image.cwd.path, bytes(dir.path()));
    assert!(!detail.image.cwd.truncated);
    assert_eq!(detail.exe_inode, inode(&installed));
    assert_eq!(
        detail.exe_dev,
        kernel_dev(&installed),
        "the device of the tmpfs"
    );
    assert_ne!(detail.exe_dev, kernel_dev(Path::new("/")));

    agent.stop();
}

/// A thread (not the main one) execs /bin/true while the main thread sleeps.
const EXEC_FROM_A_THREAD: &str = "
import os, threading, time
def run():
    os.execv('/bin/true', ['/bin/true', 'from a thread'])
threading.Thread(target=run).start()
time.sleep(30)
";

#[test]
fn an_exec_from_a_thread_keeps_the_process_identity() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let mut child = spawn(Command::new(python3()).args(["-I", "-c", EXEC_FROM_A_THREAD]));
    assert!(child.wait(EVENT_TIMEOUT).success());

    let execs = agent.collect_until("both execs of the child", EVENT_TIMEOUT, |events| {
        let execs: Vec<Event> = events
            .iter()
            .filter(|e| exec(e).is_some() && is_of(e, child.pid, child.since_ns))
            .cloned()
            .collect();
        (execs.len() == 2).then_some(execs)
    });
    let python = execs[0].process.as_deref().expect("resolved");
    let exec_true = exec(&execs[1]).expect("an exec");
    let process = execs[1].process.as_deref().expect("resolved");
    // The kernel gives the exec'ing thread the leader's pid and start time.
    assert_eq!(execs[1].pid, child.pid);
    assert_eq!(
        process.key, python.key,
        "same process: same pid and start time"
    );
    assert_ne!(
        process.exec_id, python.exec_id,
        "a new image: a new exec id"
    );
    assert_eq!(process.exec_id, ExecId::new(python.key, execs[1].time_ns));
    assert_eq!(
        exec_true.image.binary.path,
        canonical_bytes(Path::new("/bin/true"))
    );
    assert_eq!(exec_true.image.args, [&b"/bin/true"[..], b"from a thread"]);
    assert_eq!(process.ppid, std::process::id());

    let exit_event = agent.collect_until("the child's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, child.pid, child.since_ns)
    });
    let ended = exit_event.process.as_deref().expect("resolved");
    assert_eq!(
        ended.exec_id, process.exec_id,
        "the exit belongs to the last image"
    );
    assert_eq!(exit(&exit_event).expect("an exit").status(), Some(0));

    agent.stop();
}
