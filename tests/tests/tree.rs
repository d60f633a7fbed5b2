//! The process tree: a known chain (this test -> shell -> child shell -> echo) seen through
//! `parent` and `ancestors` of the last exec.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use vigil::{config::Config, event::Detail};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    spawn::{canonical_bytes, run_to_end},
};

#[test]
fn a_chain_of_execs_is_listed_through_parent_and_ancestors() {
    let mut config = Config::default();
    config.process.ancestors = 3;
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let marker = format!("vigil-chain-{}", std::process::id());
    let inner = format!("/bin/echo {marker}; true");
    let outer = format!("/bin/sh -c '{inner}'; true");
    // `; true` keeps each shell from exec'ing its last command in place: a real chain.
    let shell = run_to_end(
        Command::new("/bin/sh")
            .args(["-c", &outer])
            .stdout(Stdio::null()),
        EVENT_TIMEOUT,
    );

    let echo = agent.collect_until("the echo at the end of the chain", EVENT_TIMEOUT, |events| {
        events
            .iter()
            .find(|e| {
                matches!(&e.detail, Detail::Exec(x) if x.image.args.last() == Some(&marker.clone().into_bytes()))
            })
            .cloned()
    });
    let process = echo.process.as_ref().expect("the echo process");
    assert_eq!(process.binary.path, canonical_bytes(Path::new("/bin/echo")));

    let parent = echo.parent.as_ref().expect("the inner shell");
    let sh = canonical_bytes(Path::new("/bin/sh"));
    assert_eq!(parent.binary.path, sh);
    assert_eq!(
        parent.args,
        [b"/bin/sh".to_vec(), b"-c".to_vec(), inner.into_bytes()]
    );
    assert_eq!(process.parent, Some(parent.key));
    assert_eq!(process.parent_exec_id.as_ref(), Some(&parent.exec_id));

    assert_eq!(
        echo.ancestors.len(),
        3,
        "outer shell, this test, and its parent"
    );
    let outer_shell = &echo.ancestors[0];
    assert_eq!(outer_shell.key.tgid, shell.pid);
    assert_eq!(outer_shell.binary.path, sh);
    assert_eq!(
        outer_shell.args,
        [b"/bin/sh".to_vec(), b"-c".to_vec(), outer.into_bytes()]
    );
    assert_eq!(parent.parent, Some(outer_shell.key));
    let this_test = &echo.ancestors[1];
    assert_eq!(this_test.key.tgid, std::process::id());
    assert_eq!(
        echo.ancestors[2].key.tgid,
        std::os::unix::process::parent_id(),
        "the test runner's parent"
    );
    agent.stop();
}
