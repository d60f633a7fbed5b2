//! Fileless execution: an exec of a memfd, or of a file deleted before it ran, is flagged on
//! the exec event (`exec.deleted`, `exec.memfd`), with the memfd's name as the binary.

use std::process::{Command, Stdio};

use vigil::{config::Config, event::Detail};
use vigil_tests::{EVENT_TIMEOUT, Harness, json::render};

/// Runs python3 to exec /bin/true through a memfd and through a deleted copy; argv[0] of each
/// carries `tag` so the test finds its own execs.
fn run_fileless(tag: &str, dir: &std::path::Path) {
    let script = format!(
        r#"
import os, shutil
fd = os.memfd_create("vigil-memfd")
os.write(fd, open("/bin/true", "rb").read())
pid = os.fork()
if pid == 0:
    os.execve(f"/proc/self/fd/{{fd}}", ["memfd-{tag}"], {{}})
os.waitpid(pid, 0)
copy = "{dir}/deleted-true"
shutil.copy("/bin/true", copy)
f = os.open(copy, os.O_RDONLY)
os.unlink(copy)
pid = os.fork()
if pid == 0:
    os.execve(f"/proc/self/fd/{{f}}", ["deleted-{tag}"], {{}})
os.waitpid(pid, 0)
"#,
        dir = dir.display()
    );
    let status = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .status()
        .expect("python3 runs");
    assert!(status.success(), "the trigger script failed: {status}");
}

#[test]
fn memfd_and_deleted_file_execs_are_flagged() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let tag = format!("vigil-{}", std::process::id());
    let dir = vigil_tests::spawn::TempDir::new("fileless");
    run_fileless(&tag, dir.path());
    let find = |events: &[vigil::event::Event], argv0: &str| {
        events
            .iter()
            .find(|e| matches!(&e.detail, Detail::Exec(x) if x.image.args.first().map(Vec::as_slice) == Some(argv0.as_bytes())))
            .cloned()
    };
    let memfd_argv0 = format!("memfd-{tag}");
    let deleted_argv0 = format!("deleted-{tag}");
    let memfd = agent.collect_until("the memfd exec", EVENT_TIMEOUT, |e| find(e, &memfd_argv0));
    let deleted = agent.collect_until("the deleted-file exec", EVENT_TIMEOUT, |e| {
        find(e, &deleted_argv0)
    });

    let Detail::Exec(exec) = &memfd.detail else {
        unreachable!("found as an exec");
    };
    assert!(exec.exe_unlinked);
    assert_eq!(exec.image.binary.path, b"/memfd:vigil-memfd");
    let json = render(&memfd);
    assert_eq!(json["exec"]["memfd"], true);
    assert_eq!(json["exec"]["deleted"], true);

    let Detail::Exec(exec) = &deleted.detail else {
        unreachable!("found as an exec");
    };
    assert!(exec.exe_unlinked);
    let copy = dir
        .path()
        .canonicalize()
        .expect("temp dir")
        .join("deleted-true");
    assert_eq!(exec.image.binary.path, copy.as_os_str().as_encoded_bytes());
    let json = render(&deleted);
    assert_eq!(json["exec"]["deleted"], true);
    assert!(json["exec"].get("memfd").is_none());

    // An ordinary exec is not flagged.
    let ordinary = agent.collect_until("any ordinary exec", EVENT_TIMEOUT, |events| {
        events
            .iter()
            .find(|e| matches!(&e.detail, Detail::Exec(x) if x.image.args.first().map(Vec::as_slice) == Some(b"/usr/bin/python3".as_slice())))
            .cloned()
    });
    assert!(render(&ordinary)["exec"].get("deleted").is_none());
    agent.stop();
}
