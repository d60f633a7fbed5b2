//! File events: a python3 child opens for write, creates, renames, chmods and unlinks files in
//! a watched temp dir, does the same in an unwatched one, and uses a relative path through a
//! dirfd and through its cwd; each watched call must be reported once with its exact paths,
//! flags and result, the unwatched ones not at all. The watched dir comes after the default
//! watch list and a prefix whose first eight bytes are the same as its own, so the kernel
//! compares the path with each of them before it matches.

use std::process::Command;

use serde_json::Value;
use vigil::{
    config::Config,
    event::{Detail, File, FileOp},
    files::{FilesConfig, open_flag_names},
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    json::render,
    select::{files_of, find_group_exit},
    spawn::{TempDir, python3, run_python_facts},
};

fn collect(agent: &mut Harness, pid: u32, since_ns: u64) -> Vec<File> {
    agent.collect_until("the child's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, pid, since_ns)
    });
    agent.collect_for(std::time::Duration::from_millis(100));
    files_of(agent.events(), pid, since_ns)
}

fn config(watch: &str, match_relative: bool) -> Config {
    Config {
        files: FilesConfig {
            enabled: true,
            watch: vec![watch.to_owned()],
            match_relative,
        },
        ..Config::default()
    }
}

#[track_caller]
fn one<'a>(events: &'a [File], op: FileOp, path: &str) -> &'a File {
    let found: Vec<&File> = events
        .iter()
        .filter(|e| e.op == op && e.path == path.as_bytes())
        .collect();
    assert_eq!(found.len(), 1, "one {op:?} of {path} among {events:#?}");
    found[0]
}

const SCRIPT: &str = "import json, os, sys, time\n\
w, u = sys.argv[1], sys.argv[2]\n\
fd = os.open(w + '/a', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)\n\
os.close(fd)\n\
cfd = os.open(w + '/b', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n\
os.close(cfd)\n\
os.rename(w + '/a', w + '/c')\n\
os.chmod(w + '/c', 0o600)\n\
os.unlink(w + '/c')\n\
try:\n\
\x20   os.unlink(w + '/missing')\n\
except FileNotFoundError:\n\
\x20   pass\n\
ufd = os.open(u + '/x', os.O_WRONLY | os.O_CREAT, 0o600)\n\
os.close(ufd)\n\
os.rename(u + '/x', u + '/y')\n\
os.chmod(u + '/y', 0o644)\n\
os.unlink(u + '/y')\n\
m = u + '/m'\n\
m += 'x' * ((3 - len(m)) % 8)  # the new path starts off a word boundary in the record\n\
os.close(os.open(m, os.O_WRONLY | os.O_CREAT, 0o600))\n\
os.rename(m, w + '/moved')\n\
os.unlink(w + '/moved')\n\
d = os.open(w, os.O_RDONLY | os.O_DIRECTORY)\n\
rfd = os.open('rel', os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=d)\n\
os.close(rfd)\n\
os.chdir(w)\n\
os.unlink('b')\n\
print(json.dumps({'fd': fd, 'cfd': cfd, 'rfd': rfd, 'dirfd': d, 'moved_from': m}), flush=True)\n\
time.sleep(0.5)  # alive while the agent resolves relative paths through /proc\n";

/// The run's file events, the script's facts, the watched dir and the agent (`None`: this
/// machine cannot load the sensor, and the test returns).
fn run(match_relative: bool) -> Option<(Vec<File>, Value, String, Harness)> {
    let watched = TempDir::new("files-watched");
    let unwatched = TempDir::new("files-unwatched");
    let w = watched.path().to_str().expect("utf-8").to_owned();
    let u = unwatched.path().to_str().expect("utf-8").to_owned();
    let mut config = config(&format!("{w}/"), match_relative);
    let defaults = FilesConfig::default().watch;
    // Before the watched dir: the defaults, and the unwatched dir's sibling, whose first word
    // ("/tmp/vig") is the watched dir's too.
    config.files.watch = defaults
        .into_iter()
        .chain([format!("{u}-sibling/")])
        .chain(config.files.watch)
        .collect();
    let mut agent = Harness::start(&config)?;
    let (pid, since_ns, facts) = run_python_facts(SCRIPT, &[&w, &u]);
    let events = collect(&mut agent, pid, since_ns);
    assert_eq!(facts.len(), 1);
    Some((events, facts[0].clone(), w, agent))
}

#[test]
fn watched_files_are_reported_exactly_and_unwatched_ones_not_at_all() {
    let Some((events, fact, w, agent)) = run(false) else {
        return;
    };
    let path = |name: &str| format!("{w}/{name}");

    let open = one(&events, FileOp::Open, &path("a"));
    // Python's os.open adds O_CLOEXEC.
    assert_eq!(
        open_flag_names(open.flags.expect("flags")),
        ["O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"]
    );
    assert_eq!(open.mode, Some(0o640));
    assert_eq!(Some(open.ret), fact["fd"].as_i64());

    let create = one(&events, FileOp::Create, &path("b"));
    assert_eq!(Some(create.ret), fact["cfd"].as_i64());
    assert_eq!(create.mode, Some(0o600));

    let rename = one(&events, FileOp::Rename, &path("a"));
    assert_eq!(rename.new_path.as_deref(), Some(path("c").as_bytes()));
    assert_eq!(rename.ret, 0);

    let chmod = one(&events, FileOp::Chmod, &path("c"));
    assert_eq!((chmod.mode, chmod.ret), (Some(0o600), 0));

    let unlink = one(&events, FileOp::Unlink, &path("c"));
    assert_eq!(unlink.ret, 0);

    // Moved in from the unwatched dir: only the new path, the second string, is watched.
    let from = fact["moved_from"]
        .as_str()
        .expect("the moved file's old path");
    assert_eq!(from.len() % 8, 3);
    let moved = one(&events, FileOp::Rename, from);
    assert_eq!(moved.new_path.as_deref(), Some(path("moved").as_bytes()));
    assert_eq!(moved.ret, 0);
    assert_eq!(one(&events, FileOp::Unlink, &path("moved")).ret, 0);
    let missing = one(&events, FileOp::Unlink, &path("missing"));
    assert_eq!(missing.ret, -i64::from(libc::ENOENT));

    // Relative paths are dropped in the kernel without `match_relative`; nothing else.
    assert_eq!(events.len(), 8, "{events:#?}");
    assert!(events.iter().all(|e| {
        e.path_resolved
            && [Some(&e.path), e.new_path.as_ref()]
                .into_iter()
                .flatten()
                .any(|p| p.starts_with(w.as_bytes()))
    }));

    // As `vigil run` writes it.
    let event = agent
        .events()
        .iter()
        .find(|e| matches!(&e.detail, Detail::File(f) if f == open))
        .expect("the open event");
    let json = render(event);
    assert_eq!(json["kind"], "file");
    assert_eq!(json["file"]["op"], "open");
    assert_eq!(json["file"]["path"], path("a"));
    assert_eq!(json["file"]["result"], "ok");
    assert_eq!(json["file"]["fd"], fact["fd"]);
    assert_eq!(json["file"]["mode"], "0640");
    let flags = json["file"]["flags"].as_array().expect("flags");
    for flag in ["O_WRONLY", "O_CREAT", "O_TRUNC"] {
        assert!(flags.contains(&Value::from(flag)), "{flag} in {flags:?}");
    }
    let missing = agent
        .events()
        .iter()
        .find(|e| matches!(&e.detail, Detail::File(f) if f == missing))
        .expect("the failed unlink");
    assert_eq!(render(missing)["file"]["result"], "ENOENT");
}

#[test]
fn relative_paths_resolve_through_the_dirfd_and_the_cwd() {
    let Some((events, fact, w, _agent)) = run(true) else {
        return;
    };
    let path = |name: &str| format!("{w}/{name}");
    let rel = one(&events, FileOp::Open, &path("rel"));
    assert!(rel.path_resolved);
    assert_eq!(Some(rel.ret), fact["rfd"].as_i64());
    let b = one(&events, FileOp::Unlink, &path("b"));
    assert!(b.path_resolved);
    assert_eq!(b.ret, 0);
}

/// openat2 keeps its flags and mode behind a pointer (`struct open_how`): the kernel side
/// copies them at enter, so they are decoded like openat's.
#[test]
fn openat2_flags_and_mode_come_from_open_how() {
    let watched = TempDir::new("files-openat2");
    let w = watched.path().to_str().expect("utf-8 temp path").to_owned();
    let Some(mut agent) = Harness::start(&config(&w, false)) else {
        return;
    };
    // openat2 is 437 on x86_64 and in the generic table (aarch64).
    let script = "import ctypes, json, os, struct, sys\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        libc.syscall.restype = ctypes.c_long\n\
        how = ctypes.create_string_buffer(struct.pack('QQQ', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o604, 0))\n\
        fd = libc.syscall(437, -100, sys.argv[1].encode() + b'/o2', how, 24)\n\
        print(json.dumps({'fd': fd}), flush=True)\n";
    let (pid, since_ns, facts) = run_python_facts(script, &[&w]);
    let events = collect(&mut agent, pid, since_ns);
    assert!(
        facts[0]["fd"].as_i64().is_some_and(|fd| fd >= 0),
        "{facts:?}"
    );
    let created = one(&events, FileOp::Create, &format!("{w}/o2"));
    assert_eq!(created.syscall, "openat2");
    let want = (libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) as u64;
    assert_eq!(created.flags, Some(want), "{:?}", open_flag_names(want));
    assert_eq!(created.mode, Some(0o604));
    assert_eq!(Some(created.ret), facts[0]["fd"].as_i64());
}

/// Not a test: the kernel cost of a watched and of an unwatched openat. Run with
/// `kernel.bpf_stats_enabled=1` and `--ignored --nocapture`; prints Δrun_time/Δrun_cnt of
/// the syscall programs over a loop of opens by a child (the agent's own syscalls are not
/// captured), and Δrun_time of `syscall_enter` + `syscall_exit` per open.
#[test]
#[ignore = "a measurement, not a test"]
fn open_cost_watched_and_unwatched() {
    let dir = TempDir::new("files-cost");
    let w = dir.path().to_str().expect("utf-8").to_owned();
    std::fs::write(dir.path().join("f"), b"x").expect("a file");
    // The default watch list plus the temp dir: the unwatched open is compared with all 20.
    let mut config = config(&format!("{w}/"), false);
    config
        .files
        .watch
        .extend(vigil::files::DEFAULT_WATCH.iter().map(|&p| p.to_owned()));
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let count = 200_000;
    for (label, path) in [
        ("watched", format!("{w}/f")),
        ("unwatched", "/etc/hostname".into()),
    ] {
        let script = format!(
            "import os\nfor _ in range({count}):\n    os.close(os.open('{path}', os.O_RDONLY))\n"
        );
        let before = agent.program_stats();
        let status = Command::new(python3())
            .args(["-c", &script])
            .status()
            .expect("python3");
        assert!(status.success());
        let after = agent.program_stats();
        agent.collect_for(std::time::Duration::from_millis(200));
        let mut per_open = 0.0;
        for ((name, t1, n1), (_, t0, n0)) in after.iter().zip(&before) {
            if !name.starts_with("syscall_") {
                continue;
            }
            let runs = n1 - n0;
            let time = t1.saturating_sub(*t0).as_nanos() as f64;
            per_open += time / f64::from(count);
            println!(
                "{label:<9} {name:<14} Δrun_time/Δrun_cnt {:.1} ns ({runs} runs)",
                time / runs.max(1) as f64
            );
        }
        println!(
            "{label:<9} enter+exit Δrun_time per open (all runs in the window / {count}): {per_open:.0} ns"
        );
    }
}

/// Paths of 126 to 255 bytes (the most a string keeps): each is reported whole; only the one
/// that fills the copy is flagged as possibly cut.
#[test]
fn paths_of_every_length_up_to_the_limit_are_reported_whole() {
    let watched = TempDir::new("files-lengths");
    let w = watched.path().to_str().expect("utf-8 temp path").to_owned();
    let Some(mut agent) = Harness::start(&config(&format!("{w}/"), false)) else {
        return;
    };
    let lengths = [126usize, 127, 128, 129, 200, 254, 255];
    let paths: Vec<String> = lengths
        .iter()
        .map(|&len| {
            let name = "n".repeat(len - w.len() - 1);
            format!("{w}/{name}")
        })
        .collect();
    let script = "import json, os, sys\n\
        for p in sys.argv[1:]:\n\
        \x20   os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o600))\n\
        print(json.dumps({}), flush=True)\n";
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (pid, since_ns, _) = run_python_facts(script, &args);
    let events = collect(&mut agent, pid, since_ns);
    for (path, len) in paths.iter().zip(lengths) {
        assert_eq!(path.len(), len);
        let open = one(&events, FileOp::Open, path);
        assert!(open.ret >= 0, "{open:?}");
        // 255 bytes and the NUL fill the copy, which cannot tell them from a longer path.
        assert_eq!(open.path_truncated, len == 255, "{len} bytes: {open:?}");
    }
}
